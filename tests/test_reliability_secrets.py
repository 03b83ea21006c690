"""Secrets: a full judge -> align -> optimize run with an API key in the environment never
writes the key to a file, a log line, a repr, a result or an exception (chain included).

Every model call goes through the real provider path to :class:`FakeOpenAIServer`, which
checks that the key *was* sent (``Authorization: Bearer ...``) and, on some requests,
answers with errors that echo it back, as real providers and proxies sometimes do.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from judgealign import (
    AlignedJudge,
    Judge,
    LabeledRecord,
    LiteLLMEmbedder,
    LiteLLMModel,
    MemAlignOptimizer,
    ModelCallError,
    make_judge,
)
from judgealign.testing import ChatRequest, FakeOpenAIServer, Reply, no_retry_waits
from optimizers import (
    GEPA,
    InMemoryPromptStore,
    get_prompt_store,
    load_prompt,
    optimize_prompts,
    register_prompt,
    set_prompt_store,
)

SECRET = "sk-test-SECRET-123"
MARKS = (SECRET, "SECRET-123")  # a provider may echo part of the key
_IDS = re.compile(r'^ "id": "([^"]+)",?$', re.MULTILINE)
_CURRENT = re.compile(r"Its current text:\n\n```\n(.*?)\n```", re.DOTALL)


def brain(request: ChatRequest) -> Any:
    """Verdicts, distilled guidelines, GEPA proposals and application answers; the
    requests marked ECHO401/ECHO500 get errors that quote the key."""
    text = request.text
    current = _CURRENT.search(request.last_user)
    if current:  # a GEPA reflection request
        return f"```\n{current.group(1)} Be exact.\n```"
    if "ECHO401" in text:
        return Reply(status=401, error_message=f"Incorrect API key provided: {SECRET}.")
    if "ECHO500" in text:
        return Reply(status=500, error_message=f"upstream failed for Bearer {SECRET}")
    if "calibrating an automated evaluator" in text:  # a distillation request
        ids = _IDS.findall(request.last_user)
        return {"guidelines": [{"text": "Prefer exact answers.", "source_ids": ids}]}
    if "Judge this record." in text:  # a verdict request
        return {"rationale": "checked", "result": "exact answer" in request.last_user}
    return "exact answer" if "Be exact" in text else "rough answer"


@pytest.fixture
def store() -> Iterator[None]:
    previous = set_prompt_store(InMemoryPromptStore())
    try:
        yield
    finally:
        set_prompt_store(previous)


def every_logger_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)


def test_a_full_run_never_leaks_the_api_key(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    store: None,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    seen: list[tuple[str, str]] = []  # (where, text) to scan

    def keep(where: str, value: Any) -> None:
        seen.append((where, value if isinstance(value, str) else repr(value)))

    with FakeOpenAIServer(reply=brain) as server, no_retry_waits(timeout_s=2.0):
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        every_logger_at_debug(caplog)

        # -- judge ------------------------------------------------------------------
        judge = make_judge(
            name="exact",
            instructions="Is {{ outputs }} an exact answer to {{ inputs }}?",
            model="openai:/judge-model",
            inference_params={"temperature": 0, "api_key": SECRET},
        )
        judge.save(tmp_path / "judge.json")
        keep("judge repr", repr(judge))
        keep("judge model repr", repr(judge.model))
        keep("judge dict", json.dumps(judge.to_dict()))
        keep("judge reloaded", repr(Judge.load(tmp_path / "judge.json").to_dict()))
        for outputs in ("exact answer", "ECHO401", "ECHO500"):
            fb = judge(inputs={"q": "2+2"}, outputs=outputs)
            keep(f"feedback {outputs}", fb.model_dump_json())

        # -- align ------------------------------------------------------------------
        records = [
            LabeledRecord(
                id=f"r{i}",
                inputs={"q": f"q{i}"},
                outputs=f"a{i}",
                label=i % 2 == 0,
                rationale="exactness matters",
            )
            for i in range(8)
        ]
        optimizer = MemAlignOptimizer(embedding_model=LiteLLMEmbedder("openai:/embedder"))
        aligned = judge.align(records, optimizer=optimizer)
        keep("alignment", aligned.last_alignment.format() if aligned.last_alignment else "")
        keep("aligned repr", repr(aligned))
        keep("optimizer repr", repr(optimizer))
        aligned.save(tmp_path / "aligned.json")
        reloaded = AlignedJudge.load(tmp_path / "aligned.json", embedder=optimizer.embedder)
        keep("aligned feedback", reloaded(inputs={"q": "q9"}, outputs="ECHO401").model_dump_json())

        # -- optimize ---------------------------------------------------------------
        register_prompt("answer", "Answer the question: {{ question }}")
        app = LiteLLMModel("openai:/app-model")

        def predict_fn(question: str) -> str:
            if question == "boom":
                raise RuntimeError(f"provider said: Incorrect API key provided: {SECRET}")
            prompt = load_prompt("prompts:/answer/1").format(question=question)
            return app.complete([{"role": "user", "content": prompt}]).text

        data = [{"inputs": {"question": q}} for q in ("2+2", "3+3", "boom", "ECHO500", "4+4")]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = optimize_prompts(
                predict_fn=predict_fn,
                train_data=data,
                prompt_uris=["prompts:/answer/1"],
                optimizer=GEPA(
                    "openai:/reflection-model",
                    max_metric_calls=24,
                    minibatch_size=2,
                    run_dir=tmp_path / "gepa",
                    progress=False,
                ),
                scorers=[reloaded],
            )
        keep("result", repr(result))
        keep("details", json.dumps(result.details, default=str))
        for name in ("answer",):
            store_ = get_prompt_store()
            for version in range(1, 10):
                try:
                    keep(
                        f"prompt {name}/{version}",
                        store_.load(name, version=version).stored_template,
                    )
                except Exception:
                    break

        # -- exceptions, chains included -------------------------------------------
        for echo in ("ECHO401", "ECHO500"):
            with pytest.raises(ModelCallError) as info:
                app.complete([{"role": "user", "content": echo}])
            keep(f"{echo} str", str(info.value))
            keep(f"{echo} traceback", "".join(traceback.format_exception(info.value)))
        auth = {
            r.headers.get("Authorization")
            for r in server.requests
            if r.path.endswith("completions")
        }

    for path in sorted(tmp_path.rglob("*")):
        if path.is_file():
            keep(f"file {path.relative_to(tmp_path)}", path.read_bytes().decode("utf-8", "replace"))
    for record in caplog.records:
        keep(f"log {record.name}", record.getMessage())
        if record.exc_info:
            keep(f"log {record.name} exc", "".join(traceback.format_exception(*record.exc_info)))
    out, err = capfd.readouterr()
    keep("stdout", out)
    keep("stderr", err)

    assert auth == {f"Bearer {SECRET}"}, "the key was really used on every chat request"
    assert result.improved and "Be exact" in result.optimized_prompts[0].template
    assert (tmp_path / "gepa" / "gepa_state.jsonl").is_file()
    assert any("401" in text for _, text in seen), "the echoing errors were exercised"
    leaks = [where for where, text in seen if any(mark in text for mark in MARKS)]
    assert leaks == [], f"the key leaked into: {leaks}"
    print(
        f"\nreliability secrets: scanned {len(seen)} texts, "
        f"{sum(len(t) for _, t in seen):,} characters, {len(list(tmp_path.rglob('*.json')))} "
        f"files, {len(caplog.records)} log records; leaks: 0"
    )
