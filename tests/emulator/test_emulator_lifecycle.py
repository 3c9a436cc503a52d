"""Starting and stopping the emulator (open connections, stalled downloads, many clients) and its command line."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from tests.emulator._support import login, start_export, wait_for

pytestmark = pytest.mark.version_independent  # no Airflow in it: CI runs it on Airflow 3.3 only


REPO_ROOT = Path(__file__).resolve().parents[2]


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


def test_cli_default_port_is_not_airflows_api_server_port() -> None:
    from airflow_provider_followanalytics.emulator.__main__ import DEFAULT_PORT, _parser

    assert _parser().parse_args([]).port == DEFAULT_PORT == 8765
