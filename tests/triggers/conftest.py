"""Fixtures of the ExportReadyTrigger tests: a fresh export's callback URL and a spy on the async client's sessions."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from airflow_provider_followanalytics.hooks._async_client import AsyncClient
from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook
from tests.triggers._support import SEGMENT_EXPORT


@pytest.fixture
def callback_url(emulator: FollowAnalyticsEmulator) -> str:
    """A fresh export's callback URL (started with the sync hook; its login is then forgotten)."""
    url = FollowAnalyticsHook().start_export(SEGMENT_EXPORT, {"fields": "current_user_id"})
    # Count only the trigger's requests and logins (reset() would also forget the export).
    emulator.requests.clear()
    emulator.login_count = 0
    return url


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every aiohttp session a hook's async client uses, one per request (a spy: the real method runs)."""
    seen: list[Any] = []
    original = AsyncClient.session

    async def spy(self: AsyncClient, settings: Any) -> Any:
        session = await original(self, settings)
        seen.append(session)
        return session

    monkeypatch.setattr(AsyncClient, "session", spy)
    return seen
