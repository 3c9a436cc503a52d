"""The declared arguments of the export operators, checked when the DAG file is parsed and again at run.

A typed export states its path template (``default_endpoint``) and its own arguments
(``export_arguments``: the kinds below, in the order they are checked and sent).
:func:`check_literals` checks, at construction, every value that is final already (not a Jinja
template, not an XComArg), so that a literal mistake fails the DAG file's parse; a value that is
not final is left for the run. :func:`build_request` checks every value after rendering and gives
the request (path, query in declaration order, a subject for logs) and the delivery options.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_followanalytics._api import validate_endpoint
from airflow_provider_followanalytics._checks import parse_flag
from airflow_provider_followanalytics.exceptions import FollowAnalyticsConfigError
from airflow_provider_followanalytics.operators import _params, _windows
from airflow_provider_followanalytics.operators._params import ExportRequest, is_literal

if TYPE_CHECKING:
    from collections.abc import Callable

APP = "FAAPPLI_123456789"
SEGMENT = "FASEGMT_abcd12"
#: The arguments of every export operator besides its own (``endpoint`` has its own default per class).
COMMON_FIELDS = ("endpoint", "file_format", "skip_email", "followanalytics_conn_id")
#: The templated arguments of the one-task form (``destination=``), every export's.
ONE_TASK_FIELDS = ("destination", "destination_conn_id")

Interval = tuple[Any, Any] | None  # the run's data interval; None at parse or without one


class ExportOperatorFields(Protocol):
    """What is read of an export operator (``FollowAnalyticsExportOperator``) besides its argument values."""

    endpoint: Any

    @property
    def default_endpoint(self) -> str | None: ...
    @property
    def export_arguments(self) -> tuple[Arg, ...]: ...
    @property
    def export_subject(self) -> str: ...


class Arg:
    """An argument kind: which operator attributes it reads, how it checks them, what it sends.

    :param names: the attributes (one, or two for a window).
    :param keys: the query key of each (``None``: not in the query).
    :param check: ``check(values, interval)``: the final values checked together, returned normalised.
    :param check_alone: ``check_alone(value, name)``, for a pair: checks one final value whose other
        value is not final yet (at DAG parse).
    """

    def __init__(
        self,
        names: tuple[str, ...],
        keys: tuple[str | None, ...],
        check: Callable[[tuple[Any, ...], Interval], tuple[Any, ...]],
        check_alone: Callable[[Any, str], object] | None = None,
    ) -> None:
        self.names, self.keys, self.check, self.check_alone = names, keys, check, check_alone


def _single(name: str, key: str | None, checker: Callable[[Any], Any]) -> Arg:
    return Arg((name,), (key,), lambda values, _interval: (checker(values[0]),))


# The kinds a declaration names; capitalised because they read as types in a class's declaration.
def Identifier(name: str, key: str | None = None, example: str = APP) -> Arg:
    """An identifier: in the path where the template has ``{name}``, in the query when ``key`` is given."""
    return _single(name, key, lambda value: _params.identifier(value, name, example))


def CommaList(name: str, key: str | None = None, **options: Any) -> Arg:
    """A list or comma string, sent as ``key`` (default: its name); options of :func:`_params.comma_list`."""
    return _single(name, key or name, lambda value: _params.comma_list(value, name, **options))


def PositiveInteger(name: str) -> Arg:
    """An integer id >= 1 (``42`` or ``"42"``)."""
    return _single(name, name, lambda value: _params.positive_integer(value, name))


def DeltaStart(name: str) -> Arg:
    """The start of an open delta (``updated_since``), refused at or after the run's data interval end."""
    return Arg((name,), (name,), lambda values, interval: (_windows.delta_start(values[0], name, interval),))


def IsoWindow() -> Arg:
    """``since_date`` / ``until_date``: ISO datetimes, each optional; ``until`` after ``since``."""
    names = ("since_date", "until_date")
    return Arg(
        names,
        names,
        lambda values, interval: _windows.iso_window(values[0], values[1], interval),
        _windows.iso_datetime,
    )


