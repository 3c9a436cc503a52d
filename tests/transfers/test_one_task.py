"""The one-task form (an export operator with ``destination=``) through ``dag.test()`` on every store.

Real parts only: a SQLite metadata DB, the emulator over real sockets, a local folder, moto's S3
server (s3fs), the GCS emulator (gcsfs) and Azurite. Each store is read back with its own client.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
from typing import Any

import pytest

from airflow_provider_followanalytics._compat import AIRFLOW_V_3
from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator, expected_export_sha256
from airflow_provider_followanalytics.operators.exports import (
    FollowAnalyticsExportOperator,
    FollowAnalyticsSegmentDevicesExportOperator,
)
from tests.dagrun import run_dag
from tests.transfers._object_stores import SIZE, Store, _display, _fresh_object_stores  # noqa: F401 - autouse

pytestmark = pytest.mark.usefixtures("airflow_db", "fa_conn")

START = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
#: Short waits: the emulator's export is ready after one poll.
FAST = {"poll_interval": 0.05, "block_size": 5 * (1 << 20)}


def _dag(dag_id: str) -> Any:
    if AIRFLOW_V_3:
        from airflow.sdk import DAG
    else:
        from airflow import DAG
    return DAG(dag_id, schedule=None, start_date=START, catchup=False)


def _one_task(dag_id: str, destination: str, **kwargs: Any) -> Any:
    with _dag(dag_id) as dag:
        FollowAnalyticsSegmentDevicesExportOperator(
            task_id="export_to_lake", segment_id="FASEGMT_abcd12", destination=destination, **{**FAST, **kwargs}
        )
    return dag


@pytest.mark.parametrize(
    ("file_format", "download_mode", "deferrable", "gzipped"),
    [
        pytest.param("csv", "content-length", False, False, id="csv-in-the-worker"),
        pytest.param("xls", "chunked", True, True, id="xls-deferred-gzip"),
    ],
)
def test_one_task_exports_into_each_store_byte_exact(
    emulator: FollowAnalyticsEmulator,
    store: Store,
    file_format: str,
    download_mode: str,
    deferrable: bool,
    gzipped: bool,
) -> None:
    emulator.export_size, emulator.download_mode, emulator.ready_after = SIZE, download_mode, 1
    name = f"devices/export.{file_format}" + (".gz" if gzipped else "")
    dag = _one_task(
        f"one_task_{store.name}_{file_format}",
        store.url(name),
        file_format=file_format,
        deferrable=deferrable,
        gzip=gzipped,
    )

    result = run_dag(dag)

    assert result.state == "success", result.task_states
    assert result.xcoms["export_to_lake"] == _display(store, name)
    data = store.read(name)
    assert data is not None
    body = gzip.decompress(data) if gzipped else data
    assert hashlib.sha256(body).hexdigest() == expected_export_sha256(SIZE, file_format)
    assert store.leftovers() == [name]  # no temporary file, no pending upload
    assert len(emulator.requests_for("export")) == 1
    if store.name != "file":
        kept = "application/gzip" if gzipped else {"csv": "text/csv; charset=utf-8", "xls": "application/vnd.ms-excel"}
        assert store.content_type(name) == (kept if gzipped else kept[file_format])  # type: ignore[index]


def test_a_static_destination_is_the_tasks_outlet(tmp_path: Any) -> None:
    operator = FollowAnalyticsExportOperator(
        task_id="t", endpoint="/api/apps/FAAPPLI_1/devices_export", destination=f"file://{tmp_path}/d.csv"
    )
    templated = FollowAnalyticsExportOperator(
        task_id="u", endpoint="/api/apps/FAAPPLI_1/devices_export", destination=f"file://{tmp_path}/{{{{ ds }}}}.csv"
    )
    assert [outlet.uri for outlet in operator.outlets] == [f"file://{tmp_path}/d.csv"]
    assert templated.outlets == []
    assert "destination" in FollowAnalyticsSegmentDevicesExportOperator.template_fields


def test_destination_with_skip_email_false_is_refused_when_the_dag_is_parsed(tmp_path: Any) -> None:
    from airflow_provider_followanalytics.exceptions import FollowAnalyticsConfigError

    with pytest.raises(FollowAnalyticsConfigError, match="destination= with skip_email=False"):
        FollowAnalyticsSegmentDevicesExportOperator(
            task_id="t", segment_id="FASEGMT_abcd12", destination=f"file://{tmp_path}/d.csv", skip_email=False
        )


def _mistake(kind: str, request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A destination that cannot be written, and nothing else wrong."""
    if kind == "missing-bucket":
        request.getfixturevalue("aws_conn")
        return "s3://aws_default@no-such-bucket/d.csv"
    if kind == "missing-container":
        return f"abfs://{request.getfixturevalue('azure_conn')}@no-such-container/d.csv"
    if kind == "file-in-the-way":
        (tmp_path / "lake").write_bytes(b"a file where the folder should be")
        return f"file://{tmp_path}/lake/d.csv"
    (tmp_path / "d.csv").write_bytes(b"yesterday's export")  # "exists" with replace=False
    return f"file://{tmp_path}/d.csv"


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing-bucket", "s3://no-such-bucket does not exist"),
        ("missing-container", "abfs://no-such-container does not exist"),
        ("file-in-the-way", "Cannot create the folder"),
        ("exists", "already exists and replace=False"),
    ],
)
def test_a_destination_mistake_fails_before_the_export_request(
    emulator: FollowAnalyticsEmulator,
    request: pytest.FixtureRequest,
    tmp_path: Any,
    task_log: pytest.LogCaptureFixture,
    kind: str,
    message: str,
) -> None:
    dag = _one_task(f"one_task_mistake_{kind.replace('-', '_')}", _mistake(kind, request, tmp_path))

    result = run_dag(dag)

    assert result.state == "failed"
    assert message in task_log.text
    assert emulator.requests_for("export") == []  # the day's one export call is not spent
    if kind == "exists":
        assert (tmp_path / "d.csv").read_bytes() == b"yesterday's export"


