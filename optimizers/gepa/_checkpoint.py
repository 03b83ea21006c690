"""GEPA's checkpoint: an append-only journal of the run state in ``run_dir``.

The engine saves after every stored batch of results and after every iteration. Writing
the whole state each time would make the bytes written grow with the square of the run
length (the evaluation cache alone grows with every metric call), so the file
(``gepa_state.jsonl``) is a journal, one JSON object per line, and each save appends only
what changed since the last one:

* ``header``: format version and the run's fingerprint (first line);
* ``cache``: one evaluated (prompts, record) pair;
* ``item``: entry ``index`` of one of the run's lists (candidates, rejections, history,
  reflection failures); an index already on disk means the list was cut back by a rewind
  and grew again from there;
* ``scalars``: counters, the sampling queue and the length of each list, written only
  when they changed; the last one wins;
* ``rng``: the random generator's state (3 KB), written only when it changed (once per
  iteration at most); the last one wins.

A journal is opened by rewriting it once, compacted, through a temporary file and a
rename; after that, saves append and fsync. A crash can tear only the last line, which
loading ignores (list entries past the last ``scalars`` line are cut, like an unfinished
iteration; cache lines stand on their own). A checkpoint of the earlier single-file format
(``gepa_state.json``) is still read, and replaced by a journal at the first save.
"""

from __future__ import annotations

import array
import base64
import json
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from judgealign import ConfigurationError
from judgealign.optimize_support import atomic_write_text
from optimizers._base import EvaluationResultRecord
from optimizers.gepa._state import COUNTERS, LOGS, Candidate, Rejection, RunState

__all__ = ["LEGACY_STATE_FILE", "STATE_FILE", "Checkpoint"]

STATE_FILE = "gepa_state.jsonl"
LEGACY_STATE_FILE = "gepa_state.json"
_VERSION = 2
_SCALARS = (
    *COUNTERS,
    "metric_calls",
    "epoch_queue",
    "next_component",
    "tried_merges",
    "reflection_calls",
    "reflection_tokens",
)


