"""A guard over the whole suite: no secret may appear in what a test printed, logged or raised.

Every emulator a test starts is recorded; after the test, its account password, the auth tokens
it issued, the export tokens of the callback URLs it handed out and the API keys of its login
answer are searched for in the test's captured stdout, stderr and logs and in the failure text.
A hit fails the test, naming the kind of secret and where it was found (never the secret).
XComs are checked by ``tests.dagrun.collect`` (the callback URL itself is allowed there).

The emulator's own tests handle raw tokens on purpose and are exempt.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator

_started: list[FollowAnalyticsEmulator] = []
_EXEMPT_DIRS = ("tests/emulator/",)


def secrets_of(emulator: FollowAnalyticsEmulator) -> dict[str, str]:
    """Every secret an emulator knows, keyed by a description that is safe to print."""
    found = {"the account password": emulator.password}
    for index, token in enumerate(list(emulator.issued_tokens)):
        found[f"auth token #{index + 1}"] = token
    for index, token in enumerate(list(getattr(emulator, "_exports", {}))):
        found[f"export token #{index + 1}"] = token
    for entity in emulator.user.get("entities", []):
        for key in ("qa_api_key", "prod_api_key"):
            if entity.get(key):
                found[f"{key} of {entity.get('identifier')}"] = entity[key]
    return {name: value for name, value in found.items() if value and len(value) >= 6}


def current_secrets() -> dict[str, str]:
    """Secrets of every emulator started by the running test."""
    merged: dict[str, str] = {}
    for emulator in _started:
        merged.update(secrets_of(emulator))
    return merged


def find_leaks(texts: dict[str, str], secrets: dict[str, str]) -> list[str]:
    """Return ``"<secret kind> in <where>"`` for each secret found in a text."""
    return [f"{name} in {where}" for where, text in texts.items() for name, value in secrets.items() if value in text]


@pytest.fixture(autouse=True)
def _record_emulators(monkeypatch: pytest.MonkeyPatch) -> None:
    original = FollowAnalyticsEmulator.start

    def start(self: FollowAnalyticsEmulator) -> FollowAnalyticsEmulator:
        _started.append(self)
        return original(self)

    monkeypatch.setattr(FollowAnalyticsEmulator, "start", start)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "teardown":
        _started.clear()
        return
    if report.when != "call" or any(d in item.nodeid for d in _EXEMPT_DIRS):
        return
    secrets = current_secrets()
    # Sections hold what setup and call captured so far (stdout, stderr, log records).
    texts = {name: content for name, content in report.sections}
    if report.longrepr is not None:
        texts["the failure text"] = str(report.longrepr)
    leaks = find_leaks(texts, secrets)
    if leaks:
        original = texts.get("the failure text", "")
        for value in secrets.values():
            original = original.replace(value, "<secret>")
        report.outcome = "failed"
        report.longrepr = "Secrets guard: a secret leaked: " + "; ".join(sorted(set(leaks))) + "\n\n" + original
