"""The parent side of the transfer benchmarks: connections, and interleaved rounds of measuring workers.

Each measurement is one ``python -m benchmarks.transfers worker ...`` (see ``transfers.py``);
:class:`Runner` starts it against one emulator and one store and adds the servers' CPU seconds
over its run, and :func:`run_side_by_side` interleaves the kinds round after round: the machine
is shared, and a median of interleaved rounds is far steadier than one try.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from typing import TYPE_CHECKING, Any, Protocol

from benchmarks._common import ROOT, WORK_DIR, GiB, MiB, median, size_label
from benchmarks._processes import run_worker

if TYPE_CHECKING:
    from collections.abc import Sequence

#: The last commit with the hand-written S3 multipart upload and GCS upload thread: measured as
#: extra "hand-written" rows next to ours (the libraries' managed uploads). ``FA_BENCH_HANDWRITTEN=``
#: (empty) skips them.
HANDWRITTEN_COMMIT = os.environ.get("FA_BENCH_HANDWRITTEN", "788956e")


class Measured(Protocol):
    """A server whose CPU the runs record (a :class:`~benchmarks._processes.Server`, Azurite, a folder)."""

    url: str

    def cpu_seconds(self) -> float | None:
        """CPU seconds used so far, or None when unknown."""


class LocalFolder:
    """The local destination folder as a 'server' (no process: the worker writes itself)."""

    url = str(WORK_DIR / "local-store")

    def cpu_seconds(self) -> float | None:
        """No process of its own: nothing to add to the worker's CPU."""
        return 0.0


def aws_conn_env(s3_url: str) -> dict[str, str]:
    """``AIRFLOW_CONN_AWS_DEFAULT`` for moto."""
    conn = {
        "conn_type": "aws",
        "login": "bench",
        "password": "bench-secret",
        "extra": {"endpoint_url": s3_url, "region_name": "us-east-1"},
    }
    return {"AIRFLOW_CONN_AWS_DEFAULT": json.dumps(conn)}


def gcp_conn_env(gcs_url: str) -> dict[str, str]:
    """``AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT`` (anonymous) and ``STORAGE_EMULATOR_HOST`` for the GCS emulator."""
    conn = {"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True, "project": "bench-project"}}
    return {"AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": json.dumps(conn), "STORAGE_EMULATOR_HOST": gcs_url}


def handwritten_env() -> dict[str, str]:
    """``BENCH_HANDWRITTEN_PATH``: the package as of :data:`HANDWRITTEN_COMMIT` (``git archive``), or nothing."""
    if not HANDWRITTEN_COMMIT:
        return {}
    target = WORK_DIR / f"handwritten-{HANDWRITTEN_COMMIT}"
    if not (target / "airflow_provider_followanalytics").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", HANDWRITTEN_COMMIT, "airflow_provider_followanalytics"],
            cwd=ROOT,
            capture_output=True,
            check=False,
        )
        if archive.returncode != 0:
            return {}
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return {"BENCH_HANDWRITTEN_PATH": str(target)}


def mib_s(result: dict[str, Any]) -> float:
    """Throughput of one measurement in MiB/s."""
    return float(result["bytes"]) / MiB / result["seconds"]


def cpu_text(result: dict[str, Any]) -> str:
    """CPU s per GiB of each process of a measurement, ``worker+emulator+store[+proxy]``."""
    return "+".join("?" if part is None else f"{part:.1f}" for part in result["cpu_per_gib"].values())


def busy_text(result: dict[str, Any]) -> str:
    """How many cores the processes of a measurement kept busy, on average."""
    return f"{result['cores_busy']:.2f}"


def rounds_text(values: Sequence[float]) -> str:
    """The rounds of a throughput, ``84/86/90``."""
    return "/".join(f"{v:.0f}" for v in values)


