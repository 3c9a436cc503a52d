"""DAG parse cost: marginal import time of the provider's DAG-facing modules.

Every DAG file that uses the provider imports its operators, sensor and transfers, on every
parse. Airflow's DAG processor has ``airflow.*`` loaded already, so what the provider adds is
the time of its imports *after* ``import airflow.sdk`` (on Airflow 2: after ``from airflow
import DAG`` and ``BaseOperator``, which a DAG file loads anyway).

Measured in fresh interpreters (nothing cached in ``sys.modules``; the OS file cache is warm
for both sides alike): import the Airflow base, then ``time.perf_counter()`` around the
imports being measured. Anchor: ``airflow.providers.amazon.aws.transfers.http_to_s3`` (the
stock HTTP-to-S3 operator) measured the same way. Median of ``repeat`` interpreters each,
ours and the anchor interleaved so that machine noise hits both alike.
"""

from __future__ import annotations

import sys
import textwrap
from typing import Any

from benchmarks._common import RESULT_PREFIX, BenchError, Options, median, module_main, na_rows, verdict
from benchmarks._processes import Worker, worker_env
from benchmarks._table import Row

NAME = "import"
PROVIDER_MODULES = (
    "airflow_provider_followanalytics.operators.exports",
    "airflow_provider_followanalytics.sensors.export_ready",
    "airflow_provider_followanalytics.transfers.followanalytics_to_s3",
    "airflow_provider_followanalytics.transfers.followanalytics_to_gcs",
    "airflow_provider_followanalytics.transfers.followanalytics_to_object_storage",
)
ANCHOR_MODULES = ("airflow.providers.amazon.aws.transfers.http_to_s3",)
TARGET_SECONDS = 0.05

# Run with ``python -c``: nothing but json/sys/time/importlib is loaded before Airflow.
_SNIPPET = textwrap.dedent(
    f"""
    import importlib, json, sys, time
    try:
        import airflow.sdk
        base = "import airflow.sdk"
    except ImportError:  # Airflow 2: what a DAG file loads before any provider
        from airflow import DAG
        from airflow.models.baseoperator import BaseOperator
        base = "from airflow import DAG"
    heavy = ("requests", "aiohttp", "boto3", "botocore", "google.cloud")
    preloaded = [n for n in heavy if n in sys.modules]
    missing = []
    start = time.perf_counter()
    for name in sys.argv[1:]:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            missing.append(name)
    seconds = time.perf_counter() - start
    loaded = [n for n in heavy if n in sys.modules and n not in preloaded]
    print({RESULT_PREFIX!r} + json.dumps(
        {{"seconds": seconds, "base": base, "heavy_loaded": loaded, "missing": missing}}))
    """
)


def _measure(modules: tuple[str, ...], label: str) -> dict[str, Any]:
    command = [sys.executable, "-c", _SNIPPET, *modules]
    return Worker(command, env=worker_env(), log_name=f"import-{label}", timeout=300).result()


def run(opts: Options) -> list[Row]:
    """Median marginal import time of ours and of the anchor; target <= 0.05 s."""
    repeat = 1 if opts.quick else 5
    ours: list[dict[str, Any]] = []
    anchor: list[dict[str, Any]] = []
    try:
        for i in range(repeat):
            ours.append(_measure(PROVIDER_MODULES, f"ours-{i}"))
            anchor.append(_measure(ANCHOR_MODULES, f"anchor-{i}"))
    except BenchError as exc:
        return na_rows(NAME, [("marginal import of operators+sensor+transfers", "s", "<= 0.05 s")], str(exc))
    ours_s = median([r["seconds"] for r in ours])
    anchor_s = median([r["seconds"] for r in anchor])
    missing = ours[0]["missing"]
    heavy = sorted({name for r in ours for name in r["heavy_loaded"]})
    notes = [f"after `{ours[0]['base']}`, median of {repeat} fresh interpreters"]
    notes.append(f"client libraries loaded: {', '.join(heavy) if heavy else 'none'}")
    if missing:
        notes.append(f"NOT YET IMPORTABLE: {', '.join(missing)}")
    ok = None if missing else ours_s <= TARGET_SECONDS
    return [
        Row(
            NAME,
            "marginal import of operators+sensor+transfers",
            ours_s,
            anchor_s,
            "s",
            "http_to_s3",
            "<= 0.05 s",
            verdict(ok),
            note="; ".join(notes),
        )
    ]


if __name__ == "__main__":
    module_main(sys.argv[1:], run, None)
