"""The one-task form: an export operator with ``destination=`` against the three-task pieces it replaces.

Two comparisons, each side by side in the same run on one emulator:

* **Transfer cost.** ``FollowAnalyticsSegmentDevicesExportOperator(destination="file://...",
  deferrable=False)`` (it checks the destination, starts the export, checks it once, ready at once
  in the emulator, and streams it) against ``FollowAnalyticsToObjectStorageOperator`` moving the
  same export size into the same folder: extra RSS and throughput, interleaved rounds, each in a
  fresh ``benchmarks.transfers`` worker (kinds ``onetask`` and ``ours``).
* **Worker-seconds while pending** (:mod:`benchmarks._pending`). The export answers 202 for
  ``ready_after`` polls: the one-task form polling in the worker holds it for the whole wait; the
  deferrable one checks once, raises ``TaskDeferred`` and holds it again only to resume.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from benchmarks._cloud_rows import LIMIT_RATIO, per_round
from benchmarks._common import BenchError, GiB, MiB, Options, median, module_main, na_rows, size_label, verdict
from benchmarks._emulator import login_token
from benchmarks._processes import emulator_process, fa_conn_env, run_worker, worker_env
from benchmarks._table import Row
from benchmarks._transfer_runs import LocalFolder, Runner, interleave

if TYPE_CHECKING:
    from benchmarks._processes import Server
    from benchmarks._transfer_runs import Rounds

NAME = "onetask"
#: The segment the one-task operator exports (any identifier the emulator accepts).
SEGMENT_ID = "FASEGMT_bench"
#: Extra RSS of the one-task form: at most this times the transfer's, or this many MiB more,
#: whichever is looser (into a local file the transfer's is ~2 MiB, so the margin applies).
RSS_RATIO_LIMIT = 1.1
RSS_MARGIN_MIB = 4.0
#: Worker-seconds held while pending, deferrable over polling.
HELD_RATIO_LIMIT = 0.1
TRANSFER = "FollowAnalyticsToObjectStorageOperator"


def export_operator(destination: str, *, deferrable: bool, poll_interval: float = 1.0, task_id: str = NAME) -> Any:
    """The one-task form as a user writes it: a typed export with ``destination=`` (``replace=True``, as ours)."""
    from airflow_provider_followanalytics.operators.exports import FollowAnalyticsSegmentDevicesExportOperator

    # replace=True: as the transfer it is measured against (each run's file is deleted anyway).
    fixed: dict[str, Any] = {"segment_id": SEGMENT_ID, "replace": True}
    return FollowAnalyticsSegmentDevicesExportOperator(
        task_id=task_id, destination=destination, poll_interval=poll_interval, deferrable=deferrable, **fixed
    )


def _settings(quick: bool) -> dict[str, Any]:
    """Sizes, rounds and the pending export's polls and interval."""
    if quick:
        return {"size": 24 * MiB, "rounds": 1, "ready_after": 3, "interval": 0.1, "pending_rounds": 1}
    return {"size": 1 * GiB, "rounds": 5, "ready_after": 10, "interval": 1.0, "pending_rounds": 3}


def _figures(size: int, ready_after: int, interval: float) -> list[tuple[str, str, str]]:
    label = size_label(size)
    return [
        (f"one-task extra RSS vs ObjectStorage transfer, {label} to a local file", "MiB", _rss_target()),
        (f"one-task throughput vs ObjectStorage transfer, {label} to a local file", "MiB/s", ">= 0.9x"),
        (_held_figure(ready_after, interval), "s", "<= 0.1x"),
    ]


def _rss_target() -> str:
    return f"<= {RSS_RATIO_LIMIT}x or +{RSS_MARGIN_MIB:.0f} MiB"


def _held_figure(ready_after: int, interval: float) -> str:
    return f"one-task worker-seconds while pending, deferrable vs polling ({ready_after} polls x {interval:g} s)"


def run(opts: Options) -> list[Row]:
    """The one-task form against the ObjectStorage transfer, then its worker-seconds while pending."""
    s = _settings(opts.quick)
    figures = _figures(s["size"], s["ready_after"], s["interval"])
    rows: list[Row] = []
    try:
        with emulator_process(name=f"{NAME}-emulator") as emu:  # each worker sets the export size
            env = worker_env(**fa_conn_env(emu.url), BENCH_FA_TOKEN=login_token(emu.url))
            runner = Runner("file", emu, LocalFolder(), env)
            try:  # ready at once (the emulator's default ready_after=0): the wait costs one check
                measured = interleave(runner, ("ours", NAME), s["size"], s["rounds"], {})
            except (BenchError, OSError, RuntimeError) as exc:
                rows += na_rows(NAME, figures[:2], str(exc))
            else:
                rows += transfer_rows(measured)
            try:
                rows.append(_held_row(_pending(emu, env, s), s["ready_after"], s["interval"]))
            except (BenchError, OSError, RuntimeError) as exc:
                rows += na_rows(NAME, figures[2:], str(exc))
    except (BenchError, OSError, RuntimeError) as exc:
        return na_rows(NAME, figures, str(exc))
    return rows


