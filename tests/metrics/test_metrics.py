"""The provider's metrics as a real StatsD listener receives them from a real ``dag.test()`` run.

One run of ``tests.metrics.metrics_dag.dag`` (a deferred one-task segment-devices export, then an
app-events export that waits in the worker, both into local files) against the emulator, with
Airflow's ``[metrics] statsd_on`` pointing at a UDP socket on 127.0.0.1 (port 0); each test reads
one family of metrics from it. A second run meets faults on every retried path.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from tests.fixtures import EMAIL, PASSWORD, wait_for
from tests.metrics import metrics_dag
from tests.metrics._statsd import StatsdRun, connection_env, run_with_statsd
from tests.secrets_guard import secrets_of

pytestmark = pytest.mark.usefixtures("airflow_db")

SIZE = 96 * 1024
#: Every tag the provider may send, and the values each may take.
TAG_VALUES = {
    "export_type": {"segment_devices", "app_devices", "app_events", "performance", "user_metrics"}
    | {"event_analysis", "event_context", "custom"},
    "waiter": {"triggerer", "worker"},
    "cause": {"connection", "timeout", "429", "5xx"},
    "client": {"sync", "async"},
    "store": {"file"},
}


def _conn(emulator: FollowAnalyticsEmulator, **extra: Any) -> dict[str, Any]:
    extra = {"timeout": 5, "max_retries": 3, "retry_delay": 0.01, **extra}
    return {"conn_type": "followanalytics", "login": EMAIL, "password": PASSWORD, "host": emulator.url, "extra": extra}


@pytest.fixture(scope="module")
def module_emulator() -> Iterator[FollowAnalyticsEmulator]:
    emu = FollowAnalyticsEmulator(email=EMAIL, password=PASSWORD, export_size=SIZE)
    emu.ready_after = 2  # the worker's check and the trigger's first poll are pending
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture(scope="module")
def clean_run(
    airflow_db: str, module_emulator: FollowAnalyticsEmulator, tmp_path_factory: pytest.TempPathFactory
) -> StatsdRun:
    folder = tmp_path_factory.mktemp("metrics")
    env = {**connection_env(_conn(module_emulator)), "FA_METRICS_DIR": str(folder)}
    run = run_with_statsd("tests.metrics.metrics_dag", "dag", env)
    assert run.result.state == "success", (run.result.task_states, run.output[-3000:])
    assert (folder / "devices.csv").stat().st_size == SIZE
    assert (folder / "events.csv").stat().st_size == SIZE
    return run


def test_each_export_counts_once_with_its_type(clean_run: StatsdRun) -> None:
    started = clean_run.named("export_started")
    assert sorted(m.tags["export_type"] for m in started) == ["app_events", "segment_devices"]
    assert all(m.kind == "c" and m.value == 1 for m in started)


def test_ready_latency_of_the_trigger_and_of_the_worker(clean_run: StatsdRun) -> None:
    latency = {m.tags["waiter"]: m for m in clean_run.named("export_ready_latency")}
    assert sorted(latency) == ["triggerer", "worker"], clean_run.named("export_ready_latency")
    assert all(m.kind == "ms" for m in latency.values())
    # Each wait saw at least one pending check and slept a poll interval before the ready one.
    interval_ms = metrics_dag.POLL_INTERVAL * 1000
    assert latency["triggerer"].value >= 0.9 * interval_ms
    assert latency["worker"].value >= 0.9 * interval_ms
    assert len(clean_run.named("export_ready_latency")) == 2


def test_logins_are_the_logins_the_api_saw(clean_run: StatsdRun, module_emulator: FollowAnalyticsEmulator) -> None:
    logins = clean_run.counts("logins", "client")
    assert logins[("async",)] == 1  # the trigger's one login
    assert logins[("sync",)] >= 2  # each task logs in (and the deferred one again when it resumes)
    assert sum(logins.values()) == module_emulator.login_count
    assert clean_run.named("relogins") == []
    assert clean_run.named("http_retries") == []  # nothing failed


def test_transfer_figures_are_the_bytes_of_the_export(clean_run: StatsdRun) -> None:
    # Sent by hooks/_export_reader.py through _metrics.transfer_finished(): one set per transfer.
    downloaded = clean_run.named("bytes_downloaded")
    written = clean_run.named("bytes_written")
    assert [(m.value, m.tags) for m in downloaded] == [(SIZE, {"store": "file"})] * 2
    assert [(m.value, m.tags) for m in written] == [(SIZE, {"store": "file"})] * 2
    durations = clean_run.named("transfer_duration")
    assert [(m.kind, m.tags) for m in durations] == [("ms", {"store": "file"})] * 2
    assert clean_run.named("download_restarts") == []


def test_no_name_or_tag_carries_anything_but_constants(
    clean_run: StatsdRun, module_emulator: FollowAnalyticsEmulator
) -> None:
    ours = [m for m in clean_run.metrics if m.name.startswith("followanalytics.")]
    assert ours
    for metric in ours:
        assert set(metric.tags) <= set(TAG_VALUES), metric
        assert all(value in TAG_VALUES[tag] for tag, value in metric.tags.items()), metric
    raw = b"\n".join(clean_run.packets).decode()
    secrets = {**secrets_of(module_emulator), "the e-mail": EMAIL}
    secrets.update(segment=metrics_dag.SEGMENT_ID, app=metrics_dag.APP_ID, host=module_emulator.url)
    leaked = [name for name, value in secrets.items() if value in raw]
    assert leaked == []


def test_every_retry_and_relogin_counts_by_cause_and_client(
    airflow_db: str, emulator: FollowAnalyticsEmulator, tmp_path: Path
) -> None:
    emulator.export_size, emulator.ready_after = SIZE, 2
    # The worker's first login meets four faults, each retried by the sync client (max_retries=5).
    emulator.add_fault("login", status=503)
    emulator.add_fault("login", status=429)
    emulator.add_fault("login", kind="delay", delay=1.0)  # longer than the connection's timeout
    emulator.add_fault("login", kind="reset")
    emulator.add_fault("callback", status=401)  # its first check: one new login, then the check again
    # The trigger's first two ready polls: each backs off once. (A reset here would not do: aiohttp
    # itself sends a request again once when a pooled connection was reset.)
    emulator.add_fault("download", kind="delay", delay=1.0)
    emulator.add_fault("download", status=429)
    emulator.add_fault("download", status=401)  # and the third: one new login of the trigger
    env = {**connection_env(_conn(emulator, timeout=0.3, max_retries=5)), "FA_METRICS_DIR": str(tmp_path)}

    run = run_with_statsd("tests.metrics.metrics_dag", "faults_dag", env)

    assert run.result.state == "success", (run.result.task_states, run.output[-3000:])
    assert emulator.pending_faults == []
    retries = run.counts("http_retries", "client", "cause")
    assert retries == {
        ("sync", "5xx"): 1,
        ("sync", "429"): 1,
        ("sync", "timeout"): 1,
        ("sync", "connection"): 1,
        ("async", "timeout"): 1,
        ("async", "429"): 1,
    }
    assert run.counts("relogins", "client") == {("sync",): 1, ("async",): 1}
    logins = sum(run.counts("logins", "client").values())
    # The API counts the login that answered after the client's timeout too, once its delay is over.
    wait_for(lambda: emulator.login_count == logins + 1, message="the delayed login counted by the emulator")
    assert [m.tags for m in run.named("export_ready_latency")] == [{"waiter": "triggerer"}]
    assert [m.tags["export_type"] for m in run.named("export_started")] == ["segment_devices"]
    assert (tmp_path / "devices.csv").stat().st_size == SIZE
    assert run.result.task_states == {"deferred": "success"}
