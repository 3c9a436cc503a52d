"""FollowAnalyticsHook's async polling (the trigger's): sessions and logins per event loop, keep-alive, 401 and 400."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from airflow_provider_followanalytics.exceptions import FollowAnalyticsExportExpiredError, FollowAnalyticsRetryableError
from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook
from tests.fixtures import EMAIL, PASSWORD, wait_for

pytestmark = pytest.mark.usefixtures("fa_conn")


async def test_async_status_polls_with_one_session(emulator: FollowAnalyticsEmulator) -> None:
    hook = FollowAnalyticsHook()
    emulator.ready_after = 2
    url = FollowAnalyticsHook().start_export("/api/apps/FAAPPLI_1/events_export", {})
    emulator.export_size = 256 * 1024 * 1024
    try:
        states = [await hook.aget_export_status(url) for _ in range(3)]
        session = await hook.aget_session()
        assert session is await hook.aget_session()
    finally:
        await hook.aclose()
    assert states == ["pending", "pending", "ready"]
    wait_for(lambda: emulator.bytes_sent, message="the download response to end")
    # Only what loopback socket buffers absorbed before the client closed: not the 256 MiB body.
    assert emulator.bytes_sent[-1] < 32 * 1024 * 1024


async def test_async_hooks_of_one_loop_share_one_session_until_the_last_closes(
    emulator: FollowAnalyticsEmulator,
) -> None:
    from aiohttp import DummyCookieJar

    from airflow_provider_followanalytics.hooks._async_client import PROCESS_STATE

    emulator.never_ready = True
    url = FollowAnalyticsHook().start_export("/api/apps/FAAPPLI_1/events_export", {})
    wait_for(lambda: emulator.open_connections() == 0, message="the export's connection to close")
    first, second = FollowAnalyticsHook(), FollowAnalyticsHook()
    assert await first.aget_export_status(url) == "pending"
    assert await second.aget_export_status(url) == "pending"
    session = await first.aget_session()
    assert session is await second.aget_session()
    assert PROCESS_STATE.users() == 2
    # Shared across accounts, so it must never carry one account's cookies into another's requests.
    assert isinstance(session.cookie_jar, DummyCookieJar)
    # Polls one after the other went over one pooled keep-alive connection, not one per hook.
    assert emulator.open_connections() == 1

    await first.aclose()
    assert not session.closed  # the second hook still uses it
    assert await second.aget_export_status(url) == "pending"
    await second.aclose()
    assert session.closed
    assert PROCESS_STATE.users() == 0
    wait_for(lambda: emulator.open_connections() == 0, message="the pooled connection to close")


class _HeadersThenBodyServer(ThreadingHTTPServer):
    """Answers login, then 202 to every poll with the headers and the body in two TCP writes."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _HeadersThenBodyHandler)
        self.connections = 0


class _HeadersThenBodyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HeadersThenBodyServer

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1  # one handler per TCP connection

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.flush()
        time.sleep(0.02)  # the client has the headers well before the body, as over a real network
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self._answer(200, {"success": True, "result": {"auth_token": "split-token"}})

    def do_GET(self) -> None:
        self._answer(202, {"success": True, "result": "Export not ready yet"})


async def test_async_polls_keep_one_connection_when_the_body_trails_the_headers(set_connection: Any) -> None:
    # An unread 202 body makes aiohttp close the connection: every poll would then open a new one.
    import threading

    server = _HeadersThenBodyServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    set_connection("fa_split", conn_type="followanalytics", login=EMAIL, password=PASSWORD, host=base)
    hook = FollowAnalyticsHook("fa_split")
    try:
        url = f"{base}/api/exports/download_url?export_token=t"
        assert [await hook.aget_export_status(url) for _ in range(5)] == ["pending"] * 5
    finally:
        await hook.aclose()
        server.shutdown()
        server.server_close()
    assert server.connections == 1  # the login and the five polls all went over one connection


def test_async_hook_survives_a_new_event_loop(emulator: FollowAnalyticsEmulator) -> None:
    # asyncio.run() twice with one hook (a script, a test): each loop gets its own session.
    import asyncio

    emulator.never_ready = True
    url = FollowAnalyticsHook().start_export("/api/apps/FAAPPLI_1/events_export", {})
    hook = FollowAnalyticsHook()

    async def poll_then_close() -> tuple[str, Any]:
        try:
            return await hook.aget_export_status(url), await hook.aget_session()
        finally:
            await hook.aclose()

    first_status, first_session = asyncio.run(poll_then_close())
    # Forgetting aclose() leaves that loop's session behind but must not break the next loop.
    assert asyncio.run(hook.aget_export_status(url)) == "pending"
    second_status, second_session = asyncio.run(poll_then_close())

    assert (first_status, second_status) == ("pending", "pending")
    assert first_session is not second_session
    assert first_session.closed
    assert second_session.closed
    assert len(emulator.requests_for("callback")) == 3


def test_async_logins_are_shared_within_a_loop_not_across_loops(emulator: FollowAnalyticsEmulator) -> None:
    # The shared login lives with its loop: a later asyncio.run (the next test, whose emulator may get
    # the same port) starts without it, so no test needs to reset anything.
    import asyncio

    emulator.never_ready = True
    url = FollowAnalyticsHook().start_export("/api/apps/FAAPPLI_1/events_export", {})
    logins_before = emulator.login_count

    async def two_hooks_poll() -> None:
        hooks = FollowAnalyticsHook(), FollowAnalyticsHook()
        try:
            for hook in hooks:
                assert await hook.aget_export_status(url) == "pending"
        finally:
            for hook in hooks:
                await hook.aclose()

    asyncio.run(two_hooks_poll())
    assert emulator.login_count - logins_before == 1  # two hooks, one loop: one login
    asyncio.run(two_hooks_poll())
    assert emulator.login_count - logins_before == 2  # a new loop logs in afresh


async def test_async_status_relogs_in_on_401_and_raises_expired_on_400(emulator: FollowAnalyticsEmulator) -> None:
    hook = FollowAnalyticsHook()
    emulator.ready_after = 5
    url = FollowAnalyticsHook().start_export("/api/apps/FAAPPLI_1/events_export", {})
    emulator.token_max_uses = 1
    logins_before = emulator.login_count  # the other hook's login for start_export
    try:
        assert await hook.aget_export_status(url) == "pending"
        assert await hook.aget_export_status(url) == "pending"
        assert emulator.login_count - logins_before == 2  # this hook's logins
        with pytest.raises(FollowAnalyticsExportExpiredError):
            await hook.aget_export_status(url.replace("export_token=", "export_token=x"))
        emulator.add_fault("callback", kind="status", status=429, retry_after=7)
        with pytest.raises(FollowAnalyticsRetryableError) as err:
            await hook.aget_export_status(url)
        assert err.value.retry_after == 7
    finally:
        await hook.aclose()