def _pending(emu: Server, env: dict[str, str], s: dict[str, Any]) -> dict[str, Any]:
    """One ``benchmarks._pending`` worker: both forms, interleaved, against this emulator."""
    args = [emu.url, LocalFolder.url, s["ready_after"], s["interval"], s["pending_rounds"]]
    return run_worker("benchmarks._pending", args, env=env, log_name=f"{NAME}-pending")


def transfer_rows(measured: Rounds) -> list[Row]:
    """Extra RSS and throughput of the one-task form (kind ``onetask``) against the transfer (kind ``ours``)."""
    label = measured.label
    ours_rss = [result["extra_rss"] / MiB for result in measured.by_kind[NAME]]
    transfer_rss = [result["extra_rss"] / MiB for result in measured.by_kind["ours"]]
    rss, anchor_rss = median(ours_rss), median(transfer_rss)
    allowed = max(RSS_RATIO_LIMIT * anchor_rss, anchor_rss + RSS_MARGIN_MIB)
    speed, anchor_speed = measured.speed(NAME), measured.speed("ours")

    def cpu(kind: str) -> float:
        return median(measured.worker_cpu(kind))

    def blocks(kind: str) -> str:  # the store's block size, "ours: 8 MiB blocks" in the worker's note
        return str(measured.by_kind[kind][0]["parts_note"]).removeprefix("ours: ")

    rounds = (
        f"medians of {measured.count()} interleaved round(s), each a fresh worker after a 1 MiB warm-up of its own "
        f"kind, on one emulator ready at once: one-task {measured.text(NAME)}, transfer {measured.text('ours')} MiB/s"
    )
    return [
        Row(
            NAME,
            f"one-task extra RSS vs ObjectStorage transfer, {label} to a local file",
            rss,
            anchor_rss,
            "MiB",
            TRANSFER,
            _rss_target(),
            verdict(rss <= allowed),
            note=(
                f"allowed max({RSS_RATIO_LIMIT} x transfer, transfer + {RSS_MARGIN_MIB:.0f} MiB) = {allowed:.1f} MiB "
                f"(the absolute margin applies below {RSS_MARGIN_MIB / (RSS_RATIO_LIMIT - 1):.0f} MiB); "
                f"round by round one-task {'/'.join(f'{v:.1f}' for v in ours_rss)}, "
                f"transfer {'/'.join(f'{v:.1f}' for v in transfer_rss)} MiB; {blocks(NAME)} (one-task), "
                f"{blocks('ours')} (transfer)"
            ),
        ),
        Row(
            NAME,
            f"one-task throughput vs ObjectStorage transfer, {label} to a local file",
            speed,
            anchor_speed,
            "MiB/s",
            TRANSFER,
            ">= 0.9x",
            verdict(speed >= LIMIT_RATIO * anchor_speed),
            note=(
                "one-task: its whole execute() (destination check, export request, one check, download and "
                f"write); transfer: execute() on a callback URL; round by round "
                f"{per_round(measured.speeds(NAME), measured.speeds('ours'))}; worker CPU s per GiB: one-task "
                f"{cpu(NAME):.2f}, transfer {cpu('ours'):.2f}; {rounds}"
            ),
        ),
    ]


def _held_row(result: dict[str, Any], ready_after: int, interval: float) -> Row:
    """Worker-seconds held while pending: deferrable (until TaskDeferred, plus the resume) over polling."""
    polling, deferred, resumed = result["polling"], result["deferred"], result["resumed"]
    held = [d + r for d, r in zip(deferred, resumed, strict=True)]
    ours, anchor = median(held), median(polling)
    return Row(
        NAME,
        _held_figure(ready_after, interval),
        ours,
        anchor,
        "s",
        "one-task polling in the worker",
        "<= 0.1x",
        verdict(ours <= HELD_RATIO_LIMIT * anchor),
        note=(
            f"worker seconds, medians of {len(held)} interleaved round(s) in one worker after a warm-up of each "
            f"form: deferrable {ours:.3f} s = until TaskDeferred {median(deferred):.3f} s + resume "
            f"(execute_complete: destination check, download of {size_label(result['size'])}) {median(resumed):.3f} s; "
            f"polling {anchor:.3f} s for an export pending {ready_after} checks at {interval:g} s "
            f"(its wait alone, ready_after x poll_interval, is {ready_after * interval:g} s); the trigger, run "
            f"in-process between the two parts and not counted, waited {median(result['triggered']):.3f} s; "
            f"status checks the worker sent: deferrable {result['worker_requests']['deferrable']}, polling "
            f"{result['worker_requests']['polling']}. Not counted either: the task start-up Airflow adds to resume "
            "a deferred task (a second run of the task process)"
        ),
    )


if __name__ == "__main__":
    module_main(sys.argv[1:], run)
