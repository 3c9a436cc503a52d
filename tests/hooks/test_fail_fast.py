"""Failures that a retry cannot fix fail at once; the connection's scheme in every form (issue 16).

Everything talks to the emulator (plain http) over real sockets: reached over https it answers a
TLS ClientHello with an HTTP error page, which the client reports as WRONG_VERSION_NUMBER.
"""

from __future__ import annotations

import logging
import re
import socket
import time
from typing import Any

import pytest

from airflow_provider_followanalytics._compat import AirflowFailException
from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from airflow_provider_followanalytics.exceptions import FollowAnalyticsAuthError, FollowAnalyticsConfigError
from airflow_provider_followanalytics.hooks import followanalytics as hook_module
from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook
from tests.fixtures import EMAIL, PASSWORD

# Retries that would take many seconds: a fix that stops retrying is seen in the elapsed time.
SLOW_RETRIES = {"max_retries": 5, "retry_delay": 1.0, "timeout": 30}


def _https_to(emulator: FollowAnalyticsEmulator) -> str:
    return emulator.url.replace("http://", "https://")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again: nothing listens there


def test_wrong_password_fails_without_task_retries(set_connection: Any, emulator: FollowAnalyticsEmulator) -> None:
    set_connection("fa_wrong", conn_type="followanalytics", login=EMAIL, password="wrong-pw-1234", host=emulator.url)
    with pytest.raises(FollowAnalyticsAuthError) as err:
        FollowAnalyticsHook("fa_wrong").run("GET", "/api/data_exporters")
    assert isinstance(err.value, AirflowFailException)  # Airflow skips the task's retries
    assert "Invalid email or password. Check" in str(err.value)  # one full stop, not two
    assert len(emulator.requests_for("login")) == 1


def test_https_to_a_plain_http_server_fails_at_once_with_a_hint(
    set_connection: Any, emulator: FollowAnalyticsEmulator
) -> None:
    set_connection(
        "fa_tls",
        conn_type="followanalytics",
        login=EMAIL,
        password=PASSWORD,
        host=_https_to(emulator),
        extra=SLOW_RETRIES,
    )
    started = time.monotonic()
    with pytest.raises(FollowAnalyticsConfigError) as err:
        FollowAnalyticsHook("fa_tls").run("GET", "/api/data_exporters")
    # Five retries would back off for 15.5 s or more (jitter 50-100 % of 1+2+4+8+16 s). One attempt
    # lasts until the emulator gives up on the TLS ClientHello it cannot read: ~2 s on a busy machine.
    assert time.monotonic() - started < 12
    message = str(err.value)
    assert "WRONG_VERSION_NUMBER" in message
    assert "Not retried" in message
    assert "does not speak TLS" in message
    assert "http://" in message
    assert PASSWORD not in message


async def test_async_poll_over_https_to_a_plain_http_server_is_not_retryable(
    set_connection: Any, emulator: FollowAnalyticsEmulator
) -> None:
    base = _https_to(emulator)
    set_connection("fa_tls", conn_type="followanalytics", login=EMAIL, password=PASSWORD, host=base, extra=SLOW_RETRIES)
    hook = FollowAnalyticsHook("fa_tls")
    try:
        with pytest.raises(FollowAnalyticsConfigError, match="does not speak TLS"):
            await hook.aget_export_status(f"{base}/api/exports/download_url?export_token=abcdef")
    finally:
        await hook.aclose()


def test_test_connection_to_a_refused_port_answers_at_once(set_connection: Any) -> None:
    host = f"http://127.0.0.1:{_free_port()}"
    set_connection(
        "fa_down", conn_type="followanalytics", login=EMAIL, password=PASSWORD, host=host, extra=SLOW_RETRIES
    )
    started = time.monotonic()
    ok, message = FollowAnalyticsHook("fa_down").test_connection()
    # Margin: a refused connect answers in milliseconds; the five slow retries would take >= 15.5 s.
    assert time.monotonic() - started < 3
    assert not ok
    assert "after 1 attempt(s)" in message
    assert "refused" in message


def test_test_connection_does_not_wait_the_full_request_timeout(
    set_connection: Any, emulator: FollowAnalyticsEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hook_module, "TEST_CONNECTION_TIMEOUT", 0.3)
    emulator.add_fault("login", kind="delay", delay=5.0, count=3)
    set_connection(
        "fa_slow", conn_type="followanalytics", login=EMAIL, password=PASSWORD, host=emulator.url, extra=SLOW_RETRIES
    )
    hook = FollowAnalyticsHook("fa_slow")
    started = time.monotonic()
    ok, message = hook.test_connection()
    # Margin: one 0.3 s attempt against a 5 s delay; waiting it out would take >= 5 s (retries more).
    assert time.monotonic() - started < 3
    assert not ok
    assert "Timeout" in message
    assert hook.settings.timeout == 30
    assert hook.settings.max_retries == 5


