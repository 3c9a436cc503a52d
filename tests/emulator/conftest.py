"""Fixtures of the emulator tests: a running emulator of its own (``emu``) and a requests session."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import requests

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def emu() -> Iterator[FollowAnalyticsEmulator]:
    emulator = FollowAnalyticsEmulator(export_size=4096).start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s
