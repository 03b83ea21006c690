"""Exceptions raised by judgealign.

Every exception the library raises on purpose derives from :class:`JudgeAlignError`::

    JudgeAlignError
    ├── ConfigurationError        misuse, raised early (bad argument, bad file, bad URI)
    │   └── MissingExtraError     an optional dependency is not installed
    └── ModelError                a model call failed at run time
        ├── NetworkForbiddenError a real network call was attempted while forbidden
        ├── ModelCallError        the provider answered with an error, or never answered
        │   └── ContextLengthError the request does not fit the model's context window
        └── ModelOutputError      the reply could not be parsed into the declared type

``ConfigurationError`` also derives from :class:`ValueError` so that callers who guard
against bad arguments the usual way keep working.
"""

from __future__ import annotations

from judgealign.core._usage import Usage

__all__ = [
    "ConfigurationError",
    "ContextLengthError",
    "JudgeAlignError",
    "MissingExtraError",
    "ModelCallError",
    "ModelError",
    "ModelOutputError",
    "NetworkForbiddenError",
]


class JudgeAlignError(Exception):
    """Base class of every error raised by judgealign."""


class ConfigurationError(JudgeAlignError, ValueError):
    """An argument, file or setting is invalid; the message names it and the fix."""


class MissingExtraError(ConfigurationError, ImportError):
    """An optional dependency is missing; the message gives the install command."""

    def __init__(self, feature: str, extra: str, packages: str) -> None:
        super().__init__(
            f"{feature} needs the optional dependency {packages}. "
            f"Install it with: pip install 'judgealign[{extra}]'"
        )


class ModelError(JudgeAlignError):
    """A model call failed at run time.

    Attributes:
        usage: what the failed operation cost before it failed: every request sent (a
            reply that could not be parsed and its repair message included) and the tokens
            of the replies that arrived. ``None`` when the raiser did not know; the
            library's structured-output layer always sets it (see ``_metering``).
    """

    usage: Usage | None = None


class NetworkForbiddenError(ModelError):
    """A call to a non-loopback address was made while real network calls are forbidden."""

    usage: Usage | None = Usage(calls=0)  # refused before anything was sent


class ModelCallError(ModelError):
    """The provider returned an error, timed out, or could not be reached.

    Attributes:
        status: HTTP status code when the provider gave one, else ``None``.
        retryable: whether the failure was of a kind that is retried (429, 5xx, timeouts,
            connection errors). When raised to the caller, the retries are exhausted.
        attempts: how many attempts were made before giving up.
        usage: see :class:`ModelError`.
        reason: why the server refused the request by its content, when the reply says:
            ``"context_length"`` (the prompt does not fit), ``"response_format"`` (the
            server does not accept the structured-output request), ``"embeddings_off"``
            (the server serves no embeddings) or ``"batch_refused"`` (it cannot embed
            several texts in one request); ``None`` otherwise.
            Such a refusal is never retried: the same request would be refused again.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        attempts: int = 1,
        usage: Usage | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.usage = usage
        self.status = status
        self.retryable = retryable
        self.attempts = attempts
        self.reason = reason


class ContextLengthError(ModelCallError):
    """The request does not fit the model's context window (whatever status code the
    server used to say so).

    Attributes:
        window: the model's context window in tokens, when the server said it.
        prompt_tokens: the size of the refused prompt in tokens, when the server said it.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        attempts: int = 1,
        window: int | None = None,
        prompt_tokens: int | None = None,
    ) -> None:
        super().__init__(
            message, status=status, retryable=False, attempts=attempts, reason="context_length"
        )
        self.window = window
        self.prompt_tokens = prompt_tokens


class ModelOutputError(ModelError):
    """The model's reply did not fit the declared output, even after one repair attempt.

    Attributes:
        raw_output: the start of the last reply.
        usage: see :class:`ModelError`; both replies are in it.
    """

    def __init__(self, message: str, *, raw_output: str = "", usage: Usage | None = None) -> None:
        super().__init__(message)
        self.usage = usage
        self.raw_output = raw_output
