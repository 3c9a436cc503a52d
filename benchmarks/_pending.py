"""The worker of the one-task pending figure: how long each form holds the worker while its export is pending.

``python -m benchmarks._pending worker <emulator url> <folder> <ready_after> <poll_interval> <rounds>``
sets the emulator to answer 202 for ``ready_after`` checks of each export, then runs, round after
round in this one process (after a warm-up of each form), the one-task form
(``onetask.export_operator``, destination a file in ``folder``):

* *polling* (``deferrable=False``): wall time of ``execute(context)``, which waits in the worker
  (``ready_after`` sleeps of ``poll_interval``), then streams the export;
* *deferrable*: wall time of ``execute(context)`` until it raises Airflow's ``TaskDeferred`` (one
  check, then the worker is released), plus that of the resume, ``execute_complete(context,
  event=...)`` with the trigger's event. Between the two, the deferral's own ``ExportReadyTrigger``
  runs in this process until its first event (the triggerer's work: timed, not counted).

The context holds a stand-in task instance with an in-memory XCom (the one-task form keeps the
callback URL there while deferred); there is no ``task_state_store``, so every try starts a new
export. Wall times only: one process for both forms is enough, no memory is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from benchmarks._common import WARM_UP_SIZE, BenchError, emit
from benchmarks._emulator import EmulatorClient
from benchmarks._probes import first_event
from benchmarks._stores import Store
from benchmarks.onetask import export_operator

FORMS = ("polling", "deferrable")


class _TaskInstance:
    """What the one-task form uses of a task instance: XCom push and pull, kept in memory."""

    def __init__(self) -> None:
        self.xcom: dict[tuple[str, str], Any] = {}
        self.task_id = "pending"

    def xcom_push(self, key: str, value: Any) -> None:
        """Keep ``value`` under ``key`` for this task."""
        self.xcom[self.task_id, key] = value

    def xcom_pull(self, task_ids: str, key: str) -> Any:
        """What ``xcom_push`` kept under ``key`` for ``task_ids``."""
        return self.xcom.get((task_ids, key))


def _task_deferred() -> type[BaseException]:
    """Airflow's ``TaskDeferred``: ``airflow.sdk.exceptions`` on Airflow 3 (what ``BaseOperator.defer`` raises)."""
    import importlib

    try:
        module = importlib.import_module("airflow.sdk.exceptions")
    except ImportError:  # Airflow 2
        module = importlib.import_module("airflow.exceptions")
    deferred: type[BaseException] = module.TaskDeferred
    return deferred


def _callbacks(emulator: EmulatorClient) -> int:
    return int(emulator.state()["requests"].get("callback", 0))


def _one(form: str, emulator: EmulatorClient, objects: Store, interval: float) -> dict[str, Any]:
    """One try of ``form``; returns its seconds held in the worker and the trigger's wait."""
    key = f"pending-{form}.csv"
    operator = export_operator(
        objects.destination(key), deferrable=form == "deferrable", poll_interval=interval, task_id="pending"
    )
    context: dict[str, Any] = {"ti": _TaskInstance()}
    before = _callbacks(emulator)
    start = time.perf_counter()
    try:
        operator.execute(context)
    except _task_deferred() as exc:
        result: dict[str, Any] = {"deferred": time.perf_counter() - start, "requests": _callbacks(emulator) - before}
        deferred: Any = exc
        start = time.perf_counter()
        event = asyncio.run(first_event(deferred.trigger))
        result["triggered"] = time.perf_counter() - start
        start = time.perf_counter()
        getattr(operator, deferred.method_name)(context, event=event, **(deferred.kwargs or {}))
        result["resumed"] = time.perf_counter() - start
    else:
        result = {"held": time.perf_counter() - start, "requests": _callbacks(emulator) - before - 1}  # - download
        if form == "deferrable":
            raise BenchError("the deferrable form did not defer: is the emulator's ready_after above 0?")
    stored = objects.size_and_delete(key)
    if stored != WARM_UP_SIZE:
        raise BenchError(f"the {form} form stored {stored} bytes, expected {WARM_UP_SIZE}")
    return result


def worker(argv: list[str]) -> None:
    """Both forms, ``rounds`` interleaved rounds after one warm-up each (see the module docstring)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("emulator_url")
    parser.add_argument("folder")
    parser.add_argument("ready_after", type=int)
    parser.add_argument("poll_interval", type=float)
    parser.add_argument("rounds", type=int)
    args = parser.parse_args(argv)
    if args.ready_after < 1:
        raise SystemExit("ready_after must be at least 1: a ready export is never deferred")
    emulator, objects = EmulatorClient(args.emulator_url), Store("file", args.folder)
    try:
        emulator.configure(export_size=WARM_UP_SIZE, ready_after=1)
        for form in FORMS:  # libraries loaded, connection looked up, trigger module imported
            _one(form, emulator, objects, min(args.poll_interval, 0.05))
        emulator.configure(ready_after=args.ready_after)
        runs: dict[str, list[dict[str, Any]]] = {form: [] for form in FORMS}
        for _ in range(args.rounds):
            for form in FORMS:
                runs[form].append(_one(form, emulator, objects, args.poll_interval))
    finally:
        emulator.configure(ready_after=0)  # the emulator's default, which the transfer workers expect
        emulator.close()
    emit(
        {
            "size": WARM_UP_SIZE,
            "polling": [run["held"] for run in runs["polling"]],
            **{part: [run[part] for run in runs["deferrable"]] for part in ("deferred", "triggered", "resumed")},
            "worker_requests": {form: runs[form][-1]["requests"] for form in FORMS},
        }
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker(sys.argv[2:])
    else:
        raise SystemExit("usage: python -m benchmarks._pending worker <emulator url> <folder> <ready_after> ...")
