"""What the export operator tests share: 2024-01-01 as the API counts it and the one export request received."""

from __future__ import annotations

import datetime as dt

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator, RecordedRequest

UTC = dt.timezone.utc
JAN_1 = 1704067200  # 2024-01-01T00:00:00Z


def only_export(emulator: FollowAnalyticsEmulator) -> RecordedRequest:
    """The one export request the emulator received (the login aside)."""
    exports = [r for r in emulator.requests if r.route != "login"]
    assert len(exports) == 1, [(r.method, r.path) for r in emulator.requests]
    return exports[0]
