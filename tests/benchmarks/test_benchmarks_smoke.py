"""Smoke tests of the benchmark harness: every benchmark runs in ``--quick`` mode and yields sane rows.

They check that the harness works (servers start, workers measure, rows come out with numbers
and a status), NOT that the targets are met: quick sizes are too small to judge, and the
benchmarks run in two lanes side by side here to keep the wall time down, which distorts
timings.
``make bench`` is the real measurement.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_followanalytics._compat import AIRFLOW_V_3
from airflow_provider_followanalytics.hooks.followanalytics import DOWNLOAD_CHUNK_SIZE
from benchmarks._common import PIECE_SIZE, percentile
from benchmarks._table import STATUSES, Row, fmt_ratio, fmt_value, markdown_table, text_table

ROOT = Path(__file__).resolve().parents[2]
#: benchmark name -> number of figures it reports.
EXPECTED_FIGURES = {
    "import": 1,
    "backoff": 4,
    "ready": 3,
    "triggers": 5,
    "s3": 8,
    "gcs": 3,
    "objectstorage": 10,
    "onetask": 3,
    "counting": 2,
}


#: The ``benchmark`` field of a benchmark's rows (one per store for the object-storage one).
ROW_NAMES = {"objectstorage": ("object-file", "object-azure")}


def _row_names(name: str) -> tuple[str, ...]:
    return ROW_NAMES.get(name, (name,))


#: Two lanes (the machine has two cores), each one ``benchmarks.run`` process, run side by side;
#: ``onetask`` (~10 s) goes in the first, which finished ~10 s before the second without it.
LANES = (("s3", "import", "ready", "onetask"), ("gcs", "objectstorage", "triggers", "backoff", "counting"))


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Run every benchmark with ``python -m benchmarks.run --quick`` (two lanes in parallel)."""
    if not AIRFLOW_V_3:  # `make bench` runs in the Airflow 3 environment only; 4 minutes saved in CI
        pytest.skip("the benchmarks run on Airflow 3 (make bench uses .venv)")
    base = tmp_path_factory.mktemp("bench")
    procs = []
    for lane in LANES:
        out = base / "-".join(lane)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env["FA_BENCH_DIR"] = str(out)
        only = [arg for name in lane for arg in ("--only", name)]
        command = [sys.executable, "-m", "benchmarks.run", "--quick", *only, "--out", str(out)]
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append((lane, out, proc))
    deadline = time.monotonic() + 280
    results: dict[str, dict[str, Any]] = {}
    for lane, out, proc in procs:
        try:
            output, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
        document = out / "results-quick.json"
        loaded = json.loads(document.read_text()) if document.exists() else None
        markdown = (out / "results-quick.md").read_text() if document.exists() else ""
        for name in lane:
            results[name] = {
                "returncode": proc.returncode,
                "output": output,
                "meta": loaded["meta"] if loaded else None,
                "rows": [row for row in loaded["rows"] if row["benchmark"] in _row_names(name)] if loaded else None,
                "markdown": markdown,
            }
    return results


def _assert_sane(row: dict[str, Any]) -> None:
    assert row["status"] in STATUSES, row
    assert row["figure"], row
    assert row["status"] != "n/a", f"{row['figure']}: not measured: {row['note']}"
    ours, anchor, unit = row["ours"], row["anchor"], row["unit"]
    assert isinstance(ours, (int, float)), row
    assert math.isfinite(ours), row
    if row["anchor_name"] == "-":  # a figure shown for its trend, or judged on its own (a slope)
        assert anchor is None, row
        return
    assert isinstance(anchor, (int, float)), row
    assert math.isfinite(anchor), row
    if unit == "MiB/GiB":  # a growth slope: any sign
        return
    if unit == "s":  # durations and stalls: a tiny run may see none
        assert ours >= 0, row
        assert anchor >= 0, row
        return
    assert ours >= 0, row
    assert anchor > 0, row


@pytest.mark.slow
@pytest.mark.parametrize("name", list(EXPECTED_FIGURES))
def test_quick_benchmark_produces_sane_rows(name: str, quick_results: dict[str, dict[str, Any]]) -> None:
    result = quick_results[name]
    assert result["returncode"] == 0, result["output"][-3000:]
    assert result["meta"] is not None, result["output"][-3000:]
    assert result["meta"]["quick"] is True
    assert name in result["meta"]["benchmarks"]
    rows = result["rows"]
    assert len(rows) == EXPECTED_FIGURES[name], rows
    assert {row["benchmark"] for row in rows} == set(_row_names(name)), rows
    for row in rows:
        _assert_sane(row)
    assert result["markdown"].startswith("| figure | ours | anchor or limit | ratio | target | result |")
    assert "pass, " in result["output"]  # the summary line of the console table


def test_trigger_benchmark_polls_really_reach_the_server(quick_results: dict[str, dict[str, Any]]) -> None:
    # The latency figures are only meaningful if the polls were real requests answered 202.
    note = next(row["note"] for row in quick_results["triggers"]["rows"] if row["note"])
    assert "events: timeout 50" in note, note
    assert "server saw 0 " not in note, note


