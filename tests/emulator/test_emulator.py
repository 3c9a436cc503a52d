"""Tests of the local FollowAnalytics API emulator, over real sockets on 127.0.0.1."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
import requests

from airflow_provider_followanalytics.emulator import (
    FollowAnalyticsEmulator,
    RecordedRequest,
    expected_export_bytes,
    expected_export_sha256,
    export_chunks,
)
from airflow_provider_followanalytics.emulator.content import CSV_HEADER, CSV_HEADERS, EXPORT_KINDS, XLS_MAGIC
from airflow_provider_followanalytics.emulator.server import _EXPORT_PATHS as EXPORT_PATHS
from airflow_provider_followanalytics.emulator.server import EXPORT_KIND_OF_ENDPOINT

pytestmark = pytest.mark.version_independent  # no Airflow in it: CI runs it on Airflow 3.3 only

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

REPO_ROOT = Path(__file__).resolve().parents[2]
EMAIL = "demo@example.com"
PASSWORD = "demo-password"
DAY = 86400
SD = 1_700_006_400  # 2023-11-15T00:00:00Z
ED = SD + 7 * DAY
CSV_TYPE = "text/csv; charset=utf-8"
XLS_TYPE = "application/vnd.ms-excel"
JSON_TYPE = "application/json; charset=utf-8"


# Helpers ---------------------------------------------------------------------------------------


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it holds, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


@pytest.fixture
def emu() -> Iterator[FollowAnalyticsEmulator]:
    emulator = FollowAnalyticsEmulator(export_size=4096).start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def login(emu: FollowAnalyticsEmulator, session: requests.Session) -> dict[str, str]:
    """Log in and return the Authorization header."""
    response = session.post(f"{emu.url}/api/login", json={"email": EMAIL, "password": PASSWORD}, timeout=5)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Token {response.json()['result']['auth_token']}"}


def start_export(
    emu: FollowAnalyticsEmulator,
    session: requests.Session,
    headers: dict[str, str],
    path: str = "/segments/FASEGMT_abcd12/devices_export.csv",
    params: dict[str, str] | None = None,
) -> str:
    """Start an export with ``skip_email=true`` and return its callback URL."""
    response = session.get(
        f"{emu.url}{path}", params={"skip_email": "true", **(params or {})}, headers=headers, timeout=5
    )
    assert response.status_code == 200, response.text
    callback = response.json()["result"]["callback"]
    assert isinstance(callback, str)
    return callback


def raw_connection(emu: FollowAnalyticsEmulator) -> http.client.HTTPConnection:
    parts = urlsplit(emu.url)
    assert parts.hostname is not None
    assert parts.port is not None
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)


def target(url: str) -> str:
    """Path and query of a URL, for http.client."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def read_response(sock: socket.socket) -> bytes:
    """Read one complete response with a Content-Length from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before the headers ended"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before the body ended"
        body += chunk
    return head + b"\r\n\r\n" + body


def fetch(conn: http.client.HTTPConnection) -> bytes:
    """Read the pending response's body."""
    return conn.getresponse().read()


def error_400(message: str) -> dict[str, Any]:
    return {"success": False, "status": 400, "error_message": message}


# Login and authentication ------------------------------------------------------------------------


