"""A real Airflow deployment for tests: each component its own process, in a temporary AIRFLOW_HOME.

Airflow 3: ``api-server`` (the REST API, and the execution API that task processes report to),
``scheduler`` (LocalExecutor), ``dag-processor`` and ``triggerer``. Airflow 2.10: ``scheduler``
(SequentialExecutor on SQLite, which runs ``airflow tasks run`` from PATH) and ``triggerer``.
Stand-ins (the FollowAnalytics emulator behind a paced proxy, moto's S3) run as processes too.

Task states come from Airflow itself: the REST API on 3; on 2.10 its metadata DB, read directly (one
``airflow`` CLI process per poll cost seconds of the CPU the tasks need; the CLI only triggers runs).
Every process writes its output to a file under ``captured/`` (beside AIRFLOW_HOME), so that a test
can scan it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_followanalytics._compat import AIRFLOW_V_3
from airflow_provider_followanalytics.emulator.tls import make_test_certificates
from standins.processes import (
    StandInProcess,
    emulator_command,
    forward_proxy_command,
    moto_command,
    proxy_command,
)

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DAG_ID = "followanalytics_deployment"
#: The one-task form of the same pipeline (export operator with destination=, waiting in the worker).
ONE_TASK_DAG_ID = "followanalytics_one_task_deployment"
#: The one-task form deferred, over https through an authenticating proxy (connection followanalytics_network).
NETWORK_DAG_ID = "followanalytics_network_deployment"
DAG_IDS = (DAG_ID, ONE_TASK_DAG_ID, NETWORK_DAG_ID)
#: The https API's host name: only the forward proxy resolves it (to 127.0.0.1).
NETWORK_API_HOST = "fa-api.test"
PROXY_USER, PROXY_PASSWORD = "svc-airflow", "deploy-pr0xy-s3cret"
TERMINAL_RUN_STATES = ("success", "failed")


def free_port() -> int:
    """A port the OS says is free now (for Airflow settings that cannot take 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll ``condition()`` until it returns a truthy value, and return it; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


#: A started component or stand-in (output captured to a file, its own session).
Process = StandInProcess


@dataclass
class Processes:
    """Starts processes with their output captured to files, and stops them all."""

    captured: Path
    started: list[Process] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Process:
        process = Process(name, argv, self.captured / f"{name}-{len(self.started)}.log", env).start()
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.started):
            process.stop()


def _http(method: str, url: str, body: Any = None, timeout: float = 30, ca_file: Path | None = None) -> Any:
    import ssl

    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    context = None if ca_file is None else ssl.create_default_context(cafile=str(ca_file))
    with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


@dataclass
class NetworkStandIns:
    """An https emulator reached only through an authenticating forward proxy, each its own process."""

    emulator_url: str  # the emulator itself (https): its control endpoints
    api_url: str  # the connection's host: https://fa-api.test:PORT, which only the proxy resolves
    proxy_url: str  # without credentials
    proxy_record: Path
    ca_file: Path

    def control(self, method: str, action: str, body: Any = None) -> Any:
        return _http(method, f"{self.emulator_url}/_emulator/{action}", body, ca_file=self.ca_file)

    def record(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.proxy_record.read_text().splitlines() if line]

    def connection(self, email: str, password: str) -> str:
        """The ``AIRFLOW_CONN_*`` value: the private CA and the proxy with its credentials, as extras."""
        proxy = self.proxy_url.replace("http://", f"http://{PROXY_USER}:{PROXY_PASSWORD}@")
        extra = {"verify": str(self.ca_file), "proxies": {"https": proxy}}
        return json.dumps(
            {"conn_type": "followanalytics", "login": email, "password": password, "host": self.api_url, "extra": extra}
        )


def start_network_stand_ins(processes: Processes, email: str, password: str) -> NetworkStandIns:
    tls = make_test_certificates(processes.captured.parent / "certs", hostnames=(NETWORK_API_HOST, "127.0.0.1"))
    assert tls.ca_file is not None
    options = ("--certfile", tls.certfile, "--keyfile", tls.keyfile, "--cafile", tls.ca_file)
    emulator_url = processes.start("tls-emulator", emulator_command(email, password, *options)).wait_for_url(60)
    record = processes.captured / "forward-proxy.jsonl"
    argv = forward_proxy_command(record, f"{PROXY_USER}:{PROXY_PASSWORD}", {NETWORK_API_HOST: "127.0.0.1"})
    proxy_url = processes.start("forward-proxy", argv).wait_for_url(60)
    api_url = f"https://{NETWORK_API_HOST}:{emulator_url.rsplit(':', 1)[1]}"
    _http("POST", f"{emulator_url}/_emulator/config", {"public_url": api_url}, ca_file=tls.ca_file)
    return NetworkStandIns(emulator_url, api_url, proxy_url, record, tls.ca_file)


