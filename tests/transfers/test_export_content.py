"""What a transfer learns from the body as it streams: exact CSV rows, the header's columns, empty exports, progress.

The counter is checked against Python's ``csv`` module on bodies with quoted newlines and escaped quotes cut
at every offset; the empty-export rule and the progress lines through ``dag.test()`` against the emulator
(progress through the pacing proxy stand-in, which makes the download take seconds).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_followanalytics._compat import AIRFLOW_V_3
from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from airflow_provider_followanalytics.emulator.content import CSV_HEADERS, expected_export_bytes
from airflow_provider_followanalytics.hooks import _export_content
from airflow_provider_followanalytics.hooks._export_content import ExportContent, is_csv
from airflow_provider_followanalytics.operators.exports import FollowAnalyticsSegmentDevicesExportOperator
from tests.dagrun import run_dag

START = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
TRICKY = (
    '\ufeffevent_id,event_name,"note, with comma"\r\n'
    '1,"Promo ""Spring""\nbanner",x\r\n'
    '2,plain,"two\n\nnewlines"\n'
    '3,"",""""\n'
    "4,last,no newline at the end"
).encode()


def _records(body: bytes) -> int:
    return len(list(csv.reader(io.StringIO(body.decode("utf-8-sig", errors="replace"), newline=""))))


@pytest.mark.version_independent
@pytest.mark.parametrize(
    "body", [TRICKY, expected_export_bytes(40_000, "csv", kind="events")], ids=["tricky", "events"]
)
def test_rows_are_counted_exactly_wherever_the_pieces_are_cut(body: bytes) -> None:
    expected = _records(body) - 1
    for cut in range(1, len(body), max(1, len(body) // 97)):
        for step in (cut, 1 if cut < 3 else 3):  # two pieces, and the body byte by byte from there
            content = ExportContent(csv_body=True)
            content.feed(body[:cut])
            for i in range(cut, len(body), step):
                content.feed(memoryview(body)[i : i + step])
            content.finish()
            assert content.rows == expected, (cut, step)
    assert content.size == len(body)
    assert content.columns == next(csv.reader(io.StringIO(body.decode("utf-8-sig").splitlines()[0])))


@pytest.mark.version_independent
def test_without_counting_only_emptiness_is_known_and_xls_has_a_size_only() -> None:
    big = expected_export_bytes(300_000, "csv")
    content = ExportContent(csv_body=True, count_rows=False)
    for i in range(0, len(big), 256 << 10):
        content.feed(big[i : i + (256 << 10)])
    content.finish()
    assert (content.rows, content.empty, content.columns[:2]) == (None, False, ["device_id", "current_user_id"])
    header = CSV_HEADERS["devices"]
    for body, empty in ((header, True), (header.rstrip(b"\n"), True), (header + b"x,y\n", False), (b"", True)):
        small = ExportContent(csv_body=True, count_rows=False)
        small.feed(body)
        small.finish()
        assert small.empty is empty, body
    xls = ExportContent(csv_body=is_csv("application/vnd.ms-excel"))
    xls.feed(b"\xd0\xcf\x11\xe0" * 100)
    assert (xls.rows, xls.size, xls.empty) == (None, 400, False)
    assert is_csv("text/csv; charset=utf-8")


def _dag(dag_id: str, destination: str, **kwargs: Any) -> Any:
    if AIRFLOW_V_3:
        from airflow.sdk import DAG
    else:
        from airflow import DAG
    with DAG(dag_id, schedule=None, start_date=START, catchup=False) as dag:
        FollowAnalyticsSegmentDevicesExportOperator(
            task_id="export_to_lake", segment_id="FASEGMT_abcd12", destination=destination, poll_interval=0.05, **kwargs
        )
    return dag


@pytest.mark.usefixtures("airflow_db", "fa_conn")
@pytest.mark.parametrize("allow_empty", [True, False])
def test_an_export_with_only_its_header_warns_or_fails_leaving_nothing(
    emulator: FollowAnalyticsEmulator, task_log: pytest.LogCaptureFixture, tmp_path: Path, allow_empty: bool
) -> None:
    emulator.export_size = len(CSV_HEADERS["devices"])  # the header line, and not one row
    target = tmp_path / "devices.csv"

    result = run_dag(_dag(f"empty_export_{allow_empty}", f"file://{target}", allow_empty=allow_empty))

    assert len(emulator.requests_for("export")) == 1
    if allow_empty:
        assert result.state == "success", result.task_states
        assert target.read_bytes() == CSV_HEADERS["devices"]
        assert "has no data row, only its header; set allow_empty=False to fail instead" in task_log.text
    else:
        assert result.state == "failed"
        assert "has no data row (only its header: device_id, current_user_id" in task_log.text
        assert list(tmp_path.iterdir()) == []  # nothing at the destination, no partial file beside it


@pytest.mark.usefixtures("airflow_db")
def test_a_paced_transfer_says_how_far_it_is(
    emulator: FollowAnalyticsEmulator,
    set_connection: Any,
    monkeypatch: pytest.MonkeyPatch,
    task_log: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    from standins.processes import StandInProcess, proxy_command
    from tests.fixtures import EMAIL, PASSWORD

    # 3 MiB at 1 MiB/s through the pacing proxy: about 3 s, a line every 0.5 s (30 s in production).
    monkeypatch.setattr(_export_content, "PROGRESS_INTERVAL", 0.5)
    emulator.export_size = 3 << 20
    with StandInProcess("pacing-proxy", proxy_command(emulator.url, 1 << 20), tmp_path / "proxy.out") as proxy:
        emulator.public_url = proxy.url
        set_connection(
            "followanalytics_default", conn_type="followanalytics", login=EMAIL, password=PASSWORD, host=proxy.url
        )
        result = run_dag(_dag("paced_progress", f"file://{tmp_path}/devices.csv"))

    assert result.state == "success", result.task_states
    lines = [r.getMessage() for r in task_log.records if r.getMessage().startswith("Transferred ")]
    # Margin: the transfer takes ~3 s, so ~5 lines are due; 2 leave room for a slow start.
    assert len(lines) >= 2, lines
    assert all(" MiB of 3.0 MiB (" in line and "MiB/s, about" in line and "s left" in line for line in lines), lines
    percents = [int(line.split("(")[1].split(" %")[0]) for line in lines]
    assert percents == sorted(percents)
    assert 0 < percents[0] < 100


@pytest.mark.usefixtures("airflow_db", "fa_conn")
def test_a_wait_in_the_worker_says_how_long_it_has_waited_at_most_every_interval(
    emulator: FollowAnalyticsEmulator,
    monkeypatch: pytest.MonkeyPatch,
    task_log: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    from airflow_provider_followanalytics.triggers import _waiting

    # 20 pending checks 0.05 s apart (~1 s), a line at most every 0.3 s (60 s in production).
    monkeypatch.setattr(_waiting, "WAIT_PROGRESS_INTERVAL", 0.3)
    emulator.ready_after = 20

    result = run_dag(_dag("worker_wait_progress", f"file://{tmp_path}/devices.csv", deferrable=False))

    assert result.state == "success", result.task_states
    lines = [r.getMessage() for r in task_log.records if r.getMessage().startswith("Waiting in the worker")]
    counts = [int(line.split(": ")[1].split(" check")[0]) for line in lines]
    # Margin: ~1 s of waiting allows ~4 lines; the first comes at the first pending check.
    assert counts[0] == 1
    assert 2 <= len(counts) < 20, lines  # rate-limited: fewer lines than checks
    assert counts == sorted(counts)
    assert task_log.text.count("The FollowAnalytics export is not ready yet (HTTP 202)") <= 1
