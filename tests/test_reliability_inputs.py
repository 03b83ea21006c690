"""Bad-input catalogue: every misuse of the public API fails early, with the library's own
error, a message naming the field and the fix, and no half-written file.

Each case gets a fresh :class:`Ctx` (a temporary folder, a spy model, a counting embedder).
The harness snapshots the folder before the call and checks afterwards that the call

* raised a :class:`judgealign.JudgeAlignError` (usually ``ConfigurationError``),
* with a message matching the case's pattern (the field, and how to fix it),
* made no model call and embedded nothing (the failure came before any spend),
* left every file in the folder byte-for-byte as it was (no torn or temporary file).
"""

from __future__ import annotations

import json
import math
import threading
import time
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from judgealign import (
    AlignedJudge,
    ConfigurationError,
    HashingEmbedder,
    Judge,
    JudgeAlignError,
    MemAlignOptimizer,
    load_jsonl,
    load_records,
    make_judge,
)
from judgealign.testing import FunctionModel, ModelRequest
from optimizers import (
    GEPA,
    EvaluationResultRecord,
    InMemoryPromptStore,
    MetaPromptOptimizer,
    PromptOptimizationWarning,
    load_prompt,
    optimize_prompts,
    register_prompt,
    set_prompt_store,
)

INSTRUCTIONS = "Is {{ outputs }} a correct answer to {{ inputs }}?"


class SpyEmbedder:
    """A hashing embedder that counts texts; ``returns`` can lie about the dimension."""

    def __init__(self, dimension: int = 64, *, returns: int | None = None) -> None:
        self._inner = HashingEmbedder(returns or dimension)
        self._dimension = dimension
        self.texts = 0

    @property
    def id(self) -> str:
        return f"spy:/hashing@{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.texts += len(texts)
        return self._inner.embed(texts)


def _verdict(request: ModelRequest) -> dict[str, Any]:
    if "calibrating an automated evaluator" in request.system:  # a distillation request
        return {"guidelines": []}
    return {"result": True, "rationale": "fine"}


@dataclass
class Ctx:
    """What a case may use; the harness checks the spies after the call."""

    tmp: Path
    model: FunctionModel = field(default_factory=lambda: FunctionModel(_verdict))
    embedder: SpyEmbedder = field(default_factory=SpyEmbedder)

    def judge(self, **overrides: Any) -> Judge:
        options: dict[str, Any] = {"name": "j", "instructions": INSTRUCTIONS, "model": self.model}
        options.update(overrides)
        return make_judge(**options)

    def optimizer(self, **overrides: Any) -> MemAlignOptimizer:
        return MemAlignOptimizer(embedding_model=self.embedder, **overrides)

    def aligned_file(self) -> Path:
        """A valid saved aligned judge (made before the snapshot, with no spy traffic)."""
        model = FunctionModel(_verdict)
        judge = make_judge(name="j", instructions=INSTRUCTIONS, model=model)
        records = [
            {"id": f"r{i}", "inputs": f"q{i}", "outputs": f"a{i}", "label": True} for i in range(3)
        ]
        with pytest.warns(UserWarning):  # the scripted reflection model distills nothing
            aligned = judge.align(
                records, optimizer=MemAlignOptimizer(embedding_model=SpyEmbedder())
            )
        return aligned.save(self.tmp / "aligned.json")

    def write(self, name: str, text: str | bytes) -> Path:
        path = self.tmp / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path


Setup = Callable[[Ctx], Callable[[], Any]]
CASES: list[Any] = []


def case(case_id: str, pattern: str) -> Callable[[Setup], Setup]:
    """Register a case: ``setup(ctx)`` prepares files and returns the failing call."""

    def register(setup: Setup) -> Setup:
        CASES.append(pytest.param(setup, pattern, id=case_id))
        return setup

    return register


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


# -- make_judge ----------------------------------------------------------------------------


@case("judge-unknown-variable", r"unknown template variable.*\boutput\b.*Allowed: \{\{ inputs \}\}")
def _(c: Ctx) -> Any:
    return lambda: c.judge(instructions="Is {{ output }} right?")


