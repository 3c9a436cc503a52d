"""What a wrong CA, a proxy refusing its credentials and a proxy that is down do, in the worker and the triggerer.

A wrong CA and a 407 fail at once (the same handshake or credentials would fail again), naming the
cause; a proxy that is down is a connection error, retried like the API being down. No message or
log line carries the proxy's password, the account's password or a token.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from airflow_provider_followanalytics.exceptions import FollowAnalyticsConfigError, FollowAnalyticsRetryableError
from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook
from tests.network.conftest import PROXY_PASSWORD, PROXY_USER, closed_port, set_network_connection, with_credentials


def _hook(monkeypatch: pytest.MonkeyPatch, emulator: FollowAnalyticsEmulator, **extra: Any) -> FollowAnalyticsHook:
    set_network_connection(monkeypatch, "fa_network", emulator, **extra)
    return FollowAnalyticsHook("fa_network")


def _both_paths(hook: FollowAnalyticsHook) -> list[BaseException]:
    """The error of a login from the worker (requests) and from the triggerer (aiohttp)."""
    errors: list[BaseException] = []
    for login in (hook.login, lambda: asyncio.run(_alogin(hook))):
        hook._tokens.token = None
        with pytest.raises(Exception) as err:  # noqa: PT011 - each test checks the type and text
            login()
        errors.append(err.value)
    return errors


async def _alogin(hook: FollowAnalyticsHook) -> str:
    try:
        return await hook.alogin()
    finally:
        await hook.aclose()


def test_a_ca_that_did_not_sign_the_certificate_fails_at_once_naming_it(
    tls_emulator: FollowAnalyticsEmulator,
    other_ca: Path,
    start_proxy: Any,
    monkeypatch: pytest.MonkeyPatch,
    task_log: pytest.LogCaptureFixture,
) -> None:
    proxy = start_proxy()
    hook = _hook(monkeypatch, tls_emulator, verify=str(other_ca), proxies={"https": proxy.url})

    errors = _both_paths(hook)

    for error in errors:
        assert isinstance(error, FollowAnalyticsConfigError)
        assert "CERTIFICATE_VERIFY_FAILED" in str(error)
        assert "Not retried" in str(error)
    assert len(proxy.record()) == 2  # one tunnel a path: no retry
    assert tls_emulator.requests == []  # the handshake failed: no request was read
    assert "retry 1/" not in task_log.text


def test_a_proxy_refusing_the_credentials_fails_at_once_without_printing_them(
    tls_emulator: FollowAnalyticsEmulator,
    certificates: Any,
    start_proxy: Any,
    monkeypatch: pytest.MonkeyPatch,
    task_log: pytest.LogCaptureFixture,
) -> None:
    proxy = start_proxy(auth=True)
    wrong = "wr0ng-pr0xy-password"
    hook = _hook(
        monkeypatch,
        tls_emulator,
        verify=str(certificates.ca_file),
        proxies={"https": proxy.url_with(PROXY_USER, wrong)},
    )

    errors = _both_paths(hook)

    redacted = proxy.url.replace("http://", "http://***@")
    for error in errors:
        assert isinstance(error, FollowAnalyticsConfigError)
        assert f"the proxy {redacted} refused the credentials (HTTP 407" in str(error)
        assert wrong not in str(error)
    assert [(line["status"], line["authorized"]) for line in proxy.record()] == [(407, False)] * 2  # not retried
    assert wrong not in task_log.text
    assert PROXY_PASSWORD not in proxy.process.text()


def test_a_proxy_that_is_down_is_retried_like_the_api_being_down(
    tls_emulator: FollowAnalyticsEmulator,
    certificates: Any,
    monkeypatch: pytest.MonkeyPatch,
    task_log: pytest.LogCaptureFixture,
) -> None:
    dead = with_credentials(f"http://127.0.0.1:{closed_port()}", PROXY_USER, PROXY_PASSWORD)
    hook = _hook(monkeypatch, tls_emulator, verify=str(certificates.ca_file), proxies={"https": dead})

    worker, trigger = _both_paths(hook)

    assert isinstance(worker, FollowAnalyticsRetryableError)
    assert "after 3 attempt(s)" in str(worker)  # max_retries=2: retried like a refused API port
    assert "retry 2/2" in task_log.text
    assert isinstance(trigger, FollowAnalyticsRetryableError)  # the trigger's failure budget retries it
    for text in (str(worker), str(trigger), task_log.text):
        assert PROXY_PASSWORD not in text
        assert quote(PROXY_PASSWORD, safe="") not in text  # nor percent-encoded
    assert tls_emulator.requests == []


def test_verify_false_works_but_every_hook_warns(
    tls_emulator: FollowAnalyticsEmulator,
    start_proxy: Any,
    monkeypatch: pytest.MonkeyPatch,
    task_log: pytest.LogCaptureFixture,
) -> None:
    proxy = start_proxy()
    hooks = [_hook(monkeypatch, tls_emulator, verify="false", proxies={"https": proxy.url}) for _ in range(2)]

    assert hooks[0].login()  # the worker, trusting nothing
    assert asyncio.run(_alogin(hooks[1]))  # the triggerer, the same

    warnings = [r for r in task_log.records if "INSECURE" in r.getMessage() and "verify set to false" in r.getMessage()]
    assert len(warnings) == 2  # one per hook: never silently
    assert {r.levelname for r in warnings} == {"WARNING"}


def test_the_proxy_password_is_masked_like_a_password(
    tls_emulator: FollowAnalyticsEmulator, certificates: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_rendering import _redact

    url = with_credentials("http://127.0.0.1:3128", PROXY_USER, PROXY_PASSWORD)
    hook = _hook(monkeypatch, tls_emulator, verify=str(certificates.ca_file), proxies={"https": url})

    settings = hook.settings

    for form in (PROXY_PASSWORD, quote(PROXY_PASSWORD, safe="")):  # as sent and as written in the URL
        assert form not in str(_redact(f"the proxy said {form}"))
        assert form not in repr(settings)


def test_the_hooks_of_a_triggerer_share_one_ssl_context_per_ca(
    tls_emulator: FollowAnalyticsEmulator, certificates: Any, start_proxy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A context holds the whole parsed CA bundle: one per trigger would cost what 2,000 triggers cannot.
    proxies = {"https": start_proxy().url}
    hooks = [_hook(monkeypatch, tls_emulator, verify=str(certificates.ca_file), proxies=proxies) for _ in range(3)]

    async def log_in_all() -> set[int]:
        try:
            for hook in hooks:
                await hook.aget_session()
                await hook.alogin()
            return {id(hook._async._ssl) for hook in hooks}
        finally:
            for hook in hooks:
                await hook.aclose()

    assert len(asyncio.run(log_in_all())) == 1
    assert tls_emulator.login_count == 1  # and one login for the account
