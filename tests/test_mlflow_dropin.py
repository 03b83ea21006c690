"""MLflow's documented workflows, run on judgealign with only the imports changed.

Each test is written the way MLflow's documentation writes the workflow (MLflow's API
shapes, our own code and data): where the documentation says
``from mlflow.genai import register_prompt``, the test says
``from optimizers import register_prompt``, and nothing else changes. Models are
``judgealign.testing.FakeOpenAIServer`` on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from judgealign import ConfigurationError
from optimizers import InMemoryPromptStore, set_prompt_store


@pytest.fixture(autouse=True)
def fresh_prompt_store() -> Iterator[None]:
    previous = set_prompt_store(InMemoryPromptStore())
    yield
    set_prompt_store(previous)


# -- 1. the prompt registry: versions, tags, aliases, URIs -----------------------------------


def test_prompt_registry_workflow_with_tags_and_aliases() -> None:
    from optimizers import load_prompt, register_prompt, set_prompt_alias

    initial_template = """\
Summarize content you are provided with in {{ num_sentences }} sentences.
Sentences: {{ sentences }}
"""
    prompt = register_prompt(
        name="summarization-prompt",
        template=initial_template,
        commit_message="Initial commit",
        tags={"author": "author@example.com", "task": "summarization", "language": "en"},
    )
    assert (prompt.name, prompt.version) == ("summarization-prompt", 1)
    assert prompt.uri == "prompts:/summarization-prompt/1"
    assert prompt.tags["task"] == "summarization"
    assert prompt.commit_message == "Initial commit"

    new_template = initial_template + "Use a neutral tone.\n"
    updated = register_prompt(
        name="summarization-prompt",
        template=new_template,
        commit_message="Neutral tone",
        tags={"author": "author@example.com"},
    )
    assert updated.version == 2

    set_prompt_alias("summarization-prompt", alias="production", version=1)
    production = load_prompt("prompts:/summarization-prompt@production")
    assert production.version == 1
    assert production.aliases == ("production",)
    assert production.tags == {
        "author": "author@example.com",
        "task": "summarization",
        "language": "en",
    }
    assert load_prompt("prompts:/summarization-prompt@latest").version == 2
    assert load_prompt("prompts:/summarization-prompt/2").template == new_template
    assert load_prompt("summarization-prompt", version=1).template == initial_template
    assert load_prompt("summarization-prompt", version="2").version == 2

    text = production.format(num_sentences=2, sentences="The sky is blue. Water is wet.")
    assert text.startswith("Summarize content you are provided with in 2 sentences.")
    assert production.to_single_brace_format() == (
        "Summarize content you are provided with in {num_sentences} sentences.\n"
        "Sentences: {sentences}\n"
    )
    assert production.variables == {"num_sentences", "sentences"}

    set_prompt_alias("summarization-prompt", alias="production", version=2)
    assert load_prompt("prompts:/summarization-prompt@production").version == 2


def test_load_prompt_allow_missing_returns_none() -> None:
    from optimizers import load_prompt

    assert load_prompt("prompts:/never-registered/1", allow_missing=True) is None
    assert load_prompt("never-registered", allow_missing=True) is None
    with pytest.raises(ConfigurationError, match="never-registered"):
        load_prompt("prompts:/never-registered/1")


def test_load_prompt_accepts_mlflow_keywords_that_have_no_effect_here() -> None:
    from optimizers import load_prompt, register_prompt

    register_prompt("qa", "Answer: {{ question }}")
    prompt = load_prompt("prompts:/qa/1", link_to_model=False, cache_ttl_seconds=0)
    assert prompt.template == "Answer: {{ question }}"


def test_version_given_twice_is_refused_with_the_fix() -> None:
    from optimizers import load_prompt, register_prompt

    register_prompt("qa", "Answer: {{ question }}")
    with pytest.raises(ConfigurationError, match="either in the URI or as version="):
        load_prompt("prompts:/qa/1", version=1)


def test_response_format_and_model_config_are_kept_on_the_version() -> None:
    from optimizers import load_prompt, register_prompt

    register_prompt(
        name="extract",
        template="Extract the city from {{ text }}",
        response_format={"type": "object", "properties": {"city": {"type": "string"}}},
        model_config={"model_name": "gpt-4o-mini", "temperature": 0.1},
    )
    prompt = load_prompt("prompts:/extract/1")
    assert prompt.response_format == {
        "type": "object",
        "properties": {"city": {"type": "string"}},
    }
    assert prompt.model_config == {"model_name": "gpt-4o-mini", "temperature": 0.1}


def test_chat_prompt_is_refused_with_what_to_do_instead() -> None:
    from optimizers import register_prompt

    with pytest.raises(ConfigurationError, match=r"text templates.*mlflow\.genai\.register_prompt"):
        register_prompt(
            name="chat",
            template=[
                {"role": "system", "content": "You are helpful."},
                {"role": "user", "content": "{{ question }}"},
            ],
        )


def test_tags_must_be_strings() -> None:
    from optimizers import register_prompt

    with pytest.raises(ConfigurationError, match="tags must map strings to strings"):
        register_prompt("qa", "Answer: {{ question }}", tags={"score": 1})  # type: ignore[dict-item]