class Checkpoint:
    """Saves a run's state to ``run_dir`` and reads it back.

    Args:
        run_dir: the folder holding the journal.
        stamp: the run's fingerprint; a journal with another one is refused.
    """

    def __init__(self, run_dir: Path, stamp: dict[str, str]) -> None:
        self.path = run_dir / STATE_FILE
        self._legacy = run_dir / LEGACY_STATE_FILE
        self._stamp = stamp
        self._opened = False
        self._on_disk: set[tuple[str, str]] = set()
        self._items: dict[str, list[object]] = {name: [] for name in LOGS}
        self._scalars: dict[str, Any] | None = None
        self._rng: list[Any] | None = None

    def load(self) -> RunState | None:
        """The saved state, or ``None`` when there is none.

        Raises:
            ConfigurationError: when the file is unreadable or belongs to another run (other
                target prompts, data, seed or validation split).
        """
        if self.path.exists():
            return self._load_journal()
        if self._legacy.exists():
            return self._load_legacy()
        return None

    def save(self, state: RunState) -> None:
        """Write what changed since the last save (everything, compacted, the first time)."""
        if not self._opened:
            self._remember_nothing()
            text = _line({"kind": "header", "version": _VERSION, "fingerprint": self._stamp})
            atomic_write_text(self.path, text + self._changes(state))
            self._opened = True
            return
        changes = self._changes(state)
        if changes:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(changes)
                handle.flush()
                os.fsync(handle.fileno())

    # -- writing -------------------------------------------------------------------------

    def _remember_nothing(self) -> None:
        self._on_disk.clear()
        self._items = {name: [] for name in LOGS}
        self._scalars = None
        self._rng = None

    def _changes(self, state: RunState) -> str:
        lines: list[str] = []
        for key, table in state.cache.items():
            for rid, record in table.items():
                if (key, rid) not in self._on_disk:
                    self._on_disk.add((key, rid))
                    lines.append(
                        _line({"kind": "cache", "key": key, "id": rid, "record": _record(record)})
                    )
        for name in LOGS:
            lines.extend(self._new_items(name, getattr(state, name)))
        rng = _pack_rng(state.rng.getstate())
        if rng != self._rng:
            self._rng = rng
            lines.append(_line({"kind": "rng", "state": rng}))
        scalars = _scalars(state)
        if scalars != self._scalars:
            self._scalars = scalars
            lines.append(_line({"kind": "scalars", **scalars}))
        return "".join(lines)

    def _new_items(self, name: str, current: list[Any]) -> list[str]:
        written = self._items[name]
        same = 0
        # Entries are immutable once appended; a rewind cuts the list and it grows again,
        # so identity tells what is already on disk.
        while same < min(len(written), len(current)) and written[same] is current[same]:
            same += 1
        self._items[name] = list(current)
        to_json = _ITEM_TO_JSON[name]
        return [
            _line({"kind": "item", "list": name, "index": i, "value": to_json(current[i])})
            for i in range(same, len(current))
        ]

    # -- reading -------------------------------------------------------------------------

    def _load_journal(self) -> RunState:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
            entries = _parse(lines)
            header = entries[0]
            if header.get("kind") != "header" or header.get("version") != _VERSION:
                raise ValueError("the first line is not a version 2 GEPA header")
            self._check_stamp(header["fingerprint"])
            return _replay(entries[1:])
        except ConfigurationError:
            raise
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise _unreadable(self.path, exc) from exc

    def _load_legacy(self) -> RunState:
        try:
            payload = json.loads(self._legacy.read_text(encoding="utf-8"))
            saved = payload["fingerprint"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise _unreadable(self._legacy, exc) from exc
        self._check_stamp(saved)
        return _legacy_state(payload)

    def _check_stamp(self, saved: dict[str, str]) -> None:
        different = sorted(k for k in self._stamp if saved.get(k) != self._stamp[k])
        if different:
            raise ConfigurationError(
                f"run_dir {str(self.path.parent)!r} holds a GEPA run for different "
                f"{' and '.join(d.replace('_', ' ') for d in different)} "
                "(the split depends on seed, val_fraction and val_data). Pass the same inputs "
                f"to resume, or use a new run_dir (or delete {self.path.name}) to start over."
            )


def _unreadable(path: Path, exc: BaseException) -> ConfigurationError:
    return ConfigurationError(
        f"{path} is not a readable GEPA checkpoint ({exc}); delete it or use another run_dir"
    )


def _line(entry: dict[str, Any]) -> str:
    return json.dumps(entry, ensure_ascii=False, default=str) + "\n"


def _parse(lines: list[str]) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for number, line in enumerate(lines):
        try:
            entries.append(json.loads(line))
        except ValueError:
            if number == len(lines) - 1 and number > 0:
                break  # a save cut short by a crash: everything before it stands
            raise
    return entries


def _replay(entries: list[dict[str, Any]]) -> RunState:
    state = RunState()
    lists: dict[str, list[Any]] = {name: [] for name in LOGS}
    scalars: dict[str, Any] | None = None
    rng: list[Any] | None = None
    for entry in entries:
        kind = entry["kind"]
        if kind == "cache":
            state.cache.setdefault(entry["key"], {})[entry["id"]] = _record_from(entry["record"])
        elif kind == "item":
            target, index = lists[entry["list"]], int(entry["index"])
            if index > len(target):
                raise ValueError(f"entry {index} of {entry['list']} comes before its elders")
            del target[index:]
            target.append(_ITEM_FROM_JSON[entry["list"]](entry["value"]))
        elif kind == "scalars":
            scalars = entry
        elif kind == "rng":
            rng = entry["state"]
        else:
            raise ValueError(f"unknown journal line kind {kind!r}")
    if scalars is None or rng is None:
        raise ValueError("the journal holds no saved counters")
    for name in LOGS:
        setattr(state, name, lists[name][: int(scalars["lengths"][name])])
    for name in _SCALARS:
        setattr(state, name, scalars[name])
    state.rng.setstate(_unpack_rng(rng))
    return state


def _scalars(state: RunState) -> dict[str, Any]:
    scalars: dict[str, Any] = {name: _copy_json(getattr(state, name)) for name in _SCALARS}
    scalars["lengths"] = {name: len(getattr(state, name)) for name in LOGS}
    return scalars


def _copy_json(value: Any) -> Any:
    if isinstance(value, list | dict):
        return _jsonable(value)  # a copy: later changes to the state must not leak into it
    return value


def _pack_rng(rng_state: tuple[Any, ...]) -> list[Any]:
    # 625 32-bit words: base64 of the packed words is about half the size of a JSON list.
    version, internal, gauss = rng_state
    words = array.array("I", internal)
    return [version, base64.b64encode(words.tobytes()).decode("ascii"), gauss]


def _unpack_rng(packed: list[Any]) -> tuple[Any, ...]:
    version, encoded, gauss = packed
    words = array.array("I")
    words.frombytes(base64.b64decode(encoded))
    return version, tuple(words), gauss


def _legacy_state(payload: dict[str, Any]) -> RunState:
    """A state from the version 1 single-file checkpoint."""
    state = RunState()
    state.candidates = [_candidate_from(c) for c in payload["candidates"]]
    state.cache = {
        key: {rid: _record_from(r) for rid, r in records.items()}
        for key, records in payload["cache"].items()
    }
    version, internal, gauss = payload["rng_state"]
    state.rng.setstate((version, tuple(internal), gauss))
    state.rejected = [Rejection(**r) for r in payload["rejected"]]
    for name in (*COUNTERS, "metric_calls", "epoch_queue", "tried_merges", "history"):
        setattr(state, name, payload[name])
    for name in ("reflection_failures", "reflection_calls", "reflection_tokens"):
        setattr(state, name, payload[name])
    return state  # version 1 kept one component cursor for all candidates: start afresh


def _candidate_from(data: dict[str, Any]) -> Candidate:
    return Candidate(
        id=data["id"],
        prompts=dict(data["prompts"]),
        parents=tuple(data["parents"]),
        val_scores={k: float(v) for k, v in data["val_scores"].items()},
        origin=data["origin"],
        iteration=int(data["iteration"]),
        metric_calls=int(data["metric_calls"]),
    )


def _record(record: EvaluationResultRecord) -> dict[str, Any]:
    # A trace is kept when it is plain data (the prompt steps the evaluator records); other
    # traces (e.g. MLflow objects) are dropped: they can be large and are not needed to
    # resume. Values that are not JSON come back as their string form.
    raw: object = record.trace
    trace = _jsonable(raw) if isinstance(raw, list | dict) else None
    return {
        "inputs": _jsonable(record.inputs),
        "outputs": _jsonable(record.outputs),
        "expectations": _jsonable(record.expectations),
        "score": record.score,
        "trace": trace,
        "rationales": dict(record.rationales),
        "individual_scores": dict(record.individual_scores),
        "error": record.error,
    }


def _record_from(data: dict[str, Any]) -> EvaluationResultRecord:
    return EvaluationResultRecord(
        inputs=data["inputs"],
        outputs=data["outputs"],
        expectations=data["expectations"],
        score=float(data["score"]),
        trace=data.get("trace"),
        rationales=data["rationales"],
        individual_scores=data["individual_scores"],
        error=data["error"],
    )


def _jsonable(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return repr(value)


def _same(value: Any) -> Any:
    return value


_ITEM_TO_JSON: dict[str, Callable[[Any], Any]] = {
    "candidates": lambda c: c.to_dict(),
    "rejected": asdict,
    "history": _jsonable,
    "reflection_failures": _jsonable,
}
_ITEM_FROM_JSON: dict[str, Callable[[Any], Any]] = {
    "candidates": _candidate_from,
    "rejected": lambda r: Rejection(**r),
    "history": _same,
    "reflection_failures": _same,
}
