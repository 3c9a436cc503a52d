"""Local FollowAnalytics API emulator: real sockets, deterministic exports, injectable faults.

Used by the provider's tests, benchmarks and demo, and by DAG authors who want
to develop against a local stand-in for ``https://api.follow-apps.com``::

    from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator

    with FollowAnalyticsEmulator(ready_after=2, export_size=1 << 20) as emu:
        ...  # point a followanalytics connection's host at emu.url

or from a shell: ``python -m airflow_provider_followanalytics.emulator --port 8765`` (the default).
Standard library only.
"""

from __future__ import annotations

from airflow_provider_followanalytics.emulator.content import (
    expected_export_bytes,
    expected_export_sha256,
    export_chunks,
)
from airflow_provider_followanalytics.emulator.server import (
    Fault,
    FollowAnalyticsEmulator,
    RecordedRequest,
)

__all__ = [
    "Fault",
    "FollowAnalyticsEmulator",
    "RecordedRequest",
    "expected_export_bytes",
    "expected_export_sha256",
    "export_chunks",
]
