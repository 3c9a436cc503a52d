"""``make bench``: run every benchmark and print one table of ours vs the Airflow anchors.

.. code-block:: shell

    .venv/bin/python -m benchmarks.run                 # everything, full sizes (a few minutes)
    .venv/bin/python -m benchmarks.run --quick         # tiny sizes: checks the harness works
    .venv/bin/python -m benchmarks.run --only triggers --only ready

Each figure is a ratio measured side by side in one run on one machine: ours and its anchor
(a stock Airflow operator or trigger, or a practical limit measured in the same run) take
turns on the same servers, so machine noise hits both. Every measurement runs in a fresh
interpreter and every server in its own process. The table is also written to
``.bench/results.md`` and ``.bench/results.json``. The exit status is 0 when every figure
was measured (even if some miss their targets), 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from benchmarks import backoff, counting, gcs, imports, objectstorage, onetask, ready, s3, triggers
from benchmarks._common import BENCH_DIR, Options
from benchmarks._table import Row, json_document, markdown_table, text_table

if TYPE_CHECKING:
    from collections.abc import Callable

#: name -> (what it measures, runner); run in this order.
BENCHMARKS: dict[str, tuple[str, Callable[[Options], list[Row]]]] = {
    "import": ("DAG parse cost: marginal import time", imports.run),
    "backoff": ("requests sent to 202/400/429/503 servers", backoff.run),
    "ready": ("ready detection on a 200 with a big body", ready.run),
    "triggers": ("thousands of triggers in one event loop", triggers.run),
    "s3": ("memory, throughput and worker CPU of the S3 transfer", s3.run),
    "gcs": ("throughput of the GCS transfer", gcs.run),
    "objectstorage": ("memory and throughput into a local file and Azurite", objectstorage.run),
    "onetask": ("the one-task export vs the transfer, and worker-seconds while pending", onetask.run),
    "counting": ("what counting the CSV rows for lineage costs a transfer", counting.run),
}


def _versions() -> dict[str, str]:
    """Versions of the interpreter and the Airflow distributions, read without importing Airflow."""
    from importlib import metadata

    found = {"python": platform.python_version()}
    for dist in (
        "apache-airflow",
        "apache-airflow-providers-amazon",
        "apache-airflow-providers-google",
        "apache-airflow-providers-http",
        "airflow-provider-followanalytics",
        "moto",
        "gcp-storage-emulator",
        "apache-airflow-providers-microsoft-azure",
        "adlfs",
        "s3fs",
        "aiohttp",
        "requests",
        "boto3",
    ):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


def _machine() -> dict[str, Any]:
    try:
        with open("/proc/meminfo") as meminfo:
            mem_kib = int(meminfo.readline().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kib = 0
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False, cwd=BENCH_DIR.parent
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "platform": platform.platform(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "commit": commit,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks, print the table, write ``.bench/results.{md,json}``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and windows: seconds, not minutes")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHMARKS),
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--out", default=str(BENCH_DIR), help="directory for results.md / results.json")
    args = parser.parse_args(argv)
    opts = Options(quick=args.quick)
    selected = [name for name in BENCHMARKS if not args.only or name in args.only]

    started = time.monotonic()
    meta: dict[str, Any] = {
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "quick": opts.quick,
        "benchmarks": selected,
        "machine": _machine(),
        "versions": _versions(),
        "seconds": {},
    }
    rows: list[Row] = []
    for name in selected:
        what, runner = BENCHMARKS[name]
        print(f"==> {name}: {what}", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        try:
            produced = runner(opts)
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            produced = [Row(name, what, None, None, "", "", "", "n/a", note=f"{type(exc).__name__}: {exc}")]
        meta["seconds"][name] = round(time.monotonic() - t0, 1)
        print(f"    {len(produced)} figure(s) in {meta['seconds'][name]:.0f}s", file=sys.stderr, flush=True)
        rows += produced
    meta["total_seconds"] = round(time.monotonic() - started, 1)

    print()
    print(text_table(rows), end="")
    counts = {status: sum(1 for row in rows if row.status == status) for status in ("pass", "fail", "info", "n/a")}
    print(
        f"\n{counts['pass']} pass, {counts['fail']} fail, {counts['info']} info, {counts['n/a']} n/a "
        f"in {meta['total_seconds']:.0f}s ({meta['machine']['cpus']} CPUs, Python {meta['versions']['python']}, "
        f"Airflow {meta['versions']['apache-airflow']}){' [--quick: sizes too small to judge]' if opts.quick else ''}"
    )
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    suffix = "-quick" if opts.quick else ""
    with open(os.path.join(out, f"results{suffix}.md"), "w") as f:
        f.write(markdown_table(rows))
    with open(os.path.join(out, f"results{suffix}.json"), "w") as f:
        f.write(json_document(rows, meta))
    print(f"written: {os.path.join(out, f'results{suffix}.md')} and .json", file=sys.stderr)
    return 1 if counts["n/a"] else 0


if __name__ == "__main__":
    sys.exit(main())
