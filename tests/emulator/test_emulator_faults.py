"""The emulator's fault injection over real sockets: error statuses, resets, delays, cut bodies, bad JSON."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator, expected_export_bytes
from tests.emulator._support import EMAIL, JSON_TYPE, PASSWORD, login, raw_connection, start_export, wait_for

pytestmark = pytest.mark.version_independent  # no Airflow in it: CI runs it on Airflow 3.3 only


def target(url: str) -> str:
    """Path and query of a URL, for http.client."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def fetch(conn: http.client.HTTPConnection) -> bytes:
    """Read the pending response's body."""
    return conn.getresponse().read()


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
