"""No leakage in evaluation (issue 14, item 8).

A record an aligned judge holds in memory retrieves itself, with the expert's verdict, as
its most similar example: agreement measured on it is inflated. ``AlignedJudge.memorised``
says which records it holds (same id, or the same fields the judge reads), its feedback
marks them, and ``agreement``, ``compare_judges`` and ``judgealign report`` leave them out
with a warning, or refuse when nothing is left.

The verdict model here copies the expert's verdict when the example it is shown is the
judged record itself, and says "no" otherwise, so a leaked record is always "right" and a
held-out one always "wrong": exactly the inflation to catch.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import click.testing
import pytest

from judgealign import (
    AlignedJudge,
    ConfigurationError,
    HashingEmbedder,
    LabeledRecord,
    MemAlignOptimizer,
    agreement,
    compare_judges,
    make_judge,
)
from judgealign.cli._main import cli
from judgealign.testing import FunctionModel, ModelRequest

INSTRUCTIONS = "Is {{ outputs }} a correct answer to {{ inputs }}?"
_EXAMPLE = re.compile(r"<example>\n(.*?)\n</example>\nExpert verdict: (true|false)", re.S)
_RECORD = re.compile(r"<record>\n(.*?)\n</record>", re.S)


def copy_first_example(request: ModelRequest) -> dict[str, Any]:
    if request.response_format and request.response_format["json_schema"]["name"] != "Verdict":
        return {"guidelines": []}  # distillation and consolidation: nothing to learn
    example, judged = _EXAMPLE.search(request.system), _RECORD.search(request.last_user)
    itself = example is not None and judged is not None and example[1] == judged[1]
    return {"rationale": "as the expert said", "result": bool(itself and example[2] == "true")}


def record(i: int, *, id: str | None = None) -> LabeledRecord:
    return LabeledRecord(
        id=id or f"r{i}",
        inputs=f"What is {i} + {i}?",
        outputs=f"It is {2 * i}.",
        label=True,
        rationale="the sum is right",
    )


def aligned_on(records: list[LabeledRecord]) -> tuple[AlignedJudge, FunctionModel]:
    model = FunctionModel(copy_first_example)
    judge = make_judge(name="sums", instructions=INSTRUCTIONS, model=model)
    optimizer = MemAlignOptimizer(embedding_model=HashingEmbedder(256), retrieval_k=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return optimizer.align(judge, records), model


TRAIN = [record(i) for i in range(6)]
# Held out: r0 is stored (same id), "copy-of-r1" has r1's content under another id; the
# other three are new.
HELD_OUT = [record(0), record(1, id="copy-of-r1"), record(10), record(11), record(12)]


def verdict_requests(model: FunctionModel) -> list[ModelRequest]:
    return [
        r
        for r in model.requests
        if r.response_format and r.response_format["json_schema"]["name"] == "Verdict"
    ]


def test_the_aligned_judge_says_which_records_it_holds() -> None:
    aligned, _ = aligned_on(TRAIN)
    assert aligned.memorised(HELD_OUT) == ["r0", "r1", None, None, None]
    as_dicts = [r.model_dump() for r in HELD_OUT]
    assert aligned.memorised(as_dicts) == ["r0", "r1", None, None, None]
    # Another answer to a stored question is new content.
    assert aligned.memorised([{"inputs": "What is 0 + 0?", "outputs": "It is 1."}]) == [None]


def test_its_feedback_marks_a_memorised_record() -> None:
    aligned, _ = aligned_on(TRAIN)
    result = aligned.evaluate(HELD_OUT)
    marks = [fb.metadata.get("memorised_record_id") for fb in result]
    assert marks == ["r0", "r1", None, None, None]
    single = aligned(inputs=TRAIN[2].inputs, outputs=TRAIN[2].outputs)
    assert single.metadata["memorised_record_id"] == "r2"


def test_agreement_leaves_memorised_records_out_with_a_warning() -> None:
    aligned, _ = aligned_on(TRAIN)
    feedback = aligned.evaluate(HELD_OUT)
    assert feedback.values == [True, True, False, False, False]  # the leak: 2 "right"
    ids = [r.id for r in HELD_OUT]
    with pytest.warns(UserWarning, match=r"2 of 5 held-out records are in the aligned judge's"):
        report = agreement(list(feedback), [r.label for r in HELD_OUT], ids=ids)
    assert report.excluded_ids == ("r0", "copy-of-r1") and report.n_excluded == 2
    assert report.n == 3 and report.accuracy == 0.0  # the leaked two would have been "right"
    assert report.to_dict()["n_excluded"] == 2
    assert "2 excluded (in memory)" in report.format()


def test_agreement_refuses_when_every_record_is_memorised() -> None:
    aligned, _ = aligned_on(TRAIN)
    feedback = aligned.evaluate(TRAIN)
    with pytest.raises(ConfigurationError, match=r"All 6 records .* aligned judge.s memory"):
        agreement(list(feedback), [r.label for r in TRAIN])


def test_compare_judges_excludes_memorised_records_before_judging() -> None:
    aligned, model = aligned_on(TRAIN)
    before = len(verdict_requests(model))
    with pytest.warns(UserWarning, match=r"2 of 5 held-out records .* r0, copy-of-r1"):
        comparison = compare_judges(aligned.base_judge, aligned, HELD_OUT, n_bootstrap=0)
    assert comparison.excluded_ids == ("r0", "copy-of-r1")
    assert comparison.base.n == comparison.aligned.n == 3
    assert comparison.aligned.accuracy == 0.0
    assert len(verdict_requests(model)) - before == 6  # 3 records, 2 judges: none leaked
    assert comparison.to_dict()["excluded_ids"] == ["r0", "copy-of-r1"]
    assert "Excluded (in the judge's memory) (2): r0, copy-of-r1" in comparison.format()


def test_compare_judges_refuses_before_any_call_when_all_are_memorised() -> None:
    aligned, model = aligned_on(TRAIN)
    before = len(model.requests)
    with pytest.raises(ConfigurationError, match="All 6 records given to compare_judges"):
        compare_judges(aligned.base_judge, aligned, TRAIN)
    assert len(model.requests) == before


class Fixed:
    """Verdicts computed earlier (as the CLI's ``align`` command compares them)."""

    def __init__(self, feedback: Any) -> None:
        self.feedback = feedback

    def evaluate(self, records: Any, /, *, max_workers: int = 1) -> Any:
        return self.feedback


def test_compare_judges_reads_the_marks_of_verdicts_computed_earlier() -> None:
    aligned, _ = aligned_on(TRAIN)
    base = Fixed(aligned.base_judge.evaluate(HELD_OUT))
    marked = Fixed(aligned.evaluate(HELD_OUT))
    with pytest.warns(UserWarning, match="2 of 5"):
        comparison = compare_judges(base, marked, HELD_OUT, n_bootstrap=0)
    assert comparison.excluded_ids == ("r0", "copy-of-r1")
    assert comparison.base.n == comparison.aligned.n == 3


# -- the CLI -----------------------------------------------------------------------------


def run(*args: str | Path) -> click.testing.Result:
    return click.testing.CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def write_jsonl(path: Path, records: list[LabeledRecord]) -> Path:
    rows = [r.model_dump(mode="json", exclude_none=True) for r in records]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture
def aligned_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    aligned, model = aligned_on(TRAIN)
    from judgealign.cli import _models as _cli_models

    monkeypatch.setattr(_cli_models, "make_model", lambda uri, **_: model)
    return aligned.save(tmp_path / "aligned.json")


def test_report_leaves_memorised_records_out_and_says_so(
    aligned_file: Path, tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "held_out.jsonl", HELD_OUT)
    out = tmp_path / "report.json"
    result = run("report", aligned_file, data, "--json", out, "--bootstrap", "0")
    assert result.exit_code == 0, result.output
    assert "2 of 5 held-out records are in the aligned judge's memory" in result.stderr
    assert "Judging 3 labelled records" in result.stdout
    assert "Excluded ids (in the judge's memory) (2): r0, copy-of-r1" in result.stdout
    report = json.loads(out.read_text())["agreement"]
    assert report["n"] == 3 and report["n_excluded"] == 2
    assert report["excluded_ids"] == ["r0", "copy-of-r1"]


def test_report_refuses_when_every_record_is_memorised(aligned_file: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", TRAIN)
    result = run("report", aligned_file, data)
    assert result.exit_code == 2, result.output
    assert "error: All 6 records given to report are in the aligned judge's memory" in (
        result.stderr
    )


# -- long real records -------------------------------------------------------------------

DEFACTO = Path(__file__).resolve().parents[2] / "shared" / "data" / "defacto" / "defacto.jsonl"


@pytest.mark.skipif(not DEFACTO.is_file(), reason=f"{DEFACTO} not found")
def test_on_defacto_only_the_stored_records_count_as_memorised() -> None:
    # DeFacto documents run to thousands of characters and the summary comes last: another
    # summary of a stored document is new evidence, the stored record itself is not.
    from judgealign import load_jsonl

    model = FunctionModel(copy_first_example)
    judge = make_judge(
        name="consistency",
        instructions="Is the summary {{ outputs }} consistent with the document {{ inputs }}?",
        model=model,
    )
    records = list(load_jsonl(DEFACTO, judge=judge, limit=12, strict=True).records)
    train, fresh = records[:8], records[8:]
    optimizer = MemAlignOptimizer(embedding_model=HashingEmbedder(256), retrieval_k=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aligned = optimizer.align(judge, train)
    resummarised = [
        r.model_copy(update={"id": f"{r.id}-other", "outputs": fresh[i].outputs})
        for i, r in enumerate(train[:3])
    ]
    held_out = [*train[:3], *resummarised, *fresh]
    assert aligned.memorised(held_out) == [r.id for r in train[:3]] + [None] * 7
    with pytest.warns(UserWarning, match="3 of 10 held-out records"):
        comparison = compare_judges(judge, aligned, held_out, n_bootstrap=0)
    assert comparison.excluded_ids == tuple(r.id for r in train[:3])
    assert comparison.aligned.n + comparison.aligned.n_failed == 7
