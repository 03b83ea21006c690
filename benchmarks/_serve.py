"""Run ``FakeOpenAIServer`` for a benchmark, in its own process.

Usage: ``python benchmarks/_serve.py LATENCY_S MODE [REQUESTS_PER_MINUTE]``. Prints the
port, then reads commands from stdin, one per line, answering each with one JSON line:

* ``stats``: the server's counters plus ``embedded_texts`` (texts sent to /embeddings)
  and ``embedding_batches`` (texts per embeddings request, in order);
* ``log``: ``[answer time, status]`` of every chat request (429s included);
* ``reset``: forget requests and counters.

With ``REQUESTS_PER_MINUTE`` the server enforces that limit (429 with ``Retry-After``).

End of stdin stops the server.

Embeddings: the server's own ``fake_embedding`` hashes every word and character trigram in
pure Python, about 10 ms for a DeFacto document, so 500 documents would cost the server
five seconds of CPU that neither library causes. The benchmark server swaps in a cheaper
deterministic embedding (words hashed with CRC-32 into signed buckets, L2-normalised), so
that embedding requests cost their latency plus little else, as they would on a real
provider.

Modes (the reply function; anything it does not handle gets the automatic reply, which
answers a judge's JSON schema with a valid verdict):

* ``auto``: automatic replies only.
* ``memalign``: guideline distillation for both judgealign (``DistilledGuidelines``) and
  MLflow (``Guidelines``): two guidelines per batch, citing the batch's own record ids,
  with texts unique to the batch, so both libraries keep the same number of guidelines.
* ``gepa``: a task whose accuracy rises with each reflection. Question ``Q<i>`` needs
  ``i % 4`` rules in the prompt to be answered right; a reflection request (either
  library's) gets the current prompt back with one more numbered rule, in a fence.
* ``dspy``: the same task for a two-predictor DSPy program (B11), answered in DSPy's chat
  format; only the ``answer`` predictor's rules count. Reflections as in ``gepa``, and
  dspy.GEPA's (a DSPy signature with a ``new_instruction`` output) in its chat format.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
import zlib
from typing import Any

from judgealign.testing import ChatRequest, FakeOpenAIServer
from judgealign.testing import _server as server_module

_VOCAB = [
    "claim",
    "date",
    "number",
    "name",
    "place",
    "quote",
    "source",
    "figure",
    "event",
    "person",
    "agency",
    "amount",
    "percent",
    "title",
    "year",
    "region",
    "company",
    "official",
    "statement",
    "report",
    "vote",
    "season",
    "match",
    "score",
    "team",
    "policy",
    "court",
    "charge",
    "study",
    "survey",
    "price",
    "rate",
    "budget",
    "tax",
    "law",
    "bill",
    "minister",
    "police",
    "hospital",
    "school",
    "club",
    "league",
    "record",
    "injury",
    "contract",
    "trial",
    "sentence",
    "election",
    "party",
]


def _words(seed: str, count: int) -> list[str]:
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    return [_VOCAB[digest[i] % len(_VOCAB)] for i in range(count)]


def _guidelines(request: ChatRequest, name: str) -> dict[str, Any] | None:
    text = request.text
    seed = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if name == "Guidelines":  # MLflow MemAlign: integer ids printed in the prompt
        ids: list[Any] = [int(i) for i in re.findall(r'"id":\s*(\d+)', text)]
        key_text, key_ids = "guideline_text", "source_trace_ids"
    elif name == "DistilledGuidelines":  # judgealign: the records' own ids
        ids = re.findall(r'"id": "([^"]+)"', request.last_user)
        key_text, key_ids = "text", "source_ids"
    else:
        return None
    out = []
    for k in range(2):
        cited = ids[2 * k : 2 * k + 2] or ids[:1]
        words = " ".join(_words(f"{seed}:{k}", 6))
        out.append({key_text: f"Check the {words} against the document.", key_ids: cited})
    return {"guidelines": out}


_RULE = re.compile(r"Rule (\d+)\.")
_QUESTION = re.compile(r"Q(\d+): What is (\d+) plus (\d+)\?")


def _gepa(request: ChatRequest) -> Any:
    text = request.text
    fence = re.search(r"```[a-z]*\n?(.*?)```", text, re.S)
    if fence and ("I provided an assistant" in text or "You are refining one prompt" in text):
        prompt = fence.group(1).strip()
        rules = len(_RULE.findall(prompt))
        return f"```\n{prompt} Rule {rules + 1}. Be careful.\n```"
    question = _QUESTION.search(text)
    if question:
        number, a, b = (int(g) for g in question.groups())
        rules = len(_RULE.findall(text))
        return str(a + b) if rules >= number % 4 else str(a + b + 1)
    return None


def _dspy_program(request: ChatRequest) -> Any:
    """B11: a two-predictor DSPy program (``draft``, then ``answer``) in DSPy's chat format.

    ``answer`` to question ``i`` is right only when the ``answer`` predictor's own
    instructions hold at least ``i % 4`` numbered rules; ``draft``'s rules do not matter.
    Reflection requests are answered as in ``gepa`` mode (one more rule)."""
    system = str(request.messages[0].get("content") or "") if request.messages else ""
    if "Your output fields are" not in system:
        return _gepa(request)
    outputs = system.split("Your output fields are", 1)[1].split("All interactions", 1)[0]
    if "`new_instruction`" in outputs:  # dspy.GEPA's reflection is itself a DSPy signature
        current = request.last_user.split("[[ ## current_instruction ## ]]", 1)[1]
        current = current.split("[[ ## ", 1)[0].strip()
        rules = len(_RULE.findall(current))
        return _dspy_reply(request, new_instruction=f"{current} Rule {rules + 1}. Be careful.")
    question = _QUESTION.search(request.last_user)
    if question is None:
        return None
    number, a, b = (int(g) for g in question.groups())
    if "`draft`" in outputs:
        return _dspy_reply(request, draft=f"{a} + {b}")
    rules = len(_RULE.findall(system.rsplit("your objective is:", 1)[-1]))
    return _dspy_reply(request, answer=str(a + b if rules >= number % 4 else a + b + 1))


def _dspy_reply(request: ChatRequest, **fields: str) -> Any:
    """DSPy's chat format, or a JSON object when the request asks for one (JSONAdapter)."""
    system = str(request.messages[0].get("content") or "") if request.messages else ""
    if request.response_format is not None or "Outputs will be a JSON object" in system:
        return fields
    body = "".join(f"[[ ## {name} ## ]]\n{value}\n\n" for name, value in fields.items())
    return body + "[[ ## completed ## ]]"


