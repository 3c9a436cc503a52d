"""Fixtures of the hook tests: a FollowAnalyticsHook on the default connection that retries without waiting long."""

from __future__ import annotations

import pytest

from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook


@pytest.fixture
def hook() -> FollowAnalyticsHook:
    return FollowAnalyticsHook(retry_delay=0.01)
