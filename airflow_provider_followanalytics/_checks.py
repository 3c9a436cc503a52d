"""The one boolean and the one number parser, for connection extras and operator arguments (internal).

Each error names the argument, the value and what is expected. A ``bool`` is never a number (it is
an ``int`` in Python: ``poll_interval=True`` would mean one second), nor are NaN and infinity (every
range check passes NaN). Text is read only where values arrive as text (``text=True``: connection
extras from URIs and forms, ids rendered by templates), and then only plain ASCII decimals: no
``"4_2"``, no ``"١٢"``, no ``"inf"``.
"""

from __future__ import annotations

import importlib.util
import math
import re
from typing import Any

from airflow_provider_followanalytics.exceptions import FollowAnalyticsConfigError

_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_INTEGER = re.compile(r"[+-]?\d+", re.ASCII)


def is_number(value: object) -> bool:
    """Whether ``value`` is a finite ``int`` or ``float`` (a ``bool`` is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_number(
    value: Any,
    name: str,
    *,
    integer: bool = False,
    minimum: float = 0,
    maximum: float | None = None,
    above_minimum: bool = False,
    multiple: int = 1,
    text: bool = False,
    expected: str | None = None,
) -> float:
    """Return ``value`` as a number in range: an ``int`` with ``integer``, else a ``float``.

    :param value: what the user gave.
    :param name: the argument or extra, for the message.
    :param integer: require a whole number (and return an ``int``).
    :param minimum: the lowest value allowed (excluded with ``above_minimum``).
    :param maximum: the highest value allowed, if any.
    :param multiple: the value must be a multiple of this (integers).
    :param text: also read a decimal string (``" 30 "``, ``"2.5"``).
    :param expected: how to say what is expected (default: built from the bounds).
    """
    kind = "an integer" if integer else "a number"
    if expected is None:
        expected = f"{kind} {'>' if above_minimum else '>='} {minimum:g}"
        expected += "" if maximum is None else f" and <= {maximum:g}"
    number: float | None = None
    if text and isinstance(value, str) and (_INTEGER if integer else _DECIMAL).fullmatch(value.strip()):
        number = int(value.strip()) if integer else float(value.strip())
    elif is_number(value) and (not integer or isinstance(value, int)):
        number = value
    if number is None or not math.isfinite(number):
        raise FollowAnalyticsConfigError(
            f"{name}={value!r} is not {kind} ({type(value).__name__} given); expected {expected}."
        )
    if (
        number < minimum
        or (above_minimum and number == minimum)
        or (maximum is not None and number > maximum)
        or (integer and number % multiple)
    ):
        raise FollowAnalyticsConfigError(f"{name}={value!r} is invalid; expected {expected}.")
    return int(number) if integer else float(number)


def check_seconds(name: str, value: object, *, allow_zero: bool = False) -> float:
    """A duration argument: a number of seconds > 0 (>= 0 with ``allow_zero``)."""
    expected = f"a number of seconds {'>=' if allow_zero else '>'} 0"
    return parse_number(value, name, above_minimum=not allow_zero, expected=expected)


def check_int(name: str, value: object, low: int, high: int, expected: str, multiple: int = 1) -> int:
    """An integer argument from ``low`` to ``high`` (a multiple of ``multiple``)."""
    return int(parse_number(value, name, integer=True, minimum=low, maximum=high, multiple=multiple, expected=expected))


def check_failure_budget(value: object) -> int:
    """``max_consecutive_failures`` of the sensor, the trigger and the waiting operators: an integer >= 1."""
    return check_int("max_consecutive_failures", value, 1, 1 << 20, "an integer >= 1")


def parse_flag(value: Any, name: str) -> bool:
    """A boolean, or its text ``"true"`` / ``"false"`` in any case (rendered templates, connection extras)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise FollowAnalyticsConfigError(f"{name}={value!r} must be true or false ({type(value).__name__} given).")


def require_provider(operator: str, module: str, requirement: str) -> None:
    """Fail at DAG parse time when ``module`` is not installed (``find_spec`` imports no cloud SDK)."""
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        found = False
    if not found:
        raise FollowAnalyticsConfigError(
            f"{operator} needs {module}, which is not installed: pip install '{requirement}'"
        )
