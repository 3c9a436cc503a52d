"""GCS transfer: throughput and memory of ``FollowAnalyticsToGCSOperator`` against ``HttpToGCSOperator``.

The same measurements as ``s3.py`` on the in-memory gcp-storage-emulator, at 128 MiB (the emulator
holds objects in memory and slows down with size): upload-only is a GCS resumable upload in 8 MiB
chunks. Its memory figure has no target in the design and is shown for information.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import TYPE_CHECKING

from benchmarks._cloud_rows import memory_rows, throughput_rows
from benchmarks._common import WARM_UP_SIZE, BenchError, MiB, Options, module_main, na_rows, size_label
from benchmarks._emulator import login_token
from benchmarks._processes import emulator_process, fa_conn_env, gcs_process, http_conn_env, worker_env
from benchmarks._transfer_runs import Runner, gcp_conn_env, handwritten_env, run_side_by_side

if TYPE_CHECKING:
    from benchmarks._table import Row

NAME = "gcs"


def run(opts: Options) -> list[Row]:
    """Ours vs HttpToGCSOperator, and the limit, on the in-memory GCS emulator."""
    size = 16 * MiB if opts.quick else 128 * MiB
    label = size_label(size)
    figures = [
        (f"throughput to GCS vs limit, {label}", "MiB/s", ">= 0.9x"),
        (f"throughput to GCS vs HttpToGCSOperator, {label}", "MiB/s", ">= 1.5x"),
        (f"extra RSS, {label} export to GCS", "MiB", "-"),
    ]
    if importlib.util.find_spec("gcp_storage_emulator") is None:
        return na_rows(NAME, figures, "gcp-storage-emulator is not installed")
    try:
        with emulator_process(export_size=WARM_UP_SIZE, name="gcs-emulator") as emu, gcs_process() as gcs:
            token = login_token(emu.url)
            extra = {} if opts.quick else handwritten_env()
            env = worker_env(
                **fa_conn_env(emu.url), **http_conn_env(emu.url), **gcp_conn_env(gcs.url), **extra, BENCH_FA_TOKEN=token
            )
            operators = ("ours", "anchor", "handwritten") if extra else ("ours", "anchor")
            results, measured = run_side_by_side(
                Runner(NAME, emu, gcs, env), operators, (size,), 1 if opts.quick else 3, ("download", "upload")
            )
    except BenchError as exc:
        return na_rows(NAME, figures, str(exc))
    rows = memory_rows(NAME, "GCS", "HttpToGCSOperator", results, None, size, judged=False)
    return rows + throughput_rows(NAME, "GCS", "HttpToGCSOperator", results, measured)


if __name__ == "__main__":
    module_main(sys.argv[1:], run)
