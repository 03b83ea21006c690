"""A RateLimit covers every model call of align and of the optimizers, in every thread.

The limit travels in a context variable, and a plain ``ThreadPoolExecutor`` runs its tasks
in an empty context: before every pool carried the caller's context, distillation
batches, jury members, metaprompt candidates and GEPA's evaluation chunks ran unpaced.
Two kinds of tests here: scripted models that note the limit each call runs under (exact,
no timing), and the fake server's real per-minute limit, where a paced run is (almost)
never refused and the same run unpaced is refused many times (counts, not durations).
"""

from __future__ import annotations

import ast
import contextvars
import itertools
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from memalign_support import needs_defacto

from judgealign import (
    ConfigurationError,
    HashingEmbedder,
    LabeledRecord,
    MemAlignOptimizer,
    RateLimit,
    make_judge,
    make_jury,
    resolve_model,
)
from judgealign.models.rate_limit import current_rate_limit, use_rate_limit
from judgealign.testing import ChatRequest, FakeOpenAIServer, FunctionModel, ModelRequest
from optimizers import (
    GepaPromptOptimizer,
    InMemoryPromptStore,
    MetaPromptOptimizer,
    load_prompt,
    optimize_prompts,
    register_prompt,
    set_prompt_store,
)

ROOT = Path(__file__).resolve().parents[1]
INSTRUCTIONS = "Is {{ outputs }} right for {{ inputs }}?"
TASK = "Reply about {{ letter }}."
RULE_MARK = "calibrating an automated evaluator"  # in every distillation request
_IDS = re.compile(r'^ "id": "([^"]+)",?$', re.MULTILINE)  # a record's id in that request


