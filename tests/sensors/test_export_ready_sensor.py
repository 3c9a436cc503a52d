"""ExportReadySensor end to end: DAGs run with dag.test() against the emulator, in both modes.

dag.test() runs a deferred task's trigger inline (on Airflow 3 rebuilt from ``serialize()``),
so the deferrable cases exercise sensor -> trigger -> execute_complete for real.
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
import uuid
from typing import Any

import pytest

from airflow_provider_followanalytics._compat import (
    AIRFLOW_V_3,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
)
from airflow_provider_followanalytics._urls import redact_url
from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from airflow_provider_followanalytics.exceptions import (
    FollowAnalyticsAPIError,
    FollowAnalyticsAuthError,
    FollowAnalyticsConfigError,
    FollowAnalyticsError,
    FollowAnalyticsExportExpiredError,
    FollowAnalyticsRetryableError,
)
from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook
from airflow_provider_followanalytics.sensors.export_ready import ExportLinkExpiredError, ExportReadySensor
from airflow_provider_followanalytics.triggers.export_ready import DEFAULT_MAX_CONSECUTIVE_FAILURES
from tests.dagrun import DagRunResult, run_dag
from tests.fixtures import EMAIL, PASSWORD, wait_for

pytestmark = pytest.mark.usefixtures("airflow_db", "fa_conn")

MODES = [pytest.param(False, id="poke"), pytest.param(True, id="deferrable")]
SEGMENT_EXPORT = "/segments/FASEGMT_abcd12/devices_export"
FOREIGN_URL = "https://files.example.net/api/exports/download_url?export_token=foreign-token-123"


def _dag_classes() -> tuple[Any, Any]:
    if AIRFLOW_V_3:
        from airflow.sdk import DAG, task
    else:
        from airflow import DAG
        from airflow.decorators import task
    return DAG, task


def _run_sensor_dag(callback_url: str | None = None, *, consume: bool = False, **sensor_kwargs: Any) -> DagRunResult:
    """Run ``start_export`` (a @task calling the hook) >> ``wait`` (the sensor) [>> ``consume``].

    With ``callback_url`` given, there is no start task and the sensor gets that literal URL.
    """
    DAG, task = _dag_classes()
    sensor_kwargs.setdefault("poke_interval", 0.05)
    sensor_kwargs.setdefault("timeout", 30)
    with DAG(
        f"export_ready_{uuid.uuid4().hex[:10]}",
        schedule=None,
        start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
    ) as dag:
        if callback_url is None:

            @task(show_return_value_in_logs=False)  # the callback URL is a secret in logs
            def start_export() -> str:
                return FollowAnalyticsHook().start_export(SEGMENT_EXPORT, {"fields": "current_user_id"})

            url: Any = start_export()
        else:
            url = callback_url
        wait = ExportReadySensor(task_id="wait", callback_url=url, **sensor_kwargs)
        if consume:

            @task(show_return_value_in_logs=False)
            def consume_url(ready_url: str) -> str:
                return ready_url

            consume_url(wait.output)
    return run_dag(dag)


def _no_retry_conn(set_connection: Any, emulator: FollowAnalyticsEmulator) -> str:
    """A connection whose hook does not retry, so that faults reach the sensor's own handling."""
    set_connection(
        "fa_no_retry",
        conn_type="followanalytics",
        login=EMAIL,
        password=PASSWORD,
        host=emulator.url,
        extra={"timeout": 5, "max_retries": 0, "retry_delay": 0.01},
    )
    return "fa_no_retry"


