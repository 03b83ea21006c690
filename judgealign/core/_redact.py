"""Keeping secrets out of messages, logs, files and reprs."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from urllib.parse import unquote_plus

__all__ = ["is_secret_name", "redact", "secret_values", "strip_url_credentials"]

_MIN_SECRET_LEN = 6
_MASK = "[REDACTED]"

# -- secret names ------------------------------------------------------------------------
#
# A name is split into lower-case words (``OPENAI_API_KEY`` -> openai, api, key;
# ``x-api-key`` -> x, api, key; ``accessToken`` -> access, token), then judged word by
# word. Matching the whole name as a substring is not enough: "token" is in ``max_tokens``
# and "auth" in ``author``, and dropping those loses real settings (and, for the response
# cache, makes judges that differ only in ``max_tokens`` share replies).

# Words (or parts of a run-together word such as ``clientsecret``/``xapikey``) that only
# ever name a secret.
_SECRET_WORD = re.compile(
    r"secret|passw(?:or)?d|passphrase|credential|bearer|authori[sz]ation|cookie"
    r"|apikey|privatekey|accesskey"
)
# ``<word>_key`` pairs that name a secret (``api_key``, ``AWS_ACCESS_KEY_ID``...); a bare
# ``key`` (``cache_key``, ``sort_key``) does not.
_KEY_PREFIXES = frozenset(
    {"api", "private", "access", "signing", "encryption", "master", "subscription"}
)
# A word ending in "token" is a credential (``token``, ``access_token``, ``HF_TOKEN``,
# ``authtoken``) unless the name counts tokens (a count word anywhere in it:
# ``token_limit``, ``max_token``) or names a tokenizer's special token (the word before,
# or the run-together prefix: ``eos_token``, ``padtoken``)...
_TOKEN_COUNT_WORDS = frozenset(
    {"max", "min", "num", "total", "count", "counts", "limit", "limits", "budget", "length"}
)
_TOKEN_SPECIAL_WORDS = frozenset(
    {"bos", "eos", "pad", "unk", "sep", "cls", "mask", "stop", "start", "end", "special"}
)
# ...or when the word after it says what about the token (``token_id``, ``token_type``).
_TOKEN_QUALIFIERS = frozenset({"id", "ids", "type", "types", "index", "idx"})
# Plural "tokens" is a count (``max_tokens``, ``prompt_tokens``) unless it follows one of
# these (``access_tokens``).
_PLURAL_TOKEN_PREFIXES = frozenset(
    {"access", "api", "auth", "bearer", "refresh", "session", "id", "oauth"}
)
_CAMEL_LOWER_UPPER = re.compile(r"([a-z0-9])([A-Z])")
_CAMEL_ACRONYM = re.compile(r"([A-Z]+)([A-Z][a-z])")
_NON_WORD = re.compile(r"[^a-z0-9]+")
_TOKEN_WORD = re.compile(r"^(?P<prefix>[a-z0-9]*?)token(?P<plural>s?)\d*$")
_KEY_WORD = re.compile(r"^keys?\d*$")


def _words(name: str) -> list[str]:
    spaced = _CAMEL_ACRONYM.sub(r"\1_\2", _CAMEL_LOWER_UPPER.sub(r"\1_\2", name))
    return [word for word in _NON_WORD.split(spaced.lower()) if word]


def _is_secret_token(words: list[str], index: int) -> bool:
    match = _TOKEN_WORD.match(words[index])
    if match is None:
        return False
    prefix = match["prefix"] or (words[index - 1] if index else "")
    if match["plural"]:
        return prefix in _PLURAL_TOKEN_PREFIXES
    following = words[index + 1] if index + 1 < len(words) else ""
    return not (
        prefix in _TOKEN_COUNT_WORDS
        or prefix in _TOKEN_SPECIAL_WORDS
        or following in _TOKEN_QUALIFIERS
        or any(word in _TOKEN_COUNT_WORDS for word in words)
    )


def is_secret_name(name: str) -> bool:
    """Whether a parameter, header or environment variable name looks like it holds a secret.

    ``api_key``, ``apiKey``, ``x-api-key``, ``OPENAI_API_KEY``, ``token``, ``access_token``,
    ``HF_TOKEN``, ``password``, ``client_secret``, ``AWS_SECRET_ACCESS_KEY``,
    ``Authorization``, ``bearer``, ``auth`` are; ``max_tokens``, ``max_completion_tokens``,
    ``prompt_tokens``, ``token_limit``, ``eos_token_id``, ``author`` and ``cache_key`` are not.
    """
    words = _words(name)
    for index, word in enumerate(words):
        if _SECRET_WORD.search(word) or word.endswith("auth"):  # auth, basicauth, oauth
            return True
        if _KEY_WORD.match(word) and index and words[index - 1] in _KEY_PREFIXES:
            return True
        if _is_secret_token(words, index):
            return True
    return False


# -- secret values -----------------------------------------------------------------------


def secret_values(extra: Iterable[str] = ()) -> list[str]:
    """Secrets currently in the environment plus ``extra``, longest first."""
    found = {v for k, v in os.environ.items() if is_secret_name(k) and len(v) >= _MIN_SECRET_LEN}
    found.update(v for v in extra if v and len(v) >= _MIN_SECRET_LEN)
    return sorted(found, key=len, reverse=True)


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """Replace every known secret value in ``text`` with a mask.

    Also masks anything shaped like a bearer token or an ``sk-`` style key, since
    provider error messages sometimes echo part of the key.
    """
    for secret in secret_values(extra):
        text = text.replace(secret, _MASK)
    text = re.sub(r"(?i)(bearer\s+)[A-Za-z0-9._\-]{8,}", r"\1" + _MASK, text)
    return re.sub(r"\bsk-[A-Za-z0-9_\-]{6,}", _MASK, text)


# -- credentials in URLs -----------------------------------------------------------------

# scheme://authority, then the rest of the URL up to whitespace or a quote/bracket
_URL = re.compile(
    r"(?i)\b(?P<scheme>[a-z][a-z0-9+.\-]*://)(?P<authority>[^/?#\s\"'<>]*)(?P<rest>[^\s\"'<>]*)"
)


# In a query string a bare ``key`` is a key (Google's ``?key=``), ``sig`` a signature
# (Azure SAS URLs).
_QUERY_SECRET_NAMES = frozenset({"key", "sig", "signature"})


def strip_url_credentials(text: str) -> str:
    """``text`` with every URL in it stripped of credentials.

    The userinfo (``user:password@``) is removed, keeping scheme, host, port and path, and
    so is every query (or fragment) parameter whose name is a secret
    (:func:`is_secret_name`: ``?api_key=...``, ``&access_token=...``; also ``key``,
    ``sig`` and ``signature``). Everything else is
    kept as written: ``https://u:p@host:8000/v1?api_key=k&x=1`` becomes
    ``https://host:8000/v1?x=1``.
    """
    return _URL.sub(_clean_url, text)


def _clean_url(match: re.Match[str]) -> str:
    host = match["authority"].rpartition("@")[2]  # the last "@" ends the userinfo
    before_fragment, hash_sign, fragment = match["rest"].partition("#")
    path, question_mark, query = before_fragment.partition("?")
    if question_mark:
        query = _without_secret_params(query)
        path += f"?{query}" if query else ""
    if hash_sign and "=" in fragment:  # OAuth-style "#access_token=..."
        fragment = _without_secret_params(fragment)
        hash_sign = "#" if fragment else ""
    return f"{match['scheme']}{host}{path}{hash_sign}{fragment}"


def _without_secret_params(query: str) -> str:
    kept = [part for part in query.split("&") if part and not _is_secret_param(part)]
    return "&".join(kept)


def _is_secret_param(part: str) -> bool:
    name = unquote_plus(part.partition("=")[0])
    return is_secret_name(name) or name.lower() in _QUERY_SECRET_NAMES