def test_login_ok(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    response = session.post(f"{emu.url}/api/login", json={"email": EMAIL, "password": PASSWORD}, timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == JSON_TYPE
    assert int(response.headers["Content-Length"]) == len(response.content)
    payload = response.json()
    assert payload["success"] is True
    token = payload["result"]["auth_token"]
    assert len(token) >= 32
    assert emu.issued_tokens == [token]
    assert emu.login_count == 1
    user = payload["result"]["user"]
    assert user == emu.user
    assert user["email"] == EMAIL
    keys = [e[k] for e in user["entities"] for k in ("qa_api_key", "prod_api_key")]
    assert len(set(keys)) == 4
    other = FollowAnalyticsEmulator()
    assert other.user["entities"][0]["qa_api_key"] not in keys  # random per emulator
    assert emu.requests_for("login")[0].body == json.dumps({"email": EMAIL, "password": PASSWORD}).encode()


@pytest.mark.parametrize(
    "body",
    [
        b"{}",
        json.dumps({"email": EMAIL}).encode(),
        json.dumps({"password": PASSWORD}).encode(),
        json.dumps({"email": "", "password": PASSWORD}).encode(),
        json.dumps({"email": EMAIL, "password": 5}).encode(),
        b"not json",
        b"[1, 2]",
        b"",
    ],
)
def test_login_missing_field_is_400(emu: FollowAnalyticsEmulator, session: requests.Session, body: bytes) -> None:
    response = session.post(f"{emu.url}/api/login", data=body, headers={"Content-Type": "application/json"}, timeout=5)
    assert response.status_code == 400
    assert response.json() == error_400("The request must contain the user email and password.")
    assert emu.login_count == 0


@pytest.mark.parametrize(("email", "password"), [(EMAIL, "wrong"), ("other@example.com", PASSWORD)])
def test_login_wrong_credentials_is_401(
    emu: FollowAnalyticsEmulator, session: requests.Session, email: str, password: str
) -> None:
    response = session.post(f"{emu.url}/api/login", json={"email": email, "password": password}, timeout=5)
    assert response.status_code == 401
    assert response.json() == {"success": False, "message": "Invalid email or password."}
    assert emu.login_count == 0
    assert emu.issued_tokens == []


def test_login_account_can_change(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    emu.password = "new-password"
    response = session.post(f"{emu.url}/api/login", json={"email": EMAIL, "password": PASSWORD}, timeout=5)
    assert response.status_code == 401
    response = session.post(f"{emu.url}/api/login", json={"email": EMAIL, "password": "new-password"}, timeout=5)
    assert response.status_code == 200


def test_login_needs_post(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    response = session.get(f"{emu.url}/api/login", timeout=5)
    assert response.status_code == 405
    assert response.json()["success"] is False


@pytest.mark.parametrize("authorization", [None, "Token not-a-token", "Token ", "Bearer {token}", "{token}"])
def test_auth_required(emu: FollowAnalyticsEmulator, session: requests.Session, authorization: str | None) -> None:
    token = login(emu, session)["Authorization"].split()[1]
    headers = {} if authorization is None else {"Authorization": authorization.format(token=token)}
    for path in ("/api/data_exporters", "/segments/FASEGMT_abcd12/devices_export.csv?skip_email=true"):
        response = session.get(f"{emu.url}{path}", headers=headers, timeout=5)
        assert response.status_code == 401
        assert response.json() == {"success": False, "message": "Invalid or expired token."}
    assert emu.state()["exports"] == 0


def test_token_max_uses(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    emu.token_max_uses = 2
    headers = login(emu, session)
    url = f"{emu.url}/api/data_exporters"
    assert session.get(url, headers=headers, timeout=5).status_code == 200
    assert session.get(url, headers=headers, timeout=5).status_code == 200
    expired = session.get(url, headers=headers, timeout=5)
    assert expired.status_code == 401
    assert expired.json()["message"] == "Invalid or expired token."
    fresh = login(emu, session)
    assert fresh != headers
    assert session.get(url, headers=fresh, timeout=5).status_code == 200
    assert emu.login_count == 2
    assert len(emu.issued_tokens) == 2


# Export endpoints ----------------------------------------------------------------------------------

EXPORTS: list[tuple[str, dict[str, str]]] = [
    ("/segments/FASEGMT_abcd12/devices_export", {"fields": "current_user_id"}),
    ("/api/segments/FASEGMT_abcd12/devices_export", {"updated_since": "2017-04-06T16:41:44+05:00"}),
    (
        "/api/apps/FAAPPLI_123456789/devices_export",
        {"fields": "a,b", "device_ids": "d1,d2", "segment_ids": "s", "updated_since": "2024-01-01T00:00:00Z"},
    ),
    (
        "/api/apps/FAAPPLI_123456789/events_export",
        {"since_date": "2024-01-01T00:00:00Z", "until_date": "2024-01-02", "user_ids": "u1"},
    ),
    ("/api/performance_export", {"apps": "FAAPPLI_1,FAAPPLI_2", "sd": str(SD), "ed": str(ED)}),
    ("/api/apps/FAAPPLI_123456789/analytics/download_metrics", {"sd": str(SD), "ed": str(ED)}),
    ("/api/events_export", {"app": "FAAPPLI_1"}),
    ("/api/events_export", {"app": "FAAPPLI_1", "sd": str(SD), "ed": str(ED)}),
    ("/api/event_details_export", {"app": "FAAPPLI_1", "event_id": "42"}),
    ("/api/event_details_export", {"app": "FAAPPLI_1", "event_id": "42", "sd": str(SD), "ed": str(ED)}),
]


@pytest.mark.parametrize(("path", "params"), EXPORTS)
@pytest.mark.parametrize(("suffix", "content_type"), [(".csv", CSV_TYPE), (".xls", XLS_TYPE), ("", XLS_TYPE)])
def test_export_with_callback(
    emu: FollowAnalyticsEmulator,
    session: requests.Session,
    path: str,
    params: dict[str, str],
    suffix: str,
    content_type: str,
) -> None:
    headers = login(emu, session)
    callback = start_export(emu, session, headers, path + suffix, params)
    assert callback.startswith(f"{emu.url}/api/exports/download_url?export_token=")
    assert len(callback.rsplit("=", 1)[1]) >= 20
    recorded = emu.requests_for("export")[-1]
    assert recorded.path == path + suffix
    assert recorded.query == {"skip_email": "true", **params}
    response = session.get(callback, headers=headers, timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type
    extension = "csv" if content_type == CSV_TYPE else "xls"
    assert response.headers["Content-Disposition"] == f'attachment; filename="export.{extension}"'
    kind = EXPORT_KIND_OF_ENDPOINT[next(name for name, pattern in EXPORT_PATHS if pattern.match(path))]
    assert response.content == expected_export_bytes(4096, extension, kind=kind)
    if extension == "csv":
        assert response.content.startswith(CSV_HEADERS[kind])


@pytest.mark.parametrize("skip_email", [None, "false"])
def test_export_by_email(emu: FollowAnalyticsEmulator, session: requests.Session, skip_email: str | None) -> None:
    headers = login(emu, session)
    params = {} if skip_email is None else {"skip_email": skip_email}
    response = session.get(
        f"{emu.url}/api/performance_export.csv",
        params={"apps": "FAAPPLI_1", "sd": str(SD), "ed": str(ED), **params},
        headers=headers,
        timeout=5,
    )
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "result": f"Your report is being generated and will be sent to the email {EMAIL} when it is completed",
    }
    assert emu.state()["exports"] == 0


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/api/performance_export.csv", {"sd": str(SD), "ed": str(ED)}, "Missing apps"),
        ("/api/performance_export.csv", {"apps": "A", "ed": str(ED)}, "Missing start date"),
        ("/api/performance_export.csv", {"apps": "A", "sd": str(SD)}, "Missing end date"),
        ("/api/apps/FAAPPLI_1/analytics/download_metrics.csv", {"ed": str(ED)}, "Missing start date"),
        ("/api/apps/FAAPPLI_1/analytics/download_metrics.csv", {"sd": str(SD)}, "Missing end date"),
        ("/api/events_export.csv", {}, "Missing app"),
        ("/api/events_export.csv", {"app": "A", "sd": str(SD)}, "Missing end date"),
        ("/api/events_export.csv", {"app": "A", "ed": str(ED)}, "Missing start date"),
        ("/api/event_details_export.csv", {"event_id": "1"}, "Missing app"),
        ("/api/event_details_export.csv", {"app": "A"}, "Missing event_id"),
        ("/api/event_details_export.csv", {"app": "A", "event_id": "1", "ed": str(ED)}, "Missing start date"),
    ],
)
def test_export_missing_parameters(
    emu: FollowAnalyticsEmulator, session: requests.Session, path: str, params: dict[str, str], message: str
) -> None:
    headers = login(emu, session)
    response = session.get(f"{emu.url}{path}", params={"skip_email": "true", **params}, headers=headers, timeout=5)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == JSON_TYPE
    assert response.json() == error_400(message)


@pytest.mark.parametrize(
    ("path", "params", "fragment"),
    [
        ("/api/performance_export.csv", {"apps": "A", "sd": str(SD + 3600), "ed": str(ED)}, "midnight"),
        ("/api/performance_export.csv", {"apps": "A", "sd": str(SD), "ed": str(ED + 1)}, "midnight"),
        ("/api/performance_export.csv", {"apps": "A", "sd": "2024-01-01", "ed": str(ED)}, "start date"),
        ("/api/performance_export.csv", {"apps": "A", "sd": str(ED), "ed": str(SD)}, "after"),
        ("/api/performance_export.csv", {"apps": "A", "sd": str(SD), "ed": str(SD)}, "after"),
        ("/api/performance_export.csv", {"apps": "['A']", "sd": str(SD), "ed": str(ED)}, "app identifier"),
        ("/api/events_export.csv", {"app": "A", "sd": str(SD), "ed": "x"}, "end date"),
        ("/api/event_details_export.csv", {"app": "A", "event_id": "abc"}, "event_id"),
        ("/segments/S/devices_export.csv", {"updated_since": "yesterday"}, "updated_since"),
        ("/api/apps/A/devices_export.csv", {"updated_since": "2024-13-01"}, "updated_since"),
        ("/api/apps/A/events_export.csv", {"since_date": "nope"}, "since_date"),
        ("/api/apps/A/events_export.csv", {"until_date": "01/02/2024"}, "until_date"),
    ],
)
def test_export_invalid_parameters(
    emu: FollowAnalyticsEmulator, session: requests.Session, path: str, params: dict[str, str], fragment: str
) -> None:
    headers = login(emu, session)
    response = session.get(f"{emu.url}{path}", params={"skip_email": "true", **params}, headers=headers, timeout=5)
    assert response.status_code == 400
    payload = response.json()
    assert payload["success"] is False
    assert payload["status"] == 400
    assert fragment in payload["error_message"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/apps/bad%20id/devices_export.csv",
        "/api/apps/bad.id/events_export.csv",
        "/segments/..%2F..%2Fetc/devices_export.csv",
        "/segments/FASEGMT_1/devices_export.json",
        "/api/apps/FAAPPLI_1/devices_export.csv/",
        "/api/nothing_here",
        "/",
    ],
)
def test_not_found(emu: FollowAnalyticsEmulator, session: requests.Session, path: str) -> None:
    headers = login(emu, session)
    response = session.get(f"{emu.url}{path}", params={"skip_email": "true"}, headers=headers, timeout=5)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == JSON_TYPE
    assert response.json() == {"success": False, "message": "Not found"}


def test_public_url_is_used_in_callbacks(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    emu.public_url = "https://elsewhere.example.com/"
    callback = start_export(emu, session, login(emu, session))
    assert callback.startswith("https://elsewhere.example.com/api/exports/download_url?export_token=")


# Callback polling and downloads -----------------------------------------------------------------------


@pytest.mark.parametrize("download_mode", ["content-length", "chunked"])
@pytest.mark.parametrize("file_format", ["csv", "xls"])
def test_callback_pending_then_ready_byte_exact(
    emu: FollowAnalyticsEmulator, session: requests.Session, download_mode: str, file_format: str
) -> None:
    size = 2_500_003  # several 1 MiB chunks plus a ragged tail
    emu.ready_after = 2
    emu.export_size = size
    emu.seed = 7
    emu.download_mode = download_mode
    headers = login(emu, session)
    callback = start_export(emu, session, headers, f"/api/apps/FAAPPLI_1/devices_export.{file_format}")
    for _ in range(2):
        pending = session.get(callback, headers=headers, timeout=5)
        assert pending.status_code == 202
        assert pending.json() == {
            "success": True,
            "result": {"status": "pending", "message": "Your export is being generated."},
        }
    with session.get(callback, headers=headers, timeout=5, stream=True) as response:
        assert response.status_code == 200
        if download_mode == "chunked":
            assert response.headers["Transfer-Encoding"] == "chunked"
            assert "Content-Length" not in response.headers
        else:
            assert response.headers["Content-Length"] == str(size)
        digest = hashlib.sha256()
        received = 0
        for chunk in response.iter_content(1 << 16):
            digest.update(chunk)
            received += len(chunk)
    assert received == size
    assert digest.hexdigest() == expected_export_sha256(size, file_format, seed=7)
    wait_for(lambda: emu.bytes_sent == [size], what="bytes_sent")
    # The connection is still usable afterwards (keep-alive).
    assert session.get(callback, headers=headers, timeout=5).status_code == 200


def test_zero_byte_export(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    emu.export_size = 0
    headers = login(emu, session)
    callback = start_export(emu, session, headers)
    for mode in ("content-length", "chunked"):
        emu.download_mode = mode
        response = session.get(callback, headers=headers, timeout=5)
        assert response.status_code == 200
        assert response.content == b""


@pytest.mark.parametrize("query", ["", "?export_token=", "?export_token=unknown", "?other=1"])
def test_callback_bad_token_is_400(emu: FollowAnalyticsEmulator, session: requests.Session, query: str) -> None:
    headers = login(emu, session)
    response = session.get(f"{emu.url}/api/exports/download_url{query}", headers=headers, timeout=5)
    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "message": "The export token is missing, invalid or the download link has expired.",
    }


def test_callback_auth(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    headers = login(emu, session)
    callback = start_export(emu, session, headers)
    assert session.get(callback, timeout=5).status_code == 401
    assert session.get(callback, headers={"Authorization": "Token nope"}, timeout=5).status_code == 401
    emu.callback_requires_auth = False
    response = session.get(callback, timeout=5)
    assert response.status_code == 200
    assert response.content == expected_export_bytes(4096)


def test_never_ready(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    emu.never_ready = True
    headers = login(emu, session)
    callback = start_export(emu, session, headers)
    assert [session.get(callback, headers=headers, timeout=5).status_code for _ in range(5)] == [202] * 5
    emu.never_ready = False
    assert session.get(callback, headers=headers, timeout=5).status_code == 200


def test_expire_after_polls(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    emu.ready_after = 10
    emu.expire_after_polls = 3
    headers = login(emu, session)
    callback = start_export(emu, session, headers)
    statuses = [session.get(callback, headers=headers, timeout=5).status_code for _ in range(4)]
    assert statuses == [202, 202, 400, 400]


def test_each_export_polls_independently(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    emu.ready_after = 1
    headers = login(emu, session)
    first, second = start_export(emu, session, headers), start_export(emu, session, headers)
    assert first != second
    assert session.get(first, headers=headers, timeout=5).status_code == 202
    assert session.get(first, headers=headers, timeout=5).status_code == 200
    assert session.get(second, headers=headers, timeout=5).status_code == 202


def test_data_exporters(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    headers = login(emu, session)
    listing = session.get(f"{emu.url}/api/data_exporters", headers=headers, timeout=5)
    assert listing.status_code == 200
    exporters = listing.json()["result"]
    assert exporters[0]["identifier"] == "FADATAEXP_1"
    assert exporters[0]["name"] == "Daily devices"
    one = session.get(f"{emu.url}/api/data_exporters/FADATAEXP_1", headers=headers, timeout=5)
    assert one.json() == {"success": True, "result": exporters[0]}
    missing = session.get(f"{emu.url}/api/data_exporters/FADATAEXP_404", headers=headers, timeout=5)
    assert missing.status_code == 404
    assert missing.json() == {"success": False, "message": "Not found"}
    assert [r.route for r in emu.requests] == ["login"] + ["data_exporters"] * 3


# Recording --------------------------------------------------------------------------------------------


def test_requests_are_recorded_raw(emu: FollowAnalyticsEmulator) -> None:
    conn = raw_connection(emu)
    try:
        conn.request(
            "POST",
            "/api//apps/x/../devices_export.csv?b=2&a=1&a=3&empty=",
            body=b"\x00payload",
            headers={"X-Custom-Header": "Value", "Authorization": "Token abc"},
        )
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    assert response.status == 404
    (recorded,) = emu.requests
    assert isinstance(recorded, RecordedRequest)
    assert recorded.method == "POST"
    assert recorded.path == "/api//apps/x/../devices_export.csv"
    assert recorded.query == {"b": "2", "a": "3", "empty": ""}
    assert recorded.headers["x-custom-header"] == "Value"
    assert recorded.headers["authorization"] == "Token abc"
    assert recorded.body == b"\x00payload"
    assert recorded.route == "unknown"
    with pytest.raises(AttributeError):
        recorded.path = "/changed"  # type: ignore[misc]


def test_reset_keeps_account_and_config(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    emu.ready_after = 3
    headers = login(emu, session)
    callback = start_export(emu, session, headers)
    emu.add_fault("login")
    emu.reset()
    assert emu.requests == []
    assert emu.login_count == 0
    assert emu.bytes_sent == []
    assert emu.pending_faults == []
    assert emu.state()["exports"] == 0
    assert emu.ready_after == 3
    assert session.get(callback, headers=headers, timeout=5).status_code == 400  # export forgotten
    login(emu, session)
    assert emu.login_count == 1


def test_request_log_is_bounded_but_state_counts_everything(session: requests.Session) -> None:
    # A long-running emulator (a benchmark, a developer's day) must not grow without bound.
    with FollowAnalyticsEmulator(max_recorded_requests=10) as emu:
        for _ in range(25):
            assert session.get(f"{emu.url}/nowhere", timeout=5).status_code == 404
        login(emu, session)

        assert 10 <= len(emu.requests) <= 11  # trimmed in batches of a tenth
        assert emu.requests[-1].route == "login"  # the newest are the ones kept
        assert emu.state()["requests"]["unknown"] == 25
        assert emu.state()["requests"]["login"] == 1
        emu.reset()
        assert emu.state()["requests"]["unknown"] == 0


@pytest.mark.parametrize("value", [0, -1, 2.5, "10"])
def test_request_log_bound_must_be_a_positive_integer(value: Any) -> None:
    with pytest.raises(ValueError, match=f"max_recorded_requests={value!r} must be an integer >= 1"):
        FollowAnalyticsEmulator(max_recorded_requests=value)


# Faults -----------------------------------------------------------------------------------------------


def test_fault_status_5xx_html_with_retry_after_keeps_connection(emu: FollowAnalyticsEmulator) -> None:
    emu.add_fault("login", status=503, retry_after=7)
    conn = raw_connection(emu)
    body = json.dumps({"email": EMAIL, "password": PASSWORD})
    try:
        conn.request("POST", "/api/login", body=body, headers={"Content-Type": "application/json"})
        first = conn.getresponse()
        html = first.read()
        sock = conn.sock
        assert first.status == 503
        assert first.getheader("Content-Type") == "text/html; charset=utf-8"
        assert first.getheader("Retry-After") == "7"
        assert b"<h1>503 Service Unavailable</h1>" in html
        assert not first.will_close
        conn.request("POST", "/api/login", body=body, headers={"Content-Type": "application/json"})
        second = conn.getresponse()
        assert json.loads(second.read())["success"] is True
        assert conn.sock is sock  # same keep-alive connection
    finally:
        conn.close()
    assert second.status == 200
    assert emu.login_count == 1
    assert [r.body for r in emu.requests_for("login")] == [body.encode()] * 2


def test_fault_status_4xx_json_and_custom_body(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    emu.add_fault("login", status=429, retry_after=2)
    emu.add_fault("login", status=502, count=2, body="", content_type="text/plain")
    emu.add_fault("login", status=400, body=json.dumps({"success": False, "status": 400, "error_message": "x"}))
    url = f"{emu.url}/api/login"
    creds = {"email": EMAIL, "password": PASSWORD}
    limited = session.post(url, json=creds, timeout=5)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "2"
    assert limited.headers["Content-Type"] == JSON_TYPE
    assert limited.json() == {"success": False, "message": "Too Many Requests"}
    for _ in range(2):
        empty = session.post(url, json=creds, timeout=5)
        assert empty.status_code == 502
        assert empty.content == b""
        assert empty.headers["Content-Type"] == "text/plain"
    custom = session.post(url, json=creds, timeout=5)
    assert custom.status_code == 400
    assert custom.json()["error_message"] == "x"
    assert session.post(url, json=creds, timeout=5).status_code == 200
    assert emu.pending_faults == []


def test_fault_routes_and_any(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    headers = login(emu, session)
    emu.add_fault("export", status=500)
    emu.add_fault("data_exporters", status=504)
    emu.add_fault("any", status=502, count=2)
    # A fault for another route does not strike.
    assert session.get(f"{emu.url}/api/data_exporters", headers=headers, timeout=5).status_code == 504
    assert session.get(f"{emu.url}/api/data_exporters", headers=headers, timeout=5).status_code == 502
    with pytest.raises(AssertionError):
        start_export(emu, session, headers)  # 500 from the export fault
    state = session.get(f"{emu.url}/_emulator/state", timeout=5)  # control requests are never faulted
    assert state.status_code == 200
    assert session.post(f"{emu.url}/api/login", json={}, timeout=5).status_code == 502
    assert session.get(f"{emu.url}/api/data_exporters", headers=headers, timeout=5).status_code == 200
    emu.add_fault("any", count=5)
    emu.clear_faults()
    assert session.get(f"{emu.url}/api/data_exporters", headers=headers, timeout=5).status_code == 200


def test_fault_on_callback_and_download(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    emu.ready_after = 1
    headers = login(emu, session)
    callback = start_export(emu, session, headers)
    emu.add_fault("download", status=503)
    assert session.get(callback, headers=headers, timeout=5).status_code == 202  # not a download yet
    assert session.get(callback, headers=headers, timeout=5).status_code == 503
    emu.add_fault("callback", status=500)
    assert session.get(callback, headers=headers, timeout=5).status_code == 500
    assert session.get(callback, headers=headers, timeout=5).status_code == 200
    wait_for(lambda: emu.bytes_sent == [4096], what="bytes_sent")  # appended after the last write returns


def test_fault_reset(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    emu.add_fault("login", kind="reset")
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{emu.url}/api/login", json={"email": EMAIL, "password": PASSWORD}, timeout=5)
    assert emu.login_count == 0
    login(emu, session)
    assert emu.login_count == 1


def test_fault_reset_during_download(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    emu.export_size = 1 << 20
    headers = login(emu, session)
    callback = start_export(emu, session, headers)
    emu.add_fault("download", kind="reset", after_bytes=1000)
    conn = raw_connection(emu)
    try:
        conn.request("GET", target(callback), headers=headers)
        # The RST may even overtake the headers: any of these errors will do.
        with pytest.raises((http.client.IncompleteRead, http.client.RemoteDisconnected, ConnectionResetError)):
            fetch(conn)
    finally:
        conn.close()
    wait_for(lambda: emu.bytes_sent == [1000], what="bytes_sent")


def test_fault_delay(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    emu.add_fault("login", kind="delay", delay=2.0)
    with pytest.raises(requests.ReadTimeout):
        requests.post(f"{emu.url}/api/login", json={"email": EMAIL, "password": PASSWORD}, timeout=(5, 0.2))
    emu.add_fault("login", kind="delay", delay=0.2)
    started = time.monotonic()
    login(emu, session)
    assert time.monotonic() - started >= 0.2


def test_fault_delay_download_stalls_after_bytes(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    emu.export_size = 100_000
    headers = login(emu, session)
    callback = start_export(emu, session, headers)
    emu.add_fault("download", kind="delay", delay=0.3, after_bytes=1000)
    conn = raw_connection(emu)
    started = time.monotonic()
    try:
        conn.request("GET", target(callback), headers=headers)
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Length") == "100000"
        with pytest.raises(http.client.IncompleteRead) as excinfo:
            response.read()
    finally:
        conn.close()
    assert time.monotonic() - started >= 0.3
    assert excinfo.value.partial == expected_export_bytes(1000)
    wait_for(lambda: emu.bytes_sent == [1000], what="bytes_sent")
    # A download delay without after_bytes only delays the answer.
    emu.add_fault("download", kind="delay", delay=0.2)
    started = time.monotonic()
    assert session.get(callback, headers=headers, timeout=5).content == expected_export_bytes(100_000)
    assert time.monotonic() - started >= 0.2


def test_fault_truncate(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    emu.export_size = 100_000
    emu.download_mode = "chunked"  # truncate always announces the full Content-Length
    headers = login(emu, session)
    callback = start_export(emu, session, headers)
    emu.add_fault("download", kind="truncate", after_bytes=1000)
    conn = raw_connection(emu)
    try:
        conn.request("GET", target(callback), headers=headers)
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Length") == "100000"
        with pytest.raises(http.client.IncompleteRead) as excinfo:
            response.read()
    finally:
        conn.close()
    assert excinfo.value.partial == expected_export_bytes(1000)
    wait_for(lambda: emu.bytes_sent == [1000], what="bytes_sent")
    emu.add_fault("download", kind="truncate", after_bytes=10)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        session.get(callback, headers=headers, timeout=5)


def test_fault_chunked_cut(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    emu.export_size = 100_000
    headers = login(emu, session)
    callback = start_export(emu, session, headers)
    emu.add_fault("download", kind="chunked_cut", after_bytes=2000)
    conn = raw_connection(emu)
    try:
        conn.request("GET", target(callback), headers=headers)
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Transfer-Encoding") == "chunked"
        with pytest.raises(http.client.IncompleteRead) as excinfo:
            response.read()
    finally:
        conn.close()
    assert excinfo.value.partial == expected_export_bytes(2000)
    wait_for(lambda: emu.bytes_sent == [2000], what="bytes_sent")
    emu.add_fault("download", kind="chunked_cut", after_bytes=10)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        session.get(callback, headers=headers, timeout=5)


@pytest.mark.parametrize(
    ("body", "content_type", "expected_type"),
    [
        ("not json at all", None, JSON_TYPE),
        ("<html><body>Login</body></html>", "text/html", "text/html"),
        (b'{"success": false, "message": "nope"}', None, JSON_TYPE),
        ('{"success": true, "result": {}}', None, JSON_TYPE),
        (None, None, JSON_TYPE),
    ],
)
def test_fault_json(
    emu: FollowAnalyticsEmulator,
    session: requests.Session,
    body: str | bytes | None,
    content_type: str | None,
    expected_type: str,
) -> None:
    headers = login(emu, session)
    emu.add_fault("export", kind="json", body=body, content_type=content_type)
    response = session.get(
        f"{emu.url}/segments/S/devices_export.csv", params={"skip_email": "true"}, headers=headers, timeout=5
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == expected_type
    expected = b"" if body is None else body.encode() if isinstance(body, str) else body
    assert response.content == expected
    assert emu.state()["exports"] == 0


def test_fault_json_on_download(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    headers = login(emu, session)
    callback = start_export(emu, session, headers)
    emu.add_fault("download", kind="json", body='{"success": true}')
    response = session.get(callback, headers=headers, timeout=5)
    assert response.json() == {"success": True}
    assert emu.bytes_sent == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"route": "nowhere"},
        {"route": "login", "kind": "explode"},
        {"route": "login", "kind": "truncate"},
        {"route": "export", "kind": "chunked_cut"},
        {"route": "login", "count": 0},
        {"route": "login", "status": 42},
        {"route": "login", "kind": "delay", "delay": -1},
    ],
)
def test_add_fault_rejects_nonsense(emu: FollowAnalyticsEmulator, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        emu.add_fault(**kwargs)
    assert emu.pending_faults == []


# Control endpoints --------------------------------------------------------------------------------


def test_control_endpoints(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    base = f"{emu.url}/_emulator"
    config = session.post(
        f"{base}/config",
        json={"ready_after": 1, "export_size": 1234, "seed": 3, "download_mode": "chunked", "never_ready": False},
        timeout=5,
    )
    assert config.status_code == 200
    assert config.json()["result"]["ready_after"] == 1
    assert "password" not in config.json()["result"]
    assert (emu.ready_after, emu.export_size, emu.seed, emu.download_mode) == (1, 1234, 3, "chunked")
    for bad in ({"ready_after": "1"}, {"download_mode": "carrier-pigeon"}, {"bogus": 1}, {"never_ready": 1}):
        rejected = session.post(f"{base}/config", json=bad, timeout=5)
        assert rejected.status_code == 400
        assert rejected.json()["success"] is False
    assert session.post(f"{base}/config", data="[]", timeout=5).status_code == 400

    headers = login(emu, session)
    callback = start_export(emu, session, headers)
    assert session.get(callback, headers=headers, timeout=5).status_code == 202
    download = session.get(callback, headers=headers, timeout=5)
    assert download.content == expected_export_bytes(1234, "csv", seed=3)

    fault = session.post(f"{base}/faults", json={"route": "login", "status": 429, "retry_after": 1}, timeout=5)
    assert fault.status_code == 200
    assert session.post(f"{base}/faults", json={"route": "mars"}, timeout=5).status_code == 400
    assert session.post(f"{base}/faults", json={"route": "login", "x": 1}, timeout=5).status_code == 400
    assert session.post(f"{emu.url}/api/login", json={}, timeout=5).status_code == 429

    wait_for(lambda: emu.bytes_sent == [1234], what="bytes_sent")
    state = session.get(f"{base}/state", timeout=5).json()
    assert state["login_count"] == 1
    assert state["requests"]["login"] == 2
    assert state["requests"]["export"] == 1
    assert state["requests"]["callback"] == 2
    assert state["requests"]["control"] >= 7
    assert state["bytes_sent"] == [1234]
    assert state["exports"] == 1

    assert session.post(f"{base}/reset", timeout=5).status_code == 200
    state = session.get(f"{base}/state", timeout=5).json()
    assert state["login_count"] == 0
    assert state["exports"] == 0
    assert state["bytes_sent"] == []
    assert state["requests"]["control"] == 1  # this state request
    assert emu.ready_after == 1  # config survives a reset
    assert session.get(f"{base}/nothing", timeout=5).status_code == 404
    assert session.get(f"{base}/reset", timeout=5).status_code == 405


# Lifecycle and connections ---------------------------------------------------------------------------


def test_lifecycle() -> None:
    emulator = FollowAnalyticsEmulator()
    with pytest.raises(RuntimeError):
        _ = emulator.url
    with emulator as running:
        assert running is emulator
        assert running.running
        url = running.url
        parts = urlsplit(url)
        assert parts.hostname == "127.0.0.1"
        assert parts.port is not None
        assert parts.port > 0
        with pytest.raises(RuntimeError):
            running.start()
        assert requests.get(f"{url}/_emulator/state", timeout=5).status_code == 200
    assert not emulator.running
    emulator.stop()  # idempotent
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/_emulator/state", timeout=5)


def test_stop_closes_keep_alive_connections() -> None:
    emulator = FollowAnalyticsEmulator().start()
    parts = urlsplit(emulator.url)
    address = (parts.hostname or "", parts.port or 0)
    sockets = []
    try:
        for _ in range(20):
            sock = socket.create_connection(address, timeout=5)
            sock.sendall(b"GET /_emulator/state HTTP/1.1\r\nHost: x\r\n\r\n")
            sockets.append(sock)
        for sock in sockets:
            assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        emulator.stop()
        # Margin: closing 20 idle keep-alive sockets takes milliseconds; waiting on them would block until
        # their 5 s client timeout.
        assert time.monotonic() - started < 2.0
        for sock in sockets:
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(65536) == b""
    finally:
        for sock in sockets:
            sock.close()
        emulator.stop()


def test_stop_interrupts_a_stalled_download(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    headers = login(emu, session)
    callback = start_export(emu, session, headers)
    emu.add_fault("download", kind="delay", delay=30.0)
    errors: list[BaseException] = []

    def poll() -> None:
        try:
            requests.get(callback, headers=headers, timeout=10)
        except requests.RequestException as exc:
            errors.append(exc)

    thread = threading.Thread(target=poll)
    thread.start()
    wait_for(lambda: emu.pending_faults == [], what="the fault to strike")
    started = time.monotonic()
    emu.stop()
    thread.join(5)
    assert not thread.is_alive()
    # Margin: stop() interrupts the stall at once; an uninterrupted one lasts the fault's 30 s.
    assert time.monotonic() - started < 2.0
    assert errors


@pytest.mark.concurrency
def test_many_concurrent_connections(emu: FollowAnalyticsEmulator) -> None:
    parts = urlsplit(emu.url)
    address = (parts.hostname or "", parts.port or 0)
    sockets = [socket.create_connection(address, timeout=10) for _ in range(400)]
    try:
        for sock in sockets:
            sock.sendall(b"GET /api/exports/download_url HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        for sock in sockets:
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            assert data.startswith(b"HTTP/1.1 401 ")
    finally:
        for sock in sockets:
            sock.close()
    assert len(emu.requests_for("callback")) == 400


# CLI ---------------------------------------------------------------------------------------------------


def test_cli_serves_and_stops_on_sigterm() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_followanalytics.emulator",
            "--port",
            "0",
            "--email",
            "cli@example.com",
            "--password",
            "cli-password",
            "--export-size",
            "777",
            "--download-mode",
            "chunked",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=REPO_ROOT,
    )
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            assert selector.select(timeout=15), "the CLI printed nothing"
        line = proc.stdout.readline().decode()
        prefix = "FollowAnalytics emulator listening on http://127.0.0.1:"
        assert line.startswith(prefix), line
        url = line.strip().removeprefix("FollowAnalytics emulator listening on ")
        assert int(url.rsplit(":", 1)[1]) > 0
        response = requests.post(
            f"{url}/api/login", json={"email": "cli@example.com", "password": "cli-password"}, timeout=5
        )
        assert response.status_code == 200
        config = requests.get(f"{url}/_emulator/config", timeout=5).json()["result"]
        assert config["export_size"] == 777
        assert config["download_mode"] == "chunked"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert proc.stdout.read() == b""
        assert proc.stderr is not None
        assert b"Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# Content ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("file_format", ["csv", "xls"])
@pytest.mark.parametrize("size", [0, 1, 7, 8, len(CSV_HEADER), 1000, (1 << 20) - 1, (1 << 20) + 1, 3 * (1 << 20) + 7])
def test_export_chunks_exact_size(file_format: str, size: int) -> None:
    for chunk_size in (1 << 20, 65536, 1000):
        chunks = list(export_chunks(size, file_format, seed=1, chunk_size=chunk_size))
        assert sum(len(c) for c in chunks) == size
        assert all(0 < len(c) <= chunk_size for c in chunks)
    data = expected_export_bytes(size, file_format, seed=1)
    assert len(data) == size
    assert b"".join(export_chunks(size, file_format, seed=1, chunk_size=999)) == data
    assert expected_export_sha256(size, file_format, seed=1) == hashlib.sha256(data).hexdigest()


def test_export_content_is_deterministic_and_well_formed() -> None:
    size = 3 * (1 << 20)
    csv = expected_export_bytes(size, "csv", seed=0)
    assert csv == expected_export_bytes(size, "csv", seed=0)
    assert csv != expected_export_bytes(size, "csv", seed=1)
    assert csv[:5000] == expected_export_bytes(5000, "csv", seed=0)  # a shorter export is a prefix
    assert csv.startswith(b"device_id,current_user_id,platform,app_version,last_seen_at,city\n")
    text = csv[: csv.rindex(b"\n") + 1].decode("utf-8")
    assert "Montréal" in text
    lines = text.splitlines()
    assert lines.count(lines[0]) == 1  # one header line
    assert all(line.count(",") >= 5 for line in lines[1:1000])

    xls = expected_export_bytes(size, "xls", seed=0)
    assert xls.startswith(XLS_MAGIC)
    assert xls == expected_export_bytes(size, "xls", seed=0)
    assert xls != expected_export_bytes(size, "xls", seed=1)
    assert expected_export_sha256(size, "csv") != expected_export_sha256(size, "xls")

    with pytest.raises(ValueError, match="format"):
        list(export_chunks(10, "pdf"))
    with pytest.raises(ValueError, match="size"):
        list(export_chunks(-1))
    with pytest.raises(ValueError, match="chunk_size"):
        list(export_chunks(10, chunk_size=0))


def test_export_chunks_is_fast() -> None:
    size = 64 * (1 << 20)
    started = time.monotonic()
    total = sum(len(chunk) for chunk in export_chunks(size, "csv", seed=5))
    assert total == size
    # Margin: 64 MiB at several GB/s is ~0.05 s; 5 s fails only below ~13 MiB/s, a broken generator.
    assert time.monotonic() - started < 5.0


def test_secrets_endpoint_lists_every_secret_handed_out(
    emu: FollowAnalyticsEmulator, session: requests.Session
) -> None:
    headers = login(emu, session)
    callback = start_export(emu, session, headers)
    emu.reset()  # the secrets stay known: a process may still hold them

    answer = session.get(f"{emu.url}/_emulator/secrets", timeout=5)

    assert answer.status_code == 200
    secrets = answer.json()
    assert secrets["password"] == PASSWORD
    assert secrets["auth_tokens"] == [headers["Authorization"].removeprefix("Token ")]
    assert secrets["export_tokens"] == [callback.split("export_token=")[1]]
    keys = [entity[k] for entity in emu.user["entities"] for k in ("qa_api_key", "prod_api_key")]
    assert secrets["api_keys"] == keys
    assert len(set(keys)) == 4
    assert session.post(f"{emu.url}/_emulator/secrets", timeout=5).status_code == 405


def test_each_kind_of_export_has_its_own_columns_and_whole_rows() -> None:
    import csv
    import io

    assert set(EXPORT_KIND_OF_ENDPOINT.values()) == set(EXPORT_KINDS)
    assert CSV_HEADERS["events"].startswith(b"event_id,event_name,")
    assert CSV_HEADERS["performance"].startswith(b"date,app_identifier,downloads,")
    assert len(set(CSV_HEADERS.values())) == len(EXPORT_KINDS)
    for kind in EXPORT_KINDS:
        data = expected_export_bytes(3 << 20, "csv", kind=kind)  # past the 1 MiB block: it repeats
        assert data == expected_export_bytes(3 << 20, "csv", kind=kind)
        assert data[:5000] == expected_export_bytes(5000, "csv", kind=kind)
        rows = list(csv.reader(io.StringIO(data.decode("utf-8", errors="ignore"))))[:-1]  # the last one is cut
        header = CSV_HEADERS[kind].decode().strip().split(",")
        assert rows[0] == header
        assert {len(row) for row in rows[1:]} == {len(header)}, kind
        assert expected_export_bytes(1000, "xls", kind=kind).startswith(XLS_MAGIC)
    assert expected_export_sha256(1000, "xls", kind="events") != expected_export_sha256(1000, "xls")
    with pytest.raises(ValueError, match="unknown export kind 'bogus'"):
        list(export_chunks(10, kind="bogus"))


def test_cli_default_port_is_not_airflows_api_server_port() -> None:
    from airflow_provider_followanalytics.emulator.__main__ import DEFAULT_PORT, _parser

    assert _parser().parse_args([]).port == DEFAULT_PORT == 8765
