"""Process plumbing of the parent side: measuring workers, and servers through ``standins/processes.py``.

Servers run in their own processes so that they never share a GIL with what is measured; they are
started by the one launcher the tests and the deployment harness use too
(:class:`standins.processes.StandInProcess`), with their output in ``.bench/logs/server-<name>.log``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
from typing import TYPE_CHECKING, Any

from benchmarks._common import BENCH_DIR, EMAIL, LOG_DIR, PASSWORD, RESULT_PREFIX, ROOT, BenchError
from standins.processes import StandInProcess, emulator_command, gcs_command, moto_command, proxy_command

if TYPE_CHECKING:
    from collections.abc import Sequence


def worker_env(**extra: str) -> dict[str, str]:
    """Environment of a worker or server: a private AIRFLOW_HOME, quiet logs, no proxies.

    Connections are passed as ``AIRFLOW_CONN_*`` variables in ``extra``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_", "STORAGE_EMULATOR"))}
    home = BENCH_DIR / "airflow-home"
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "NO_PROXY": "*",
            "no_proxy": "*",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def fa_conn_env(emulator_url: str) -> dict[str, str]:
    """``AIRFLOW_CONN_FOLLOWANALYTICS_DEFAULT`` for the emulator (generous timeout, default retries)."""
    conn = {
        "conn_type": "followanalytics",
        "login": EMAIL,
        "password": PASSWORD,
        "host": emulator_url,
        "extra": {"timeout": 60},
    }
    return {"AIRFLOW_CONN_FOLLOWANALYTICS_DEFAULT": json.dumps(conn)}


def http_conn_env(emulator_url: str) -> dict[str, str]:
    """``AIRFLOW_CONN_HTTP_DEFAULT`` for the stock HTTP operators and triggers (the anchors)."""
    parts = urllib.parse.urlsplit(emulator_url)
    conn = {"conn_type": "http", "host": parts.hostname, "port": parts.port, "schema": parts.scheme}
    return {"AIRFLOW_CONN_HTTP_DEFAULT": json.dumps(conn)}


def module_command(module: str, *args: object) -> list[str]:
    """The command of a worker: ``python -m <module> worker <args>``."""
    return [sys.executable, "-m", module, "worker", *map(str, args)]


class Worker:
    """A measuring worker: a fresh interpreter running ``command`` (see :func:`module_command`).

    stderr goes to ``.bench/logs/<log_name>.log``; :meth:`result` waits and returns the JSON
    the worker printed after :data:`RESULT_PREFIX`.
    """

    def __init__(self, command: Sequence[str], *, env: dict[str, str], log_name: str, timeout: float = 600.0) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"{log_name}.log"
        self.timeout = timeout
        self.name = log_name
        self._log = self.log_path.open("w")
        self._proc = subprocess.Popen(
            list(command), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=self._log, text=True
        )

    def result(self) -> dict[str, Any]:
        """Wait for the worker and return its result; raise :class:`BenchError` if it has none."""
        try:
            out, _ = self._proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            out, _ = self._proc.communicate()
            raise BenchError(f"worker {self.name} timed out after {self.timeout:.0f}s") from None
        finally:
            self._log.close()
        for line in reversed(out.splitlines()):
            if line.startswith(RESULT_PREFIX):
                result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
                return result
        tail = self.log_path.read_text(errors="replace").strip().splitlines()[-5:]
        raise BenchError(
            f"worker {self.name} exited with {self._proc.returncode} and no result "
            f"(log {self.log_path}): {' | '.join(tail)}"
        )


def run_worker(
    module: str, args: Sequence[object], *, env: dict[str, str], log_name: str, timeout: float = 600.0
) -> dict[str, Any]:
    """Run ``python -m <module> worker <args>`` to completion and return its result."""
    return Worker(module_command(module, *args), env=env, log_name=log_name, timeout=timeout).result()


class Server(StandInProcess):
    """A server of the benchmarks: a :class:`StandInProcess` whose failure to start is a :class:`BenchError`."""

    def __init__(self, name: str, argv: Sequence[str]) -> None:
        super().__init__(name, argv, LOG_DIR / f"server-{name}.log", worker_env())

    def __enter__(self) -> Server:
        """Start the server and wait (up to 120 s) for its ``listening on`` URL."""
        try:
            super().__enter__()
        except AssertionError as exc:  # the launcher's way to say "it did not come up"
            raise BenchError(f"{self.name} server did not start (log {self.output}): {exc}") from None
        return self


def emulator_process(export_size: int = 4096, name: str = "emulator") -> Server:
    """The FollowAnalytics emulator, run the way a user runs it (``python -m ...emulator``)."""
    return Server(name, emulator_command(EMAIL, PASSWORD, "--export-size", export_size))


def moto_process() -> Server:
    """moto's S3 server in its own process."""
    return Server("moto", moto_command())


def proxy_process(target_url: str, bytes_per_second: float) -> Server:
    """A TCP proxy to ``target_url`` that paces downloads to ``bytes_per_second`` (a WAN stand-in)."""
    return Server("proxy", proxy_command(target_url, bytes_per_second))


def gcs_process() -> Server:
    """gcp-storage-emulator (in memory) in its own process."""
    return Server("gcs", gcs_command())
