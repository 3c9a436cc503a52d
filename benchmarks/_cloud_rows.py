"""The rows of the S3 and GCS transfers: memory against the stock operator, throughput, worker CPU.

A throughput ratio is the median of ours over the median of its anchor or limit, all measured in
interleaved rounds (``_transfer_runs.Rounds``); its note gives the same ratio round by round
(``min-max``), which shows how far one round can be trusted on this machine.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from benchmarks._common import GiB, MiB, median, size_label, spread, verdict
from benchmarks._table import Row
from benchmarks._transfer_runs import HANDWRITTEN_COMMIT, busy_text, cpu_text

if TYPE_CHECKING:
    from benchmarks._transfer_runs import Rounds

MEMORY_RATIO_LIMIT = 0.05
FLAT_LIMIT_MIB_PER_GIB = 10.0
LIMIT_RATIO = 0.9
ANCHOR_RATIO = 1.5
CPU_RATIO_LIMIT = 1.2

Results = dict[tuple[str, int], dict[str, Any]]


def per_round(ours: list[float], anchor: list[float]) -> str:
    """``ours / anchor`` of each round, as ``min-max``."""
    return spread([a / b for a, b in zip(ours, anchor, strict=False)]) + "x"


def limit_speeds(measured: Rounds) -> list[float]:
    """min(download-only, upload-only) of each round."""
    return [min(d, u) for d, u in zip(measured.speeds("download"), measured.speeds("upload"), strict=True)]


def memory_rows(
    name: str, store: str, anchor_name: str, results: Results, small: int | None, big: int, *, judged: bool
) -> list[Row]:
    """Extra RSS of ours against the anchor at each size, and its growth between the sizes."""
    rows = []
    for size in (big, small) if small else (big,):
        ours_mib, anchor_mib = results["ours", size]["extra_rss"] / MiB, results["anchor", size]["extra_rss"] / MiB
        judge = judged and size == big  # the target is set at the larger size; the smaller shows the trend
        rows.append(
            Row(
                name,
                f"extra RSS, {size_label(size)} export to {store}",
                ours_mib,
                anchor_mib,
                "MiB",
                anchor_name,
                "<= 0.05x" if judge else "-",
                verdict(ours_mib <= MEMORY_RATIO_LIMIT * anchor_mib) if judge else "info",
                note=results["ours", size]["parts_note"],
            )
        )
    if small:
        span = (big - small) / GiB

        def slope(kind: str) -> float:
            return (results[kind, big]["extra_rss"] - results[kind, small]["extra_rss"]) / MiB / span

        rows.append(
            Row(
                name,
                f"RSS growth {size_label(small)} -> {size_label(big)} (flat)",
                slope("ours"),
                slope("anchor"),
                "MiB/GiB",
                anchor_name,
                "<= 10 MiB/GiB",
                verdict(slope("ours") <= FLAT_LIMIT_MIB_PER_GIB),
                note="extra peak RSS added per GiB of export between the two sizes (1% of the added bytes)",
            )
        )
    return rows


def limit_row(name: str, store: str, measured: Rounds, *, upload_what: str = "", more: str = "") -> Row:
    """Ours against min(download-only, upload-only) of the same rounds, judged at 0.9x."""
    ours, download, upload = (measured.speed(kind) for kind in ("ours", "download", "upload"))
    limit = min(download, upload)
    shown = ", ".join(
        f"{kind} {measured.text(kind)}" for kind in ("ours", "anchor", "upload") if kind in measured.by_kind
    )
    return Row(
        name,
        f"throughput to {store} vs limit, {measured.label}",
        ours,
        limit,
        "MiB/s",
        "min(download, upload)",
        ">= 0.9x",
        verdict(ours >= LIMIT_RATIO * limit),
        note=(
            f"medians of {measured.count()} interleaved round(s), round by round "
            f"{per_round(measured.speeds('ours'), limit_speeds(measured))}: download-only {download:.0f} MiB/s, "
            f"upload-only{upload_what} {upload:.0f} MiB/s; {shown} MiB/s{more}"
        ),
    )


def throughput_rows(name: str, store: str, anchor_name: str, results: Results, measured: Rounds) -> list[Row]:
    """Ours against min(download-only, upload-only) and against the stock operator, with their spreads."""
    ours, anchor, big = measured.speed("ours"), measured.speed("anchor"), measured.size
    rows = []
    if "handwritten" in measured.by_kind:
        limit = min(measured.speed("download"), measured.speed("upload"))
        rows += handwritten_rows(name, store, anchor_name, results, measured, limit)
    busy = (
        f"; cores busy (all processes): ours {busy_text(results['ours', big])}, "
        f"upload-only {busy_text(results['upload', big])} of {os.cpu_count()}"
    )
    rows.append(limit_row(name, store, measured, more=busy))
    rows.append(
        Row(
            name,
            f"throughput to {store} vs {anchor_name}, {measured.label}",
            ours,
            anchor,
            "MiB/s",
            anchor_name,
            ">= 1.5x",
            verdict(ours >= ANCHOR_RATIO * anchor),
            note=f"round by round {per_round(measured.speeds('ours'), measured.speeds('anchor'))}; "
            "CPU s per GiB (worker+emulator+store): "
            + ", ".join(f"{kind} {cpu_text(results[kind, big])}" for kind in ("ours", "anchor", "download", "upload")),
        )
    )
    return rows


def cpu_row(name: str, store: str, measured: Rounds) -> Row:
    """The worker's own CPU per GiB: ours against download-only + upload-only, each in its own worker.

    moto's single core sets the S3 throughput (its rounds swing 0.72x-0.94x between runs); the
    worker's own CPU does not depend on how fast moto is, so it tells whether our code adds work.
    """
    ours, download, upload = (measured.worker_cpu(kind) for kind in ("ours", "download", "upload"))
    both = [d + u for d, u in zip(download, upload, strict=True)]
    value, limit = median(ours), median(download) + median(upload)
    return Row(
        name,
        f"{store} transfer CPU s/GiB vs download-only + upload-only",
        value,
        limit,
        "s/GiB",
        "download-only + upload-only",
        "<= 1.2x",
        verdict(value <= CPU_RATIO_LIMIT * limit),
        note=(
            f"user + system CPU of the worker process (getrusage(RUSAGE_SELF) around the work, all threads), "
            f"medians of {measured.count()} round(s), round by round {per_round(ours, both)}: "
            f"ours {spread(ours)}, download-only {spread(download)}, upload-only {spread(upload)} s/GiB"
        ),
    )


def handwritten_rows(
    name: str, store: str, anchor_name: str, results: Results, measured: Rounds, limit: float
) -> list[Row]:
    """The replaced hand-written upload (commit :data:`HANDWRITTEN_COMMIT`), measured in the same run."""
    label = f"hand-written upload ({HANDWRITTEN_COMMIT})"
    big = measured.size
    rows = []
    sizes = sorted({size for kind, size in results if kind == "handwritten"}, reverse=True)
    for size in sizes:
        theirs, anchor = results["handwritten", size]["extra_rss"] / MiB, results["anchor", size]["extra_rss"] / MiB
        rows.append(
            Row(
                name,
                f"extra RSS, {size_label(size)} export to {store}, {label}",
                theirs,
                anchor,
                "MiB",
                anchor_name,
                "-",
                "info",
                note=f"ours (library upload): {results['ours', size]['extra_rss'] / MiB:.1f} MiB",
            )
        )
    rows.append(
        Row(
            name,
            f"throughput to {store} vs limit, {size_label(big)}, {label}",
            measured.speed("handwritten"),
            limit,
            "MiB/s",
            "min(download, upload)",
            "-",
            "info",
            note=(
                f"rounds {measured.text('handwritten')} MiB/s; ours (library upload) {measured.speed('ours'):.0f} MiB/s"
            ),
        )
    )
    return rows
