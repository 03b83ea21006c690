"""A process-wide switch that forbids model calls to anything but this machine.

Test suites turn it off (``set_network_allowed(False)`` or ``JUDGEALIGN_ALLOW_NETWORK=0``)
so that a judge configured for a real provider fails loudly instead of calling out.
Calls to loopback addresses (a local fake server) and to the in-process local model stay
allowed.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

from judgealign.core._errors import NetworkForbiddenError

__all__ = ["check_endpoint", "forbid_network", "network_allowed", "set_network_allowed"]

_ENV = "JUDGEALIGN_ALLOW_NETWORK"
_lock = threading.Lock()
_override: bool | None = None


def set_network_allowed(allowed: bool | None) -> None:
    """Allow or forbid real network model calls for this process.

    ``None`` returns control to the ``JUDGEALIGN_ALLOW_NETWORK`` environment variable.
    """
    global _override
    with _lock:
        _override = allowed


def network_allowed() -> bool:
    """Whether model calls to non-loopback hosts are currently allowed."""
    with _lock:
        if _override is not None:
            return _override
    return os.environ.get(_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


@contextmanager
def forbid_network() -> Iterator[None]:
    """Forbid real network model calls inside a ``with`` block."""
    global _override
    with _lock:
        previous, _override = _override, False
    try:
        yield
    finally:
        with _lock:
            _override = previous


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` points at this machine."""
    host = urlparse(url if "//" in url else f"//{url}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(model_uri: str, api_base: str | None) -> None:
    """Raise :class:`NetworkForbiddenError` when a call to ``api_base`` is not allowed."""
    if network_allowed() or (api_base is not None and is_loopback_url(api_base)):
        return
    where = api_base or "the provider's default endpoint"
    raise NetworkForbiddenError(
        f"Model {model_uri!r} would call {where}, but real network model calls are "
        f"forbidden in this process. Use a local model or a loopback api_base, or allow "
        f"calls with judgealign.set_network_allowed(True) / {_ENV}=1."
    )
