"""The API's routes: which route a request is, and the answers of login, exports, callbacks and downloads.

:func:`handle` records each request on the emulator, lets a pending fault strike, then answers it
from the emulator's configuration and state (read and changed under the emulator's lock).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import secrets
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, unquote

from airflow_provider_followanalytics.emulator._control import Controlled, handle_control, method_not_allowed
from airflow_provider_followanalytics.emulator._faults import apply_fault
from airflow_provider_followanalytics.emulator._http import NETWORK_ERRORS
from airflow_provider_followanalytics.emulator._params import is_identifier, validate_export_params
from airflow_provider_followanalytics.emulator._records import Export, RecordedRequest
from airflow_provider_followanalytics.emulator._samples import DATA_EXPORTERS
from airflow_provider_followanalytics.emulator.content import export_chunks

if TYPE_CHECKING:
    import threading

    from airflow_provider_followanalytics.emulator._faults import Fault, FaultQueue
    from airflow_provider_followanalytics.emulator._http import Handler

__all__ = ["EXPORT_KIND_OF_ENDPOINT", "ROUTES", "EmulatorState", "handle"]

#: Routes a recorded request can belong to.
ROUTES: tuple[str, ...] = ("login", "export", "callback", "data_exporters", "control", "unknown")

_CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "xls": "application/vnd.ms-excel"}
_MSG_LOGIN_FIELDS = "The request must contain the user email and password."
_MSG_BAD_LOGIN = "Invalid email or password."
_MSG_BAD_TOKEN = "Invalid or expired token."  # noqa: S105 - a message, not a secret
_MSG_BAD_EXPORT_TOKEN = "The export token is missing, invalid or the download link has expired."  # noqa: S105 - a message

_FMT = r"(?:\.(?P<fmt>[A-Za-z0-9]+))?"
# (endpoint name, path pattern). Identifiers match any single segment and are validated afterwards.
_EXPORT_PATHS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("segment_devices", re.compile(rf"^(?:/api)?/segments/(?P<ident>[^/]+)/devices_export{_FMT}$")),
    ("app_devices", re.compile(rf"^/api/apps/(?P<ident>[^/]+)/devices_export{_FMT}$")),
    ("app_events", re.compile(rf"^/api/apps/(?P<ident>[^/]+)/events_export{_FMT}$")),
    ("performance", re.compile(rf"^/api/performance_export{_FMT}$")),
    ("user_metrics", re.compile(rf"^/api/apps/(?P<ident>[^/]+)/analytics/download_metrics{_FMT}$")),
    ("event_analysis", re.compile(rf"^/api/events_export{_FMT}$")),
    ("event_context", re.compile(rf"^/api/event_details_export{_FMT}$")),
)
#: What each export endpoint's file holds (``export_chunks(kind=...)``).
EXPORT_KIND_OF_ENDPOINT: dict[str, str] = {
    "segment_devices": "devices",
    "app_devices": "devices",
    "app_events": "events",
    "performance": "performance",
    "user_metrics": "user_metrics",
    "event_analysis": "event_analysis",
    "event_context": "event_context",
}
_DATA_EXPORTERS_PATH = re.compile(r"^/api/data_exporters(?:/(?P<ident>[^/]*))?$")


class EmulatorState(Controlled, Protocol):
    """What the routes read and change of ``FollowAnalyticsEmulator`` (under its ``_lock``), and what the
    control plane calls."""

    email: str
    password: str
    ready_after: int
    never_ready: bool
    export_size: int
    seed: int
    expire_after_polls: int | None
    token_max_uses: int | None
    callback_requires_auth: bool
    download_mode: str
    public_url: str | None
    login_count: int
    bytes_sent: list[int]
    issued_tokens: list[str]
    issued_export_tokens: list[str]
    user: dict[str, Any]
    _lock: threading.RLock
    _faults: FaultQueue
    _exports: dict[str, Export]
    _token_uses: dict[str, int]
    _stopping: threading.Event

    @property
    def url(self) -> str: ...
    def _record(self, request: RecordedRequest) -> None: ...
    def _sleep(self, seconds: float) -> bool: ...


@dataclasses.dataclass(frozen=True)
class _Download:
    """What a ready callback poll serves (a snapshot of the configuration)."""

    size: int
    file_format: str
    seed: int
    chunked: bool
    kind: str = "devices"


def _classify(raw_path: str) -> tuple[str, str, re.Match[str] | None]:
    """Return ``(route, export endpoint name, path match)`` for a raw request path."""
    if raw_path.startswith("/_emulator/"):
        return "control", "", None
    if raw_path == "/api/login":
        return "login", "", None
    if raw_path == "/api/exports/download_url":
        return "callback", "", None
    match = _DATA_EXPORTERS_PATH.match(raw_path)
    if match is not None:
        return "data_exporters", "", match
    for endpoint, pattern in _EXPORT_PATHS:
        match = pattern.match(raw_path)
        if match is not None:
            return "export", endpoint, match
    return "unknown", "", None


def handle(emu: EmulatorState, handler: Handler, body: bytes) -> None:
    """Record the request, let a pending fault strike, and answer it."""
    raw_path, _, query_string = handler.path.partition("?")
    method = handler.command
    route, endpoint, match = _classify(raw_path)
    request = RecordedRequest(
        method=method,
        path=raw_path,
        query=dict(parse_qsl(query_string, keep_blank_values=True)),
        headers={name.lower(): value for name, value in handler.headers.items()},
        body=body,
        route=route,
        peer=(str(handler.client_address[0]), int(handler.client_address[1])),
    )
    emu._record(request)

    if route == "control":
        handle_control(emu, handler, request)
        return
    fault = emu._faults.take(route)
    if fault is not None and fault.kind != "delay":
        apply_fault(handler, fault)
        return
    if fault is not None and not emu._sleep(fault.delay):
        handler.close_connection = True
        return

    if route == "unknown":
        handler.send_not_found()
    elif route == "login":
        if method != "POST":
            method_not_allowed(handler, "POST")
        else:
            _login(emu, handler, body)
    elif method != "GET":
        method_not_allowed(handler, "GET")
    elif route == "callback":
        _callback(emu, handler, request)
    elif not _authorize(emu, request):
        handler.send_failure(401, _MSG_BAD_TOKEN)
    elif route == "data_exporters":
        _data_exporters(handler, match)
    else:
        assert match is not None
        _export(emu, handler, request, endpoint, match)


def _authorize(emu: EmulatorState, request: RecordedRequest) -> bool:
    """Check ``Authorization: Token <t>`` and count the use against ``token_max_uses``."""
    scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "token" or not token:
        return False
    with emu._lock:
        uses = emu._token_uses.get(token)
        if uses is None:
            return False
        uses += 1
        emu._token_uses[token] = uses
        return emu.token_max_uses is None or uses <= emu.token_max_uses


def _login(emu: EmulatorState, handler: Handler, body: bytes) -> None:
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        payload = None
    email = payload.get("email") if isinstance(payload, dict) else None
    password = payload.get("password") if isinstance(payload, dict) else None
    if not isinstance(email, str) or not isinstance(password, str) or not email or not password:
        handler.send_json(400, {"success": False, "status": 400, "error_message": _MSG_LOGIN_FIELDS})
        return
    with emu._lock:
        ok = secrets.compare_digest(email.encode(), emu.email.encode()) and secrets.compare_digest(
            password.encode(), emu.password.encode()
        )
        if ok:
            token = secrets.token_urlsafe(24)
            emu._token_uses[token] = 0
            emu.issued_tokens.append(token)
            emu.login_count += 1
            emu.user["email"] = emu.email
            user = copy.deepcopy(emu.user)
    if not ok:
        handler.send_failure(401, _MSG_BAD_LOGIN)
        return
    handler.send_json(200, {"success": True, "result": {"auth_token": token, "user": user}})


def _data_exporters(handler: Handler, match: re.Match[str] | None) -> None:
    ident = match.group("ident") if match is not None else None
    if ident is None:
        handler.send_json(200, {"success": True, "result": list(DATA_EXPORTERS)})
        return
    for exporter in DATA_EXPORTERS:
        if exporter["identifier"] == unquote(ident):
            handler.send_json(200, {"success": True, "result": exporter})
            return
    handler.send_not_found()


def _export(
    emu: EmulatorState, handler: Handler, request: RecordedRequest, endpoint: str, match: re.Match[str]
) -> None:
    file_format = (match.group("fmt") or "xls").lower()
    ident = match.groupdict().get("ident")
    if file_format not in _CONTENT_TYPES or (ident is not None and not is_identifier(unquote(ident))):
        handler.send_not_found()
        return
    error = validate_export_params(endpoint, request.query)
    if error is not None:
        handler.send_json(400, {"success": False, "status": 400, "error_message": error})
        return
    skip_email = request.query.get("skip_email", "false").strip().lower() in ("true", "1")
    with emu._lock:
        if not skip_email:
            message = f"Your report is being generated and will be sent to the email {emu.email} when it is completed"
            result: Any = message
        else:
            token = secrets.token_urlsafe(16)
            emu.issued_export_tokens.append(token)
            params = dict(request.query)
            if ident is not None:
                params["_identifier"] = unquote(ident)
            emu._exports[token] = Export(token, file_format, endpoint, params)
            base = (emu.public_url or emu.url).rstrip("/")
            result = {"callback": f"{base}/api/exports/download_url?export_token={token}"}
    handler.send_json(200, {"success": True, "result": result})


def _poll(emu: EmulatorState, token: str) -> tuple[int, _Download | None]:
    """Count a poll of the export ``token``; return its status and, when 200, what to serve."""
    with emu._lock:
        export = emu._exports.get(token)
        if export is None:
            return 400, None
        export.polls += 1
        if emu.expire_after_polls is not None and export.polls >= emu.expire_after_polls:
            return 400, None
        if emu.never_ready or export.polls <= emu.ready_after:
            return 202, None
        kind = EXPORT_KIND_OF_ENDPOINT[export.endpoint]
        return 200, _Download(emu.export_size, export.file_format, emu.seed, emu.download_mode == "chunked", kind)


def _callback(emu: EmulatorState, handler: Handler, request: RecordedRequest) -> None:
    with emu._lock:
        requires_auth = emu.callback_requires_auth
    if requires_auth and not _authorize(emu, request):
        handler.send_failure(401, _MSG_BAD_TOKEN)
        return
    status, download = _poll(emu, request.query.get("export_token", ""))
    if status == 400:
        handler.send_failure(400, _MSG_BAD_EXPORT_TOKEN)
        return
    if status == 202 or download is None:
        pending = {"status": "pending", "message": "Your export is being generated."}
        handler.send_json(202, {"success": True, "result": pending})
        return
    fault = emu._faults.take("download")
    if fault is None:
        _send_download(emu, handler, download)
    elif fault.kind == "delay" and fault.after_bytes == 0:
        if emu._sleep(fault.delay):
            _send_download(emu, handler, download)
        else:
            handler.close_connection = True
    elif fault.kind in ("status", "json") or (fault.kind == "reset" and fault.after_bytes == 0):
        apply_fault(handler, fault)
    else:
        _send_download(emu, handler, download, fault)


def _send_download(emu: EmulatorState, handler: Handler, download: _Download, fault: Fault | None = None) -> None:
    """Stream the export file, or its beginning when a download fault strikes."""
    chunked = download.chunked
    limit: int | None = None
    if fault is not None:
        limit = min(fault.after_bytes, download.size)
        chunked = True if fault.kind == "chunked_cut" else chunked and fault.kind != "truncate"
    extension = download.file_format
    handler.send_response(200)
    handler.send_header("Content-Type", _CONTENT_TYPES[extension])
    handler.send_header("Content-Disposition", f'attachment; filename="export.{extension}"')
    if chunked:
        handler.send_header("Transfer-Encoding", "chunked")
    else:
        handler.send_header("Content-Length", str(download.size))
    sent = 0
    failed = False
    try:
        handler.end_headers()
        for chunk in export_chunks(download.size, download.file_format, download.seed, kind=download.kind):
            if limit is not None and sent + len(chunk) > limit:
                chunk = chunk[: limit - sent]
            if not chunk:
                break
            if chunked:
                handler.wfile.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            else:
                handler.wfile.write(chunk)
            sent += len(chunk)
            if emu._stopping.is_set():
                raise ConnectionAbortedError("emulator stopping")
        if fault is None and chunked:
            handler.wfile.write(b"0\r\n\r\n")
    except NETWORK_ERRORS:
        failed = True
        handler.close_connection = True
    finally:
        with emu._lock:
            emu.bytes_sent.append(sent)
    if fault is None or failed:
        return
    if fault.kind == "reset":
        handler.reset_connection()
        return
    if fault.kind == "delay":
        emu._sleep(fault.delay)
    handler.close_connection = True  # FIN: truncate, chunked_cut, and delay after its stall
