"""ratings_metric: stored SME ratings as a DSPy metric, directly or through a fallback."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

dspy = pytest.importorskip("dspy")

from dspy_support import (  # noqa: E402
    CAPITALS,
    TwoStep,
    capitals_judge,
    examples,
    program_reply,
    reflection_model,
)
from memalign_support import DEFACTO, needs_defacto  # noqa: E402

from judgealign import ConfigurationError, load_records  # noqa: E402
from judgealign.dspy import ratings_metric  # noqa: E402
from judgealign.testing import FakeOpenAIServer  # noqa: E402
from optimizers import GepaPromptOptimizer, optimize_program  # noqa: E402

SCORES = {"excellent": 1.0, "fair": 0.5, "poor": 0.0}
STYLE = "the right city, but our style guide wants capitals written in UPPERCASE"


def capital_ratings() -> list[dict[str, Any]]:
    """An SME's ratings of both spellings of every capital."""
    rows: list[dict[str, Any]] = []
    for country, city in CAPITALS.items():
        question = f"What is the capital of {country}?"
        rows.append(
            {"inputs": {"question": question}, "outputs": city, "label": "fair", "rationale": STYLE}
        )
        rows.append(
            {
                "inputs": question,  # stored as the value alone: one input field
                "outputs": {"answer": city.upper()},
                "label": "Excellent",  # labels match label_scores case-insensitively
                "rationale": "correct and in house style",
                "annotator": "dana",
            }
        )
    return rows


@pytest.fixture()
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(reply=program_reply) as fake:
        lm = dspy.LM("openai/fake", api_base=fake.base_url, api_key="sk-fake", cache=False)
        with dspy.context(lm=lm):
            yield fake


def test_a_rated_output_scores_the_sme_label_with_the_rationale_as_feedback() -> None:
    metric = ratings_metric(capital_ratings(), label_scores=SCORES)
    gold = examples(["Peru"])[0]
    assert metric(gold, dspy.Prediction(answer="Lima")) == 0.5
    fed = metric(gold, dspy.Prediction(answer="  LIMA\n"), None, None, None)  # normalised
    assert fed.score == 1.0
    assert fed.feedback == "SME dana rated this output 'Excellent': correct and in house style"
    fair = metric(gold, dspy.Prediction(reasoning="...", answer="Lima"), None, "answer", None)
    assert fair.feedback == f"An SME rated this output 'fair': {STYLE}"
    assert metric.counts == {"rated": 3, "fallback": 0, "unrated": 0}
    assert metric.feedback_per_predictor is False


def test_an_unrated_output_without_fallback_scores_zero_and_says_why() -> None:
    metric = ratings_metric(capital_ratings(), label_scores=SCORES)
    gold = examples(["Peru"])[0]
    for answer in ("lima", "Lima, Peru"):  # case is kept: "lima" was never rated
        fed = metric(gold, dspy.Prediction(answer=answer), None, None, None)
        assert fed.score == 0.0
        assert "no SME rated this output" in fed.feedback and "fallback=" in fed.feedback
    assert metric.counts["unrated"] == 2


def test_the_fallback_judge_scores_only_what_no_sme_rated() -> None:
    judge = capitals_judge()
    metric = ratings_metric(capital_ratings(), label_scores=SCORES, fallback=judge)
    gold = examples(["Peru"])[0]
    assert metric(gold, dspy.Prediction(answer="Lima")) == 0.5  # rated: the judge is not asked
    assert len(judge.model.requests) == 0
    fed = metric(gold, dspy.Prediction(answer="lima"), None, None, None)
    assert fed.score == 0.0 and "must be written in UPPERCASE" in fed.feedback
    sent = json.loads(judge.model.requests[0].last_user.split("<record>", 1)[1].split("</")[0])
    assert sent["inputs"] == {"question": "What is the capital of Peru?"}
    assert metric.counts == {"rated": 1, "fallback": 1, "unrated": 0}

    def exact(example: Any, prediction: Any, trace: Any = None) -> str:
        return "excellent" if prediction.answer == example.answer.upper() else "poor"

    by_metric = ratings_metric(capital_ratings(), label_scores=SCORES, fallback=exact)
    assert by_metric(examples(["Chile"])[0], dspy.Prediction(answer="santiago")) == 0.0


def test_several_ratings_of_one_output_score_their_mean_with_every_rationale() -> None:
    rows = [
        {"inputs": "2+2?", "outputs": "4", "label": "excellent", "rationale": "right"},
        {"inputs": "2+2?", "outputs": "4", "label": "fair", "rationale": "terse", "id": "b"},
    ]
    metric = ratings_metric(rows, label_scores=SCORES)
    gold = dspy.Example(q="2+2?").with_inputs("q")
    fed = metric(gold, dspy.Prediction(a="4"), None, None, None)
    assert fed.score == 0.75
    assert "'excellent': right" in fed.feedback and "'fair': terse" in fed.feedback