class Runner:
    """Runs measuring workers against one emulator and one store, and records the servers' CPU."""

    def __init__(
        self, store: str, emu: Measured, server: Measured, env: dict[str, str], proxy: Measured | None = None
    ) -> None:
        self.store, self.emu, self.server, self.env = store, emu, server, env
        self.servers = {"emulator": emu, "store": server, **({"proxy": proxy} if proxy else {})}

    def measure(self, kind: str, size: int, label: str = "") -> dict[str, Any]:
        """One worker of ``kind`` (see ``transfers.KINDS``) moving ``size`` bytes."""
        before = {name: server.cpu_seconds() for name, server in self.servers.items()}
        result = run_worker(
            "benchmarks.transfers",
            [self.store, kind, size, self.emu.url, self.server.url],
            env=self.env,
            log_name=f"{self.store}-{kind}-{size // MiB}MiB{label}",
        )
        # CPU by process (the servers were idle outside this worker's transfers): shows whether
        # the machine's cores, rather than the code, set the speed.
        spent: dict[str, float | None] = {"worker": result["cpu"]}
        for name, server in self.servers.items():
            after, start = server.cpu_seconds(), before[name]
            spent[name] = None if after is None or start is None else after - start
        result["cpu_per_gib"] = {name: None if v is None else v / (size / GiB) for name, v in spent.items()}
        result["cores_busy"] = sum(v or 0.0 for v in spent.values()) / result["seconds"]
        return result


@dataclasses.dataclass
class Rounds:
    """What interleaved rounds measured at one size: every result of each kind, in round order."""

    size: int
    by_kind: dict[str, list[dict[str, Any]]]

    @property
    def label(self) -> str:
        """``1 GiB``."""
        return size_label(self.size)

    def speeds(self, kind: str) -> list[float]:
        """MiB/s of each round of ``kind``."""
        return [mib_s(result) for result in self.by_kind[kind]]

    def text(self, kind: str) -> str:
        """The rounds of ``kind``, ``84/86/90`` (MiB/s)."""
        return rounds_text(self.speeds(kind))

    def speed(self, kind: str) -> float:
        """Median MiB/s of ``kind``."""
        return median(self.speeds(kind))

    def worker_cpu(self, kind: str) -> list[float]:
        """The worker's own CPU s per GiB (user + system, ``getrusage`` around the work) of each round."""
        return [result["cpu"] / (result["bytes"] / GiB) for result in self.by_kind[kind]]

    def count(self) -> int:
        """How many rounds there were (of the kind measured least)."""
        return min(len(results) for results in self.by_kind.values())


def interleave(runner: Runner, kinds: Sequence[str], size: int, rounds: int, first: dict[str, Any]) -> Rounds:
    """``rounds`` rounds of ``kinds`` at ``size``, taking turns; ``first`` holds kinds' already measured round 1.

    A kind in ``first`` (an operator measured for its memory at this size) skips round 1.
    """
    by_kind: dict[str, list[dict[str, Any]]] = {kind: [first[kind]] if kind in first else [] for kind in kinds}
    for round_ in range(rounds):
        for kind in kinds:
            if round_ == 0 and kind in first:
                continue
            by_kind[kind].append(runner.measure(kind, size, f"-round{round_ + 1}"))
    return Rounds(size, by_kind)


def run_side_by_side(
    runner: Runner, operators: Sequence[str], sizes: Sequence[int], rounds: int, limits: Sequence[str]
) -> tuple[dict[tuple[str, int], dict[str, Any]], Rounds]:
    """Memory (each of ``operators`` at each size), then throughput rounds at the largest size.

    Throughput takes ``rounds`` interleaved rounds of ``limits`` (download-only, upload-only, ...)
    and ``operators``; the operators' memory runs at the largest size are their first round.
    Returns (the memory runs by (kind, size), the rounds).
    """
    results = {(kind, size): runner.measure(kind, size) for size in sizes for kind in operators}
    big = sizes[-1]
    measured = interleave(runner, (*limits, *operators), big, rounds, {kind: results[kind, big] for kind in operators})
    for kind in limits:
        results[kind, big] = measured.by_kind[kind][0]
    return results, measured