def _row(name: str, figure_start: str, quick_results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return next(row for row in quick_results[name]["rows"] if row["figure"].startswith(figure_start))


@pytest.mark.slow
@pytest.mark.parametrize("against", ["one-thread bound", "curl -o"])
def test_local_file_row_is_judged_against_what_this_machine_can_show(
    against: str, quick_results: dict[str, dict[str, Any]]
) -> None:
    row = _row("objectstorage", f"throughput to a local file vs {against}", quick_results)
    assert row["target"] == ">= 0.9x", row
    assert row["status"] in ("pass", "fail"), row
    assert 0.05 < row["ratio"] < 20, row  # both measured on the same emulator in the same round
    assert "round by round" in row["note"], row
    shown = _row("objectstorage", "throughput to a local file vs min(download, write)", quick_results)
    assert shown["status"] == "info", shown


@pytest.mark.slow
def test_s3_worker_cpu_row(quick_results: dict[str, dict[str, Any]]) -> None:
    row = _row("s3", "S3 transfer CPU s/GiB vs download-only + upload-only", quick_results)
    assert (row["unit"], row["target"]) == ("s/GiB", "<= 1.2x"), row
    assert row["status"] in ("pass", "fail"), row
    assert row["ours"] > 0, row
    assert 0.05 < row["ratio"] < 20, row
    throughput = _row("s3", "throughput to S3 vs limit", quick_results)
    assert "round by round" in throughput["note"], throughput


@pytest.mark.slow
def test_trigger_tail_is_judged_against_the_anchor(quick_results: dict[str, dict[str, Any]]) -> None:
    p99 = _row("triggers", "p99 poll latency", quick_results)
    assert (p99["anchor_name"], p99["target"]) == ("session per poll", "<= 0.1x"), p99
    assert "overlapped a full collection" in p99["note"], p99
    stall = _row("triggers", "longest event-loop stall", quick_results)
    assert stall["target"] == "<= 0.6x", stall
    frozen = next(row for row in quick_results["triggers"]["rows"] if row["figure"].endswith("heap frozen after setup"))
    assert frozen["status"] == "info", frozen
    assert "events: timeout 50" in frozen["note"], frozen


@pytest.mark.slow
def test_one_task_rows_compare_it_with_the_transfer_and_its_wait(quick_results: dict[str, dict[str, Any]]) -> None:
    rss = _row("onetask", "one-task extra RSS vs ObjectStorage transfer", quick_results)
    assert (rss["unit"], rss["target"]) == ("MiB", "<= 1.1x or +4 MiB"), rss
    assert rss["anchor_name"] == "FollowAnalyticsToObjectStorageOperator", rss
    speed = _row("onetask", "one-task throughput vs ObjectStorage transfer", quick_results)
    assert (speed["unit"], speed["target"]) == ("MiB/s", ">= 0.9x"), speed
    assert 0.05 < speed["ratio"] < 20, speed  # both moved the same export from the same emulator
    assert "round by round" in speed["note"], speed
    held = _row("onetask", "one-task worker-seconds while pending, deferrable vs polling", quick_results)
    assert (held["unit"], held["target"]) == ("s", "<= 0.1x"), held
    # The polling form really waited out the pending checks; the deferrable one checked once and let go.
    assert held["anchor"] >= 0.3, held  # --quick: 3 checks answered 202, 0.1 s apart
    assert 0 < held["ours"] < held["anchor"], held
    assert "status checks the worker sent: deferrable 1, polling 4" in held["note"], held
    for row in (rss, speed, held):
        assert row["status"] in ("pass", "fail"), row


def test_download_and_write_only_move_the_pieces_ours_reads() -> None:
    # The one-thread bound of the local-file row is made of them: other pieces would change its speed.
    assert PIECE_SIZE == DOWNLOAD_CHUNK_SIZE


def test_table_formatting() -> None:
    assert fmt_value(None, "MiB") == "n/a"
    assert fmt_value(math.nan, "ms") == "n/a"
    assert fmt_value(1234.4, "MiB") == "1,234 MiB"
    assert fmt_value(0.012345, "s") == "0.0123 s"
    assert fmt_value(30, "req") == "30 req"
    assert fmt_ratio(0.0312) == "0.0312x"
    assert fmt_ratio(None) == "n/a"
    rows = [
        Row("x", "a figure", 1.0, 4.0, "MiB", "Anchor", "<= 0.5x", "pass", note="why"),
        Row("x", "not measured", None, None, "ms", "", "<= 50 ms", "n/a", note="server down"),
    ]
    assert rows[0].ratio == 0.25
    text = text_table(rows)
    assert "a figure" in text
    assert "4 MiB (Anchor)" in text
    assert "PASS [1]" in text
    assert "[2] server down" in text
    markdown = markdown_table(rows)
    assert markdown.count("\n") == 4
    assert "| not measured | n/a | n/a | n/a | <= 50 ms | N/A | server down |" in markdown


def test_row_refuses_unknown_status() -> None:
    with pytest.raises(ValueError, match="status 'maybe'"):
        Row("x", "f", 1.0, 1.0, "s", "", "", "maybe")


def test_percentile_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([3.0], 99) == 3.0
    assert math.isnan(percentile([], 50))
