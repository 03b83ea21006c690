"""``judgealign report`` on panel data: the judge as one more rater, and its kappa plot."""

from __future__ import annotations

import json
import random
from pathlib import Path

import click.testing
import pytest

from judgealign.cli import _models as _cli_models
from judgealign.cli._main import cli
from judgealign.testing import FunctionModel, ModelRequest

SPEC = {
    "name": "capital",
    "instructions": "Is {{ outputs }} the right answer to {{ inputs }}?",
    "feedback_value_type": "bool",
}


def _verdict(request: ModelRequest) -> dict[str, object]:
    # The judge says "correct" exactly when the answer is marked good in the record.
    return {"rationale": "checked", "result": "good" in request.last_user}


@pytest.fixture
def judged(monkeypatch: pytest.MonkeyPatch) -> FunctionModel:
    model = FunctionModel(_verdict, uri="test:/panel")
    monkeypatch.setattr(_cli_models, "make_model", lambda uri, **_: model)
    return model


def _long_form_csv(path: Path, n: int = 40) -> Path:
    rng = random.Random(7)
    lines = ["id,inputs,outputs,rater,label,rationale"]
    for i in range(n):
        good = rng.random() < 0.5
        answer = f"answer {i} {'good' if good else 'bad'}"
        for rater in ("alice", "bob", "carol"):
            label = good if rng.random() < 0.85 else not good
            lines.append(f"r{i},question {i},{answer},{rater},{'yes' if label else 'no'},seen")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_report_on_long_form_panel_shows_the_judge_among_raters(
    judged: FunctionModel, tmp_path: Path
) -> None:
    spec = tmp_path / "judge.json"
    spec.write_text(json.dumps(SPEC), encoding="utf-8")
    data = _long_form_csv(tmp_path / "panel.csv")
    args = [
        "report",
        spec,
        data,
        "--bootstrap",
        "200",
        "--json",
        tmp_path / "report.json",
        "--kappa-plot",
        tmp_path / "kappa.png",
    ]
    result = click.testing.CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Judging 40 labelled records" in result.output
    assert "Panel: 3 raters, 40 records" in result.output
    assert "judge's mean kappa with raters" in result.output
    assert "kappa matrix written to" in result.output
    assert (tmp_path / "kappa.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    panel = json.loads((tmp_path / "report.json").read_text())["agreement"]["panel"]
    assert panel["names"] == ["alice", "bob", "carol", "judge"]
    assert panel["n_judged"] == 40


def test_kappa_plot_without_a_panel_says_what_it_needs(
    judged: FunctionModel, tmp_path: Path
) -> None:
    spec = tmp_path / "judge.json"
    spec.write_text(json.dumps(SPEC), encoding="utf-8")
    data = tmp_path / "single.jsonl"
    data.write_text(
        '{"id": "a", "inputs": "q", "outputs": "good", "label": true}\n'
        '{"id": "b", "inputs": "q", "outputs": "bad", "label": false}\n',
        encoding="utf-8",
    )
    args = ["report", spec, data, "--bootstrap", "0", "--kappa-plot", tmp_path / "k.png"]
    result = click.testing.CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 2
    assert "--kappa-plot needs panel data" in result.output


def test_suggest_writes_a_file_ready_for_labellers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rng = random.Random(3)
    seen: list[object] = []

    def unsure(request: ModelRequest) -> dict[str, object]:
        # Unsure (a coin toss) on the "hard" answers, sure on the others.
        hard = "hard" in request.last_user
        return {"rationale": "r", "result": rng.random() < 0.5 if hard else True}

    model = FunctionModel(unsure, uri="test:/unsure")

    def make_model(uri: str, **options: object) -> FunctionModel:
        seen.append(options.get("params"))
        return model

    monkeypatch.setattr(_cli_models, "make_model", make_model)
    spec = tmp_path / "judge.json"
    spec.write_text(json.dumps(SPEC), encoding="utf-8")
    data = tmp_path / "pool.jsonl"
    data.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"u{i}",
                    "inputs": f"q {i}",
                    "outputs": f"{'hard' if i in (2, 7) else 'easy'} {i}",
                }
            )
            + "\n"
            for i in range(10)
        ),
        encoding="utf-8",
    )
    out = tmp_path / "to_label.jsonl"
    args = ["suggest", spec, data, "-n", "2", "--samples", "6", "--output", out]
    result = click.testing.CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert {r["id"] for r in rows} == {"u2", "u7"}
    assert all(r["label"] is None and r["rationale"] == "" for r in rows)
    assert rows[0]["suggestion"]["rank"] == 1 and len(rows[0]["suggestion"]["verdicts"]) == 6
    # Each sample's judge was built with the sampling temperature and its own seed.
    sampled = [p for p in seen if isinstance(p, dict) and "seed" in p]
    assert sorted(p["seed"] for p in sampled) == list(range(6))  # type: ignore[index]
    assert all(p["temperature"] == 1.0 for p in sampled)  # type: ignore[index]
    assert "60 model calls" in result.output
