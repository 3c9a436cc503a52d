"""OpenLineage events of a real DAG run: each transfer reports the export in and the object out.

The openlineage provider (file transport) captures the events of a ``dag.test()`` run in a child
process (``openlineage_run``); the export is ready after a few polls, so the transfers defer first.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from airflow_provider_followanalytics.emulator.content import expected_export_bytes
from tests.lineage.fixtures import NAMESPACE


def test_transfers_report_the_export_and_the_object(
    emulator: FollowAnalyticsEmulator,
    fa_conn: dict[str, Any],
    s3_bucket: str,
    azure_container: str,
    openlineage_run: Any,
    monkeypatch: Any,
    tmp_path: Path,
) -> None:
    emulator.ready_after = 2
    monkeypatch.setenv("FA_LINEAGE_S3_BUCKET", s3_bucket)
    monkeypatch.setenv("FA_LINEAGE_AZURE_CONTAINER", azure_container)
    monkeypatch.setenv("FA_LINEAGE_LOCAL_DIR", str(tmp_path))

    run = openlineage_run("tests.transfers.lineage_dag", "dag")

    assert run.result.state == "success", run.result.task_states
    expected_input = {"namespace": emulator.url, "name": "/api/exports/download_url"}
    outputs = {
        "to_s3": {"namespace": f"s3://{s3_bucket}", "name": "devices.csv"},
        "to_azure": {
            "namespace": f"abfss://{azure_container}@devstoreaccount1.dfs.core.windows.net",
            "name": "fa/devices.csv",
        },
        "to_file": {"namespace": "file", "name": f"{tmp_path}/devices.csv"},
    }
    for task_id, expected_output in outputs.items():
        completes = run.task_events(task_id, "COMPLETE")
        assert len(completes) == 1, (task_id, [e.get("eventType") for e in run.task_events(task_id)])
        event = completes[0]
        assert event["job"]["namespace"] == NAMESPACE, task_id  # the openlineage provider's, from its config
        assert event["inputs"] == [{**expected_input, "facets": {}}], task_id
        assert [{k: d[k] for k in ("namespace", "name")} for d in event["outputs"]] == [expected_output], task_id
    tokens = [request.query.get("export_token") for request in emulator.requests_for("callback")]
    assert tokens
    assert tokens[0]
    assert tokens[0] not in run.events_file.read_text()  # never the export token, anywhere in any event
    assert (tmp_path / "devices.csv").stat().st_size == emulator.export_size
    # What the outputs hold: the CSV header's columns and the exact record count (quote-aware: the
    # events body has newlines inside quoted fields), and the size as served.
    for task_id, kind in (("to_s3", "devices"), ("to_file", "devices"), ("events_to_file", "events")):
        (output,) = run.task_events(task_id, "COMPLETE")[0]["outputs"]
        body = expected_export_bytes(emulator.export_size, "csv", kind=kind)
        records = list(csv.reader(io.StringIO(body.decode("utf-8", errors="replace"), newline="")))
        assert [f["name"] for f in output["facets"]["schema"]["fields"]] == records[0], task_id
        assert {f["type"] for f in output["facets"]["schema"]["fields"]} == {"string"}
        statistics = output["outputFacets"]["outputStatistics"]
        assert (statistics["rowCount"], statistics["size"]) == (len(records) - 1, emulator.export_size), task_id
    assert body.count(b"\n") > len(records)  # the events body did hold quoted newlines
