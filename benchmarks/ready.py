"""Ready detection: what noticing "the export is ready" costs when the answer is the file itself.

The callback URL answers 200 with the whole export as its body (200 MiB here). A trigger must
notice the 200 and fire, nothing more: the worker downloads the file later. Ours,
``ExportReadyTrigger``, closes the response unread. The anchor is the stock
``airflow.providers.http.triggers.http.HttpTrigger`` on the same URL, which reads the body and
puts it base64-encoded into its event.

Each side runs in a fresh interpreter against the emulator (own process). After a warm-up run
of the same trigger class (a dead link: loads every library, logs in), the figures of one run
until the first event are:

* extra peak RSS over the RSS just before the run (sampled every 10 ms, plus ``ru_maxrss``);
* the event payload size, ``len(json.dumps(payload))`` (measured after the RSS window);
* the longest event-loop stall (0.05 s watchdog, as in the trigger scaling benchmark).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
import urllib.parse
from typing import Any

from benchmarks._common import BenchError, MiB, Options, emit, module_main, na_rows, verdict
from benchmarks._emulator import EmulatorClient
from benchmarks._probes import LoopWatchdog, RssSampler, first_event
from benchmarks._processes import emulator_process, fa_conn_env, http_conn_env, run_worker, worker_env
from benchmarks._table import Row

NAME = "ready"
EXTRA_RSS_LIMIT_MIB = 1.0
PAYLOAD_LIMIT = 1024
STALL_LIMIT_S = 0.2


def run(opts: Options) -> list[Row]:
    """Detect readiness of one big export with ours, then with HttpTrigger."""
    size = 8 * MiB if opts.quick else 200 * MiB
    label = f"{size // MiB} MiB body"
    figures = [
        (f"extra RSS detecting ready, {label}", "MiB", "< 1 MiB"),
        (f"event payload, {label}", "B", "< 1 KiB"),
    ]
    results: dict[str, dict[str, Any]] = {}
    try:
        with emulator_process(export_size=size, name="ready") as emu:
            client = EmulatorClient(emu.url)
            token = client.login()
            for kind in ("ours", "anchor"):
                url = client.new_export(token)
                sent_before = len(client.state()["bytes_sent"])
                env = worker_env(**fa_conn_env(emu.url), **http_conn_env(emu.url), BENCH_FA_TOKEN=token)
                result = run_worker("benchmarks.ready", [kind, url], env=env, log_name=f"ready-{kind}", timeout=600)
                downloads = client.wait_bytes_sent(sent_before + 1)
                result["server_bytes_sent"] = downloads[-1] if len(downloads) > sent_before else None
                results[kind] = result
            client.close()
    except BenchError as exc:
        return na_rows(NAME, [*figures, (f"event-loop stall detecting ready, {label}", "s", "<= 0.2 s")], str(exc))
    ours, anchor = results["ours"], results["anchor"]

    def sent(r: dict[str, Any]) -> str:
        value = r["server_bytes_sent"]
        return "?" if value is None else f"{value / MiB:.1f} MiB"

    note = (
        f"events: ours {ours['status']}, anchor {anchor['status']}; took ours {ours['elapsed']:.2f} s, "
        f"anchor {anchor['elapsed']:.2f} s; the emulator sent ours {sent(ours)}, anchor {sent(anchor)} "
        "before the connection closed"
    )
    ours_mib, anchor_mib = ours["extra_rss"] / MiB, anchor["extra_rss"] / MiB
    return [
        Row(
            NAME,
            f"extra RSS detecting ready, {label}",
            ours_mib,
            anchor_mib,
            "MiB",
            "HttpTrigger",
            "< 1 MiB",
            verdict(ours_mib < EXTRA_RSS_LIMIT_MIB and ours["status"] == "ready"),
            note=note,
        ),
        Row(
            NAME,
            f"event payload, {label}",
            float(ours["payload_bytes"]),
            float(anchor["payload_bytes"]),
            "B",
            "HttpTrigger",
            "< 1 KiB",
            verdict(ours["payload_bytes"] < PAYLOAD_LIMIT),
        ),
        Row(
            NAME,
            f"event-loop stall detecting ready, {label}",
            ours["max_stall_s"],
            anchor["max_stall_s"],
            "s",
            "HttpTrigger",
            "<= 0.2 s",
            verdict(ours["max_stall_s"] <= STALL_LIMIT_S),
        ),
    ]


# ------------------------------------------------------------------------------------------ worker


def _triggers(kind: str, url: str, token: str) -> tuple[Any, Any]:
    """(warm-up trigger on a dead link, measured trigger) of one kind."""
    dead = url.split("?")[0] + "?export_token=bench-warm-up"
    if kind == "ours":
        from airflow_provider_followanalytics.triggers.export_ready import ExportReadyTrigger

        return (
            ExportReadyTrigger(callback_url=dead, poll_interval=1.0),
            ExportReadyTrigger(callback_url=url, poll_interval=1.0, deadline=time.time() + 300),
        )
    from airflow.providers.http.triggers.http import HttpTrigger

    def http_trigger(callback: str) -> Any:
        parts = urllib.parse.urlsplit(callback)
        return HttpTrigger(
            http_conn_id="http_default",
            method="GET",
            endpoint=parts.path,
            data=dict(urllib.parse.parse_qsl(parts.query)),
            headers={"Authorization": f"Token {token}"},
        )

    return http_trigger(dead), http_trigger(url)


async def _measure(kind: str, url: str, token: str) -> dict[str, Any]:
    warm_up, trigger = _triggers(kind, url, token)
    await first_event(warm_up)
    gc.collect()
    sampler = RssSampler(interval=0.01).start()
    watchdog = LoopWatchdog().start()
    start = time.perf_counter()
    payload = await first_event(trigger)
    elapsed = time.perf_counter() - start
    max_stall = await watchdog.stop()
    extra = sampler.stop()
    status = payload.get("status")
    response = payload.get("response")
    if kind == "anchor" and isinstance(response, dict):  # http provider >= 5.6 (older: a pickled string)
        status = f"{status} (HTTP {response.get('status_code')})"
    return {
        "status": status,
        "extra_rss": extra,
        "max_stall_s": max_stall,
        "elapsed": elapsed,
        "payload_bytes": len(json.dumps(payload)),
    }


def worker(argv: list[str]) -> None:
    """Run one trigger of ``kind`` (``ours`` or ``anchor``) until its event; report memory and payload."""
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=("ours", "anchor"))
    parser.add_argument("callback_url")
    args = parser.parse_args(argv)
    emit(asyncio.run(_measure(args.kind, args.callback_url, os.environ["BENCH_FA_TOKEN"])))


if __name__ == "__main__":
    module_main(sys.argv[1:], run, worker)
