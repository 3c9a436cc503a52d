"""`make demo`: run the main example DAG end to end on local stand-ins.

1. a local Airflow home with SQLite under .demo/ (migrated once, reused after);
2. the FollowAnalytics emulator and moto's S3 server on free loopback ports;
3. ``airflow dags test`` of ``followanalytics_segment_devices_to_lake``: one task that checks the
   bucket, starts the export, waits for it deferred (the trigger runs inline) and streams it to S3;
4. the object's location, size and first lines, checked byte for byte against what the
   emulator served; then both servers stop. Exit status 0 only if all of that worked.

The full Airflow log goes to .demo/airflow-dags-test.log. ``--home DIR`` puts all of it under DIR
instead (the install check runs the demo this way with each Airflow minor's wheel install).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_HOME = ROOT / ".demo"
DAG_ID = "followanalytics_segment_devices_to_lake"
LOGICAL_DATE = "2024-06-02"
BUCKET = "demo-data-lake"
DATA_DAY = "2024-06-01"  # the data interval of the 2024-06-02 run: the day before
KEY = f"followanalytics/segment-devices/{DATA_DAY}.csv"  # under the destination_root below
EMAIL, PASSWORD = "demo@example.com", "demo-password"
EXPORT_SIZE = 2 * 1024 * 1024 + 321


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def info(message: str) -> None:
    print(f"    {message}", flush=True)


def airflow_env(home: Path, emulator_url: str, s3_url: str) -> dict[str, str]:
    fa_conn = {"conn_type": "followanalytics", "login": EMAIL, "password": PASSWORD, "host": emulator_url}
    aws_conn = {
        "conn_type": "aws",
        "login": "demo",
        "password": "demo-secret",
        "extra": {"endpoint_url": s3_url, "region_name": "us-east-1"},
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(home / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow' / 'airflow.db'}",
            "AIRFLOW__API_AUTH__JWT_SECRET": "local-demo-only-jwt-secret-0123456789",
            "AIRFLOW_CONN_FOLLOWANALYTICS_DEFAULT": json.dumps(fa_conn),
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(aws_conn),
            "AWS_DEFAULT_REGION": "us-east-1",
            "NO_PROXY": "*",
        }
    )
    return env


def airflow(args: list[str], env: dict[str, str], log: Path) -> int:
    binary = str(Path(sys.executable).with_name("airflow"))
    with log.open("a") as out:
        out.write(f"\n$ airflow {' '.join(args)}\n")
        out.flush()
        return subprocess.run([binary, *args], env=env, stdout=out, stderr=subprocess.STDOUT, check=False).returncode


def s3_client(s3_url: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=s3_url,
        region_name="us-east-1",
        aws_access_key_id="demo",
        aws_secret_access_key="demo-secret",
    )


def main(argv: list[str] | None = None) -> int:
    import contextlib
    import logging

    # The stand-ins of the checkout, after site-packages: the provider stays the installed one (the
    # wheel, when the install check runs the demo in a fresh environment).
    sys.path.append(str(ROOT))
    from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator, expected_export_sha256
    from standins.servers import moto_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME, help="folder for the Airflow home and the log")
    home = parser.parse_args(argv).home.resolve()
    started = time.monotonic()
    (home / "airflow").mkdir(parents=True, exist_ok=True)
    log = home / "airflow-dags-test.log"
    log.write_text("")

    step("Starting local stand-ins")
    emulator = FollowAnalyticsEmulator(
        email=EMAIL, password=PASSWORD, ready_after=1, export_size=EXPORT_SIZE, seed=7
    ).start()
    servers = contextlib.ExitStack()
    s3_url = servers.enter_context(moto_server())
    info(f"FollowAnalytics emulator: {emulator.url}  (export of {EXPORT_SIZE:,} bytes, ready after 1 poll)")
    info(f"local S3 (moto):          {s3_url}  bucket {BUCKET}")
    try:
        s3_client(s3_url).create_bucket(Bucket=BUCKET)
        env = airflow_env(home, emulator.url, s3_url)

        step("Preparing the Airflow metadata DB (SQLite)")
        if airflow(["db", "migrate"], env, log) != 0:
            info(f"airflow db migrate failed; see {log}")
            return 1
        info(f"AIRFLOW_HOME={home / 'airflow'}")

        airflow_version = importlib.metadata.version("apache-airflow")
        step(f"Running DAG {DAG_ID} for {LOGICAL_DATE} with `airflow dags test` (Airflow {airflow_version})")
        conf = json.dumps({"destination_root": f"s3://aws_default@{BUCKET}/followanalytics"})
        code = airflow(["dags", "test", DAG_ID, LOGICAL_DATE, "--conf", conf], env, log)
        states = _task_states(home)
        for task_id in ("export_to_lake",):
            info(f"task {task_id:<16} {states.get(task_id) or 'did not run'}")
        info(f"API calls seen by the emulator: {_api_calls(emulator)}")
        info(f"full Airflow log: {log}")
        if code != 0 or set(states.values()) != {"success"}:
            info(f"airflow dags test exited with {code}; the log above says which task failed and why")
            return 1

        step("Checking the object in S3")
        client = s3_client(s3_url)
        head = client.head_object(Bucket=BUCKET, Key=KEY)
        body = client.get_object(Bucket=BUCKET, Key=KEY)["Body"].read()
        info(f"s3://{BUCKET}/{KEY}: {head['ContentLength']:,} bytes, Content-Type {head.get('ContentType')}")
        for line in body.decode("utf-8").splitlines()[:4]:
            info(f"| {line}")
        digest = hashlib.sha256(body).hexdigest()
        expected = expected_export_sha256(EXPORT_SIZE, "csv", seed=7)
        if digest != expected:
            info(f"MISMATCH: sha256 {digest} != served {expected}")
            return 1
        info(f"sha256 {digest[:16]}... matches the file the emulator served, byte for byte")
    finally:
        emulator.stop()
        servers.close()
        info("servers stopped")
    step(f"Demo passed in {time.monotonic() - started:.0f}s")
    return 0


def _task_states(home: Path) -> dict[str, str]:
    """Task states of the latest run of the DAG, read from the demo's metadata DB."""
    import sqlite3

    with sqlite3.connect(home / "airflow" / "airflow.db") as db:
        rows = db.execute(
            "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = "
            "(SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1)",
            (DAG_ID, DAG_ID),
        ).fetchall()
    return {task_id: state for task_id, state in rows}


def _api_calls(emulator: Any) -> str:
    counts: dict[str, int] = {}
    for request in emulator.requests:
        counts[request.route] = counts.get(request.route, 0) + 1
    return ", ".join(f"{route}={count}" for route, count in sorted(counts.items()))


if __name__ == "__main__":
    sys.exit(main())
