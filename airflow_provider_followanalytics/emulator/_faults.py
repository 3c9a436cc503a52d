"""Fault injection: the :class:`Fault` record, the queue requests take faults from, and a fault's answer.

A request takes the first pending fault whose route matches it; ``status``, ``json`` and ``reset``
faults replace the answer (:func:`apply_fault`), ``delay`` faults stall it, and the download kinds
cut a file short while it streams (``_routes`` applies those).
"""

from __future__ import annotations

import dataclasses
import json
from http import HTTPStatus
from typing import TYPE_CHECKING

from airflow_provider_followanalytics.emulator._http import JSON_CONTENT_TYPE

if TYPE_CHECKING:
    import threading

    from airflow_provider_followanalytics.emulator._http import Handler

__all__ = ["FAULT_KINDS", "FAULT_ROUTES", "Fault", "FaultQueue", "apply_fault"]

#: Routes a fault can target. ``download`` is a callback poll that would have answered 200 with the file.
FAULT_ROUTES: tuple[str, ...] = ("login", "export", "callback", "download", "data_exporters", "any")
#: Kinds of fault.
FAULT_KINDS: tuple[str, ...] = ("status", "reset", "delay", "truncate", "chunked_cut", "json")
_DOWNLOAD_ONLY_KINDS = frozenset({"truncate", "chunked_cut"})


@dataclasses.dataclass
class Fault:
    """A fault waiting to be injected; see :meth:`FollowAnalyticsEmulator.add_fault`, which documents each kind.

    :param route: the requests it strikes: one of :data:`FAULT_ROUTES` (``any``: every non-control request).
    :param kind: what it does: one of :data:`FAULT_KINDS` (default ``status``).
    :param count: how many matching requests it strikes (>= 1).
    :param status: HTTP status answered by a ``status`` fault (default 503).
    :param retry_after: value of a ``Retry-After`` header, sent when given.
    :param body: response body of a ``status`` or ``json`` fault.
    :param content_type: Content-Type of a ``status`` or ``json`` fault.
    :param delay: seconds a ``delay`` fault waits.
    :param after_bytes: body bytes sent before a download fault strikes.
    """

    route: str
    kind: str = "status"
    count: int = 1
    status: int = 503
    retry_after: int | float | str | None = None
    body: bytes | str | None = None
    content_type: str | None = None
    delay: float = 0.0
    after_bytes: int = 0


class FaultQueue:
    """The pending faults, in the order they were added, guarded by the emulator's lock."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        """Check ``fault`` and queue it; raise ValueError when it makes no sense."""
        if fault.route not in FAULT_ROUTES:
            raise ValueError(f"unknown fault route {fault.route!r}; expected one of {FAULT_ROUTES}")
        if fault.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {fault.kind!r}; expected one of {FAULT_KINDS}")
        if fault.kind in _DOWNLOAD_ONLY_KINDS and fault.route != "download":
            raise ValueError(f"fault kind {fault.kind!r} applies to the 'download' route only")
        if fault.count < 1:
            raise ValueError(f"count must be >= 1, got {fault.count}")
        if not 100 <= fault.status <= 599:
            raise ValueError(f"status must be an HTTP status code, got {fault.status}")
        if fault.delay < 0 or fault.after_bytes < 0:
            raise ValueError("delay and after_bytes must be >= 0")
        fault.delay = float(fault.delay)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, route: str) -> Fault | None:
        """Consume one strike of the first fault matching ``route``; return a copy of it, or None."""
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.route == route or (fault.route == "any" and route != "download"):
                    fault.count -= 1
                    if fault.count <= 0:
                        del self._faults[index]
                    return dataclasses.replace(fault)
        return None

    def clear(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[Fault]:
        """A copy of the faults still waiting to strike."""
        with self._lock:
            return [dataclasses.replace(f) for f in self._faults]

    def strikes_left(self) -> int:
        """How many requests the pending faults will still strike."""
        with self._lock:
            return sum(f.count for f in self._faults)


def apply_fault(handler: Handler, fault: Fault) -> None:
    """Answer with a ``status``, ``json`` or ``reset`` fault."""
    if fault.kind == "reset":
        handler.reset_connection()
        return
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = str(fault.retry_after)
    if fault.kind == "json":
        body = b"" if fault.body is None else _as_bytes(fault.body)
        handler.send_bytes(200, body, fault.content_type or JSON_CONTENT_TYPE, headers)
        return
    status = fault.status
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    if fault.body is not None:
        body = _as_bytes(fault.body)
    elif status >= 500:
        body = (
            f"<html><head><title>{status} {phrase}</title></head><body><h1>{status} {phrase}</h1></body></html>"
        ).encode()
    else:
        body = json.dumps({"success": False, "message": phrase}).encode()
    default_type = "text/html; charset=utf-8" if status >= 500 else JSON_CONTENT_TYPE
    handler.send_bytes(status, body, fault.content_type or default_type, headers)


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)
