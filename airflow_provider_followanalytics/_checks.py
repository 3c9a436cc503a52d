"""Argument checks and parsers shared by the connection settings, the operators, the sensor, the trigger
and the transfers (internal). Each names the argument; the checks refuse a ``bool`` where a number is
expected (an ``int`` in Python: ``poll_interval=True`` would mean one second)."""

from __future__ import annotations

from typing import Any

from airflow_provider_followanalytics.exceptions import FollowAnalyticsConfigError


def is_number(value: object) -> bool:
    """Whether ``value`` is an ``int`` or ``float`` (a ``bool`` is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_seconds(name: str, value: object, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float if it is a number of seconds > 0 (>= 0 with ``allow_zero``)."""
    if not is_number(value) or value < 0 or (value == 0 and not allow_zero):  # type: ignore[operator]
        raise FollowAnalyticsConfigError(f"{name}={value!r} must be a number of seconds > 0.")
    return float(value)  # type: ignore[arg-type]


def check_int(name: str, value: object, low: int, high: int, expected: str, multiple: int = 1) -> int:
    """Return ``value`` if it is an integer from ``low`` to ``high`` (a multiple of ``multiple``)."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high or value % multiple:
        raise FollowAnalyticsConfigError(f"{name}={value!r} is invalid; expected {expected}.")
    return value


def check_failure_budget(value: object) -> int:
    """Check ``max_consecutive_failures``: an integer >= 1 (the sensor's and the trigger's)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise FollowAnalyticsConfigError(f"max_consecutive_failures={value!r} must be an integer >= 1.")
    return value


def parse_flag(value: Any, name: str) -> bool:
    """A boolean, or its text ``"true"`` / ``"false"`` in any case (rendered templates, connection extras)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise FollowAnalyticsConfigError(f"{name}={value!r} must be true or false ({type(value).__name__} given).")


def parse_number(value: Any, name: str, *, integer: bool = False, minimum: float = 0) -> float:
    """A number >= ``minimum``, or its text (connection extras arrive as strings from URIs and forms)."""
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError) as exc:
        kind = "an integer" if integer else "a number"
        raise FollowAnalyticsConfigError(f"{name}={value!r} is not {kind}.") from exc
    if number < minimum:
        raise FollowAnalyticsConfigError(f"{name}={value!r} must be >= {minimum}.")
    return number
