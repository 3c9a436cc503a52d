"""What counting the CSV rows (for OpenLineage's ``outputStatistics``) costs a transfer, side by side.

``FollowAnalyticsToObjectStorageOperator`` into a local file, each round a fresh worker of kind
``ours`` (OpenLineage on, a console transport configured: every record counted, quote-aware) and of
kind ``uncounted`` (``AIRFLOW__OPENLINEAGE__DISABLED``: only whether the export is empty), interleaved:

* **through a link paced to 200 MiB/s** (the pacing proxy, a fast WAN: what a worker meets
  downloading from the real API): the judged row, counting must cost at most 5 % of throughput;
* **unpaced** (the emulator on this machine, ~2 GiB/s: the worker's one core is the bound): an
  information row with the worker's CPU seconds per GiB, what counting costs when nothing else does.
"""

from __future__ import annotations

import sys

from benchmarks._common import BenchError, GiB, MiB, Options, median, module_main, na_rows, size_label, verdict
from benchmarks._emulator import EmulatorClient, login_token
from benchmarks._processes import emulator_process, fa_conn_env, proxy_process, worker_env
from benchmarks._table import Row
from benchmarks._transfer_runs import LocalFolder, Rounds, Runner, interleave

NAME = "counting"
#: Configures OpenLineage for the workers, as a deployment that sends lineage does (no event is sent:
#: the workers call execute() without Airflow's listener).
LINEAGE_ON = {"AIRFLOW__OPENLINEAGE__TRANSPORT": '{"type": "console"}'}
#: The paced link's speed: a fast WAN (the real API is reached over the internet).
PACED_RATE = 200 * MiB
#: Counting may cost at most this share of the paced transfer's throughput.
COST_LIMIT = 0.05
KINDS = ("uncounted", "ours")


def _settings(quick: bool) -> dict[str, int]:
    if quick:
        return {"size": 24 * MiB, "rounds": 1}
    return {"size": 1 * GiB, "rounds": 3}


def run(opts: Options) -> list[Row]:
    """Counting on and off, paced to 200 MiB/s (judged), then unpaced (information)."""
    s = _settings(opts.quick)
    label = size_label(s["size"])
    paced_figure = f"throughput with rows counted vs not, {label} CSV to a local file, paced to 200 MiB/s"
    cpu_figure = f"worker CPU with rows counted vs not, {label} CSV to a local file, unpaced"
    figures = [(paced_figure, "MiB/s", f">= {1 - COST_LIMIT:.2f}x"), (cpu_figure, "s/GiB", "-")]
    try:
        with emulator_process(name=f"{NAME}-emulator") as emu:
            token = login_token(emu.url)
            with proxy_process(emu.url, PACED_RATE) as proxy:
                EmulatorClient(emu.url).configure(public_url=proxy.url)  # callback URLs through the paced link
                env = worker_env(**fa_conn_env(proxy.url), **LINEAGE_ON, BENCH_FA_TOKEN=token)
                paced = interleave(
                    Runner("file", emu, LocalFolder(), env, proxy=proxy), KINDS, s["size"], s["rounds"], {}
                )
            unpaced = paced  # --quick (the smoke test): two workers fewer; the CPU row reads the paced ones
            if not opts.quick:
                EmulatorClient(emu.url).configure(public_url=None)
                env = worker_env(**fa_conn_env(emu.url), **LINEAGE_ON, BENCH_FA_TOKEN=token)
                unpaced = interleave(Runner("file", emu, LocalFolder(), env), KINDS, s["size"], s["rounds"], {})
    except (BenchError, OSError, RuntimeError) as exc:
        return na_rows(NAME, figures, str(exc))
    return [_paced_row(paced, paced_figure), _cpu_row(unpaced, cpu_figure)]


def _paced_row(measured: Rounds, figure: str) -> Row:
    counted, uncounted = measured.speed("ours"), measured.speed("uncounted")
    cpu = {kind: median(measured.worker_cpu(kind)) for kind in KINDS}
    return Row(
        NAME,
        figure,
        counted,
        uncounted,
        "MiB/s",
        "the same transfer, rows not counted",
        f">= {1 - COST_LIMIT:.2f}x",
        verdict(counted >= (1 - COST_LIMIT) * uncounted),
        note=(
            f"medians of {measured.count()} interleaved round(s), a fresh worker each: "
            f"counted {measured.text('ours')}, not counted {measured.text('uncounted')} MiB/s; "
            f"worker CPU s per GiB: counted {cpu['ours']:.2f}, not counted {cpu['uncounted']:.2f}"
        ),
    )


def _cpu_row(measured: Rounds, figure: str) -> Row:
    counted, uncounted = median(measured.worker_cpu("ours")), median(measured.worker_cpu("uncounted"))
    return Row(
        NAME,
        figure,
        counted,
        uncounted,
        "s/GiB",
        "the same transfer, rows not counted",
        "-",
        "info",
        note=(
            f"throughput unpaced: counted {measured.text('ours')}, not counted {measured.text('uncounted')} MiB/s "
            f"(the worker's one core is the bound here: each byte is received, counted and written by it)"
        ),
    )


if __name__ == "__main__":
    module_main(sys.argv[1:], run)