@dataclass
class StandIns:
    """The emulator (reached through a paced proxy) and moto's S3 server, each its own process."""

    emulator_url: str  # the emulator itself: its control endpoints
    api_url: str  # what Airflow's connection uses: the proxy in front of the emulator
    s3_url: str

    def control(self, method: str, action: str, body: Any = None) -> Any:
        return _http(method, f"{self.emulator_url}/_emulator/{action}", body)

    def configure(self, **settings: Any) -> None:
        self.control("POST", "config", settings)

    def add_fault(self, **fault: Any) -> None:
        self.control("POST", "faults", fault)

    def state(self) -> dict[str, Any]:
        return dict(self.control("GET", "state"))

    def s3(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_url,
            region_name="us-east-1",
            aws_access_key_id="deploy",
            aws_secret_access_key="deploy-secret",
        )


def start_stand_ins(processes: Processes, email: str, password: str, bytes_per_second: int) -> StandIns:
    s3_url = processes.start("moto", moto_command()).wait_for_url(60)
    emulator_url = processes.start("emulator", emulator_command(email, password)).wait_for_url(60)
    # Downloads at WAN speed, so that a test can kill a task in the middle of one.
    api_url = processes.start("proxy", proxy_command(emulator_url, bytes_per_second)).wait_for_url(60)
    # Callback URLs must name the proxy: the hook only polls its connection's host.
    _http("POST", f"{emulator_url}/_emulator/config", {"public_url": api_url})
    return StandIns(emulator_url, api_url, s3_url)


