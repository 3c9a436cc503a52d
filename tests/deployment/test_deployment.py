"""The provider in a real multi-process Airflow deployment (see _deployment.py).

Each test triggers the pipeline (export -> deferrable sensor -> S3) as a user would and reads
the outcome from Airflow (REST API on 3, CLI on 2) and from the stand-ins. Faults are real:
SIGKILL of the triggerer while a sensor is deferred, SIGKILL of the task process in the middle of
a transfer, a callback that turns to 400 during the wait.
"""

from __future__ import annotations

import hashlib
import importlib.util
import signal
import sqlite3
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil
import pytest

from airflow_provider_followanalytics._compat import AIRFLOW_V_3
from airflow_provider_followanalytics.emulator import expected_export_sha256
from tests.deployment._deployment import (
    NETWORK_API_HOST,
    NETWORK_DAG_ID,
    ONE_TASK_DAG_ID,
    PROXY_PASSWORD,
    Deployment,
    NetworkStandIns,
    StandIns,
    wait_until,
)
from tests.deployment.conftest import BUCKET

pytestmark = [pytest.mark.deployment, pytest.mark.timeout(900)]
#: Airflow 3.3+ keeps a task's state across tries (task_state_store): a retry reuses its export.
DURABLE_STATE = AIRFLOW_V_3 and importlib.util.find_spec("airflow.sdk.bases.resumablejobmixin") is not None
TASKS = ("start_export", "wait_for_export", "upload_to_s3")


def _run_id(name: str) -> str:
    return f"{name}_{uuid.uuid4().hex[:8]}"


def _start(deployment: Deployment, stand_ins: StandIns, name: str, dag_id: str | None = None, **config: Any) -> str:
    stand_ins.control("POST", "reset")
    stand_ins.configure(**{"never_ready": False, "ready_after": 0, "export_size": 1 << 20, "seed": 0, **config})
    run_id = _run_id(name)
    # A logical date of its own: Airflow keeps one run per DAG and logical date.
    logical_date = datetime.now(timezone.utc).isoformat()
    deployment.trigger(run_id, logical_date, {"bucket": BUCKET}, *(() if dag_id is None else (dag_id,)))
    return run_id


def _object(stand_ins: StandIns, run_id: str) -> bytes:
    return bytes(stand_ins.s3().get_object(Bucket=BUCKET, Key=f"followanalytics/{run_id}.csv")["Body"].read())


def _callback_polls(stand_ins: StandIns) -> int:
    requests = stand_ins.state()["requests"]
    return int(requests.get("callback", 0)) + int(requests.get("download", 0))


def _wait_deferred(deployment: Deployment, stand_ins: StandIns, run_id: str) -> None:
    # One poll from the worker before deferring, then the triggerer's: the polls go on while the
    # task is deferred (watched on the emulator, which is cheap, then confirmed by Airflow once).
    wait_until(lambda: _callback_polls(stand_ins) >= 3, 180, "the triggerer to poll the callback URL")
    deployment.wait_for_task_state(run_id, "wait_for_export", "deferred", 60)
    deployment.wait_for_executor_event(run_id, "wait_for_export", 60)
    polls = _callback_polls(stand_ins)
    wait_until(lambda: _callback_polls(stand_ins) > polls, 60, "another poll while deferred")


def _tries(deployment: Deployment, run_id: str) -> dict[str, int]:
    """How many attempts each task made, from the task logs Airflow wrote (both versions)."""
    return {task: len(deployment.task_logs(run_id, task)) for task in TASKS}


def test_a_triggerer_killed_mid_wait_is_replaced_and_the_run_succeeds(
    deployment: Deployment, stand_ins: StandIns
) -> None:
    run_id = _start(deployment, stand_ins, "triggerer_kill", never_ready=True, export_size=3 * 1024 * 1024 + 7)
    _wait_deferred(deployment, stand_ins, run_id)

    old = deployment.triggerer
    assert old is not None
    old.kill_group(signal.SIGKILL)  # the triggerer and its trigger runner, with no chance to clean up
    stand_ins.configure(never_ready=False)  # the export gets ready while no triggerer runs
    polls_before_restart = _callback_polls(stand_ins)
    new = deployment.start_triggerer()

    assert deployment.wait_for_run(run_id, 240) == "success", deployment.task_states(run_id)
    assert set(deployment.task_states(run_id).values()) == {"success"}
    assert _tries(deployment, run_id) == dict.fromkeys(TASKS, 1)  # no task retried
    assert stand_ins.state()["requests"]["export"] == 1
    assert _callback_polls(stand_ins) > polls_before_restart  # the new triggerer took the wait over
    assert new.popen.poll() is None
    body = _object(stand_ins, run_id)
    assert hashlib.sha256(body).hexdigest() == expected_export_sha256(3 * 1024 * 1024 + 7, "csv", seed=0)


