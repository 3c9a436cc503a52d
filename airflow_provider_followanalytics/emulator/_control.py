"""The control plane: the ``/_emulator/*`` endpoints and the checks on the settings they accept.

Processes that run the emulator out of process (benchmarks, the demo, the deployment tests)
read its counters and secrets, change its configuration, inject faults and reset it here:

* ``GET /_emulator/state``: :meth:`FollowAnalyticsEmulator.state`;
* ``GET /_emulator/secrets``: :meth:`FollowAnalyticsEmulator.issued_secrets`;
* ``GET /_emulator/config``, ``POST /_emulator/config`` (a JSON object of :data:`CONFIG_FIELDS`);
* ``POST /_emulator/faults`` (the arguments of :meth:`FollowAnalyticsEmulator.add_fault`);
* ``POST /_emulator/reset``: :meth:`FollowAnalyticsEmulator.reset`.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_followanalytics.emulator._faults import Fault
    from airflow_provider_followanalytics.emulator._http import Handler
    from airflow_provider_followanalytics.emulator._records import RecordedRequest

__all__ = ["CONFIG_FIELDS", "DOWNLOAD_MODES", "Controlled", "check_setting", "handle_control", "method_not_allowed"]


class Controlled(Protocol):
    """What the control plane calls of ``FollowAnalyticsEmulator``."""

    def state(self) -> dict[str, Any]: ...
    def issued_secrets(self) -> dict[str, Any]: ...
    def reset(self) -> None: ...
    def config(self) -> dict[str, Any]: ...
    def configure(self, *args: Any, **kwargs: Any) -> None: ...
    def add_fault(self, *args: Any, **kwargs: Any) -> Fault: ...


#: Values of the :class:`FollowAnalyticsEmulator` attribute ``download_mode``.
DOWNLOAD_MODES: tuple[str, ...] = ("content-length", "chunked")
#: Attributes that ``POST /_emulator/config`` may set.
CONFIG_FIELDS: tuple[str, ...] = (
    "ready_after",
    "never_ready",
    "export_size",
    "expire_after_polls",
    "token_max_uses",
    "callback_requires_auth",
    "download_mode",
    "seed",
    "email",
    "password",
    "public_url",
)
# The method each control action answers (``config`` answers GET too).
_METHODS = {"state": "GET", "secrets": "GET", "config": "POST", "faults": "POST", "reset": "POST"}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_SETTING_TYPES: dict[str, Callable[[Any], bool]] = {
    "ready_after": lambda v: _is_int(v) and v >= 0,
    "never_ready": lambda v: isinstance(v, bool),
    "export_size": lambda v: _is_int(v) and v >= 0,
    "expire_after_polls": lambda v: v is None or (_is_int(v) and v >= 1),
    "token_max_uses": lambda v: v is None or (_is_int(v) and v >= 0),
    "callback_requires_auth": lambda v: isinstance(v, bool),
    "download_mode": lambda v: v in DOWNLOAD_MODES,
    "seed": _is_int,
    "email": lambda v: isinstance(v, str) and bool(v),
    "password": lambda v: isinstance(v, str) and bool(v),
    "public_url": lambda v: v is None or (isinstance(v, str) and v.startswith(("http://", "https://"))),
}


def check_setting(name: str, value: Any) -> Any:
    """Return ``value`` when it is a valid value of the setting ``name``; raise ValueError otherwise."""
    check = _SETTING_TYPES.get(name)
    if check is None:
        raise ValueError(f"unknown setting {name!r}; expected one of {CONFIG_FIELDS}")
    if not check(value):
        raise ValueError(f"invalid value for {name}: {value!r}")
    return value


def method_not_allowed(handler: Handler, allowed: str) -> None:
    """Answer 405 naming the one method the route answers."""
    handler.send_failure(405, "Method not allowed", {"Allow": allowed})


def handle_control(emulator: Controlled, handler: Handler, request: RecordedRequest) -> None:
    """Answer one ``/_emulator/<action>`` request."""
    action = request.path[len("/_emulator/") :].rstrip("/")
    expected_method = _METHODS.get(action)
    if expected_method is None:
        handler.send_not_found()
        return
    if request.method != expected_method and not (action == "config" and request.method == "GET"):
        method_not_allowed(handler, expected_method)
        return
    if action == "state":
        handler.send_json(200, emulator.state())
        return
    if action == "secrets":
        handler.send_json(200, emulator.issued_secrets())
        return
    if action == "reset":
        emulator.reset()
        handler.send_json(200, {"success": True, "result": "reset"})
        return
    if action == "config" and request.method == "GET":
        handler.send_json(200, {"success": True, "result": emulator.config()})
        return
    try:
        result = _apply(emulator, action, request.body)
    except (TypeError, ValueError, UnicodeDecodeError) as exc:
        handler.send_failure(400, str(exc))
        return
    handler.send_json(200, {"success": True, "result": result})


def _apply(emulator: Controlled, action: str, body: bytes) -> Any:
    """Apply a ``config`` or ``faults`` POST body; return what the answer reports."""
    payload = json.loads(body.decode("utf-8") or "{}")
    if not isinstance(payload, dict):
        raise ValueError("the body must be a JSON object")
    if action == "config":
        unknown = sorted(set(payload) - set(CONFIG_FIELDS))
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(unknown)}")
        emulator.configure(**payload)
        return emulator.config()
    fault = emulator.add_fault(**payload)
    return {k: v for k, v in dataclasses.asdict(fault).items() if not isinstance(v, bytes)}
