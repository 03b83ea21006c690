"""Prompt templates, the registry, and per-context candidate swapping."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from judgealign import ConfigurationError
from optimizers import (
    InMemoryPromptStore,
    PromptTemplate,
    candidate_prompts,
    get_prompt_store,
    load_prompt,
    register_prompt,
    set_prompt_store,
)
from optimizers.prompts._registry import parse_prompt_uri


@pytest.fixture(autouse=True)
def fresh_store() -> Iterator[InMemoryPromptStore]:
    store = InMemoryPromptStore()
    previous = set_prompt_store(store)
    yield store
    set_prompt_store(previous)


def test_versions_increment_per_name() -> None:
    first = register_prompt("qa", "Q: {{ question }}")
    second = register_prompt("qa", "Question: {{ question }}")
    other = register_prompt("summary", "Summarize {{ text }}")
    assert (first.version, second.version, other.version) == (1, 2, 1)
    assert second.uri == "prompts:/qa/2"


@pytest.mark.parametrize(
    ("uri", "expected_version"),
    [
        ("prompts:/qa/1", 1),
        ("prompts:/qa/2", 2),
        ("prompts:/qa@latest", 2),
        ("prompts:/qa@champion", 1),
        ("prompts:/qa", 2),
        ("qa", 2),
    ],
)
def test_load_prompt_accepts_every_uri_form(uri: str, expected_version: int) -> None:
    register_prompt("qa", "Q: {{ question }}")
    register_prompt("qa", "Question: {{ question }}")
    get_prompt_store().set_alias("qa", "champion", 1)
    assert load_prompt(uri).version == expected_version


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("prompts:/missing/1", "No prompt named 'missing'"),
        ("prompts:/qa/9", "no version 9"),
        ("prompts:/qa@nope", "no alias 'nope'"),
        ("prompts://qa/1", "Malformed prompt URI"),
        ("qa/one", "Malformed prompt URI"),
    ],
)
def test_load_prompt_errors_name_the_problem(uri: str, message: str) -> None:
    register_prompt("qa", "Q: {{ question }}")
    with pytest.raises(ConfigurationError, match=message):
        load_prompt(uri)


def test_parse_prompt_uri_treats_latest_as_no_alias() -> None:
    assert parse_prompt_uri("prompts:/qa@latest") == ("qa", None, None)
    assert parse_prompt_uri("prompts:/qa/3") == ("qa", 3, None)


def test_register_prompt_rejects_bad_names_and_templates() -> None:
    with pytest.raises(ConfigurationError, match="Invalid prompt name"):
        register_prompt("has space", "x")
    with pytest.raises(ConfigurationError, match="non-empty string"):
        register_prompt("qa", "  ")


def test_format_and_variables_accept_spacing_variants() -> None:
    prompt = register_prompt("qa", "Q: {{question}} / {{ context }} / {{  question  }}")
    assert prompt.variables == frozenset({"question", "context"})
    assert prompt.format(question="why", context="sky") == "Q: why / sky / why"
    with pytest.raises(KeyError, match="context"):
        prompt.format(question="why")


def test_candidate_is_seen_by_load_prompt_and_by_prompts_loaded_earlier() -> None:
    loaded_before = register_prompt("qa", "Q: {{ question }}")
    with candidate_prompts({"qa": "Answer carefully: {{ question }}"}) as usage:
        assert load_prompt("prompts:/qa/1").format(question="x") == "Answer carefully: x"
        assert loaded_before.template == "Answer carefully: {{ question }}"
        assert loaded_before.stored_template == "Q: {{ question }}"
    assert usage.accessed == {"qa"}
    assert loaded_before.format(question="x") == "Q: x"


def test_other_prompts_are_untouched_and_unrecorded() -> None:
    register_prompt("qa", "Q: {{ question }}")
    summary = register_prompt("summary", "Summarize {{ text }}")
    with candidate_prompts({"qa": "New: {{ question }}"}) as usage:
        assert summary.format(text="t") == "Summarize t"
    assert usage.accessed == frozenset()


def test_nested_blocks_merge_and_inner_wins() -> None:
    qa = register_prompt("qa", "Q: {{ question }}")
    summary = register_prompt("summary", "S: {{ text }}")
    with candidate_prompts({"qa": "outer {{ question }}", "summary": "outer {{ text }}"}):
        with candidate_prompts({"qa": "inner {{ question }}"}):
            assert qa.template == "inner {{ question }}"
            assert summary.template == "outer {{ text }}"
        assert qa.template == "outer {{ question }}"


def test_contextvars_isolation_between_threads() -> None:
    prompt = register_prompt("qa", "original {{ question }}")
    both_inside = threading.Barrier(2)
    seen: dict[str, list[str]] = {}

    def worker(label: str) -> None:
        with candidate_prompts({"qa": f"{label} {{{{ question }}}}"}):
            both_inside.wait(timeout=5)  # both candidates are in effect at the same time
            seen[label] = [prompt.format(question=str(i)) for i in range(50)]
            both_inside.wait(timeout=5)

    threads = [threading.Thread(target=worker, args=(label,)) for label in ("A", "B")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen["A"] == [f"A {i}" for i in range(50)]
    assert seen["B"] == [f"B {i}" for i in range(50)]
    assert prompt.format(question="z") == "original z"


def test_worker_threads_inherit_the_candidate_through_copy_context() -> None:
    prompt = register_prompt("qa", "original {{ question }}")
    with (
        candidate_prompts({"qa": "candidate {{ question }}"}) as usage,
        ThreadPoolExecutor(2) as pool,
    ):
        inherited = pool.submit(contextvars.copy_context().run, prompt.format, question="1")
        bare = pool.submit(prompt.format, question="2")  # no context copied: original
        assert inherited.result() == "candidate 1"
        assert bare.result() == "original 2"
    assert usage.accessed == {"qa"}


def test_set_prompt_store_installs_a_custom_store() -> None:
    class RecordingStore(InMemoryPromptStore):
        def __init__(self) -> None:
            super().__init__()
            self.loads: list[str] = []

        def load(
            self, name: str, *, version: int | None = None, alias: str | None = None
        ) -> PromptTemplate:
            self.loads.append(name)
            return super().load(name, version=version, alias=alias)

    store = RecordingStore()
    previous = set_prompt_store(store)
    register_prompt("qa", "Q: {{ question }}")
    load_prompt("qa")
    assert store.loads == ["qa"]
    assert set_prompt_store(previous) is store
    with pytest.raises(ConfigurationError, match="not a prompt store"):
        set_prompt_store(object())  # type: ignore[arg-type]