def test_uri_form_reaches_the_emulator_with_the_scheme_extra(
    monkeypatch: pytest.MonkeyPatch, emulator: FollowAnalyticsEmulator
) -> None:
    host_port = emulator.url.removeprefix("http://")
    monkeypatch.setenv(
        "AIRFLOW_CONN_FA_URI", f"followanalytics://{EMAIL.replace('@', '%40')}:{PASSWORD}@{host_port}?scheme=http"
    )
    hook = FollowAnalyticsHook("fa_uri")
    assert hook.base_url == emulator.url
    ok, message = hook.test_connection()
    assert ok, message
    assert len(emulator.requests_for("login")) == 1


@pytest.mark.parametrize(
    ("host", "extra", "message"),
    [
        ("https://127.0.0.1:8765", {"scheme": "http"}, "says https:// but its extra says scheme='http'"),
        ("127.0.0.1", {"scheme": "ftp"}, "scheme='ftp' is not supported"),
        ("fa-emulator:8765", {"scheme": "http"}, "allow_insecure_http: true"),
        ("http://fa-emulator:8765", {"allow_insecure_http": "yes"}, "allow_insecure_http='yes' must be true or false"),
    ],
)
def test_bad_scheme_extras_are_refused_before_any_request(
    set_connection: Any, host: str, extra: dict[str, Any], message: str
) -> None:
    set_connection("fa_bad", conn_type="followanalytics", login=EMAIL, password=PASSWORD, host=host, extra=extra)
    with pytest.raises(FollowAnalyticsConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        FollowAnalyticsHook("fa_bad").settings  # noqa: B018 - resolving the connection is the check


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"timeout": "nan"}, "timeout='nan' is not a number (str given)"),
        ({"timeout": float("inf")}, "timeout=inf is not a number (float given)"),
        ({"timeout": "4_2"}, "timeout='4_2' is not a number (str given)"),
        ({"timeout": True}, "timeout=True is not a number (bool given)"),
        ({"max_retries": 2.5}, "max_retries=2.5 is not an integer (float given)"),
        ({"max_retries": "-1"}, "max_retries='-1' is invalid; expected an integer >= 0"),
    ],
)
def test_number_extras_are_read_by_the_one_parser(set_connection: Any, extra: dict[str, Any], message: str) -> None:
    set_connection(
        "fa_numbers", conn_type="followanalytics", login=EMAIL, password=PASSWORD, host="127.0.0.1", extra=extra
    )
    with pytest.raises(FollowAnalyticsConfigError, match=re.escape(message)):
        FollowAnalyticsHook("fa_numbers").settings  # noqa: B018 - resolving the connection is the check


def test_number_extras_arrive_as_text_from_uris_and_forms(set_connection: Any) -> None:
    extra = {"timeout": " 30 ", "max_retries": "3", "retry_delay": "0.5"}
    set_connection(
        "fa_text", conn_type="followanalytics", login=EMAIL, password=PASSWORD, host="127.0.0.1", extra=extra
    )
    settings = FollowAnalyticsHook("fa_text").settings
    assert (settings.timeout, settings.max_retries, settings.retry_delay) == (30.0, 3, 0.5)
    assert isinstance(settings.max_retries, int)


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_allow_insecure_http_reaches_a_non_loopback_host_and_warns_on_every_hook(
    set_connection: Any, task_log: pytest.LogCaptureFixture
) -> None:
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    emulator = FollowAnalyticsEmulator(host="0.0.0.0", email=EMAIL, password=PASSWORD)
    emulator.start()
    try:
        base = f"http://{address}:{emulator.url.rsplit(':', 1)[1]}"
        emulator.public_url = base
        conn = {"conn_type": "followanalytics", "login": EMAIL, "password": PASSWORD, "host": base}
        set_connection("fa_sidecar", **conn)
        with pytest.raises(FollowAnalyticsConfigError, match="uses plain http"):
            FollowAnalyticsHook("fa_sidecar").settings  # noqa: B018 - refused without the opt-in
        set_connection("fa_sidecar", **conn, extra={"allow_insecure_http": True})
        for _ in range(2):
            hook = FollowAnalyticsHook("fa_sidecar")
            url = hook.start_export("/api/apps/FAAPPLI_1/devices_export")
            assert url.startswith(f"{base}/api/exports/download_url?")
            assert hook.get_export_status(url) == "ready"
            hook.close()
        with pytest.raises(FollowAnalyticsConfigError, match="is not on the connection's host"):
            hook.check_callback_url("http://other.example/api/exports/download_url?export_token=abcdef")
    finally:
        emulator.stop()
    warnings = [r for r in task_log.records if r.levelno == logging.WARNING and "INSECURE" in r.getMessage()]
    assert len(warnings) == 2
    assert base in warnings[0].getMessage()