def _process_connected_to(url: str) -> psutil.Process | None:
    """The process (not this one) holding a TCP connection to ``url``'s port."""
    port = int(url.rsplit(":", 1)[1])
    mine = psutil.Process().pid
    for conn in psutil.net_connections(kind="tcp"):
        if conn.raddr and conn.raddr.port == port and conn.pid and conn.pid != mine:
            return psutil.Process(conn.pid)
    return None


def _uploading_process(stand_ins: StandIns) -> psutil.Process | None:
    """The process that holds a connection to moto's S3 port: the task doing the transfer."""
    return _process_connected_to(stand_ins.s3_url)


def _pending_uploads(stand_ins: StandIns) -> list[dict[str, Any]]:
    return list(stand_ins.s3().list_multipart_uploads(Bucket=BUCKET).get("Uploads", []))


def _uploading_parts_of(stand_ins: StandIns, key: str) -> psutil.Process | None:
    """The task process once at least one part of ``key`` is in S3: the upload is well under way.

    Not merely a pending upload: the destination's write check starts and aborts one of the key
    before the export request, and a process killed then has not started its export yet.
    """
    s3 = stand_ins.s3()
    for upload in [u for u in _pending_uploads(stand_ins) if u["Key"] == key]:
        try:
            parts = s3.list_parts(Bucket=BUCKET, Key=key, UploadId=upload["UploadId"])
        except s3.exceptions.NoSuchUpload:
            continue
        if parts.get("Parts"):
            return _uploading_process(stand_ins)
    return None


def test_a_task_killed_mid_transfer_is_retried_into_one_exact_object(
    deployment: Deployment, stand_ins: StandIns
) -> None:
    size = 96 * 1024 * 1024 + 5
    run_id = _start(deployment, stand_ins, "task_kill", export_size=size)
    key = f"followanalytics/{run_id}.csv"

    victim = wait_until(lambda: _uploading_parts_of(stand_ins, key), 240, "the transfer to upload parts", interval=0.05)
    victim.kill()  # SIGKILL: the process cannot abort its own multipart upload
    killed_at = time.monotonic()

    assert deployment.wait_for_run(run_id, 300) == "success", deployment.task_states(run_id)
    assert _tries(deployment, run_id) == {"start_export": 1, "wait_for_export": 1, "upload_to_s3": 2}
    assert stand_ins.state()["requests"]["export"] == 1
    assert hashlib.sha256(_object(stand_ins, run_id)).hexdigest() == expected_export_sha256(size, "csv", seed=0)
    # The retry aborted the upload its killed attempt left open: nothing is pending for the key.
    assert [u for u in _pending_uploads(stand_ins) if u["Key"] == key] == []
    # Margin: the retry starts after a 1 s retry_delay and the scheduler's next loop, then takes a 6 s
    # paced download; 300 s only catches a run that hangs until Airflow's own timeouts.
    assert time.monotonic() - killed_at < 300


