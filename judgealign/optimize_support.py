"""The seam between judgealign and the bundled ``optimizers`` package.

``optimizers`` uses judgealign's public API (``from judgealign import ...``) and, for the
few pieces of machinery that are not part of that API but that a prompt optimizer built
on judgealign needs, this module. Nothing else: no private ``judgealign`` module is
imported by ``optimizers`` (``tests/test_architecture.py`` checks it). What is here is
stable for the bundled optimizers, not a promise to third parties.

* Model calls: :class:`MeteredModel` (usage of every call, failed ones included),
  :func:`complete_structured` (a JSON-schema reply from any chat model), the reply
  limits of reflection calls and the hints shown when a reply was cut off.
* Text: :func:`redact` (secrets out of messages), :func:`atomic_write_text` (crash-safe
  files), and the one ``{{ variable }}`` grammar: :func:`template_variables`,
  :func:`format_template`, :func:`repair_template`, :func:`single_brace`.
* Prompts: :class:`PromptTemplate` (one class for prompts from any registry),
  :func:`overriding_prompts` (swap candidate text in while a ``predict_fn`` runs, with the
  :class:`PromptUsage` of what was read), :func:`prompt_override`, and the prompt steps of
  a prediction (:func:`capture_steps`, :func:`record_step`).
* Observation: :func:`announce` (tell observers, such as tracking, what finished).
* Threads and limits: :class:`ContextThreadPool` (a thread pool whose tasks run in the
  submitter's context, so the rate limit and prompt overrides reach them) and
  :func:`use_rate_limit` (run a block's model calls under a ``RateLimit``).
"""

from __future__ import annotations

from judgealign.core._events import announce
from judgealign.core._files import atomic_write_text
from judgealign.core._redact import redact
from judgealign.core._templates import (
    format_template,
    repair_template,
    single_brace,
    template_variables,
)
from judgealign.core._threads import ContextThreadPool
from judgealign.models._metering import MeteredModel
from judgealign.models._reply_limits import (
    REFLECTION_MAX_TOKENS,
    raise_limit_hint,
    truncation_note,
    with_reply_limit,
)
from judgealign.models._structured import complete_structured
from judgealign.models.rate_limit import use_rate_limit
from judgealign.prompts._overrides import PromptUsage, overriding_prompts, prompt_override
from judgealign.prompts._steps import PromptStep, capture_steps, record_step
from judgealign.prompts._template import PromptTemplate

__all__ = [
    "REFLECTION_MAX_TOKENS",
    "ContextThreadPool",
    "MeteredModel",
    "PromptStep",
    "PromptTemplate",
    "PromptUsage",
    "capture_steps",
    "overriding_prompts",
    "prompt_override",
    "record_step",
    "announce",
    "atomic_write_text",
    "complete_structured",
    "format_template",
    "raise_limit_hint",
    "redact",
    "repair_template",
    "single_brace",
    "template_variables",
    "truncation_note",
    "use_rate_limit",
    "with_reply_limit",
]
