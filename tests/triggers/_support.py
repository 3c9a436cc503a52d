"""What the ExportReadyTrigger tests share: a trigger with short polls, its first event, what every event must be."""

from __future__ import annotations

import json
import time
from typing import Any

from airflow_provider_followanalytics._urls import redact_url
from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from airflow_provider_followanalytics.triggers.export_ready import ExportReadyTrigger
from tests.fixtures import PASSWORD

SEGMENT_EXPORT = "/segments/FASEGMT_abcd12/devices_export"


async def first_event(trigger: ExportReadyTrigger) -> dict[str, Any]:
    events = trigger.run()
    event = await events.__anext__()
    await events.aclose()
    return event.payload


def assert_small_and_secret_free(event: dict[str, Any], emulator: FollowAnalyticsEmulator, url: str) -> None:
    text = json.dumps(event)
    assert len(text.encode()) < 1024, len(text)
    assert PASSWORD not in text
    for token in emulator.issued_tokens:
        assert token not in text
    export_token = url.split("export_token=")[1]
    assert export_token not in text  # Airflow's triggerer logs every event into the task log
    assert event["callback_url"] == redact_url(url)  # for display only: the task knows its own URL


def trigger_for(url: str, **kwargs: Any) -> ExportReadyTrigger:
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("deadline", time.time() + 30)
    return ExportReadyTrigger(callback_url=url, **kwargs)