# ---------------------------------------------------------------------------------- happy path
@pytest.mark.parametrize("deferrable", MODES)
def test_waits_through_202s_and_returns_the_callback_url(emulator: FollowAnalyticsEmulator, deferrable: bool) -> None:
    emulator.ready_after = 3

    result = _run_sensor_dag(deferrable=deferrable, consume=True)

    assert result.state == "success", result.task_states
    url = result.xcoms["start_export"]
    assert url.startswith(f"{emulator.url}/api/exports/download_url?export_token=")
    assert result.xcoms["wait"] == url  # the sensor's return value is pushed on both versions
    assert result.xcoms["consume_url"] == url  # and downstream tasks can template it
    polls = emulator.requests_for("callback")
    assert len(polls) == 4  # 3 x 202 then 200: one request per check
    assert all(p.headers["authorization"].startswith("Token ") for p in polls)
    # start_export's hook + the sensor's hook (+ the trigger's, which runs in the triggerer)
    assert emulator.login_count == (3 if deferrable else 2)


@pytest.mark.parametrize("deferrable", MODES)
def test_ready_at_first_check_needs_no_trigger(emulator: FollowAnalyticsEmulator, deferrable: bool) -> None:
    result = _run_sensor_dag(deferrable=deferrable)

    assert result.state == "success"
    assert result.xcoms["wait"] == result.xcoms["start_export"]
    assert len(emulator.requests_for("callback")) == 1
    assert emulator.login_count == 2  # no trigger ran: it would have logged in


# ------------------------------------------------------------------------------- dead link: 400
@pytest.mark.parametrize("deferrable", MODES)
def test_expired_link_fails_at_once_and_is_not_retried(emulator: FollowAnalyticsEmulator, deferrable: bool) -> None:
    emulator.ready_after = 100
    emulator.expire_after_polls = 2  # 202, then 400 (in deferrable mode: the trigger's first poll)

    result = _run_sensor_dag(deferrable=deferrable, retries=3, retry_delay=0)

    assert result.state == "failed"
    assert result.task_states["wait"] == "failed"  # not up_for_retry: the link will never come back
    assert len(emulator.requests_for("callback")) == 2  # no poll after the 400, no task retry


def test_expired_link_with_soft_fail_skips(emulator: FollowAnalyticsEmulator) -> None:
    emulator.ready_after = 100
    emulator.expire_after_polls = 2

    result = _run_sensor_dag(deferrable=True, soft_fail=True)

    assert result.task_states["wait"] == "skipped"
    assert len(emulator.requests_for("callback")) == 2


# ------------------------------------------------------------------------------------ timeout
@pytest.mark.parametrize("soft_fail", [False, True], ids=["fail", "soft_fail"])
@pytest.mark.parametrize("deferrable", MODES)
def test_never_ready_times_out(emulator: FollowAnalyticsEmulator, deferrable: bool, soft_fail: bool) -> None:
    emulator.never_ready = True

    result = _run_sensor_dag(
        deferrable=deferrable, timeout=1.5, poke_interval=0.2, soft_fail=soft_fail, retries=2, retry_delay=0
    )

    assert result.task_states["wait"] == ("skipped" if soft_fail else "failed")
    polls = len(emulator.requests_for("callback"))
    # at most about timeout / interval checks: no task retry (a retry would double them). It polled
    # more than once; how often fits in 1.5 s depends on the machine's load.
    assert 2 <= polls <= 1.5 / 0.2 + 3, polls


# ------------------------------------------------------------------------- transient failures
@pytest.mark.parametrize("deferrable", MODES)
def test_survives_503_and_429_bursts(emulator: FollowAnalyticsEmulator, set_connection: Any, deferrable: bool) -> None:
    conn_id = _no_retry_conn(set_connection, emulator)
    emulator.ready_after = 1
    emulator.add_fault("callback", status=503, count=2)
    emulator.add_fault("callback", status=429, retry_after="0.1")

    result = _run_sensor_dag(deferrable=deferrable, followanalytics_conn_id=conn_id)

    assert result.state == "success", result.task_states
    assert result.xcoms["wait"] == result.xcoms["start_export"]
    assert len(emulator.requests_for("callback")) == 5  # 503, 503, 429, 202, 200
    assert emulator.pending_faults == []