@case("judge-no-variable", r"at least one template variable.*\{\{ outputs \}\}")
def _(c: Ctx) -> Any:
    return lambda: c.judge(instructions="Is the answer right?")


@case("judge-empty-name", r"name='  ' must be a non-empty string, for example name=")
def _(c: Ctx) -> Any:
    return lambda: c.judge(name="  ")


@case("judge-instructions-not-str", r"instructions must be a non-empty string")
def _(c: Ctx) -> Any:
    return lambda: c.judge(instructions=None)


@case("judge-value-type-list", r"feedback_value_type=<class 'list'> is not supported\. Use one of")
def _(c: Ctx) -> Any:
    return lambda: c.judge(feedback_value_type=list)


@case("judge-literal-of-ints", r"feedback_value_type=.*Literal of non-empty strings, for example")
def _(c: Ctx) -> Any:
    return lambda: c.judge(feedback_value_type=typing.Literal[1, 2])


@case("judge-range-on-bool", r"value_range=\(1, 5\) was given for a bool judge.*Remove value_range")
def _(c: Ctx) -> Any:
    return lambda: c.judge(value_range=(1, 5))


@case("judge-range-reversed", r"value_range=\(5, 1\) must be two finite numbers with low <= high")
def _(c: Ctx) -> Any:
    return lambda: c.judge(feedback_value_type=int, value_range=(5, 1))


@case("judge-range-nan", r"value_range=\(nan, 1\.0\) must be two finite numbers")
def _(c: Ctx) -> Any:
    return lambda: c.judge(feedback_value_type=float, value_range=(math.nan, 1.0))


@case("judge-label-scores-on-bool", r"label_scores applies only to Literal judges")
def _(c: Ctx) -> Any:
    return lambda: c.judge(label_scores={"yes": 1.0})


@case("judge-label-scores-missing", r"label_scores must give every label .*missing: \['b'\]")
def _(c: Ctx) -> Any:
    return lambda: c.judge(feedback_value_type=typing.Literal["a", "b"], label_scores={"a": 1})


@case("judge-label-scores-not-number", r"label_scores\['a'\]='high' must be a number in \[0, 1\]")
def _(c: Ctx) -> Any:
    return lambda: c.judge(
        feedback_value_type=typing.Literal["a", "b"], label_scores={"a": "high", "b": 0}
    )


@case("judge-label-scores-nan", r"label_scores must give every label.*out of range: \['a'\]")
def _(c: Ctx) -> Any:
    return lambda: c.judge(
        feedback_value_type=typing.Literal["a", "b"], label_scores={"a": math.nan, "b": 0}
    )


@case("judge-inference-params-list", r"inference_params must be a dict.*\{'temperature': 0\}")
def _(c: Ctx) -> Any:
    return lambda: c.judge(inference_params=["temperature"])


@case("judge-base-url-int", r"base_url=5 must be .*'http://localhost:8000/v1'")
def _(c: Ctx) -> Any:
    return lambda: c.judge(model="openai:/gpt-4o-mini", base_url=5)


@case("model-not-a-uri", r"model=123 must be a model URI string such as 'openai:/gpt-4o-mini'")
def _(c: Ctx) -> Any:
    return lambda: c.judge(model=123)


@case("model-uri-without-provider", r"Malformed model URI 'gpt-4o'\. Use 'provider:/model'")
def _(c: Ctx) -> Any:
    return lambda: c.judge(model="gpt-4o")


@case("model-uri-empty-name", r"Malformed model URI 'openai:/'")
def _(c: Ctx) -> Any:
    return lambda: c.judge(model="openai:/")


@case("model-missing-and-no-env", r"No model given and JUDGEALIGN_MODEL is not set\. Pass model=")
def _(c: Ctx) -> Any:
    return lambda: c.judge(model=None)


# -- judging ---------------------------------------------------------------------------------


@case("call-missing-field", r"needs outputs= because its instructions use \{\{ outputs \}\}")
def _(c: Ctx) -> Any:
    return lambda: c.judge()(inputs="2+2")


