"""The tracker shows the judge among a panel's raters (issue 19, item 3)."""

from __future__ import annotations

from test_tracking import RecordingTracker, judge

from judgealign import load_records, use_tracker

# Four records rated by three raters; the judge says yes when the answer holds "4".
PANEL = [
    {"id": "a", "inputs": "2+2?", "outputs": "4", "rater": "al", "label": "yes"},
    {"id": "a", "inputs": "2+2?", "outputs": "4", "rater": "bo", "label": "yes"},
    {"id": "a", "inputs": "2+2?", "outputs": "4", "rater": "cy", "label": "yes"},
    {"id": "b", "inputs": "2+2?", "outputs": "5", "rater": "al", "label": "no"},
    {"id": "b", "inputs": "2+2?", "outputs": "5", "rater": "bo", "label": "yes"},
    {"id": "b", "inputs": "2+2?", "outputs": "5", "rater": "cy", "label": "no"},
    {"id": "c", "inputs": "2+2?", "outputs": "four", "rater": "al", "label": "yes"},
    {"id": "c", "inputs": "2+2?", "outputs": "four", "rater": "bo", "label": "no"},
    {"id": "c", "inputs": "2+2?", "outputs": "four", "rater": "cy", "label": "yes"},
    {"id": "d", "inputs": "3+1?", "outputs": "4", "rater": "al", "label": "yes"},
    {"id": "d", "inputs": "3+1?", "outputs": "4", "rater": "bo", "label": "yes"},
    {"id": "d", "inputs": "3+1?", "outputs": "4", "rater": "cy", "label": "no"},
]


def test_evaluate_on_panel_records_logs_the_judge_among_raters() -> None:
    scorer = judge()
    records = list(load_records(PANEL, judge=scorer, strict=True))
    tracker = RecordingTracker()
    with use_tracker(tracker):
        scorer.evaluate(records)
    metrics = tracker.metrics()
    for name in ("alpha", "raters_mean_kappa", "judge_mean_kappa", "difference"):
        assert f"agreement.panel.{name}" in metrics
    artifacts = tracker.artifacts()
    assert artifacts["agreement.json"]["panel"]["names"] == ["al", "bo", "cy", "judge"]
    figure = artifacts["kappa_matrix.png"]
    assert type(figure).__name__ == "Figure"
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == ["al", "bo", "cy", "judge"]


def test_evaluate_on_single_expert_records_logs_no_panel() -> None:
    tracker = RecordingTracker()
    with use_tracker(tracker):
        judge().evaluate([{"id": "a", "inputs": "2+2?", "outputs": "4", "label": "yes"}])
    assert not any(k.startswith("agreement.panel") for k in tracker.metrics())
    assert "kappa_matrix.png" not in tracker.artifacts()
