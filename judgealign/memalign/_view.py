"""The retrieval view: what is embedded for a stored record and for a judged query.

An aligned judge retrieves the stored records most similar to the record it judges, so the
embedding must see every field the judge reads. Embedders read a bounded window (the local
MiniLM reads 254 tokens and ignores the rest), and a source document easily fills it: with
the canonical JSON of ``inputs`` then ``outputs``, the summary judged on a DeFacto record
lies wholly past the window in about 1,861 of 2,561 records, and two different summaries of
one article retrieve the same examples.

Views (records and queries always use the same one; the name is saved with the vectors):

* ``"fields-mean"`` (the default): each judge field is a labelled section (``outputs:``
  then its text), cut from the middle to the window when it is longer (its start and its
  end are kept) and embedded on its own; the record's vector is the normalised mean of its
  fields' vectors. Every field weighs the same whatever its length: a one-line summary
  counts as much as the article it summarises.
* ``"fields"``: the same sections in one text that fits the window. Each field gets an
  equal share of the window; a field shorter than its share keeps all of it and leaves the
  rest to the others; a longer one is cut from the middle. No field is dropped, but a
  short field is a small part of the text (MiniLM averages over tokens).
* ``"inputs+outputs"``, ``"inputs"``, ``"outputs"``, ``"all"``: the canonical JSON of those
  fields, the views of earlier releases (``"inputs+outputs"`` was the default); the
  embedder truncates it. They render exactly as before because aligned judges saved with
  them hold vectors made from exactly that text.
* a function of the judge fields returning the text.

The window comes from the embedder (``max_tokens`` and ``count_tokens``, see
:func:`judgealign.embeddings._protocol.token_window`): the MiniLM tokenizer itself, an estimate for
remote models. A name always renders the same way: a change of rendering gets a new name.
Benchmark B8 (``benchmarks/RESULTS.md``) measured the candidates on DeFacto and ExpertQA:
the views agree equally often with the experts' labels, and ``"fields-mean"`` is the one
whose neighbours follow the output most (two summaries of one article retrieve different
examples), while a light edit of a long answer leaves most of them in place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from judgealign.core._errors import ConfigurationError
from judgealign.embeddings._protocol import token_window
from judgealign.judges._records import canonical_json

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = [
    "DEFAULT_VIEW",
    "EmbedView",
    "ViewFunction",
    "cut_middle",
    "embed_view",
    "field_sections",
    "render_view",
    "view_texts",
]

EmbedView = Literal["fields", "fields-mean", "inputs+outputs", "inputs", "outputs", "all"]
ViewFunction = Callable[[Mapping[str, Any]], str]
DEFAULT_VIEW: EmbedView = "fields-mean"
LEGACY_VIEWS = frozenset({"inputs+outputs", "inputs", "outputs", "all"})
Counter = Callable[[Sequence[str]], list[int]]
Embed = Callable[[Sequence[str]], "NDArray[np.float32]"]

_SEPARATOR = "\n\n"
_CUT_MARK = " … "
# A cut that still overflows (estimated counts, tokens merging at the cut) is retried
# this much shorter, so that the loop converges in a step or two.
_SHRINK = 0.95


def render_view(
    view: EmbedView | ViewFunction, fields: Mapping[str, Any], embedder: object = None
) -> str:
    """The one text embedded for a record or a query under a single-text view.

    Args:
        view: a view name or a function of ``fields`` (see the module docstring).
        fields: the judge fields, as ``Judge.collect_fields`` returns them.
        embedder: the embedder whose window ``"fields"`` fits (``None``: no window).

    Returns:
        The text to embed.

    Raises:
        ConfigurationError: a function that does not return a string, or
            ``"fields-mean"``, which embeds one text per field (see :func:`embed_view`).
    """
    if callable(view):
        text = view(fields)
        if not isinstance(text, str):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise ConfigurationError(f"The view function returned {type(text).__name__}, not str.")
        return text
    if view in LEGACY_VIEWS:
        return _legacy_json(view, fields)
    if view == "fields":
        window, count = token_window(embedder) if embedder is not None else (None, _no_count)
        return _fit_sections(field_sections(fields), window, count)
    raise ConfigurationError(
        f"view={view!r} embeds each field separately, so it has no single text; "
        "use embed_view to get its vectors."
    )


def view_texts(
    view: EmbedView | ViewFunction, fields: Mapping[str, Any], embedder: object = None
) -> list[str]:
    """The texts embedded for one record: one per field for ``"fields-mean"``, else one.

    Args:
        view: the view.
        fields: the judge fields of the record.
        embedder: the embedder whose window the texts fit (``None``: no window).

    Returns:
        The texts, in field order.
    """
    if view != "fields-mean":
        return [render_view(view, fields, embedder)]
    window, count = token_window(embedder) if embedder is not None else (None, _no_count)
    return [s if window is None else cut_middle(s, window, count) for s in field_sections(fields)]


def embed_view(
    view: EmbedView | ViewFunction,
    fields: Sequence[Mapping[str, Any]],
    embedder: object,
    embed: Embed,
) -> NDArray[np.float32]:
    """Embed the view of each record's (or query's) judge fields, in one ``embed`` call.

    Args:
        view: the view.
        fields: one mapping of judge fields per record.
        embedder: the embedder, for its window.
        embed: embeds a list of texts into unit rows (the optimizer's checked call).

    Returns:
        One unit-norm float32 row per record.
    """
    groups = [view_texts(view, f, embedder) for f in fields]
    vectors = embed([text for group in groups for text in group])
    if view != "fields-mean":
        return vectors
    return _group_means(vectors, [len(group) for group in groups])


def field_sections(fields: Mapping[str, Any]) -> list[str]:
    """One labelled section per judge field (``name:`` then the value), in field order."""
    return [f"{name}:\n{_value_text(value)}" for name, value in fields.items()]


def cut_middle(text: str, limit: int, count: Counter) -> str:
    """``text`` cut from the middle to at most ``limit`` tokens: start and end kept.

    Args:
        text: the text.
        limit: the most tokens the result may take.
        count: the embedder's token counter.

    Returns:
        ``text`` itself when it fits; otherwise its start, `` … `` and its end, in equal
        parts and at word boundaries where one is near; ``""`` when ``limit`` < 1.
    """
    size = count([text])[0]
    if size <= limit:
        return text
    keep = int(len(text) * limit / size)
    while keep > 0:
        candidate = _join_ends(text, keep)
        took = count([candidate])[0]
        if took <= limit:
            return candidate
        keep = min(keep - 1, int(keep * _SHRINK * limit / took))
    return _CUT_MARK.strip() if limit >= 1 and count([_CUT_MARK.strip()])[0] <= limit else ""


# -- helpers ---------------------------------------------------------------------------


def _legacy_json(view: str, fields: Mapping[str, Any]) -> str:
    # Unchanged since the first release: saved vectors were made from exactly this text.
    if view == "all":
        return canonical_json(dict(fields))
    names = ("inputs", "outputs") if view == "inputs+outputs" else (view,)
    chosen = {name: fields[name] for name in names if name in fields}
    return canonical_json(chosen or dict(fields))


def _value_text(value: Any) -> str:
    """Readable text for a field: strings as they are, mappings and messages line by line.

    JSON quoting would spend the window on escapes and punctuation.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        items = cast("Mapping[Any, Any]", value)
        return "\n".join(f"{key}: {_inline(item)}" for key, item in items.items())
    if isinstance(value, list) and all(_is_message(m) for m in value):  # pyright: ignore[reportUnknownVariableType]
        messages: list[Mapping[str, Any]] = value  # pyright: ignore[reportUnknownVariableType]
        return "\n".join(f"{m['role']}: {_inline(m['content'])}" for m in messages)
    return canonical_json(value)


def _inline(value: Any) -> str:
    return value if isinstance(value, str) else canonical_json(value)


def _is_message(value: Any) -> bool:
    return isinstance(value, Mapping) and "role" in value and "content" in value


def _fit_sections(sections: list[str], window: int | None, count: Counter) -> str:
    """Join ``sections``, each cut to its fair share of ``window`` when they overflow it."""
    if window is None:
        return _SEPARATOR.join(sections)
    costs = count(sections)
    budget = max(0, window - count([_SEPARATOR])[0] * (len(sections) - 1))
    while True:
        shares = _fair_shares(costs, budget)
        text = _SEPARATOR.join(
            s if cost <= share else cut_middle(s, share, count)
            for s, cost, share in zip(sections, costs, shares, strict=True)
        )
        # Estimated counts are not additive across a join: check the whole, shrink if over.
        over = count([text])[0] - window
        if over <= 0 or budget == 0:
            return text
        budget = max(0, budget - over)


def _fair_shares(costs: Sequence[int], budget: int) -> list[int]:
    """Max-min fair split of ``budget``: short sections keep their cost, long ones share."""
    shares = [0] * len(costs)
    remaining = budget
    order = sorted(range(len(costs)), key=lambda i: costs[i])
    for position, index in enumerate(order):
        share = min(costs[index], remaining // (len(costs) - position))
        shares[index] = share
        remaining -= share
    return shares


def _join_ends(text: str, keep: int) -> str:
    """The first and last ``keep // 2`` characters (or so, to a nearby word boundary)."""
    head = keep - keep // 2
    tail_start = len(text) - keep // 2
    space = text.rfind(" ", 0, head)
    if space > head * 0.8:
        head = space
    space = text.find(" ", tail_start)
    if space != -1 and space - tail_start < (len(text) - tail_start) * 0.2:
        tail_start = space + 1
    return text[:head].rstrip() + _CUT_MARK + text[tail_start:].lstrip()


def _no_count(texts: Sequence[str]) -> list[int]:
    return [0 for _ in texts]


def _group_means(vectors: NDArray[np.float32], sizes: Sequence[int]) -> NDArray[np.float32]:
    """The normalised mean of each consecutive group of rows."""
    import numpy as np

    out = np.zeros((len(sizes), vectors.shape[1]), dtype=np.float32)
    start = 0
    for row, size in enumerate(sizes):
        if size:
            out[row] = vectors[start : start + size].mean(axis=0)
        start += size
    norms = np.maximum(np.linalg.norm(out, axis=1, keepdims=True), np.float32(1e-12))
    return np.ascontiguousarray(out / norms, dtype=np.float32)


def check_view(view: object) -> EmbedView | ViewFunction:
    """``view`` if it is a view name or a function; else a ConfigurationError naming them."""
    if callable(view):
        return cast("ViewFunction", view)
    allowed = get_args(EmbedView)
    if view not in allowed:
        raise ConfigurationError(
            f"view={view!r} is not one of {', '.join(repr(a) for a in allowed)}, "
            "or a function of the judge fields returning the text to embed."
        )
    return view  # pyright: ignore[reportReturnType]