@pytest.mark.parametrize("deferrable", MODES)
def test_persistent_503_fails_after_the_failure_budget(
    emulator: FollowAnalyticsEmulator, set_connection: Any, deferrable: bool
) -> None:
    conn_id = _no_retry_conn(set_connection, emulator)
    emulator.add_fault("callback", status=503, count=1000)

    result = _run_sensor_dag(deferrable=deferrable, followanalytics_conn_id=conn_id, max_consecutive_failures=3)

    assert result.task_states["wait"] == "failed"
    # poke: 3 failed checks; deferrable: the check before deferring, then 3 in the trigger
    assert len(emulator.requests_for("callback")) == (4 if deferrable else 3)


@pytest.mark.parametrize("deferrable", MODES)
def test_token_expiry_mid_wait_is_survived(emulator: FollowAnalyticsEmulator, deferrable: bool) -> None:
    emulator.ready_after = 5
    emulator.token_max_uses = 2

    result = _run_sensor_dag(deferrable=deferrable)

    assert result.state == "success", result.task_states
    assert result.xcoms["wait"] == result.xcoms["start_export"]
    logins_without_expiry = 3 if deferrable else 2
    assert emulator.login_count > logins_without_expiry  # logged in again instead of failing


# ---------------------------------------------------------------------------- refused up front
@pytest.mark.parametrize("deferrable", MODES)
def test_foreign_host_callback_is_refused_before_any_request(
    emulator: FollowAnalyticsEmulator, deferrable: bool
) -> None:
    result = _run_sensor_dag(FOREIGN_URL, deferrable=deferrable)

    assert result.task_states["wait"] == "failed"
    assert emulator.requests == []  # not even a login: the token never left for another host


def test_refusal_names_the_host_and_hides_the_token() -> None:
    sensor = ExportReadySensor(task_id="wait", callback_url=FOREIGN_URL)

    with pytest.raises(FollowAnalyticsConfigError) as err:
        sensor.execute({})  # type: ignore[arg-type]

    message = str(err.value)
    assert "files.example.net" in message
    assert "not on the connection's host" in message
    assert "foreign-token-123" not in message


# -------------------------------------------------------------------------- big file, no read
def test_poke_detects_a_large_ready_file_without_reading_it(emulator: FollowAnalyticsEmulator) -> None:
    emulator.export_size = 256 * 1024 * 1024
    url = FollowAnalyticsHook().start_export(SEGMENT_EXPORT, {})
    sensor = ExportReadySensor(task_id="wait", callback_url=url)

    assert sensor.poke({}) is True  # type: ignore[arg-type]

    wait_for(lambda: emulator.bytes_sent, timeout=10, message="the emulator to finish the 200 response")
    assert emulator.bytes_sent[-1] < 8 * 1024 * 1024, emulator.bytes_sent  # far from 256 MiB


# ------------------------------------------------------------------------ execute_complete
def _sensor(**kwargs: Any) -> ExportReadySensor:
    kwargs.setdefault("callback_url", f"http://127.0.0.1:1/api/exports/download_url?export_token=abc{uuid.uuid4().hex}")
    return ExportReadySensor(task_id="wait", deferrable=True, **kwargs)


@pytest.mark.parametrize(
    "event",
    [None, "ready", ["ready"], {}, {"status": None}, {"status": "READY"}, {"status": "done", "callback_url": "x"}],
    ids=["none", "string", "list", "empty", "status-none", "status-case", "status-unknown"],
)
def test_execute_complete_refuses_events_it_does_not_understand(event: Any) -> None:
    with pytest.raises(FollowAnalyticsError) as err:
        _sensor().execute_complete({}, event)  # type: ignore[arg-type]

    message = str(err.value)
    assert "ExportReadySensor resumed with an event" in message
    assert "Treating it as a failure" in message