class Deployment:
    """Airflow's components as separate processes, and ways to read what Airflow says.

    :param home: the AIRFLOW_HOME (created); DAG files go to ``home / "dags"``.
    :param processes: where component processes are started and captured.
    :param connections: ``AIRFLOW_CONN_*`` variables for every component.
    """

    def __init__(self, home: Path, processes: Processes, connections: dict[str, str]) -> None:
        from cryptography.fernet import Fernet

        self.home = home
        self.processes = processes
        self.api_port = free_port()
        (home / "dags").mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update(connections)
        env.update(
            {
                "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",  # the 2.10 executor runs `airflow` from PATH
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
                # Encrypted as in production: connections and trigger kwargs are not stored in clear.
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor" if AIRFLOW_V_3 else "SequentialExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES_REGEXP": (
                    r"airflow\..*|airflow_provider_followanalytics\..*"
                ),
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                # Short heartbeats: a dead triggerer's triggers move to a new one within seconds.
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
                "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "2",
                "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "2",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "4",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API_AUTH__JWT_SECRET": "deployment-test-jwt-secret-0123456789abcdef",
                "AIRFLOW__API__SECRET_KEY": "deployment-test-secret-key",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__WEBSERVER__SECRET_KEY": "deployment-test-secret-key",
                "NO_PROXY": "*",
            }
        )
        self.env = env
        self.triggerer: Process | None = None

    # ------------------------------------------------------------------ components
    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """Run an ``airflow`` CLI command; its output is captured for the secret scan too."""
        result = subprocess.run(
            [str(BIN / "airflow"), *args], capture_output=True, text=True, env=self.env, timeout=timeout, cwd=ROOT
        )
        self.processes.captured.mkdir(parents=True, exist_ok=True)
        with (self.processes.captured / "cli.log").open("a") as log:
            log.write(f"$ airflow {' '.join(args)}\n{result.stdout}{result.stderr}\n")
        return result

    def component(self, name: str, *args: str) -> Process:
        return self.processes.start(name, [str(BIN / "airflow"), name, *args], self.env)

    def start(self, dag_files: list[Path]) -> None:
        migrated = self.cli("db", "migrate", timeout=600)
        assert migrated.returncode == 0, migrated.stdout[-3000:] + migrated.stderr[-3000:]
        for dag_file in dag_files:
            (self.home / "dags" / dag_file.name).write_bytes(dag_file.read_bytes())
        if AIRFLOW_V_3:
            api = self.component("api-server", "--port", str(self.api_port), "--host", "127.0.0.1")
            wait_until(lambda: self._api_answers(api), 120, "the API server to answer")
            self.component("dag-processor")
        self.component("scheduler", "--skip-serve-logs")
        self.start_triggerer()
        for dag_id in DAG_IDS:
            wait_until(
                functools.partial(self._unpause, dag_id), 180, f"DAG {dag_id} to be parsed and unpaused", interval=0.5
            )

    def start_triggerer(self) -> Process:
        self.triggerer = self.component("triggerer", "--skip-serve-logs")
        return self.triggerer

    def _api_answers(self, api: Process) -> bool:
        if api.popen.poll() is not None:
            raise AssertionError(f"api-server exited:\n{api.text()[-3000:]}")
        try:
            return self.api("GET", "/api/v2/monitor/health") is not None
        except (OSError, urllib.error.URLError):
            return False

    def _unpause(self, dag_id: str) -> bool:
        if AIRFLOW_V_3:
            try:
                self.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
            except urllib.error.HTTPError as exc:
                if exc.code == 404:  # not parsed yet
                    return False
                raise
            return True
        # DAGs are created unpaused here: wait until the scheduler's parse wrote the DAG's row.
        rows = self._db("SELECT is_paused FROM dag WHERE dag_id = ?", dag_id)
        return bool(rows) and not rows[0][0]

    # ------------------------------------------------------------------ what Airflow says
    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call the Airflow 3 REST API (all users are admins in this deployment)."""
        return _http(method, f"http://127.0.0.1:{self.api_port}{path}", body)

    def trigger(self, run_id: str, logical_date: str, conf: dict[str, Any], dag_id: str = DAG_ID) -> None:
        if AIRFLOW_V_3:
            self.api(
                "POST",
                f"/api/v2/dags/{dag_id}/dagRuns",
                {"dag_run_id": run_id, "logical_date": logical_date, "conf": conf},
            )
            return
        result = self.cli("dags", "trigger", dag_id, "-r", run_id, "-e", logical_date, "-c", json.dumps(conf))
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    def task_states(self, run_id: str, dag_id: str = DAG_ID) -> dict[str, str | None]:
        if AIRFLOW_V_3:
            answer = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
            return {ti["task_id"]: ti["state"] for ti in answer["task_instances"]}
        rows = self._db("SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?", dag_id, run_id)
        return {task_id: state or None for task_id, state in rows}

    def run_state(self, run_id: str, dag_id: str = DAG_ID) -> str:
        if AIRFLOW_V_3:
            return str(self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"])
        ((state,),) = self._db("SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", dag_id, run_id)
        return str(state)

    def _db(self, query: str, *args: str) -> list[tuple[Any, ...]]:
        """Read Airflow 2's metadata DB (SQLite), read-only, waiting out the scheduler's writes."""
        uri = f"file:{self.home / 'airflow.db'}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
            return db.execute(query, args).fetchall()

    def wait_for_task_state(self, run_id: str, task_id: str, state: str, timeout: float, dag_id: str = DAG_ID) -> None:
        wait_until(
            lambda: self.task_states(run_id, dag_id).get(task_id) == state,
            timeout,
            f"{task_id} of {run_id} to be {state}",
            interval=0.5,
        )

    def wait_for_run(self, run_id: str, timeout: float, dag_id: str = DAG_ID) -> str:
        """Wait until the run ends; return its state as Airflow reports it."""
        state = wait_until(
            lambda: (s := self.run_state(run_id, dag_id)) in TERMINAL_RUN_STATES and s,
            timeout,
            f"run {run_id} to end",
            interval=0.5,
        )
        return str(state)

    def wait_for_executor_event(self, run_id: str, task_id: str, timeout: float) -> None:
        """Wait until the scheduler has heard from the executor that the task's process ended.

        A trigger that fires before the scheduler processed the deferring process's exit makes
        Airflow 3.3 see "finished with state success, but the task instance's state attribute is
        queued" and retry the task: an Airflow race, not something a provider can prevent.
        """

        def heard() -> bool:
            return any(
                "Received executor event" in line and f"task_id='{task_id}'" in line and f"run_id='{run_id}'" in line
                for p in self.processes.started
                if p.name == "scheduler"
                for line in p.text().splitlines()
            )

        wait_until(heard, timeout, f"the scheduler to hear that {task_id} of {run_id} deferred")

    def task_logs(self, run_id: str, task_id: str, dag_id: str = DAG_ID) -> dict[int, str]:
        """The task's log of each attempt, as Airflow wrote it under AIRFLOW_HOME/logs."""
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        attempts = {}
        for path in folder.glob("attempt=*.log"):  # attempt=1.log.trigger.<id>.log is the triggerer's part
            match = re.fullmatch(r"attempt=(\d+)\.log", path.name)
            if match:
                attempts[int(match.group(1))] = path.read_text(errors="replace")
        return dict(sorted(attempts.items()))

    def trigger_logs(self, run_id: str, task_id: str, dag_id: str = DAG_ID) -> str:
        """What the triggerer wrote for the task (Airflow 3 keeps it beside the task's log)."""
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        return "".join(path.read_text(errors="replace") for path in sorted(folder.glob("attempt=*.log.trigger.*")))
