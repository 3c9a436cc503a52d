"""Rendered template fields: Airflow stores, shows and logs them before execute() runs."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from airflow_provider_followanalytics._compat import AIRFLOW_V_3
from airflow_provider_followanalytics.sensors.export_ready import ExportReadySensor
from airflow_provider_followanalytics.transfers.followanalytics_to_gcs import FollowAnalyticsToGCSOperator
from airflow_provider_followanalytics.transfers.followanalytics_to_s3 import FollowAnalyticsToS3Operator


def _redact(value: Any) -> Any:
    if AIRFLOW_V_3:
        from airflow.sdk.log import redact
    else:
        from airflow.utils.log.secrets_masker import redact  # type: ignore[no-redef]
    return redact(value)


@pytest.mark.parametrize(
    "build",
    [
        lambda url: ExportReadySensor(task_id="wait", callback_url=url),
        lambda url: FollowAnalyticsToS3Operator(task_id="s3", callback_url=url, s3_bucket="lake", s3_key="k.csv"),
        lambda url: FollowAnalyticsToGCSOperator(task_id="gcs", callback_url=url, bucket_name="lake", object_name="k"),
    ],
    ids=["sensor", "s3", "gcs"],
)
def test_rendering_registers_the_export_token_with_the_masker(build: Any) -> None:
    token = f"render-token-{uuid.uuid4().hex}"
    task = build("{{ params.url }}")

    task.render_template_fields({"params": {"url": f"http://127.0.0.1:1/x?export_token={token}"}})

    assert token in task.callback_url  # the task itself still has the whole URL
    assert token not in str(_redact(task.callback_url))