@case("call-expectations-not-dict", r"expectations must be a dict such as \{'expected_answer'")
def _(c: Ctx) -> Any:
    judge = c.judge(instructions="Does {{ outputs }} match {{ expectations }}?")
    return lambda: judge(outputs="4", expectations=["4"])


@case("call-conversation-malformed", r"conversation must be a list of messages like \[\{'role'")
def _(c: Ctx) -> Any:
    judge = c.judge(instructions="Is {{ conversation }} polite?")
    return lambda: judge(conversation="hello there")


@case("call-trace-wrong-type", r"trace must be a dict with 'request' and 'response'.*got int")
def _(c: Ctx) -> Any:
    judge = c.judge(instructions="Is {{ trace }} sound?")
    return lambda: judge(trace=5)


@case("call-unserialisable-inputs", r"inputs cannot be sent to the model as JSON.*Circular")
def _(c: Ctx) -> Any:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    judge = c.judge()
    return lambda: judge(inputs=loop, outputs="4")


@case("evaluate-not-iterable", r"records must be an iterable of records .*got int")
def _(c: Ctx) -> Any:
    judge = c.judge()
    return lambda: judge.evaluate(5)  # type: ignore[arg-type]


@case("evaluate-workers-zero", r"max_workers=0 must be an integer >= 1")
def _(c: Ctx) -> Any:
    judge = c.judge()
    return lambda: judge.evaluate([{"inputs": "q", "outputs": "a"}], max_workers=0)


@case("evaluate-workers-str", r"max_workers='4' must be an integer >= 1")
def _(c: Ctx) -> Any:
    judge = c.judge()
    return lambda: judge.evaluate([{"inputs": "q", "outputs": "a"}], max_workers="4")  # type: ignore[arg-type]


# -- alignment ---------------------------------------------------------------------------------

GOOD = {"id": "ok", "inputs": "q", "outputs": "a", "label": True}


@case("align-empty", r"align\(\) needs at least one expert-labelled record")
def _(c: Ctx) -> Any:
    return lambda: c.judge().align([], optimizer=c.optimizer())


@case("align-single-dict", r"records must be a list of records .*not a single string or dict")
def _(c: Ctx) -> Any:
    return lambda: c.judge().align(GOOD, optimizer=c.optimizer())  # type: ignore[arg-type]


@case("align-none", r"records must be a list of records .*got NoneType")
def _(c: Ctx) -> Any:
    return lambda: c.judge().align(None, optimizer=c.optimizer())  # type: ignore[arg-type]


@case(
    "align-bad-labels",
    r"label 'maybe' does not fit the judge's value type \(true or false\).*label_map=",
)
def _(c: Ctx) -> Any:
    records = [{**GOOD, "id": "m", "label": "maybe"}]
    return lambda: c.judge().align(records, optimizer=c.optimizer())


@case("align-nan-label", r"None of the 1 record\(s\).*label is missing")
def _(c: Ctx) -> Any:
    records = [{**GOOD, "label": math.nan}]
    return lambda: c.judge().align(records, optimizer=c.optimizer())


@case("align-empty-feedback", r"None of the 1 record\(s\).*\(id 'e'\): label: Field required")
def _(c: Ctx) -> Any:
    records = [{"id": "e", "inputs": "q", "outputs": "a", "label": None, "rationale": ""}]
    return lambda: c.judge().align(records, optimizer=c.optimizer())


@case("align-record-missing-field", r"None of the 1 record\(s\).*needs outputs=")
def _(c: Ctx) -> Any:
    records = [{"id": "x", "inputs": "q", "label": True}]
    return lambda: c.judge().align(records, optimizer=c.optimizer())


@case("align-record-not-a-dict", r"expected a JSON object / dict with a label, got list")
def _(c: Ctx) -> Any:
    return lambda: c.judge().align([["q", "a", True]], optimizer=c.optimizer())


