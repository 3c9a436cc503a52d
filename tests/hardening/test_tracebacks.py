"""No password in a traceback, even one printed with its frames' locals (Airflow 3.0's console does that).

Settings resolution loads Airflow's secret masker before it reads the connection, registers the
password before anything that can fail, and keeps it out of every local a later failure would show.
The tests force the failures (a masker that does not import, an extra that does not parse), render
the traceback the way rich does, with every frame's locals, and scan it and the task log.
"""

from __future__ import annotations

import traceback
from typing import Any

import airflow
import pytest

from airflow_provider_followanalytics import _compat
from airflow_provider_followanalytics._compat import AIRFLOW_V_3
from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator
from airflow_provider_followanalytics.exceptions import FollowAnalyticsConfigError
from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook
from airflow_provider_followanalytics.operators.exports import FollowAnalyticsSegmentDevicesExportOperator
from tests.dagrun import run_dag
from tests.fixtures import PASSWORD
from tests.hardening._pipeline import fa_connection, task_failure_text
from tests.operators._dags import make_dag

pytestmark = [pytest.mark.faults, pytest.mark.usefixtures("airflow_db")]

# The other generation's masker: what the provider looked for on 3.0 when it took 3.0 for Airflow 2.
MASKER_MODULE = "airflow.utils.log.secrets_masker" if AIRFLOW_V_3 else "airflow.sdk.log"


def _with_locals(exc: BaseException) -> str:
    """The traceback as a renderer that shows locals prints it (``repr`` of every frame's locals)."""
    return "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format())


@pytest.fixture
def masker_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider looks for the masker where this Airflow has none (the 3.0 defect, forced).

    Only the provider's lookup is misled; Airflow's own masking is untouched.
    """
    monkeypatch.setattr(_compat, "AIRFLOW_V_3", not AIRFLOW_V_3)


@pytest.mark.usefixtures("masker_gone")
def test_a_masker_that_does_not_import_fails_before_the_connection_is_read(
    emulator: FollowAnalyticsEmulator, set_connection: Any
) -> None:
    fa_connection(set_connection, emulator.url, "fa_no_masker")

    with pytest.raises(ImportError) as err:
        FollowAnalyticsHook("fa_no_masker").login()

    message = str(err.value)
    assert f"Airflow {airflow.__version__}" in message  # which Airflow, not a fall-through to another path
    assert f"{MASKER_MODULE}.mask_secret does not import" in message
    assert PASSWORD not in _with_locals(err.value)
    assert emulator.login_count == 0  # nothing was sent


@pytest.mark.usefixtures("masker_gone")
def test_a_masker_that_does_not_import_fails_the_task_with_no_password_in_its_log(
    emulator: FollowAnalyticsEmulator, set_connection: Any, task_log: Any
) -> None:
    fa_connection(set_connection, emulator.url, "fa_no_masker_task")
    dag = make_dag("fa_no_masker_task")
    with dag:
        FollowAnalyticsSegmentDevicesExportOperator(
            task_id="start_export", segment_id="FASEGMT_abcd12", followanalytics_conn_id="fa_no_masker_task"
        )

    result = run_dag(dag)

    assert result.task_states == {"start_export": "failed"}
    text = task_failure_text(task_log)
    assert f"Airflow {airflow.__version__}: the secret masker {MASKER_MODULE}.mask_secret" in text
    assert PASSWORD not in text  # the suite's secrets guard scans the whole log as well
    assert emulator.login_count == 0


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param({"timeout": "soon"}, "timeout='soon' is not a number", id="bad-number"),
        pytest.param({"allow_insecure_http": "maybe"}, "allow_insecure_http='maybe'", id="bad-flag"),
        pytest.param({"scheme": "ftp"}, "ftp", id="bad-scheme"),
    ],
)
def test_a_settings_error_after_masking_leaves_the_password_in_no_frame(
    emulator: FollowAnalyticsEmulator, set_connection: Any, extra: dict[str, Any], expected: str
) -> None:
    fa_connection(set_connection, emulator.url.replace("http://", ""), "fa_bad_extra", **extra)

    with pytest.raises(FollowAnalyticsConfigError) as err:
        _ = FollowAnalyticsHook("fa_bad_extra").settings

    assert expected in str(err.value)
    rendered = _with_locals(err.value)
    assert "_ConnectionFields" in rendered or "settings_from_connection" in rendered  # the frames are there
    assert PASSWORD not in rendered
