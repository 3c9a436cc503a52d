"""The secrets guard itself finds what it must, and names no secret."""

from __future__ import annotations

import pytest

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from tests.secrets_guard import find_leaks, secrets_of

pytestmark = pytest.mark.version_independent  # no Airflow in it: CI runs it on Airflow 3.3 only


def test_guard_knows_every_kind_of_secret() -> None:
    emulator = FollowAnalyticsEmulator(password="pw-guard-123456")
    emulator.issued_tokens.append("auth-token-abcdef")
    names = set(secrets_of(emulator))
    assert "the account password" in names
    assert "auth token #1" in names
    assert sum("api_key" in name for name in names) == 4  # qa + prod keys of two entities


def test_guard_reports_where_without_quoting_the_secret() -> None:
    leaks = find_leaks({"Captured log call": "login with pw-guard-123456"}, {"the password": "pw-guard-123456"})
    assert leaks == ["the password in Captured log call"]
    assert find_leaks({"Captured stdout call": "all clean"}, {"the password": "pw-guard-123456"}) == []