@case("align-unserialisable-record", r"'inputs' cannot be stored as JSON.*object")
def _(c: Ctx) -> Any:
    records = [{**GOOD, "inputs": {"v": object()}}]
    return lambda: c.judge().align(records, optimizer=c.optimizer())


@case(
    "align-optimizer-wrong-type",
    r"optimizer='memalign' must be an alignment optimizer such as MemAlignOptimizer",
)
def _(c: Ctx) -> Any:
    return lambda: c.judge().align([GOOD], optimizer="memalign")


@case("align-unknown-embedder", r"Unknown embedder 'nope'.*Accepted:")
def _(c: Ctx) -> Any:
    return lambda: c.judge().align([GOOD], optimizer=MemAlignOptimizer(embedding_model="nope"))


@case(
    "align-embedder-dimension-mismatch",
    # one record, two fields: the default view embeds each field alone
    r"Embedder 'spy:/hashing@64' returned shape \(2, 32\).*expected \(2, 64\)",
)
def _(c: Ctx) -> Any:
    # With learn_from="disagreements" the base judge would make one call per record, so the
    # records are embedded before any call. (The default mode embeds while it distills;
    # test_embedder_failure_while_distilling_cancels_unsent_batches covers that path.)
    liar = SpyEmbedder(64, returns=32)
    optimizer = MemAlignOptimizer(embedding_model=liar, learn_from="disagreements")
    return lambda: c.judge().align([GOOD], optimizer=optimizer)


@case("align-reflection-bad-uri", r"Malformed model URI 'bad'")
def _(c: Ctx) -> Any:
    return lambda: c.judge().align([GOOD], optimizer=c.optimizer(reflection_model="bad"))


@case("memalign-retrieval-k", r"retrieval_k=-1 must be an integer >= 0")
def _(c: Ctx) -> Any:
    return lambda: MemAlignOptimizer(retrieval_k=-1)


@case("memalign-view", r"view='bogus' is not one of 'fields'")
def _(c: Ctx) -> Any:
    return lambda: MemAlignOptimizer(view="bogus")  # type: ignore[arg-type]


@case("memalign-threshold-nan", r"dedupe_threshold=nan must be a cosine similarity in \(0, 1\]")
def _(c: Ctx) -> Any:
    return lambda: MemAlignOptimizer(dedupe_threshold=math.nan)


# -- loaders ----------------------------------------------------------------------------------


@case("load-records-not-iterable", r"items must be an iterable of records .*got int")
def _(c: Ctx) -> Any:
    return lambda: load_records(5)  # type: ignore[arg-type]


@case("load-records-unknown-column", r"columns has unknown key\(s\) \['lbl'\].*Example: columns=")
def _(c: Ctx) -> Any:
    return lambda: load_records([GOOD], columns={"lbl": "verdict"})


@case("load-records-strict", r"rejected \(strict=True\).*label 'maybe'")
def _(c: Ctx) -> Any:
    return lambda: load_records([{**GOOD, "label": "maybe"}], judge=c.judge(), strict=True)


@case("load-jsonl-missing", r"Cannot read records from '.*none\.jsonl'")
def _(c: Ctx) -> Any:
    return lambda: load_jsonl(c.tmp / "none.jsonl")


@case("load-jsonl-binary", r"Cannot read records from '.*blob\.jsonl'.*utf-8")
def _(c: Ctx) -> Any:
    path = c.write("blob.jsonl", b"\xff\xfe\x00garbage")
    return lambda: load_jsonl(path)


# -- saved files -------------------------------------------------------------------------------


@case("judge-load-missing", r"File '.*absent\.json' does not exist")
def _(c: Ctx) -> Any:
    return lambda: Judge.load(c.tmp / "absent.json")


