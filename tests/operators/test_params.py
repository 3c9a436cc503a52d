"""The argument checks of the export operators, and the schedule check of the fair-use rule."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pendulum
import pytest
from dateutil.relativedelta import relativedelta

from airflow_provider_followanalytics._compat import AIRFLOW_V_3
from airflow_provider_followanalytics.exceptions import FollowAnalyticsConfigError
from airflow_provider_followanalytics.operators import _fair_use, _params, _windows
from tests.operators._dags import asset_or_time, cron_trigger, daily_data_intervals, events, make_dag

UTC = dt.timezone.utc
JAN_1 = 1704067200


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2024, 1, 1),  # naive: UTC
        dt.datetime(2024, 1, 1, tzinfo=UTC),
        dt.datetime(2024, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        pendulum.datetime(2024, 1, 1, tz="UTC"),
        pendulum.datetime(2023, 12, 31, 19, tz="America/New_York"),
        dt.date(2024, 1, 1),
        "2024-01-01",
        " 2024-01-01 ",
        "2024-01-01T00:00:00+00:00",  # {{ data_interval_start }} / {{ ts }}
        "2024-01-01T00:00:00Z",
        "2024-01-01 00:00:00+00:00",
        "2024-01-01T00:00:00",
        "2024-01-01T05:30:00+05:30",
        "20240101",  # {{ ds_nodash }}
        JAN_1,
        str(JAN_1),
        float(JAN_1),
    ],
)
def test_every_documented_day_form_gives_the_same_sd(value: Any) -> None:
    assert _windows.epoch_day(value, "period_start") == JAN_1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2017-04-06T16:41:44+05:00", "2017-04-06T11:41:44+00:00"),
        ("2024-01-01T10:00:00.250000Z", "2024-01-01T10:00:00.250000+00:00"),
        (dt.datetime(2024, 1, 1, 10), "2024-01-01T10:00:00+00:00"),
        (dt.date(2024, 1, 1), "2024-01-01T00:00:00+00:00"),
        (JAN_1 + 3600, "2024-01-01T01:00:00+00:00"),
        (None, None),
        ("", None),
        ("  ", None),
    ],
)
def test_iso_parameters_are_normalised_to_utc(value: Any, expected: str | None) -> None:
    assert _windows.iso_datetime(value, "updated_since") == expected


def test_iso_window_refuses_equal_and_reversed_bounds() -> None:
    assert _windows.iso_window("2024-01-01", dt.date(2024, 1, 2)) == (
        "2024-01-01T00:00:00+00:00",
        "2024-01-02T00:00:00+00:00",
    )
    assert _windows.iso_window(None, "2024-01-02") == (None, "2024-01-02T00:00:00+00:00")
    # Equal bounds: an empty export (what Airflow 3's plain "@daily" data interval renders to).
    with pytest.raises(FollowAnalyticsConfigError, match=r"must be after since_date='2024-01-01' \(on Airflow 3"):
        _windows.iso_window("2024-01-01", dt.date(2024, 1, 1))
    with pytest.raises(FollowAnalyticsConfigError, match="until_date='2024-01-02' must be after since_date='2024-01"):
        _windows.iso_window("2024-01-02T00:00:01Z", "2024-01-02")


def test_open_delta_must_start_before_the_end_of_the_data_interval() -> None:
    day = dt.datetime(2024, 3, 10, tzinfo=dt.timezone.utc)
    one_day = (day - dt.timedelta(days=1), day)
    assert _windows.delta_start("2024-03-09", "updated_since", one_day) == "2024-03-09T00:00:00+00:00"
    assert _windows.delta_start("2024-03-10", "updated_since", None) == "2024-03-10T00:00:00+00:00"  # no interval
    with pytest.raises(FollowAnalyticsConfigError, match="This run's data interval is empty") as err:
        _windows.delta_start("2024-03-10T00:00:00+00:00", "updated_since", (day, day))
    assert "CronDataIntervalTimetable('@daily', timezone='UTC')" in str(err.value)
    with pytest.raises(FollowAnalyticsConfigError, match="with updated_since='{{ data_interval_start }}'"):
        _windows.delta_start("2024-03-10", "updated_since", one_day)  # data_interval_end: nothing of the day
    # since_date without until_date is the same kind of open delta.
    with pytest.raises(FollowAnalyticsConfigError, match="since_date='2024-03-10' is not before the end"):
        _windows.iso_window("2024-03-10", None, interval=(day, day))


@pytest.mark.parametrize(
    "value",
    [
        ["a", "b"],
        ("a", "b"),
        "a,b",
        " a , b ",
        "['a', 'b']",  # a list rendered as text by Jinja
        '["a", "b"]',
        "('a', 'b')",
    ],
)
def test_list_forms_give_one_comma_list(value: Any) -> None:
    assert _params.comma_list(value, "fields") == "a,b"


def test_list_items_may_be_integers_and_user_ids_may_hold_spaces() -> None:
    assert _params.comma_list([1, 2], "session_ids") == "1,2"
    assert _params.comma_list(["Jane Doe", "x@example.com"], "user_ids", allow_spaces=True) == "Jane Doe,x@example.com"
    assert _params.comma_list("[]", "fields") is None
    assert _params.comma_list(None, "fields") is None


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("FAAPPLI_1", True),
        ("{{ ds }}", False),
        ("{% if x %}a{% endif %}", False),
        (["a", "{{ b }}"], False),
        ({"k": "{{ v }}"}, False),
        ((1, dt.date(2024, 1, 1), None, True), True),
        (object(), False),  # an XComArg or another object resolved at run time
    ],
)
def test_only_final_values_are_checked_when_the_dag_is_parsed(value: Any, literal: bool) -> None:
    assert _params.is_literal(value) is literal


def test_xcomarg_is_not_literal() -> None:
    if AIRFLOW_V_3:
        from airflow.sdk import task
    else:
        from airflow.decorators import task

    with make_dag("params_xcomarg"):

        @task
        def apps() -> list[str]:
            return ["FAAPPLI_1"]

        arg = apps()
    assert _params.is_literal(arg) is False


def test_export_request_description_shows_period_as_days_and_cuts_long_values() -> None:
    request = _params.ExportRequest(
        "/api/performance_export",
        {"apps": ",".join(f"FAAPPLI_{i}" for i in range(20)), "sd": str(JAN_1), "ed": str(JAN_1 + 86400)},
        "apps listed",
    )
    description = request.describe()
    assert description.startswith("apps listed, period 2024-01-01 to 2024-01-02, apps=FAAPPLI_0,")
    assert description.endswith("...")
    assert len(description) < 160
    generic = _params.ExportRequest("/api/x", {"sd": "2024-01-01", "ed": "99999999999999999999"})
    assert generic.describe() == "sd=2024-01-01, ed=99999999999999999999"
    assert (
        _params.ExportRequest("/api/x", {"sd": "1", "ed": "99999999999999999999"})
        .describe()
        .startswith("period 1970-01-01 to 99999999999999999999")
    )


# ------------------------------------------------------------------------------ fair use
@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("@hourly", "cron '0 * * * *'"),
        ("*/15 * * * *", "cron '*/15 * * * *'"),
        ("0 0,12 * * *", "cron '0 0,12 * * *'"),
        ("0 9,10 * * 1", "cron '0 9,10 * * 1'"),  # weekly, but twice within an hour
        ("0 0,1 1 1 *", "cron '0 0,1 1 1 *'"),  # yearly, twice on 1 January
        (dt.timedelta(hours=6), "every 6:00:00"),
        (relativedelta(hours=12), "every relativedelta(hours=+12)"),
        (None, None),
        ("@once", None),
        ("@daily", None),
        ("@weekly", None),
        ("@monthly", None),
        ("0 9 * * 1-5", None),  # weekdays: never twice a day
        (dt.timedelta(days=1), None),
        (relativedelta(months=1), None),
    ],
)
def test_schedules_that_run_more_than_daily_are_recognised(schedule: Any, expected: str | None) -> None:
    dag = make_dag("fair_use_probe", schedule)
    assert _fair_use.sub_daily_schedule(dag.timetable) == expected


def test_other_timetables_are_recognised() -> None:
    noon = dt.datetime(2024, 1, 1, 12, tzinfo=UTC)
    assert _fair_use.sub_daily_schedule(cron_trigger("*/5 * * * *")) == "cron '*/5 * * * *'"
    assert _fair_use.sub_daily_schedule(daily_data_intervals()) is None
    assert _fair_use.sub_daily_schedule(asset_or_time(cron_trigger("@hourly"))) == "cron '0 * * * *'"
    assert _fair_use.sub_daily_schedule(asset_or_time(cron_trigger("@daily"))) is None
    assert _fair_use.sub_daily_schedule(events(noon, noon + dt.timedelta(hours=1))) == "on events less than a day apart"
    assert _fair_use.sub_daily_schedule(events(noon, noon + dt.timedelta(days=1))) is None
    continuous = make_dag("fair_use_continuous", "@continuous", max_active_runs=1).timetable
    assert _fair_use.sub_daily_schedule(continuous) == "@continuous"


@pytest.mark.skipif(not AIRFLOW_V_3, reason="MultipleCronTriggerTimetable is new in Airflow 3")
def test_several_daily_crons_together_run_more_than_daily() -> None:
    from airflow.sdk import MultipleCronTriggerTimetable

    together = MultipleCronTriggerTimetable("0 1 * * *", "0 2 * * *", timezone="UTC")
    assert _fair_use.sub_daily_schedule(together) == "cron '0 1 * * * | 0 2 * * *'"
    assert _fair_use.sub_daily_schedule(MultipleCronTriggerTimetable("0 1 * * 1", "0 1 * * 3", timezone="UTC")) is None