class Calls:
    """What each model call ran under: the active limit and whether it was off-thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.limits: list[RateLimit | None] = []
        self.off_thread = 0

    def note(self) -> None:
        with self._lock:
            self.limits.append(current_rate_limit())
            self.off_thread += threading.current_thread() is not threading.main_thread()

    def model(self, reply: Callable[[ModelRequest], str | dict[str, Any]]) -> FunctionModel:
        def answer(request: ModelRequest) -> str | dict[str, Any]:
            self.note()
            return reply(request)

        return FunctionModel(answer)

    def all_under(self, limit: RateLimit) -> bool:
        return bool(self.limits) and all(seen is limit for seen in self.limits)


def _verdict(request: ModelRequest | ChatRequest) -> dict[str, Any]:
    # Always "no": half the records (label True) disagree, so distillation has work.
    del request
    return {"rationale": "looks wrong", "result": False}


def _rules(request: ModelRequest | ChatRequest) -> dict[str, Any]:
    ids = _IDS.findall(request.last_user)
    return {"guidelines": [{"text": "Check the arithmetic.", "source_ids": ids}]}


def _records(count: int) -> list[LabeledRecord]:
    return [
        LabeledRecord(
            id=f"r{i:03d}", inputs={"q": f"{i}+{i}?"}, outputs=str(2 * i), label=i % 2 == 0
        )
        for i in range(count)
    ]


def _optimizer(reflection: Any, learn_from: Any = "all") -> MemAlignOptimizer:
    return MemAlignOptimizer(
        reflection_model=reflection,
        embedding_model=HashingEmbedder(64),
        max_records_per_batch=1,  # one distillation request per record: many in flight
        max_workers=4,
        learn_from=learn_from,
    )


# -- the pool -----------------------------------------------------------------------------


def test_context_thread_pool_runs_each_task_in_the_submitters_context() -> None:
    from judgealign.optimize_support import ContextThreadPool

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("caller")
    with ContextThreadPool(max_workers=3) as pool:
        submitted = pool.submit(var.get)
        mapped = list(pool.map(lambda _: var.get(), range(6)))
        var.set("later")
    assert submitted.result() == "caller"
    assert mapped == ["caller"] * 6


def test_every_thread_pool_of_the_library_carries_the_callers_context() -> None:
    # The rule behind the fix, for pools added later: none may be a bare ThreadPoolExecutor.
    bare: list[str] = []
    for package in ("judgealign", "optimizers"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "judgealign" / "core" / "_threads.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                named = (isinstance(node, ast.Name) and node.id == "ThreadPoolExecutor") or (
                    isinstance(node, ast.Attribute) and node.attr == "ThreadPoolExecutor"
                )
                imported = isinstance(node, ast.ImportFrom) and any(
                    alias.name == "ThreadPoolExecutor" for alias in node.names
                )
                if named or imported:
                    bare.append(f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}")
    assert bare == [], f"use ContextThreadPool (judgealign.core._threads) instead: {bare}"


# -- align --------------------------------------------------------------------------------


def _align_with_argument(judge: Any, optimizer: MemAlignOptimizer, limit: RateLimit) -> None:
    judge.align(_records(8), optimizer=optimizer, rate_limit=limit)


def _align_with_optimizer(judge: Any, optimizer: MemAlignOptimizer, limit: RateLimit) -> None:
    optimizer.align(judge, _records(8), rate_limit=limit)


def _align_in_context(judge: Any, optimizer: MemAlignOptimizer, limit: RateLimit) -> None:
    with use_rate_limit(limit):  # a limit set by the caller, not passed down
        aligned = judge.align(_records(4), optimizer=optimizer)
        aligned.align(_records(8))  # the aligned judge learns four more


@pytest.mark.parametrize("align", [_align_with_argument, _align_with_optimizer, _align_in_context])
@pytest.mark.parametrize("learn_from", ["all", "disagreements"])
def test_every_call_of_an_alignment_runs_under_the_limit(
    align: Callable[[Any, MemAlignOptimizer, RateLimit], None], learn_from: str
) -> None:
    judged, reflected = Calls(), Calls()
    judge = make_judge(name="j", instructions=INSTRUCTIONS, model=judged.model(_verdict))
    limit = RateLimit()
    align(judge, _optimizer(reflected.model(_rules), learn_from), limit)
    assert len(reflected.limits) >= 4
    assert reflected.all_under(limit), reflected.limits
    assert reflected.off_thread > 0  # the distillation batches ran in the pool's threads
    if learn_from == "disagreements":
        assert judged.all_under(limit) and judged.off_thread > 0
    else:
        assert judged.limits == []


def test_align_refuses_a_rate_limit_of_the_wrong_type() -> None:
    calls = Calls()
    judge = make_judge(name="j", instructions=INSTRUCTIONS, model=calls.model(_verdict))
    with pytest.raises(ConfigurationError, match="rate_limit"):
        judge.align(_records(2), optimizer=_optimizer(calls.model(_rules)), rate_limit=600)  # pyright: ignore[reportArgumentType]
    assert calls.limits == []  # refused before any call


def test_jury_members_run_under_the_callers_limit() -> None:
    calls = Calls()
    jury = make_jury(
        [
            make_judge(name=name, instructions=INSTRUCTIONS, model=calls.model(_verdict))
            for name in ("a", "b", "c")
        ]
    )
    limit = RateLimit()
    with use_rate_limit(limit):
        feedback = jury(inputs="1+1?", outputs="2")
    assert feedback.error is None
    assert len(calls.limits) == 3 and calls.all_under(limit)


def test_a_jury_evaluation_runs_every_member_under_its_rate_limit() -> None:
    calls = Calls()
    jury = make_jury(
        [
            make_judge(name=name, instructions=INSTRUCTIONS, model=calls.model(_verdict))
            for name in ("a", "b")
        ]
    )
    limit = RateLimit()
    records = [{"inputs": f"{i}+1?", "outputs": str(i + 1)} for i in range(6)]
    result = jury.evaluate(records, max_workers=3, rate_limit=limit)
    assert [f.error for f in result.feedback] == [None] * 6
    assert len(calls.limits) == 12 and calls.all_under(limit)
    assert calls.off_thread > 0  # the members' pool threads


# -- optimizers ---------------------------------------------------------------------------


@pytest.fixture()
def task_prompt() -> Iterator[None]:
    previous = set_prompt_store(InMemoryPromptStore())
    register_prompt("task", TASK)
    yield
    set_prompt_store(previous)


def _data(letters: str = "abcdef") -> list[dict[str, Any]]:
    return [{"inputs": {"letter": c}, "expectations": {"answer": "OK"}} for c in letters]


def _predict_with(model: Any) -> Callable[..., str]:
    def predict(letter: str) -> str:
        text = load_prompt("prompts:/task/1").format(letter=letter)
        return model.complete([{"role": "user", "content": text}]).text

    return predict


_REWRITES = itertools.count()


def _meta_reply(request: ModelRequest | ChatRequest) -> dict[str, Any]:
    del request  # each rewrite differs, so that every candidate is scored
    return {"diagnosis": "be exact", "prompts": {"task": f"Be exact ({next(_REWRITES)}). {TASK}"}}


def _gepa_reply(request: ModelRequest | ChatRequest) -> str:
    del request
    return f"```\nBe exact. {TASK}\n```"


def _optimizers(reflection: Any) -> dict[str, Any]:
    return {
        "metaprompt": MetaPromptOptimizer(
            reflection,
            mode="iterative",
            max_iterations=1,
            candidates_per_iteration=2,
            max_workers=2,
            num_examples=2,
        ),
        # max_workers=2: records are split into chunks evaluated in GEPA's own pool.
        "gepa": GepaPromptOptimizer(reflection, max_metric_calls=16, max_workers=2),
    }


@pytest.mark.parametrize("passed", [True, False], ids=["argument", "callers_context"])
@pytest.mark.parametrize("name", ["metaprompt", "gepa"])
@pytest.mark.usefixtures("task_prompt")
def test_every_call_of_an_optimization_runs_under_the_limit(name: str, passed: bool) -> None:
    calls, reflected = Calls(), Calls()
    task = calls.model(lambda _: "OK")
    judge = make_judge(name="ok", instructions=INSTRUCTIONS, model=calls.model(_verdict))
    reply = _meta_reply if name == "metaprompt" else _gepa_reply
    reflection = reflected.model(reply)
    limit = RateLimit()
    # Passed as an argument, or set by the caller around the run (and not passed down).
    with use_rate_limit(None if passed else limit):
        optimize_prompts(
            predict_fn=_predict_with(task),
            train_data=_data(),
            prompt_uris=["prompts:/task/1"],
            optimizer=_optimizers(reflection)[name],
            scorers=[judge],
            max_workers=1,  # so that only the optimizer's own pool moves calls off-thread
            **({"rate_limit": limit} if passed else {}),
        )
    assert len(calls.limits) > 10  # the task model's and the judge's calls
    assert calls.all_under(limit), [seen for seen in calls.limits if seen is not limit][:3]
    assert calls.off_thread > 0
    assert reflected.all_under(limit)


@pytest.mark.usefixtures("task_prompt")
def test_optimize_prompts_refuses_a_rate_limit_of_the_wrong_type() -> None:
    calls = Calls()
    judge = make_judge(name="ok", instructions=INSTRUCTIONS, model=calls.model(_verdict))
    with pytest.raises(ConfigurationError, match="rate_limit"):
        optimize_prompts(
            predict_fn=_predict_with(calls.model(lambda _: "OK")),
            train_data=_data(),
            prompt_uris=["prompts:/task/1"],
            optimizer=_optimizers(calls.model(_meta_reply))["metaprompt"],
            scorers=[judge],
            rate_limit="600/min",  # pyright: ignore[reportArgumentType]
        )
    assert calls.limits == []


def test_optimize_program_runs_the_metrics_judge_and_reflection_under_the_limit() -> None:
    dspy = pytest.importorskip("dspy")
    from dspy_support import TwoStep, examples, program_reply, reflection_model

    from optimizers import optimize_program

    calls, reflected = Calls(), Calls()
    reflect = reflection_model()
    judge = make_judge(name="capitals", instructions=INSTRUCTIONS, model=calls.model(_verdict))
    limit = RateLimit()
    with FakeOpenAIServer(reply=program_reply) as server:
        lm = dspy.LM("openai/fake", api_base=server.base_url, api_key="sk-fake", cache=False)
        with dspy.context(lm=lm):
            optimize_program(
                TwoStep(),
                examples()[:4],
                examples()[4:],
                metric=judge.as_dspy_metric(),
                optimizer=GepaPromptOptimizer(
                    reflected.model(lambda r: reflect.complete(list(r.messages)).text),
                    max_metric_calls=20,
                ),
                num_threads=4,
                rate_limit=limit,
            )
    assert len(calls.limits) > 4  # the metric's judge, in the evaluator's threads
    assert calls.all_under(limit) and calls.off_thread > 0
    assert reflected.all_under(limit)


# -- against the fake server's real per-minute limit ------------------------------------------


def _server_reply(request: ChatRequest) -> Any:
    schema = request.json_schema or {}
    properties = schema.get("properties", {})
    if RULE_MARK in request.text:
        return _rules(request)
    if "prompts" in properties:
        return _meta_reply(request)
    if "result" in properties:
        return _verdict(request)
    return "OK"  # the task model


def _model_options(server: FakeOpenAIServer) -> dict[str, Any]:
    return {"base_url": server.base_url, "inference_params": {"api_key": "sk-fake-limit-1"}}


# The server admits 1,200 requests a minute (20 a second, a second's worth at once); the
# client paces to the same figure with a quarter of a second's burst.
PER_MINUTE = 1200


def _align_on_server(limit: RateLimit | None) -> tuple[dict[str, int], Any]:
    with FakeOpenAIServer(
        requests_per_minute=PER_MINUTE, latency_s=0.01, reply=_server_reply
    ) as server:
        judge = make_judge(
            name="j", instructions=INSTRUCTIONS, model="openai:/fake", **_model_options(server)
        )
        optimizer = MemAlignOptimizer(
            reflection_model=judge.model,
            embedding_model=HashingEmbedder(64),
            max_records_per_batch=1,
            max_workers=32,
        )
        aligned = judge.align(_records(40), optimizer=optimizer, rate_limit=limit)
        return dict(server.stats), aligned


def test_a_paced_alignment_is_not_throttled_and_an_unpaced_one_is() -> None:
    limit = RateLimit(requests_per_minute=PER_MINUTE)
    stats, aligned = _align_on_server(limit)
    # Every request the server saw went through the limiter, distillation threads included.
    assert limit.stats.requests == stats["chat"] >= 40
    # Pacing keeps under the server's budget; a thread the machine's load held back can
    # bunch with the next one now and then, hence "almost" rather than "never".
    assert stats["rate_limited"] <= 2, stats
    assert aligned.last_alignment.failed_batches == ()
    unpaced, _ = _align_on_server(None)
    assert unpaced["rate_limited"] >= 10, unpaced


def _optimize_on_server(limit: RateLimit | None) -> dict[str, int]:
    with FakeOpenAIServer(
        requests_per_minute=PER_MINUTE, latency_s=0.01, reply=_server_reply
    ) as server:
        options = _model_options(server)
        judge = make_judge(name="ok", instructions=INSTRUCTIONS, model="openai:/fake", **options)
        task = resolve_model(
            "openai:/fake", base_url=server.base_url, params=options["inference_params"]
        )
        optimize_prompts(
            predict_fn=_predict_with(task),
            train_data=_data("abcdefgh"),
            prompt_uris=["prompts:/task/1"],
            optimizer=_optimizers(judge.model)["metaprompt"],
            scorers=[judge],
            max_workers=8,
            rate_limit=limit,
        )
        return dict(server.stats)


@pytest.mark.usefixtures("task_prompt")
def test_a_paced_optimization_is_not_throttled_and_an_unpaced_one_is() -> None:
    limit = RateLimit(requests_per_minute=PER_MINUTE)
    stats = _optimize_on_server(limit)
    assert limit.stats.requests == stats["chat"] >= 30
    assert stats["rate_limited"] <= 2, stats
    unpaced = _optimize_on_server(None)
    assert unpaced["rate_limited"] >= 10, unpaced


def _align_defacto(limit: RateLimit | None) -> dict[str, int]:
    from memalign_support import INSTRUCTIONS as DEFACTO_INSTRUCTIONS
    from memalign_support import defacto_records

    # 8,000 tokens a second, a second's worth at once: about three distillation requests
    # of a DeFacto document (its prompt plus the 2,048-token reply limit), each charged
    # until its reply settles it to what it used: 300 ms, so that requests a loaded
    # machine starts a little apart still overlap.
    per_minute = 480_000
    with FakeOpenAIServer(
        tokens_per_minute=per_minute, latency_s=0.3, reply=_server_reply
    ) as server:
        judge = make_judge(
            name="consistency",
            instructions=DEFACTO_INSTRUCTIONS,
            model="openai:/fake",
            **_model_options(server),
        )
        optimizer = MemAlignOptimizer(
            reflection_model=judge.model,
            embedding_model=HashingEmbedder(64),
            max_records_per_batch=1,
            max_workers=8,
        )
        aligned = judge.align(defacto_records(judge, 8), optimizer=optimizer, rate_limit=limit)
        assert aligned.last_alignment.failed_batches == ()
        return dict(server.stats)


@needs_defacto
def test_token_pacing_holds_an_alignment_of_long_real_records_under_the_servers_budget() -> None:
    limit = RateLimit(tokens_per_minute=480_000)
    stats = _align_defacto(limit)
    assert limit.stats.requests == stats["chat"] == 8
    assert stats["rate_limited"] <= 1, stats
    assert _align_defacto(None)["rate_limited"] >= 5  # measured 10, also under load