@case("judge-load-truncated", r"is not valid JSON .*it may be corrupted")
def _(c: Ctx) -> Any:
    text = json.dumps(c.judge().to_dict())
    path = c.write("judge.json", text[: len(text) // 2])
    return lambda: Judge.load(path)


@case("judge-load-json-list", r"does not hold a JSON object")
def _(c: Ctx) -> Any:
    path = c.write("list.json", "[1, 2, 3]")
    return lambda: Judge.load(path)


@case(
    "judge-load-foreign-format",
    r"Not a saved judgealign judge: format is 'judgealign/aligned-judge'",
)
def _(c: Ctx) -> Any:
    path = c.aligned_file()
    return lambda: Judge.load(path)


@case("judge-load-newer-version", r"format_version 99.*Upgrade judgealign")
def _(c: Ctx) -> Any:
    path = c.write("v99.json", json.dumps({**c.judge().to_dict(), "format_version": 99}))
    return lambda: Judge.load(path)


@case(
    "judge-load-value-type-wrong-type", r"Saved judge .*'feedback_value_type'.*\{'kind': 'bool'\}"
)
def _(c: Ctx) -> Any:
    data = {**c.judge().to_dict(), "feedback_value_type": "bool"}
    path = c.write("vt.json", json.dumps(data))
    return lambda: Judge.load(path)


@case("judge-load-directory", r"'.*' is a directory, not a file")
def _(c: Ctx) -> Any:
    (c.tmp / "folder.json").mkdir()
    return lambda: Judge.load(c.tmp / "folder.json")


@case(
    "aligned-load-plain-judge",
    r"format is 'judgealign/judge', not 'judgealign/aligned-judge'.*Fix: load a plain judge",
)
def _(c: Ctx) -> Any:
    path = c.judge().save(c.tmp / "plain.json")
    return lambda: AlignedJudge.load(path)


@case("aligned-load-tampered", r"integrity check failed.*Fix: restore it from a backup")
def _(c: Ctx) -> Any:
    path = c.aligned_file()
    data = json.loads(path.read_text())
    data["content"]["records"][0]["record"]["label"] = False
    path.write_text(json.dumps(data))
    return lambda: AlignedJudge.load(path)


@case("aligned-load-truncated", r"is not valid JSON .*corrupted")
def _(c: Ctx) -> Any:
    path = c.aligned_file()
    path.write_bytes(path.read_bytes()[:-100])
    return lambda: AlignedJudge.load(path)


@case(
    "aligned-load-other-embedder", r"vectors were made by embedder 'spy:/hashing@64'.*reembed=True"
)
def _(c: Ctx) -> Any:
    path = c.aligned_file()
    return lambda: AlignedJudge.load(path, embedder=HashingEmbedder(32))


@case("judge-save-to-directory", r"Cannot write '.*out': it is a directory; choose a file path")
def _(c: Ctx) -> Any:
    (c.tmp / "out").mkdir()
    judge = c.judge()
    return lambda: judge.save(c.tmp / "out")


@case(
    "judge-save-unserialisable-params", r"inference_params\['callback'\] .* cannot be saved as JSON"
)
def _(c: Ctx) -> Any:
    c.judge().save(c.tmp / "judge.json")  # an older good file that must survive
    judge = c.judge(inference_params={"callback": print})
    return lambda: judge.save(c.tmp / "judge.json")


# -- optimizers --------------------------------------------------------------------------------


def _prompt_setup(c: Ctx) -> tuple[Callable[..., str], list[dict[str, Any]]]:
    register_prompt("qa", "Answer: {{ question }}")

    def predict(question: str) -> str:
        return load_prompt("prompts:/qa/1").format(question=question)

    return predict, [{"inputs": {"question": "2+2"}, "expectations": {"answer": "4"}}]


def _meta(c: Ctx) -> MetaPromptOptimizer:
    return MetaPromptOptimizer(c.model)


@case("optimize-row-without-inputs", r"train_data\[1\]\['inputs'\] must be a non-empty dict")
def _(c: Ctx) -> Any:
    predict, data = _prompt_setup(c)
    rows = [*data, {"expectations": {"answer": "5"}}]
    return lambda: optimize_prompts(
        predict_fn=predict,
        train_data=rows,
        prompt_uris=["prompts:/qa/1"],
        optimizer=_meta(c),
        scorers=[lambda outputs: 1.0],
    )


@case("optimize-uris-string", r"prompt_uris='prompts:/qa/1' must be a non-empty list")
def _(c: Ctx) -> Any:
    predict, data = _prompt_setup(c)
    return lambda: optimize_prompts(
        predict_fn=predict,
        train_data=data,
        prompt_uris="prompts:/qa/1",
        optimizer=_meta(c),
        scorers=[lambda outputs: 1.0],
    )


@case("optimize-malformed-uri", r"Malformed prompt URI 'prompts:/qa/one/1'")
def _(c: Ctx) -> Any:
    predict, data = _prompt_setup(c)
    return lambda: optimize_prompts(
        predict_fn=predict,
        train_data=data,
        prompt_uris=["prompts:/qa/one/1"],
        optimizer=_meta(c),
        scorers=[lambda outputs: 1.0],
    )


@case("optimize-unknown-prompt", r"No prompt named 'nope' is registered\. Register it first")
def _(c: Ctx) -> Any:
    predict, data = _prompt_setup(c)
    return lambda: optimize_prompts(
        predict_fn=predict,
        train_data=data,
        prompt_uris=["prompts:/nope/1"],
        optimizer=_meta(c),
        scorers=[lambda outputs: 1.0],
    )


@case("optimize-scorers-not-list", r"scorers must be a list, e\.g\. scorers=\[my_judge\]")
def _(c: Ctx) -> Any:
    predict, data = _prompt_setup(c)
    return lambda: optimize_prompts(
        predict_fn=predict,
        train_data=data,
        prompt_uris=["prompts:/qa/1"],
        optimizer=_meta(c),
        scorers=lambda outputs: 1.0,  # type: ignore[arg-type]
    )


@case(
    "optimize-nan-score",
    r"On train_data\[0\]: Scorer 'nan_scorer': the score nan is not a finite number",
)
def _(c: Ctx) -> Any:
    predict, data = _prompt_setup(c)

    def nan_scorer(outputs: str) -> float:
        return math.nan

    return lambda: optimize_prompts(
        predict_fn=predict,
        train_data=data,
        prompt_uris=["prompts:/qa/1"],
        optimizer=_meta(c),
        scorers=[nan_scorer],
    )


@case("optimize-label-scores-nan", r"label_scores\['good'\]=nan must be a number in \[0, 1\]")
def _(c: Ctx) -> Any:
    predict, data = _prompt_setup(c)
    return lambda: optimize_prompts(
        predict_fn=predict,
        train_data=data,
        prompt_uris=["prompts:/qa/1"],
        optimizer=_meta(c),
        scorers=[lambda outputs: "good"],
        label_scores={"good": math.nan},
    )


@case("optimize-aggregation-not-callable", r"aggregation='mean' must be a function")
def _(c: Ctx) -> Any:
    predict, data = _prompt_setup(c)
    return lambda: optimize_prompts(
        predict_fn=predict,
        train_data=data,
        prompt_uris=["prompts:/qa/1"],
        optimizer=_meta(c),
        scorers=[lambda outputs: 1.0],
        aggregation="mean",  # type: ignore[arg-type]
    )


@case(
    "optimize-predict-ignores-prompt",
    r"predict_fn never loaded the prompt\(s\) \['qa'\].*call load_prompt",
)
def _(c: Ctx) -> Any:
    _, data = _prompt_setup(c)
    return lambda: optimize_prompts(
        predict_fn=lambda question: "4",
        train_data=data,
        prompt_uris=["prompts:/qa/1"],
        optimizer=_meta(c),
        scorers=[lambda outputs: 1.0],
    )


@case("register-bad-name", r"Invalid prompt name 'my prompt': use letters, digits")
def _(c: Ctx) -> Any:
    return lambda: register_prompt("my prompt", "Answer {{ q }}")


@case("gepa-patience-str", r"patience='3' is invalid; it must be None or an int >= 1")
def _(c: Ctx) -> Any:
    return lambda: GEPA(c.model, patience="3")  # type: ignore[arg-type]


@case("gepa-timeout-str", r"timeout_s='5' is invalid; it must be None or a number >= 0")
def _(c: Ctx) -> Any:
    return lambda: GEPA(c.model, timeout_s="5")  # type: ignore[arg-type]


@case("gepa-budget-zero", r"max_metric_calls=0 is invalid; it must be an int >= 1")
def _(c: Ctx) -> Any:
    return lambda: GEPA(c.model, max_metric_calls=0)


@case(
    "gepa-prompts-not-str",
    r"target_prompts=\{'main': 5\} must map prompt names to template strings",
)
def _(c: Ctx) -> Any:
    return lambda: GEPA(c.model).optimize(_never_eval, [{"inputs": {"q": 1}}], {"main": 5})  # type: ignore[dict-item]


@case(
    "gepa-corrupt-checkpoint",
    r"gepa_state\.json is not a readable GEPA checkpoint.*delete it or use another run_dir",
)
def _(c: Ctx) -> Any:
    c.write("gepa_state.json", '{"version": 1, "fingerp')
    optimizer = GEPA(c.model, run_dir=c.tmp, progress=False)
    return lambda: optimizer.optimize(_never_eval, [{"inputs": {"q": 1}}], {"main": "A {{ q }}"})


@case(
    "gepa-checkpoint-of-other-run",
    r"holds a GEPA run for different .*target prompts.*use a new run_dir",
)
def _(c: Ctx) -> Any:
    c.write("gepa_state.json", json.dumps({"version": 1, "fingerprint": {"target_prompts": "x"}}))
    optimizer = GEPA(c.model, run_dir=c.tmp, progress=False)
    return lambda: optimizer.optimize(_never_eval, [{"inputs": {"q": 1}}], {"main": "A {{ q }}"})


def _never_eval(
    prompts: dict[str, str], data: Sequence[dict[str, Any]]
) -> list[EvaluationResultRecord]:
    raise AssertionError("eval_fn must not run for a misconfigured optimizer")


# -- the harness -------------------------------------------------------------------------------


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ctx]:
    monkeypatch.delenv("JUDGEALIGN_MODEL", raising=False)
    previous = set_prompt_store(InMemoryPromptStore())
    try:
        yield Ctx(tmp_path)
    finally:
        set_prompt_store(previous)


def test_catalogue_is_large_enough() -> None:
    assert len(CASES) >= 40, len(CASES)


@pytest.mark.parametrize(("setup", "pattern"), CASES)
def test_bad_input_fails_early_with_a_named_fix_and_writes_nothing(
    ctx: Ctx, setup: Setup, pattern: str
) -> None:
    call = setup(ctx)
    before = _snapshot(ctx.tmp)
    with pytest.raises(JudgeAlignError) as info:
        call()
    message = str(info.value)
    assert info.type.__module__.startswith("judgealign"), info.type
    assert _re_search(pattern, message), f"{message!r} does not match {pattern!r}"
    assert ctx.model.requests == [], "the failure must come before any model call"
    assert ctx.embedder.texts == 0, "the failure must come before any embedding"
    assert _snapshot(ctx.tmp) == before, "a failed call must leave files as they were"


def _re_search(pattern: str, text: str) -> bool:
    import re

    return re.search(pattern, text, re.DOTALL) is not None


# -- misuse that is reported rather than raised -----------------------------------------------


@pytest.mark.filterwarnings("ignore:The reflection model returned no usable guideline")
def test_conflicting_labels_for_one_id_are_resolved_and_said(ctx: Ctx) -> None:
    records = [
        {"id": "r1", "inputs": "q", "outputs": "a", "label": True},
        {"id": "r1", "inputs": "q", "outputs": "a", "label": False},
        {"id": "r1", "inputs": "q", "outputs": "a", "label": False},
        {"id": "r2", "inputs": "q2", "outputs": "b", "label": True},
    ]
    with pytest.warns(UserWarning, match=r"id 'r1' appears 3 times .* kept False \(majority\)"):
        aligned = ctx.judge().align(records, optimizer=ctx.optimizer())
    result = aligned.last_alignment
    assert result is not None
    assert [d.record_id for d in result.duplicates] == ["r1"]
    assert any("r1" in w and "majority" in w for w in result.warnings)
    assert {r.id: r.label for r in aligned.records} == {"r1": False, "r2": True}


@pytest.mark.filterwarnings("ignore:The reflection model returned no usable guideline")
def test_bad_records_among_good_ones_are_rejected_by_name_not_dropped(ctx: Ctx) -> None:
    records = [GOOD, {**GOOD, "id": "bad", "label": "perhaps"}, {"id": "nofield", "label": True}]
    with pytest.warns(UserWarning, match=r"2 record\(s\) were rejected"):
        aligned = ctx.judge().align(records, optimizer=ctx.optimizer())
    result = aligned.last_alignment
    assert result is not None and aligned.record_ids == ("ok",)
    rejected = {p.record_id for p in result.problems}
    assert "bad" in rejected and len(result.problems) == 2


@pytest.mark.filterwarnings("ignore:Loser found no better prompt")
def test_candidate_prompt_that_loses_a_variable_is_rejected_and_never_registered(
    ctx: Ctx,
) -> None:
    predict, data = _prompt_setup(ctx)

    class Loser(MetaPromptOptimizer):
        def optimize(
            self, eval_fn: Any, train_data: Any, target_prompts: Any, enable_tracking: bool = True
        ) -> Any:
            from optimizers import PromptOptimizerOutput

            return PromptOptimizerOutput({"qa": "Answer the question well."}, 0.1, 0.9)

    with pytest.warns(
        PromptOptimizationWarning, match=r"Candidate for prompt 'qa' rejected: .*template variable"
    ):
        result = optimize_prompts(
            predict_fn=predict,
            train_data=data,
            prompt_uris=["prompts:/qa/1"],
            optimizer=Loser(ctx.model),
            scorers=[lambda outputs: 0.5],
        )
    assert result.improved is False
    assert result.optimized_prompts[0].version == 1
    assert load_prompt("qa").version == 1, "no new version may be registered"
    assert "qa" in result.details["unsafe_final_prompts"]


def test_embedder_failure_while_distilling_cancels_unsent_batches(tmp_path: Path) -> None:
    """The default mode distills while the records are embedded; a bad embedder still fails
    align with the named error, leaves the aligned judge and its file as they were, and
    stops distillation batches that were not yet sent."""
    armed, failing = threading.Event(), threading.Event()

    class SlowLiar(SpyEmbedder):
        def embed(self, texts: Sequence[str]) -> np.ndarray:
            vectors = super().embed(texts)
            failing.set()  # the wrong shape is about to be found
            return vectors

    def slow_reply(request: ModelRequest) -> dict[str, Any]:
        if armed.is_set():
            failing.wait(timeout=5)
            time.sleep(0.05)  # the requests in flight finish after the failure is known
        return _verdict(request)

    model = FunctionModel(slow_reply)
    judge = make_judge(name="j", instructions=INSTRUCTIONS, model=model)
    with pytest.warns(UserWarning):  # nothing is distilled by the scripted reply
        aligned = judge.align([GOOD], optimizer=MemAlignOptimizer(embedding_model=SpyEmbedder()))
    saved = aligned.save(tmp_path / "aligned.json").read_bytes()
    before = len(model.requests)
    armed.set()
    records = [{**GOOD, "id": f"r{i}", "inputs": f"q{i}"} for i in range(20)]
    optimizer = MemAlignOptimizer(
        embedding_model=SlowLiar(64, returns=32), max_records_per_batch=1, max_workers=2
    )
    # 20 records, two fields each: the default view embeds each field alone
    with pytest.raises(ConfigurationError, match=r"returned shape \(40, 32\).*expected \(40, 64\)"):
        aligned.align(records, optimizer=optimizer)
    paid = len(model.requests) - before
    assert paid <= 2, f"{paid} of 20 batches were sent; only the 2 in flight may be paid"
    assert [r.id for r in aligned.records] == ["ok"], "memory is unchanged"
    assert (tmp_path / "aligned.json").read_bytes() == saved