def test_records_come_as_our_loaders_give_them(tmp_path: Path) -> None:
    rows = capital_ratings()
    path = tmp_path / "ratings.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    gold, pred = examples(["Chile"])[0], dspy.Prediction(answer="SANTIAGO")
    for records in (str(path), path, load_records(rows), list(load_records(rows))):
        assert ratings_metric(records, label_scores=SCORES)(gold, pred) == 1.0


def test_bad_ratings_are_refused_early_naming_the_record_and_the_fix() -> None:
    good = {"inputs": "q", "outputs": "a", "label": "fair", "id": "r1"}
    cases: list[tuple[Any, dict[str, float], str]] = [
        ([{**good, "label": None}], SCORES, r"label"),
        ([{"inputs": "q", "outputs": "a", "id": "r1"}], SCORES, r"item 0 \(id 'r1'\): label"),
        ([{**good, "label": "superb"}], SCORES, r"record 'r1' has the label 'superb'.*not in"),
        ([{**good, "outputs": None}], SCORES, r"record 'r1' has no outputs"),
        ([{**good, "inputs": ""}], SCORES, r"record 'r1' has no inputs"),
        ([], SCORES, r"records is empty"),
        ({"inputs": "q"}, SCORES, r"records must be a list"),
        ([good], {"fair": 2.0}, r"label_scores\['fair'\]=2.0 must be a number in \[0, 1\]"),
        ([good], {}, r"label_scores must map each SME label"),
    ]
    for records, scores, pattern in cases:
        with pytest.raises(ConfigurationError, match=pattern):
            ratings_metric(records, label_scores=scores)
    with pytest.raises(ConfigurationError, match=r"fallback.*not a judge or a metric"):
        ratings_metric([good], label_scores=SCORES, fallback="judge-1")
    # Without a fallback, an example no SME rated anything for is refused before any call.
    metric = ratings_metric(capital_ratings(), label_scores=SCORES)
    unrated = dspy.Example(question="What is the capital of Mali?").with_inputs("question")
    with pytest.raises(ConfigurationError, match=r"no SME rating has the inputs.*fallback="):
        metric.check_example(unrated)
    with_fallback = ratings_metric(capital_ratings(), label_scores=SCORES, fallback=lambda *a: 1)
    with_fallback.check_example(unrated)


def test_optimize_program_from_sme_ratings_directly(server: FakeOpenAIServer) -> None:
    seen: list[str] = []
    data = examples()
    metric = ratings_metric(capital_ratings(), label_scores=SCORES)
    result = optimize_program(
        TwoStep(),
        data[:4],
        data[4:],
        metric=metric,
        optimizer=GepaPromptOptimizer(reflection_model(seen), max_metric_calls=60),
    )
    assert result.initial_score == 0.5 and result.final_score == 1.0
    assert result.changed_predictors == ["answer"]
    # The reflection read the SME's rationale; every prediction was one an SME rated.
    assert any(STYLE in text for text in seen)
    assert metric.counts["unrated"] == 0 and metric.counts["rated"] == result.metric_calls
    assert result.feedback_calls == 0


@needs_defacto
def test_long_defacto_ratings_match_reflowed_text() -> None:
    with DEFACTO.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in list(handle)[:40]]
    longest = sorted(rows, key=lambda r: len(str(r["inputs"]["document"])))[-5:]
    assert min(len(r["inputs"]["document"]) for r in longest) > 3_000
    metric = ratings_metric(longest, label_scores={"yes": 1.0, "no": 0.0})
    for row in longest:
        # The same document with its whitespace reflowed, as another export would give it.
        document = str(row["inputs"]["document"]).replace(". ", ".\n\n  ")
        gold = dspy.Example(document=document).with_inputs("document")
        fed = metric(gold, dspy.Prediction(summary=f" {row['outputs']}\n"), None, None, None)
        assert fed.score == {"yes": 1.0, "no": 0.0}[row["label"]]
        assert row["rationale"].strip() in fed.feedback


def test_the_readme_snippet_runs_offline_and_prints_what_it_says(
    capsys: pytest.CaptureFixture[str],
) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
    [snippet] = [block for block in blocks if "ratings_metric(ratings" in block]
    exec(compile(snippet, "README.md (ratings_metric)", "exec"), {})
    assert capsys.readouterr().out.splitlines() == [
        "0.5",
        "An SME rated this output 'excellent': Correct and in house style.",
        "0.0",
        "{'rated': 2, 'fallback': 0, 'unrated': 1}",
    ]
