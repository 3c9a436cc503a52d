"""A real StatsD listener (UDP on 127.0.0.1, port 0) and a ``dag.test()`` run that sends to it.

Airflow sets its ``Stats`` up from ``[metrics]`` once per process, so the run happens in a child
interpreter (``tests.lineage.run_dag``) started with ``statsd_on`` and this listener's port in its
environment; ``statsd_influxdb_enabled`` makes StatsD carry the tags in the name
(``fa_test.followanalytics.logins,client=sync:1|c``), so the test can read them.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.dagrun import DagRunResult, run_dag_in_child

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "fa_test"
_END = b"statsd-listener-end"


@dataclass(frozen=True)
class Metric:
    """One StatsD line: ``name[,tag=value...]:value|kind``, the user's prefix taken off the name."""

    name: str
    tags: dict[str, str]
    value: float
    kind: str  # c (counter), ms (timer), g (gauge)

    @classmethod
    def parse(cls, line: str) -> Metric:
        head, _, tail = line.rpartition(":")
        value, _, kind = tail.partition("|")
        name, *pairs = head.split(",")
        tags = dict(pair.split("=", 1) for pair in pairs)
        return cls(name.removeprefix(f"{PREFIX}."), tags, float(value), kind.split("|")[0])


class StatsdListener:
    """Receives every UDP packet sent to ``port`` in a thread until :meth:`stop`."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.packets: list[bytes] = []
        self._thread = threading.Thread(target=self._receive, name="statsd-listener", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while True:
            packet = self._sock.recv(65535)
            if packet == _END:
                return
            self.packets.append(packet)

    def stop(self) -> list[Metric]:
        """Stop after every packet sent so far (the end marker queues behind them); return the metrics."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(_END, ("127.0.0.1", self.port))
        self._thread.join(timeout=10)
        assert not self._thread.is_alive(), "the StatsD listener did not see its end marker"
        self._sock.close()
        lines = [line for packet in self.packets for line in packet.decode().splitlines() if line]
        return [Metric.parse(line) for line in lines]


@dataclass
class StatsdRun:
    """A DAG run's result, every metric it sent (in order), the raw packets and the child's output."""

    result: DagRunResult
    metrics: list[Metric]
    packets: list[bytes] = field(repr=False)
    output: str = field(repr=False, default="")

    def named(self, name: str) -> list[Metric]:
        """The metrics called ``followanalytics.<name>``."""
        return [metric for metric in self.metrics if metric.name == f"followanalytics.{name}"]

    def counts(self, name: str, *tags: str) -> dict[tuple[str, ...], float]:
        """Sum of counter ``followanalytics.<name>`` by the values of ``tags``."""
        sums: dict[tuple[str, ...], float] = {}
        for metric in self.named(name):
            key = tuple(metric.tags.get(tag, "") for tag in tags)
            sums[key] = sums.get(key, 0) + metric.value
        return sums


def statsd_env(port: int) -> dict[str, str]:
    """The ``[metrics]`` settings that make Airflow send StatsD (tags in the name) to 127.0.0.1:``port``."""
    return {
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(port),
        "AIRFLOW__METRICS__STATSD_PREFIX": PREFIX,
        "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True",
    }


def run_with_statsd(module: str, attribute: str, env: dict[str, str], timeout: float = 240.0) -> StatsdRun:
    """Run the DAG ``module.attribute`` with ``dag.test()`` in a child process that sends StatsD here."""
    listener = StatsdListener()
    try:
        result, output = run_dag_in_child(module, attribute, {**env, **statsd_env(listener.port)}, timeout)
    finally:
        metrics = listener.stop()
    return StatsdRun(result=result, metrics=metrics, packets=listener.packets, output=output)


def connection_env(conn: dict[str, Any]) -> dict[str, str]:
    """``followanalytics_default`` as the environment variable the child reads."""
    return {"AIRFLOW_CONN_FOLLOWANALYTICS_DEFAULT": json.dumps(conn)}