def _assert_one_task_retried_into_one_export(
    deployment: Deployment, stand_ins: StandIns, run_id: str, size: int
) -> None:
    assert deployment.wait_for_run(run_id, 300, ONE_TASK_DAG_ID) == "success"

    def retry_log_complete() -> dict[int, str] | None:
        # The run can be "success" before the supervisor has written the retry's log to the end:
        # wait for the task's last line ("Uploaded ... bytes"), which follows the reuse line.
        logs = deployment.task_logs(run_id, "export_to_lake", ONE_TASK_DAG_ID)
        return logs if "Uploaded " in logs.get(2, "") else None

    logs = wait_until(retry_log_complete, 60, "the retry's task log to be written")
    assert list(logs) == [1, 2]
    assert stand_ins.state()["requests"]["export"] == (1 if DURABLE_STATE else 2)
    assert ("Reusing the export an earlier try started" in logs[2]) == DURABLE_STATE
    key = f"one-task/{run_id}.csv"
    body = bytes(stand_ins.s3().get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert hashlib.sha256(body).hexdigest() == expected_export_sha256(size, "csv", seed=0)
    assert [u for u in _pending_uploads(stand_ins) if u["Key"] == key] == []  # nothing partial left


def test_a_one_task_export_killed_mid_stream_retries_with_the_same_export(
    deployment: Deployment, stand_ins: StandIns
) -> None:
    size = 64 * 1024 * 1024 + 3  # 4 s through the paced proxy: long enough to be killed mid-stream
    run_id = _start(deployment, stand_ins, "one_task_stream_kill", ONE_TASK_DAG_ID, export_size=size)

    key = f"one-task/{run_id}.csv"
    wait_until(lambda: _uploading_parts_of(stand_ins, key), 240, "the one-task export to stream", interval=0.05).kill()

    _assert_one_task_retried_into_one_export(deployment, stand_ins, run_id, size)


def test_a_one_task_export_killed_while_it_waits_retries_with_the_same_export(
    deployment: Deployment, stand_ins: StandIns
) -> None:
    size = 1 << 20
    run_id = _start(deployment, stand_ins, "one_task_wait_kill", ONE_TASK_DAG_ID, never_ready=True, export_size=size)
    wait_until(lambda: _callback_polls(stand_ins) >= 2, 180, "the task to poll its export from the worker")
    # The next poll hangs at the emulator, so the polling process holds its connection while we look.
    stand_ins.add_fault(route="callback", kind="delay", delay=20, count=1)
    waiting = wait_until(lambda: _process_connected_to(stand_ins.api_url), 60, "the polling task's process")
    waiting.kill()  # SIGKILL while it waits in the worker
    stand_ins.configure(never_ready=False)

    _assert_one_task_retried_into_one_export(deployment, stand_ins, run_id, size)


def test_a_callback_that_turns_400_while_deferred_fails_the_run_at_once(
    deployment: Deployment, stand_ins: StandIns
) -> None:
    run_id = _start(deployment, stand_ins, "expired", never_ready=True)
    _wait_deferred(deployment, stand_ins, run_id)
    message = f"The export link expired ({uuid.uuid4().hex[:6]})"
    body = f'{{"success": false, "status": 400, "error_message": "{message}"}}'
    stand_ins.add_fault(route="callback", kind="status", status=400, count=1000, body=body)
    expired_at = time.monotonic()

    assert deployment.wait_for_run(run_id, 120) == "failed"
    # Margin: the next poll (every 1 s) gets the 400 and the run fails within seconds; waiting out the
    # sensor's 300 s timeout would be five times the bound.
    assert time.monotonic() - expired_at < 60
    states = deployment.task_states(run_id)
    assert states["wait_for_export"] == "failed"
    assert states["upload_to_s3"] in ("upstream_failed", None)

    def log_written() -> dict[int, str] | None:
        # The run can end before the supervisor has written the task's log to the end: wait for its message.
        logs = deployment.task_logs(run_id, "wait_for_export")
        return logs if message in logs.get(1, "") else None

    logs = wait_until(log_written, 60, "the failed task's log to be written")
    assert list(logs) == [1]  # retries=2, and none was made: the link cannot come back
    assert message in logs[1]
    assert "HTTP 400" in logs[1]


def _files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


def test_the_worker_and_the_triggerer_reach_the_https_api_only_through_the_proxy(
    deployment: Deployment, stand_ins: StandIns, network: NetworkStandIns
) -> None:
    # The API's name resolves only in the proxy: every request, the triggerer's polls included, went
    # through it (and trusted the private CA of the connection's extras), or the run could not succeed.
    network.control("POST", "config", {"ready_after": 3, "export_size": 256 * 1024 + 3})
    run_id = _run_id("network")
    deployment.trigger(run_id, datetime.now(timezone.utc).isoformat(), {"bucket": BUCKET}, NETWORK_DAG_ID)

    assert deployment.wait_for_run(run_id, 240, NETWORK_DAG_ID) == "success"
    body = stand_ins.s3().get_object(Bucket=BUCKET, Key=f"network/{run_id}.csv")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == expected_export_sha256(256 * 1024 + 3, "csv", seed=0)
    requests = network.control("GET", "state")["requests"]
    assert requests["export"] == 1
    assert requests["callback"] + requests.get("download", 0) >= 4  # 3 answers 202, then ready, then the download
    record = network.record()
    assert {(line["method"], line["target"], line["authorized"], line["status"]) for line in record} == {
        ("CONNECT", f"{NETWORK_API_HOST}:{network.api_url.rsplit(':', 1)[1]}", True, 200)
    }
    # Where the settings came from, as the worker's and the triggerer's hooks logged it.
    proxy = network.proxy_url.replace("http://", "http://***@")
    where = f"proxy {proxy} (extra proxies), CA {network.ca_file} (extra verify)"
    worker_log = "".join(deployment.task_logs(run_id, "export_to_lake", NETWORK_DAG_ID).values())
    assert where in worker_log
    triggerer_log = deployment.trigger_logs(run_id, "export_to_lake", NETWORK_DAG_ID) + "".join(
        path.read_text(errors="replace") for path in deployment.processes.captured.glob("triggerer-*.log")
    )
    assert where in triggerer_log
    assert PROXY_PASSWORD not in worker_log + triggerer_log


def test_no_secret_anywhere_airflow_writes(deployment: Deployment, stand_ins: StandIns) -> None:
    # A pipeline that defers, polls several times and logs in again mid-wait (more secrets handed out).
    run_id = _start(deployment, stand_ins, "secrets", ready_after=4, token_max_uses=3)
    # And the one-task form (its durable state, its waits in the worker), against the same emulator.
    one_task_run = _run_id("secrets_one_task")
    deployment.trigger(one_task_run, datetime.now(timezone.utc).isoformat(), {"bucket": BUCKET}, ONE_TASK_DAG_ID)
    assert deployment.wait_for_run(run_id, 240) == "success", deployment.task_states(run_id)
    assert deployment.wait_for_run(one_task_run, 240, ONE_TASK_DAG_ID) == "success"
    secrets = stand_ins.control("GET", "secrets")
    export_tokens = secrets["export_tokens"]
    never = [secrets["password"], *secrets["auth_tokens"], *secrets["api_keys"], PROXY_PASSWORD]
    assert len(secrets["auth_tokens"]) >= 2
    assert export_tokens
    assert len(secrets["api_keys"]) == 4

    # The metadata DB holds the callback URL in XCom (the contract between tasks), nothing else secret.
    database = deployment.home / "airflow.db"
    database_files = set(deployment.home.glob("airflow.db*"))  # with its -wal and -shm files
    scanned = {path: path.read_bytes() for path in _files_under(deployment.home) if path not in database_files}
    scanned.update({path: path.read_bytes() for path in _files_under(deployment.processes.captured)})
    assert len(scanned) > 10, sorted(scanned)
    leaks = [
        f"{path}: {'export token' if secret in export_tokens else 'secret'} {secret[:4]}..."
        for path, content in scanned.items()
        for secret in [*never, *export_tokens]
        if secret.encode() in content
    ]
    for path in database_files:
        raw = path.read_bytes()
        leaks += [f"{path}: secret {secret[:4]}..." for secret in never if secret.encode() in raw]
    with sqlite3.connect(database) as db:
        rendered = " ".join(str(row) for row in db.execute("SELECT * FROM rendered_task_instance_fields"))
    leaks += [f"rendered fields: export token {t[:4]}..." for t in export_tokens if t in rendered]
    assert leaks == []
    # The scan saw what it guards: the triggerer logged the fired event, with the URL redacted.
    trigger_output = deployment.trigger_logs(run_id, "wait_for_export") + "".join(
        path.read_text(errors="replace") for path in deployment.processes.captured.glob("triggerer-*.log")
    )
    assert "export_token=***" in trigger_output
    assert "wait_for_export" in rendered
    assert "export_to_lake" in rendered  # the one-task run's fields were scanned too


@pytest.mark.skipif(not AIRFLOW_V_3, reason="the REST API of Airflow 3's API server")
def test_the_api_server_serves_the_connection_form(deployment: Deployment) -> None:
    # The UI fetches it from /ui/connections/hook_meta (Airflow 3.3; not under /api/v2).
    hooks = {hook["connection_type"]: hook for hook in deployment.api("GET", "/ui/connections/hook_meta")}
    form = hooks["followanalytics"]
    assert form["hook_name"] == "FollowAnalytics"
    standard = form["standard_fields"]
    assert standard["login"]["title"] == "Email"
    assert standard["host"]["title"] == "API base URL"
    assert standard["port"]["hidden"] is True
    assert standard["url_schema"]["hidden"] is True
    extra = {"timeout", "max_retries", "retry_delay", "allow_insecure_http", "verify", "proxies"}
    assert set(form["extra_fields"]) == extra
    assert form["extra_fields"]["proxies"]["schema"]["title"] == "Proxies (JSON, as in requests)"
    assert form["extra_fields"]["timeout"]["schema"]["title"] == "Request timeout (seconds)"
