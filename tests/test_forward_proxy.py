"""The recording forward proxy stand-in (``standins.forward_proxy``) in a process of its own, with requests.

http targets go through as absolute-form requests, https ones through CONNECT tunnels to the emulator
over TLS; the proxy's record and the emulator's recorded peers show that every request went through it.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import socket
import ssl
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
import requests

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator, expected_export_sha256
from standins.processes import StandInProcess, forward_proxy_command
from tests.emulator._support import PASSWORD, login, start_export

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

pytestmark = pytest.mark.version_independent  # no Airflow in it: CI runs it on Airflow 3.3 only

PROXY_USER = "proxy-user"
PROXY_PASSWORD = "pr0xy-Pa55-word"


class Proxy:
    """A started proxy process and its record file."""

    def __init__(self, process: StandInProcess, record: Path) -> None:
        self.process, self.record = process, record
        self.url = process.url

    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def url_with(self, user: str, password: str) -> str:
        return self.url.replace("http://", f"http://{user}:{password}@")


@pytest.fixture
def start_proxy(tmp_path: Path) -> Iterator[Callable[..., Proxy]]:
    """Start a proxy process (``auth``: ``USER:PASSWORD`` it requires); stopped at teardown."""
    started: list[StandInProcess] = []

    def start(auth: str | None = None) -> Proxy:
        record, output = tmp_path / f"proxy-{len(started)}.jsonl", tmp_path / f"proxy-{len(started)}.out"
        process = StandInProcess("forward-proxy", forward_proxy_command(record, auth), output)
        started.append(process.start())
        assert process.wait_for_url(30).startswith("http://127.0.0.1:")
        return Proxy(process, record)

    try:
        yield start
    finally:
        for process in started:
            process.stop()
            assert process.popen.returncode == 0, process.text()


@pytest.fixture
def http_emu() -> Iterator[FollowAnalyticsEmulator]:
    with FollowAnalyticsEmulator(export_size=200_000) as emu:
        yield emu


@pytest.fixture
def tls_emu() -> Iterator[FollowAnalyticsEmulator]:
    with FollowAnalyticsEmulator(export_size=200_000, tls=True) as emu:
        yield emu


def ca_file(emu: FollowAnalyticsEmulator) -> str:
    assert emu.tls_files is not None
    return str(emu.tls_files.ca_file)


def proxied_session(proxy_url: str, verify: str | bool = True) -> requests.Session:
    """A session that goes through ``proxy_url`` for http and https and reads nothing from the environment."""
    session = requests.Session()
    session.trust_env = False  # NO_PROXY=* and REQUESTS_CA_BUNDLE are set for the test session
    session.proxies = {"http": proxy_url, "https": proxy_url}
    session.verify = verify
    return session


def download_through(emu: FollowAnalyticsEmulator, session: requests.Session) -> set[str]:
    """Log in, start an export and download it (byte-exact); return the secrets that went through."""
    headers = login(emu, session)
    callback = start_export(emu, session, headers)
    response = session.get(callback, headers=headers, timeout=10)
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == expected_export_sha256(emu.export_size)
    return {PASSWORD, *emu.issued_tokens, *emu.issued_export_tokens}


# Absolute-form requests (http targets) ------------------------------------------------------------


@pytest.mark.parametrize("mode", ["content-length", "chunked"])
def test_http_requests_are_forwarded_and_recorded_without_query_strings(
    start_proxy: Callable[..., Proxy], http_emu: FollowAnalyticsEmulator, mode: str
) -> None:
    proxy = start_proxy()
    http_emu.download_mode = mode
    with proxied_session(proxy.url) as session:
        secrets = download_through(http_emu, session)
    base = http_emu.url
    entries = proxy.entries()
    assert [(e["method"], e["target"], e["status"], e["authorized"]) for e in entries] == [
        ("POST", f"{base}/api/login", 200, None),
        ("GET", f"{base}/segments/FASEGMT_abcd12/devices_export.csv?<redacted>", 200, None),
        ("GET", f"{base}/api/exports/download_url?<redacted>", 200, None),
    ]
    # Every request the emulator saw came from the proxy's upstream socket of that request.
    assert [e["upstream_local_port"] for e in entries] == [r.peer[1] for r in http_emu.requests]
    assert all(
        "proxy-authorization" not in r.headers and "proxy-connection" not in r.headers for r in http_emu.requests
    )
    written = proxy.record.read_text() + proxy.process.text()
    assert not [secret for secret in secrets if secret in written]


def test_an_origin_that_refuses_is_a_502(start_proxy: Callable[..., Proxy]) -> None:
    proxy = start_proxy()
    with socket.socket() as bound:  # bound, not listening: connections to it are refused
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        with proxied_session(proxy.url) as session:
            assert session.get(f"http://127.0.0.1:{port}/x?token=t", timeout=5).status_code == 502
            with pytest.raises(requests.exceptions.ProxyError, match="502"):
                session.get(f"https://127.0.0.1:{port}/x", timeout=5)
    assert [(e["method"], e["target"], e["status"], e["upstream_local_port"]) for e in proxy.entries()] == [
        ("GET", f"http://127.0.0.1:{port}/x?<redacted>", 502, None),
        ("CONNECT", f"127.0.0.1:{port}", 502, None),
    ]


# CONNECT tunnels (https targets) ------------------------------------------------------------------


def test_https_goes_through_a_connect_tunnel(
    start_proxy: Callable[..., Proxy], tls_emu: FollowAnalyticsEmulator
) -> None:
    proxy = start_proxy()
    with proxied_session(proxy.url, verify=ca_file(tls_emu)) as session:
        secrets = download_through(tls_emu, session)
    entries = proxy.entries()
    assert entries
    assert {(e["method"], e["target"], e["status"], e["authorized"]) for e in entries} == {
        ("CONNECT", f"127.0.0.1:{tls_emu.port}", 200, None)
    }
    tunnel_ports = {e["upstream_local_port"] for e in entries}
    assert len(tls_emu.requests) == 3
    assert all(r.peer[1] in tunnel_ports for r in tls_emu.requests)
    written = proxy.record.read_text() + proxy.process.text()
    assert not [secret for secret in secrets if secret in written]


def test_a_tunnel_is_recorded_once_established(
    start_proxy: Callable[..., Proxy], tls_emu: FollowAnalyticsEmulator
) -> None:
    proxy = start_proxy()
    parts = urlsplit(proxy.url)
    assert parts.hostname is not None
    context = ssl.create_default_context(cafile=ca_file(tls_emu))
    conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=5, context=context)
    conn.set_tunnel("127.0.0.1", tls_emu.port)
    try:
        conn.connect()  # the tunnel and the TLS handshake through it; no request yet
        [entry] = proxy.entries()
        assert (entry["method"], entry["status"]) == ("CONNECT", 200)
        conn.request("GET", "/nothing")
        assert conn.getresponse().status == 404
        assert [r.peer[1] for r in tls_emu.requests] == [entry["upstream_local_port"]]
    finally:
        conn.close()


# Proxy authentication -----------------------------------------------------------------------------


def test_proxy_authentication(
    start_proxy: Callable[..., Proxy], http_emu: FollowAnalyticsEmulator, tls_emu: FollowAnalyticsEmulator
) -> None:
    proxy = start_proxy(auth=f"{PROXY_USER}:{PROXY_PASSWORD}")
    with proxied_session(proxy.url, verify=ca_file(tls_emu)) as session:
        with pytest.raises(requests.exceptions.ProxyError, match="407"):
            session.get(f"{tls_emu.url}/nothing", timeout=5)
        response = session.get(f"{http_emu.url}/nothing?q=1", timeout=5)
        assert response.status_code == 407
        assert response.headers["Proxy-Authenticate"] == 'Basic realm="standin"'
    with proxied_session(proxy.url_with(PROXY_USER, "wrong"), verify=ca_file(tls_emu)) as session:
        assert session.get(f"{http_emu.url}/nothing", timeout=5).status_code == 407
    assert http_emu.requests == []
    assert tls_emu.requests == []  # nothing was forwarded
    with proxied_session(proxy.url_with(PROXY_USER, PROXY_PASSWORD), verify=ca_file(tls_emu)) as session:
        secrets = download_through(http_emu, session) | download_through(tls_emu, session)
    assert [(e["method"], e["status"], e["authorized"]) for e in proxy.entries()] == [
        ("CONNECT", 407, False),
        ("GET", 407, False),
        ("GET", 407, False),
        ("POST", 200, True),
        ("GET", 200, True),
        ("GET", 200, True),
        ("CONNECT", 200, True),
    ]
    assert all("proxy-authorization" not in r.headers for r in http_emu.requests)
    written = proxy.record.read_text() + proxy.process.text()
    basic = base64.b64encode(f"{PROXY_USER}:{PROXY_PASSWORD}".encode()).decode()
    assert not [secret for secret in {PROXY_PASSWORD, basic, *secrets} if secret in written]


@pytest.mark.parametrize("tls", [False, True])
def test_cut_downloads_stay_cut_through_the_proxy(start_proxy: Callable[..., Proxy], tls: bool) -> None:
    proxy = start_proxy()
    with (
        FollowAnalyticsEmulator(export_size=200_000, tls=tls) as emu,
        proxied_session(proxy.url, verify=ca_file(emu) if tls else True) as session,
    ):
        headers = login(emu, session)
        callback = start_export(emu, session, headers)
        for kind in ("truncate", "reset"):
            emu.add_fault("download", kind=kind, after_bytes=1000)
            with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
                session.get(callback, headers=headers, timeout=5)
        assert session.get(callback, headers=headers, timeout=5).status_code == 200