def Period(*, required: bool = False) -> Arg:
    """``period_start`` / ``period_end``: whole UTC days, sent as ``sd`` / ``ed``; both or neither unless
    ``required``."""

    def check_alone(value: Any, name: str) -> None:
        if not _windows.is_blank(value):
            _windows.epoch_day(value, name)
        elif required:
            raise FollowAnalyticsConfigError(
                f"{name} is required for this export (a day at midnight UTC), got {value!r}."
            )

    names = ("period_start", "period_end")
    return Arg(names, ("sd", "ed"), lambda values, _interval: _windows.period(*values, required=required), check_alone)


#: What the base class holds: the plain path as written (a template is a path too) and ``query_params``.
#: The generic operator sends them; a typed export fills its template instead and sends its own arguments.
GENERIC = (_single("endpoint", None, validate_endpoint), _single("query_params", None, _params.query_params))
#: How the export is delivered; checked last at run, first at parse.
DELIVERY = (
    _single("file_format", None, _params.file_format),
    _single("skip_email", None, lambda value: parse_flag(value, "skip_email")),
    _single("followanalytics_conn_id", None, _params.conn_id),
)


def _checked(
    operator: object, arguments: tuple[Arg, ...], final: Callable[[Any], bool], interval: Interval = None
) -> dict[str, Any]:
    """Check the ``final`` values of ``arguments`` in order; return name -> normalised value."""
    checked: dict[str, Any] = {}
    for arg in arguments:
        values = tuple(getattr(operator, name) for name in arg.names)
        ready = [final(value) for value in values]
        if all(ready):
            checked.update(zip(arg.names, arg.check(values, interval), strict=True))
        elif arg.check_alone is not None:  # at parse, one value of a pair may be final, the other a template
            for name, value, is_final in zip(arg.names, values, ready, strict=True):
                if is_final:
                    arg.check_alone(value, name)
    return checked


def _path(operator: ExportOperatorFields, checked: dict[str, Any]) -> str:
    """The typed export's ``endpoint`` (its template) filled with the checked identifiers it names."""
    template = operator.default_endpoint or ""
    placeholders = [part.split("}", 1)[0] for part in template.split("{")[1:]]  # a declared template: well formed
    identifiers = {name: checked.get(name) for name in placeholders}
    return _params.path_with_identifiers(operator.endpoint, template, identifiers)


def check_literals(operator: ExportOperatorFields) -> None:
    """At construction (DAG parse): check every value that is final already, raise on the first mistake."""
    checked = _checked(operator, (*DELIVERY, *GENERIC, *operator.export_arguments), is_literal)
    if operator.default_endpoint is not None and is_literal(operator.endpoint):
        _path(operator, checked)  # a templated identifier keeps its {placeholder}: the rest is checked


def build_request(operator: ExportOperatorFields, interval: Interval) -> tuple[ExportRequest, str, bool, str]:
    """After rendering: check every value; return the request, file format, ``skip_email`` and connection id.

    :param interval: the run's ``(data_interval_start, data_interval_end)``, for delta windows.
    """
    if operator.default_endpoint is None:  # the generic operator
        checked = _checked(operator, GENERIC, _always)
        endpoint, query = checked["endpoint"], checked["query_params"]
    else:
        arguments = operator.export_arguments
        checked = _checked(operator, arguments, _always, interval)
        endpoint = _path(operator, checked)
        pairs = [(key, checked[name]) for arg in arguments for name, key in zip(arg.names, arg.keys, strict=True)]
        query = {key: str(value) for key, value in pairs if key is not None and value is not None}
    request = ExportRequest(endpoint, query, operator.export_subject.format_map(checked))
    delivery = _checked(operator, DELIVERY, _always)
    return request, delivery["file_format"], delivery["skip_email"], delivery["followanalytics_conn_id"]


def _always(_value: Any) -> bool:
    return True


def passed_on(init_locals: dict[str, Any]) -> dict[str, Any]:
    """A typed export's ``__init__`` arguments (its ``locals()``) as keyword arguments of the base's."""
    given = {name: value for name, value in init_locals.items() if name not in ("self", "__class__", "kwargs")}
    return {**init_locals["kwargs"], **given}
