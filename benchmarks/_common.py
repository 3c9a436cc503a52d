"""What every benchmark shares: paths, sizes, the emulator account, options, verdicts and statistics.

The parent side (``run.py`` and each benchmark's ``run()``) uses the standard library only: it
starts servers (``_processes.py``) and measuring workers as separate processes and reads their
results. Each measurement runs in a fresh interpreter (a *worker*, ``python -m benchmarks.<name>
worker ...``), so its RSS baseline and import state are clean; a worker prints exactly one result
line, ``BENCH-RESULT {json}``, on stdout (:func:`emit`). The probes that run inside workers are in
``_probes.py``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks._table import Row, text_table

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

ROOT = Path(__file__).resolve().parent.parent
#: Logs, work files and results; ``FA_BENCH_DIR`` moves it (the smoke tests use a temp dir).
BENCH_DIR = Path(os.environ.get("FA_BENCH_DIR") or ROOT / ".bench")
LOG_DIR = BENCH_DIR / "logs"
WORK_DIR = BENCH_DIR / "work"
RESULT_PREFIX = "BENCH-RESULT "

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
#: Each transfer worker runs its operator once on an export of this size before it measures.
WARM_UP_SIZE = 1 * MiB
#: The pieces download-only reads and write-only writes: those ours reads from the socket
#: (``hooks.followanalytics.DOWNLOAD_CHUNK_SIZE``, pinned by the smoke test; not imported here,
#: so that a download-only worker loads no Airflow).
PIECE_SIZE = 256 * KiB

#: The emulator account every benchmark logs in with.
EMAIL = "bench@example.com"
PASSWORD = "bench-password-4242"  # noqa: S105 - the local emulator's throwaway account
#: An export path the emulator accepts (callback URLs come from it).
EXPORT_PATH = "/api/performance_export.csv?apps=FAAPPLI_bench&sd=0&ed=86400&skip_email=true"


class BenchError(RuntimeError):
    """A benchmark could not produce its figures (a server or worker failed)."""


@dataclasses.dataclass
class Options:
    """Run-wide options: ``quick`` shrinks every size and window to seconds."""

    quick: bool = False


def verdict(ok: bool | None) -> str:
    """``pass``/``fail``, or ``n/a`` when the check could not be made."""
    return "n/a" if ok is None else ("pass" if ok else "fail")


def na_rows(benchmark: str, figures: Sequence[tuple[str, str, str]], reason: str) -> list[Row]:
    """Rows for figures that could not be measured: (figure, unit, target) each, with the reason."""
    return [
        Row(benchmark, figure, None, None, unit, "", target, "n/a", note=reason) for figure, unit, target in figures
    ]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Sequence[float]) -> float:
    """The median (the mean of the middle two for an even count)."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def spread(values: Sequence[float], digits: int = 2) -> str:
    """``min-max`` of a figure's rounds (just the value for one round)."""
    low, high = min(values), max(values)
    return f"{low:.{digits}f}" if len(values) == 1 or low == high else f"{low:.{digits}f}-{high:.{digits}f}"


def size_label(size: int) -> str:
    """``1 GiB`` or ``200 MiB``."""
    return f"{size // GiB} GiB" if size >= GiB and size % GiB == 0 else f"{size // MiB} MiB"


def emit(result: dict[str, Any]) -> None:
    """Print a worker's result line (the parent reads the last one)."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def module_main(
    argv: list[str], run: Callable[[Options], list[Row]], worker: Callable[[list[str]], None] | None = None
) -> None:
    """Entry point of a benchmark module: ``worker ...`` (a measurement) or a standalone run.

    ``python -m benchmarks.<name> [--quick]`` runs that one benchmark and prints its rows.
    """
    if worker is not None and argv[:1] == ["worker"]:
        worker(argv[1:])
        return
    print(text_table(run(Options(quick="--quick" in argv))), end="")
