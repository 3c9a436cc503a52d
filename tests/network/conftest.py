"""An https emulator reachable only through a real forward proxy process, and that proxy's own record.

The API's host name (``fa-api.test``) resolves nowhere but in the proxy (``--resolve``): a request
that bypassed the proxy could not even connect, and every request the emulator records must come
from one of the proxy's upstream sockets.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from airflow_provider_followanalytics.emulator.tls import TLSFiles, make_test_certificates
from standins.processes import StandInProcess, forward_proxy_command
from tests.fixtures import EMAIL, PASSWORD

#: The API's host name: only the proxy knows where it is.
API_HOST = "fa-api.test"
PROXY_USER, PROXY_PASSWORD = "svc-airflow", "pr0xy-s3cret:/@"  # characters a URL must percent-encode
_NETWORK_ENVIRONMENT = (
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
)


@dataclass
class Proxy:
    """A forward proxy process: its URL and what it recorded."""

    process: StandInProcess
    record_file: Path
    auth: str | None

    @property
    def url(self) -> str:
        return self.process.url

    def url_with(self, user: str, password: str) -> str:
        return with_credentials(self.url, user, password)

    def record(self) -> list[dict[str, Any]]:
        if not self.record_file.exists():
            return []
        return [json.loads(line) for line in self.record_file.read_text().splitlines() if line]


@pytest.fixture(autouse=True)
def _no_network_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets the proxy and CA variables it means; none leak in from the machine."""
    for name in _NETWORK_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """A private CA and the API's certificate it signed."""
    return make_test_certificates(tmp_path_factory.mktemp("ca"), hostnames=(API_HOST, "127.0.0.1"))


@pytest.fixture(scope="session")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA that did not sign the API's certificate."""
    files = make_test_certificates(tmp_path_factory.mktemp("other-ca"))
    assert files.ca_file is not None
    return files.ca_file


@pytest.fixture
def tls_emulator(certificates: TLSFiles) -> Iterator[FollowAnalyticsEmulator]:
    """The emulator over https, its callback URLs on ``https://fa-api.test:PORT``; ready after one poll."""
    emu = FollowAnalyticsEmulator(
        email=EMAIL, password=PASSWORD, export_size=256 * 1024, ready_after=1, tls=certificates
    )
    emu.start()
    emu.public_url = f"https://{API_HOST}:{emu.port}"
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def start_proxy(tmp_path: Path) -> Iterator[Any]:
    """Start forward proxy processes (``auth``: require ``PROXY_USER:PROXY_PASSWORD``); stopped after the test."""
    started: list[StandInProcess] = []

    def start(*, auth: bool = False) -> Proxy:
        index = len(started)
        record = tmp_path / f"proxy-{index}.jsonl"
        credentials = f"{PROXY_USER}:{PROXY_PASSWORD}" if auth else None
        argv = forward_proxy_command(record, auth=credentials, resolve={API_HOST: "127.0.0.1"})
        process = StandInProcess(f"forward-proxy-{index}", argv, tmp_path / f"proxy-{index}.out")
        started.append(process.start())
        process.wait_for_url(30)
        return Proxy(process, record, credentials)

    yield start
    for process in started:
        process.stop()


def set_network_connection(
    monkeypatch: pytest.MonkeyPatch, conn_id: str, emulator: FollowAnalyticsEmulator, **extra: Any
) -> None:
    """Define ``conn_id`` for the emulator under the API's host name, with fast retries and ``extra``."""
    conn = {
        "conn_type": "followanalytics",
        "login": EMAIL,
        "password": PASSWORD,
        "host": api_url(emulator),
        "extra": {"timeout": 5, "max_retries": 2, "retry_delay": 0.01, **extra},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def with_credentials(url: str, user: str, password: str) -> str:
    """``url`` with ``user:password@``, percent-encoded as a proxy URL must be."""
    from urllib.parse import quote

    return url.replace("http://", f"http://{quote(user, safe='')}:{quote(password, safe='')}@")


def api_url(emulator: FollowAnalyticsEmulator) -> str:
    """The connection's host: the emulator under the name only the proxy resolves."""
    return f"https://{API_HOST}:{emulator.port}"


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_every_request_came_through(emulator: FollowAnalyticsEmulator, proxy: Proxy) -> list[dict[str, Any]]:
    """Every request the emulator got came from one of the proxy's tunnels; return the record."""
    record = proxy.record()
    tunnels = {line["upstream_local_port"] for line in record if line["status"] == 200}
    assert emulator.requests, "the emulator got no request"
    outside = [(r.route, r.peer) for r in emulator.requests if r.peer[1] not in tunnels]
    assert outside == [], f"requests that did not come through the proxy: {outside}"
    assert {line["method"] for line in record} == {"CONNECT"}  # https: tunnels only, TLS end to end
    assert {line["target"] for line in record} == {f"{API_HOST}:{emulator.port}"}
    return record
