"""Backoff discipline: how many requests one ``ExportReadyTrigger`` sends to an unhappy server.

A trigger polls a callback URL for a fixed window against four servers (each an emulator in
its own process, all four scenarios side by side):

* ``202``: never ready. Ideal: one poll per interval, ``ceil(window / interval)``.
* ``400``: the link expired. Ideal: one request, then an ``error`` event (retrying cannot help).
* ``429`` with ``Retry-After``: ideal at most ``ceil(window / retry_after)`` requests, never two
  closer than ``Retry-After``; the trigger may also give up earlier after its failure budget.
* ``503`` for ever: the allowed requests are the failure budget (``max_consecutive_failures``),
  then the trigger must stop with an ``error`` event instead of hammering the server.

Requests are counted at the server (the emulator's per-route counters: callback requests only;
logins are reported in the note); gaps between polls are timed at the client.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import sys
import time
from typing import Any

from benchmarks._common import BenchError, Options, emit, module_main, na_rows, verdict
from benchmarks._emulator import EmulatorClient
from benchmarks._probes import first_event, instrument_polls
from benchmarks._processes import Worker, emulator_process, fa_conn_env, module_command, worker_env
from benchmarks._table import Row

NAME = "backoff"
SCENARIOS = ("202", "400", "429", "503")


def _settings(quick: bool) -> dict[str, float]:
    if quick:
        return {"window": 3.0, "interval": 0.5, "retry_after": 1, "max_failures": 3}
    return {"window": 30.0, "interval": 1.0, "retry_after": 3, "max_failures": 0}  # 0: the trigger's default


def run(opts: Options) -> list[Row]:
    """Run the four scenarios side by side and compare request counts with the ideal."""
    cfg = _settings(opts.quick)
    with contextlib.ExitStack() as stack:
        try:
            servers = {name: stack.enter_context(emulator_process(name=f"backoff-{name}")) for name in SCENARIOS}
            workers = {}
            for name, server in servers.items():
                client = EmulatorClient(server.url)
                stack.callback(client.close)
                url = _arrange(name, client, int(cfg["retry_after"]))
                before = client.state()
                command = module_command(
                    "benchmarks.backoff", url, cfg["interval"], cfg["window"], int(cfg["max_failures"])
                )
                env = worker_env(**fa_conn_env(server.url))
                timeout = cfg["window"] + 180
                workers[name] = (Worker(command, env=env, log_name=f"backoff-{name}", timeout=timeout), client, before)
        except BenchError as exc:
            return na_rows(NAME, [(f"requests, {name}", "req", "") for name in SCENARIOS], str(exc))
        rows = []
        for name, (worker, client, before) in workers.items():
            try:
                result = worker.result()
                state = client.state()
            except BenchError as exc:
                rows += na_rows(NAME, [(f"requests, {name}", "req", "")], str(exc))
                continue
            requests = state["requests"]["callback"] - before["requests"]["callback"]
            logins = state["login_count"] - before["login_count"]
            rows.append(_row(name, cfg, result, requests, logins))
        return rows


def _arrange(scenario: str, client: EmulatorClient, retry_after: int) -> str:
    """Configure one emulator for a scenario and return the callback URL to poll."""
    if scenario == "400":
        return f"{client.url}/api/exports/download_url?export_token=bench-link-that-expired"
    url = client.new_export()
    if scenario == "202":
        client.configure(never_ready=True)
    elif scenario == "429":
        client.add_fault(route="callback", kind="status", status=429, retry_after=retry_after, count=1_000_000)
    else:
        client.add_fault(route="callback", kind="status", status=503, count=1_000_000)
    return url


def _row(scenario: str, cfg: dict[str, float], result: dict[str, Any], requests: int, logins: int) -> Row:
    window, interval, retry_after = cfg["window"], cfg["interval"], cfg["retry_after"]
    event = result["event"]
    status, reason = event.get("status"), event.get("reason")
    gaps = result["gaps"]
    min_gap = min(gaps) if gaps else None
    note = f"event {status}{f' ({reason})' if reason else ''} after {result['elapsed']:.1f}s; trigger logins {logins}"
    if min_gap is not None:
        note += f"; shortest gap {min_gap:.2f}s"
    prefix = f"requests in {window:.0f} s,"
    if scenario == "202":
        ideal = math.ceil(window / interval)
        ok = 0 < requests <= ideal and status == "timeout"
        figure, target = f"{prefix} 202 not ready (poll {interval:g} s)", "<= 1.0x ideal"
    elif scenario == "400":
        ideal = 1
        ok = requests == 1 and status == "error" and reason == "expired"
        figure, target = f"{prefix} 400 expired link", "1 request, error event"
    elif scenario == "429":
        ideal = math.ceil(window / retry_after)
        spaced = min_gap is None or min_gap >= retry_after - 0.05
        ok = 0 < requests <= ideal and spaced
        figure, target = f"{prefix} 429 + Retry-After {retry_after:g} s", "<= 1.0x ideal, gaps >= Retry-After"
    else:
        ideal = result["max_failures"]
        ok = 0 < requests <= ideal and status == "error" and result["elapsed"] < window
        figure, target = f"{prefix} 503 persistent", "<= failure budget, then stop"
        note += f"; failure budget {ideal}"
    return Row(NAME, figure, float(requests), float(ideal), "req", "ideal", target, verdict(ok), note=note)


def worker(argv: list[str]) -> None:
    """Poll one callback URL with one trigger for ``window`` seconds; report the event and poll times."""
    parser = argparse.ArgumentParser()
    parser.add_argument("callback_url")
    parser.add_argument("interval", type=float)
    parser.add_argument("window", type=float)
    parser.add_argument("max_failures", type=int)
    args = parser.parse_args(argv)

    import aiohttp  # noqa: F401 - loaded before the window opens, as in a running triggerer

    from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook
    from airflow_provider_followanalytics.triggers.export_ready import ExportReadyTrigger

    # The first connection lookup of a process sets up Airflow's secrets backends (up to a
    # second): a triggerer has done that long before; do it before the window opens.
    asyncio.run(FollowAnalyticsHook().aget_settings())
    polls = instrument_polls()
    kwargs: dict[str, Any] = {}
    if args.max_failures:
        kwargs["max_consecutive_failures"] = args.max_failures
    trigger = ExportReadyTrigger(
        callback_url=args.callback_url,
        poll_interval=args.interval,
        deadline=time.time() + args.window,
        **kwargs,
    )
    start = time.perf_counter()
    event = asyncio.run(first_event(trigger))
    elapsed = time.perf_counter() - start
    starts = [s for s, _ in polls]
    emit(
        {
            "event": {k: v for k, v in event.items() if k in ("status", "reason")},
            "elapsed": elapsed,
            "polls": len(polls),
            "gaps": [b - a for a, b in itertools.pairwise(starts)],
            "max_failures": trigger.max_consecutive_failures,
        }
    )


if __name__ == "__main__":
    module_main(sys.argv[1:], run, worker)