def test_execute_complete_ready_returns_the_url_and_logs_it_redacted(
    emulator: FollowAnalyticsEmulator, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"{emulator.url}/api/exports/download_url?export_token=secret-export-token-42"
    sensor = _sensor(callback_url=url)

    with caplog.at_level(logging.INFO):
        event = {"status": "ready", "callback_url": redact_url(url), "message": "ok"}  # as the trigger sends it
        assert sensor.execute_complete({}, event) == url  # type: ignore[arg-type]

    logs = caplog.text + "".join(capsys.readouterr())  # Airflow 3 logs through structlog to stdout
    assert "is ready" in logs
    assert "is ready: " not in logs  # not "is ready: The export is ready (...)"
    assert "export_token=***" in logs
    assert "secret-export-token-42" not in logs
    assert emulator.requests == []  # resuming makes no request


def test_execute_complete_ready_returns_its_own_url_whatever_the_event_says(emulator: FollowAnalyticsEmulator) -> None:
    url = f"{emulator.url}/api/exports/download_url?export_token=own-token-7"

    assert _sensor(callback_url=url).execute_complete({}, {"status": "ready", "callback_url": FOREIGN_URL}) == url  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("expired", ExportLinkExpiredError),
        ("unavailable", FollowAnalyticsRetryableError),
        ("auth", FollowAnalyticsAuthError),
        ("config", FollowAnalyticsConfigError),
        ("api", FollowAnalyticsAPIError),
        (None, FollowAnalyticsAPIError),
    ],
)
def test_execute_complete_error_raises_the_same_types_as_poke_mode(reason: str | None, expected: type) -> None:
    url = "http://127.0.0.1:1/api/exports/download_url?export_token=tok-in-message-9"
    event = {"status": "error", "callback_url": url, "message": f"it broke at {url}", "reason": reason}

    with pytest.raises(expected) as err:
        _sensor().execute_complete({}, event)  # type: ignore[arg-type]

    assert "it broke at" in str(err.value)
    assert "tok-in-message-9" not in str(err.value)


def test_expired_link_error_is_not_retried_by_airflow() -> None:
    assert issubclass(ExportLinkExpiredError, AirflowFailException)
    assert issubclass(ExportLinkExpiredError, FollowAnalyticsExportExpiredError)


@pytest.mark.parametrize(("soft_fail", "expected"), [(False, AirflowSensorTimeout), (True, AirflowSkipException)])
def test_execute_complete_timeout(soft_fail: bool, expected: type) -> None:
    with pytest.raises(expected, match="timed out"):
        _sensor(soft_fail=soft_fail).execute_complete({}, {"status": "timeout", "message": "late"})  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- construction
def test_templated_fields_and_defaults() -> None:
    sensor = ExportReadySensor(task_id="wait", callback_url="{{ ti.xcom_pull('start') }}")

    assert set(ExportReadySensor.template_fields) == {"callback_url", "followanalytics_conn_id"}
    assert sensor.followanalytics_conn_id == "followanalytics_default"
    assert sensor.deferrable is False  # [operators] default_deferrable is unset here
    assert sensor.poke_interval == 60
    assert sensor.poll_interval == 60  # follows poke_interval
    assert sensor.timeout == 24 * 60 * 60
    default = inspect.signature(ExportReadySensor.__init__).parameters["max_consecutive_failures"].default
    assert default == sensor.max_consecutive_failures == DEFAULT_MAX_CONSECUTIVE_FAILURES


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"poll_interval": -1}, "poll_interval=-1"),
        ({"poll_interval": "fast"}, "poll_interval='fast'"),
        ({"deferrable": True, "poke_interval": 0}, "poll_interval (or poke_interval) > 0"),
        ({"max_consecutive_failures": 0}, "max_consecutive_failures=0"),
        ({"max_consecutive_failures": 2.5}, "max_consecutive_failures=2.5"),
    ],
)
def test_bad_arguments_are_refused_when_the_dag_is_parsed(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(FollowAnalyticsConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        ExportReadySensor(task_id="wait", callback_url="x", **kwargs)