def _reply(mode: str) -> Any:
    if mode == "memalign":

        def memalign(request: ChatRequest) -> Any:
            schema = (request.response_format or {}).get("json_schema") or {}
            return _guidelines(request, str(schema.get("name", "")))

        return memalign
    if mode == "gepa":
        return _gepa
    if mode == "dspy":
        return _dspy_program
    return None


def _stats(server: FakeOpenAIServer) -> dict[str, Any]:
    batches = [
        len(r.body["input"]) if isinstance(r.body.get("input"), list) else 1
        for r in server.requests
        if r.path.rstrip("/").endswith("/embeddings") and isinstance(r.body, dict)
    ]
    return {**server.stats, "embedded_texts": sum(batches), "embedding_batches": batches}


_WORD = re.compile(r"\w+")


def fast_embedding(text: str, dim: int = 384) -> list[float]:
    """Hashed bag of lower-cased words, signed, L2-normalised; the same in every process."""
    vector = [0.0] * dim
    for word in _WORD.findall(text.lower()):
        code = zlib.crc32(word.encode("utf-8"))
        vector[code % dim] += 1.0 if code & 0x80000000 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def _chat_log(server: FakeOpenAIServer) -> list[tuple[float, int]]:
    """(answer time, status) of every chat request, in answer order."""
    return [
        (r.time, r.status)
        for r in server.requests
        if r.path.rstrip("/").endswith("/chat/completions")
    ]


def main() -> None:
    latency, mode = float(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "auto"
    rpm = float(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] != "none" else None
    server_module.fake_embedding = fast_embedding
    with FakeOpenAIServer(latency_s=latency, reply=_reply(mode), requests_per_minute=rpm) as server:
        print(server.port, flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "stats":
                print(json.dumps(_stats(server)), flush=True)
            elif command == "log":
                print(json.dumps(_chat_log(server)), flush=True)
            elif command == "reset":
                server.reset()
                print("{}", flush=True)


if __name__ == "__main__":
    main()
