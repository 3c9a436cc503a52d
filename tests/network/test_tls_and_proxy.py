"""A whole pipeline over real TLS through a real proxy process, through ``dag.test()``.

One task logs in, starts the export, checks it (the worker), defers (the trigger polls with the
async client) and downloads it (the worker): every request must go through the proxy, trusting
the private CA, whether the settings come from the connection's extras or from the environment.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_followanalytics._compat import AIRFLOW_V_3
from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator, expected_export_sha256
from airflow_provider_followanalytics.emulator.tls import TLSFiles
from airflow_provider_followanalytics.operators.exports import FollowAnalyticsSegmentDevicesExportOperator
from tests.dagrun import run_dag
from tests.fixtures import PASSWORD
from tests.network.conftest import (
    PROXY_PASSWORD,
    PROXY_USER,
    Proxy,
    assert_every_request_came_through,
    closed_port,
    set_network_connection,
)

pytestmark = pytest.mark.usefixtures("airflow_db")

START = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


def _connection(monkeypatch: pytest.MonkeyPatch, emulator: FollowAnalyticsEmulator, **extra: Any) -> None:
    set_network_connection(monkeypatch, "followanalytics_default", emulator, **extra)


def _run_one_task_export(dag_id: str, destination: Path) -> Any:
    if AIRFLOW_V_3:
        from airflow.sdk import DAG
    else:
        from airflow import DAG
    with DAG(dag_id, schedule=None, start_date=START, catchup=False) as dag:
        FollowAnalyticsSegmentDevicesExportOperator(
            task_id="export_to_lake",
            segment_id="FASEGMT_abcd12",
            destination=f"file://{destination}",
            deferrable=True,  # the wait runs in the trigger: the async client's requests
            poll_interval=0.05,
        )
    return run_dag(dag)


def _assert_exported_through(emulator: FollowAnalyticsEmulator, proxy: Proxy, result: Any, destination: Path) -> None:
    assert result.state == "success", result.task_states
    size = emulator.export_size
    assert hashlib.sha256(destination.read_bytes()).hexdigest() == expected_export_sha256(size, "csv")
    routes = [r.route for r in emulator.requests]
    # Login, export, the worker's first look (202), the trigger's poll(s) (200), the download (200).
    assert routes.count("login") >= 1
    assert routes.count("export") == 1
    assert routes.count("callback") >= 3
    record = assert_every_request_came_through(emulator, proxy)
    assert {line["authorized"] for line in record} == ({True} if proxy.auth else {None})


def _assert_each_hook_said(task_log: pytest.LogCaptureFixture, where: str) -> None:
    # Three hooks, each logging where its settings came from: the worker's (execute), the
    # trigger's (its async client) and the worker's again (execute_complete, the download).
    lines = [r.getMessage() for r in task_log.records if "FollowAnalytics requests to" in r.getMessage()]
    assert len(lines) == 3, lines
    assert all(where in line for line in lines), lines


@pytest.mark.parametrize("authenticated", [False, True], ids=["open-proxy", "proxy-auth"])
def test_the_connection_extras_route_worker_and_trigger_through_the_proxy_trusting_the_ca(
    tls_emulator: FollowAnalyticsEmulator,
    certificates: TLSFiles,
    other_ca: Path,
    start_proxy: Any,
    monkeypatch: pytest.MonkeyPatch,
    task_log: pytest.LogCaptureFixture,
    tmp_path: Path,
    authenticated: bool,
) -> None:
    proxy = start_proxy(auth=authenticated)
    proxy_url = proxy.url_with(PROXY_USER, PROXY_PASSWORD) if authenticated else proxy.url
    # The environment says otherwise everywhere: the extras must win on both paths.
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other_ca))
    monkeypatch.setenv("SSL_CERT_FILE", str(other_ca))
    _connection(monkeypatch, tls_emulator, verify=str(certificates.ca_file), proxies={"https": proxy_url})
    destination = tmp_path / "devices.csv"

    result = _run_one_task_export(f"network_extras_{authenticated}", destination)

    _assert_exported_through(tls_emulator, proxy, result, destination)
    redacted = proxy.url.replace("http://", "http://***@") if authenticated else proxy.url
    _assert_each_hook_said(task_log, f"proxy {redacted} (extra proxies), CA {certificates.ca_file} (extra verify)")
    for secret in (PROXY_PASSWORD, PASSWORD, *tls_emulator.issued_tokens, *tls_emulator.issued_export_tokens):
        assert secret not in task_log.text
        assert secret not in json.dumps(result.xcoms)
        assert secret not in proxy.process.text()


@pytest.mark.parametrize("ca_variable", ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"])
def test_the_environment_alone_means_the_same_in_the_worker_and_the_trigger(
    tls_emulator: FollowAnalyticsEmulator,
    certificates: TLSFiles,
    start_proxy: Any,
    monkeypatch: pytest.MonkeyPatch,
    task_log: pytest.LogCaptureFixture,
    tmp_path: Path,
    ca_variable: str,
) -> None:
    # aiohttp on its own ignores REQUESTS_CA_BUNDLE and requests ignores SSL_CERT_FILE: one policy reads both.
    proxy = start_proxy()
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # Airflow's own local calls stay direct
    monkeypatch.setenv(ca_variable, str(certificates.ca_file))
    _connection(monkeypatch, tls_emulator)
    destination = tmp_path / "devices.csv"

    result = _run_one_task_export(f"network_environment_{ca_variable.lower()}", destination)

    _assert_exported_through(tls_emulator, proxy, result, destination)
    where = f"proxy {proxy.url} (environment HTTPS_PROXY), CA {certificates.ca_file} (environment {ca_variable})"
    _assert_each_hook_said(task_log, where)