def _retrying(dag_id: str, destination: str) -> Any:
    with _dag(dag_id) as dag:
        FollowAnalyticsSegmentDevicesExportOperator(
            task_id="export_to_lake",
            segment_id="FASEGMT_abcd12",
            destination=destination,
            retries=1,
            retry_delay=dt.timedelta(0),
            download_attempts=1,  # the first broken download fails the try: the task's retry takes over
            **FAST,
        )
    return dag


def test_a_retry_after_a_broken_download_reuses_the_export_where_state_is_durable(
    emulator: FollowAnalyticsEmulator, tmp_path: Any, task_log: pytest.LogCaptureFixture
) -> None:
    emulator.export_size = SIZE
    _break_the_first_download(emulator)
    dag = _retrying("one_task_retry_reuses", f"file://{tmp_path}/d.csv")

    result = run_dag(dag)

    assert result.state == "success", task_log.text[-3000:]
    data = (tmp_path / "d.csv").read_bytes()
    assert hashlib.sha256(data).hexdigest() == expected_export_sha256(SIZE, "csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv"]  # nothing partial beside it
    durable = "task_state_store" in _context_keys()
    # Airflow 3.3+ keeps the callback URL across tries; before, a retry starts a new export.
    assert len(emulator.requests_for("export")) == (1 if durable else 2)
    assert ("Reusing the export an earlier try started" in task_log.text) == durable
    assert emulator.requests_for("callback")[0].query.get("export_token") not in task_log.text


def test_an_export_that_expired_between_tries_is_replaced_by_one_new_export(
    emulator: FollowAnalyticsEmulator, tmp_path: Any, task_log: pytest.LogCaptureFixture
) -> None:
    if "task_state_store" not in _context_keys():
        pytest.skip("durable task state is Airflow 3.3+; before, every retry starts a new export")
    emulator.export_size = SIZE
    # Try 1: a ready poll, then a download that breaks. Try 2's first look at the kept export is
    # that export's third poll: expired. The new export is polled twice, below the limit.
    emulator.expire_after_polls = 3
    _break_the_first_download(emulator)
    dag = _retrying("one_task_retry_expired", f"file://{tmp_path}/d.csv")

    result = run_dag(dag)

    assert result.state == "success", task_log.text[-3000:]
    assert hashlib.sha256((tmp_path / "d.csv").read_bytes()).hexdigest() == expected_export_sha256(SIZE, "csv")
    assert len(emulator.requests_for("export")) == 2
    assert "The export an earlier try started has expired (HTTP 400); starting a new one" in task_log.text


class _FailsAfterTheFirstStart(FollowAnalyticsSegmentDevicesExportOperator):
    """A try that fails after its export started (a worker lost after the request, say): the retry decides."""

    def post_execute(self, context: Any, result: Any = None) -> None:
        if context["ti"].try_number == 1:
            raise RuntimeError("the first try is lost after starting its export")


def test_a_retry_without_destination_returns_the_export_an_earlier_try_started(
    emulator: FollowAnalyticsEmulator, task_log: pytest.LogCaptureFixture
) -> None:
    with _dag("export_retry_reuses") as dag:
        _FailsAfterTheFirstStart(
            task_id="start_export", segment_id="FASEGMT_abcd12", retries=1, retry_delay=dt.timedelta(0)
        )

    result = run_dag(dag)

    assert result.state == "success", task_log.text[-3000:]
    assert "the first try is lost" in task_log.text  # the first try did fail after its request
    durable = "task_state_store" in _context_keys()
    starts = emulator.requests_for("export")
    assert len(starts) == (1 if durable else 2)
    assert ("Reusing the export an earlier try started" in task_log.text) == durable
    # Where durable, the retry asked the kept export once (its only callback request) and returned it.
    token = result.xcoms["start_export"].split("export_token=")[1]
    asked = [r.query.get("export_token") for r in emulator.requests_for("callback")]
    assert asked == ([token] if durable else [])
    assert token not in task_log.text


def _break_the_first_download(emulator: FollowAnalyticsEmulator) -> None:
    # A ready check is a "download" poll too (a 200 whose body is not read): it takes the first,
    # harmless fault; the download after it is cut halfway.
    emulator.add_fault("download", kind="delay", delay=0.0)
    emulator.add_fault("download", kind="truncate", after_bytes=SIZE // 2)


def _context_keys() -> set[str]:
    """The names Airflow puts in a task's context on this version (``task_state_store``: 3.3+)."""
    try:
        from airflow.sdk.execution_time import context as execution_context
    except ImportError:
        return set()
    return {"task_state_store"} if hasattr(execution_context, "TaskStateStoreAccessor") else set()
