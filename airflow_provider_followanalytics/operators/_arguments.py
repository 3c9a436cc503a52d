"""The declared arguments of the export operators, checked when the DAG file is parsed and again at run.

Each export operator states its path template (``default_endpoint``) and its own arguments
(``export_arguments``: a tuple of the kinds below, in the order they are checked and sent), and
:class:`~airflow_provider_followanalytics.operators.exports.FollowAnalyticsExportOperator` does
the rest with two calls:

* :func:`check_literals`, at construction: every value that is final already (not a Jinja
  template, not an XComArg) goes through the checks of ``_params``, so that a literal mistake
  fails the DAG file's parse. A value that is not final is left for the run; nothing stands in
  for it.
* :func:`build_request`, after rendering: the same checks on every value, which also give the
  request (path, query in declaration order, a subject for logs) and the delivery options.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from airflow_provider_followanalytics._api import validate_endpoint
from airflow_provider_followanalytics.exceptions import FollowAnalyticsConfigError
from airflow_provider_followanalytics.operators import _params, _windows
from airflow_provider_followanalytics.operators._params import ExportRequest, is_literal
from airflow_provider_followanalytics.operators._windows import is_blank

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from airflow_provider_followanalytics.operators.exports import FollowAnalyticsExportOperator

APP = "FAAPPLI_123456789"
SEGMENT = "FASEGMT_abcd12"
#: The arguments of every export operator besides its own (``endpoint`` has its own default per class).
COMMON_FIELDS = ("endpoint", "file_format", "skip_email", "followanalytics_conn_id")

Interval = tuple[Any, Any] | None  # the run's data interval; None at parse or without one


class Arg:
    """An argument kind: which operator attributes it reads, how it checks them, what it sends.

    :param names: the attributes (one, or two for a window).
    :param keys: the query key of each (``None``: not in the query).
    """

    names: tuple[str, ...]
    keys: tuple[str | None, ...]

    def check(self, values: tuple[Any, ...], interval: Interval) -> tuple[Any, ...]:
        """Check final values together; return them normalised, one per name."""
        raise NotImplementedError

    def check_alone(self, name: str, value: Any) -> None:
        """Check one final value of a pair whose other value is not final yet (at DAG parse)."""

    def query(self, checked: Mapping[str, Any]) -> dict[str, str]:
        """The query parameters this argument sends (none for a value not given)."""
        pairs = ((key, checked[name]) for name, key in zip(self.names, self.keys, strict=True))
        return {key: str(value) for key, value in pairs if key is not None and value is not None}


class _Single(Arg):
    """One attribute, checked by ``checker(value, name, **options)`` (and the interval if it needs it)."""

    def __init__(
        self,
        name: str,
        key: str | None,
        checker: Callable[..., Any],
        options: Mapping[str, Any],
        *,
        needs_interval: bool = False,
    ) -> None:
        self.names, self.keys = (name,), (key,)
        self.checker, self.options, self.needs_interval = checker, options, needs_interval

    def check(self, values: tuple[Any, ...], interval: Interval) -> tuple[Any, ...]:
        extra = (interval,) if self.needs_interval else ()
        return (self.checker(values[0], self.names[0], *extra, **self.options),)


# The kinds a declaration names; capitalised because they read as types in a class's declaration.
def Identifier(name: str, key: str | None = None, example: str = APP) -> Arg:
    """An identifier: in the path where the template has ``{name}``, in the query when ``key`` is given."""
    return _Single(name, key, _params.identifier, {"example": example})


def CommaList(name: str, key: str | None = None, **options: Any) -> Arg:
    """A list or comma string, sent as ``key`` (default: its name); options of :func:`_params.comma_list`."""
    return _Single(name, key or name, _params.comma_list, options)


def DeltaStart(name: str) -> Arg:
    """The start of an open delta (``updated_since``), refused at or after the run's data interval end."""
    return _Single(name, name, _windows.delta_start, {}, needs_interval=True)


def PositiveInteger(name: str) -> Arg:
    """An integer id >= 1 (``42`` or ``"42"``)."""
    return _Single(name, name, _params.positive_integer, {})


def _unsent(name: str, checker: Callable[[Any], Any]) -> Arg:
    """An argument that is not a query parameter and whose checker names it itself."""
    return _Single(name, None, lambda value, _name: checker(value), {})


class IsoWindow(Arg):
    """``since_date`` / ``until_date``: ISO datetimes, each optional; ``until`` after ``since``."""

    names = keys = ("since_date", "until_date")

    def check(self, values: tuple[Any, ...], interval: Interval) -> tuple[Any, ...]:
        return _windows.iso_window(values[0], values[1], names=(self.names[0], self.names[1]), interval=interval)

    def check_alone(self, name: str, value: Any) -> None:
        _windows.iso_datetime(value, name)


class Period(Arg):
    """``period_start`` / ``period_end``: whole UTC days, sent as ``sd`` / ``ed``; both or neither
    unless ``required``."""

    names, keys = ("period_start", "period_end"), ("sd", "ed")

    def __init__(self, *, required: bool = False) -> None:
        self.required = required

    def check(self, values: tuple[Any, ...], interval: Interval) -> tuple[Any, ...]:
        return _windows.period(*values, required=self.required)

    def check_alone(self, name: str, value: Any) -> None:
        if not is_blank(value):
            _windows.epoch_day(value, name)
        elif self.required:
            raise FollowAnalyticsConfigError(
                f"{name} is required for this export (a day at midnight UTC), got {value!r}."
            )


class _QueryParams(Arg):
    """The generic operator's ``query_params``: a dict sent as it is (see :func:`_params.query_params`)."""

    names, keys = ("query_params",), (None,)

    def check(self, values: tuple[Any, ...], interval: Interval) -> tuple[Any, ...]:
        return (_params.query_params(values[0]),)

    def query(self, checked: Mapping[str, Any]) -> dict[str, str]:
        return dict(checked["query_params"])


#: What the base class holds: the plain path as written (a template is a path too) and ``query_params``.
#: The generic operator sends them; a typed export fills its template instead and sends its own arguments.
GENERIC: tuple[Arg, ...] = (_unsent("endpoint", validate_endpoint), _QueryParams())
#: How the export is delivered; checked last at run, first at parse.
DELIVERY: tuple[Arg, ...] = (
    _unsent("file_format", _params.file_format),
    _Single("skip_email", None, _params.flag, {}),
    _unsent("followanalytics_conn_id", _params.conn_id),
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
        else:  # at parse, one value of a pair may be final while the other is a template
            for name, value, is_final in zip(arg.names, values, ready, strict=True):
                if is_final:
                    arg.check_alone(name, value)
    return checked


def _path(operator: FollowAnalyticsExportOperator, checked: Mapping[str, Any]) -> str:
    """The typed export's ``endpoint`` (its template) filled with the checked identifiers it names."""
    template = operator.default_endpoint or ""
    placeholders = [part.split("}", 1)[0] for part in template.split("{")[1:]]  # a declared template: well formed
    identifiers = {name: checked.get(name) for name in placeholders}
    return _params.path_with_identifiers(operator.endpoint, template, identifiers)


def check_literals(operator: FollowAnalyticsExportOperator) -> None:
    """At construction (DAG parse): check every value that is final already, raise on the first mistake."""
    checked = _checked(operator, (*DELIVERY, *GENERIC, *operator.export_arguments), is_literal)
    if operator.default_endpoint is not None and is_literal(operator.endpoint):
        _path(operator, checked)  # a templated identifier keeps its {placeholder}: the rest is checked


def build_request(operator: FollowAnalyticsExportOperator, interval: Interval) -> tuple[ExportRequest, str, bool, str]:
    """After rendering: check every value; return the request, file format, ``skip_email`` and connection id.

    :param interval: the run's ``(data_interval_start, data_interval_end)``, for delta windows.
    """
    typed = operator.default_endpoint is not None
    arguments = operator.export_arguments if typed else GENERIC
    checked = _checked(operator, arguments, _always, interval)
    query = {key: value for arg in arguments for key, value in arg.query(checked).items()}
    endpoint = _path(operator, checked) if typed else checked["endpoint"]
    request = ExportRequest(endpoint, query, operator.export_subject.format_map(checked))
    delivery = _checked(operator, DELIVERY, _always)
    return request, delivery["file_format"], delivery["skip_email"], delivery["followanalytics_conn_id"]


def _always(_value: Any) -> bool:
    return True


def declare(cls: type[FollowAnalyticsExportOperator]) -> None:
    """Derive a typed export class's ``template_fields`` from its declaration, and refuse a class whose
    ``__init__`` does not take exactly the declared arguments (plus the common ones)."""
    own = [name for arg in cls.export_arguments for name in arg.names]
    if "template_fields" not in cls.__dict__:
        cls.template_fields = (*own, *COMMON_FIELDS)
    init = inspect.unwrap(cls.__init__)  # its code object: inspect.signature costs DAG parse time
    code = init.__code__
    keyword_only = code.co_varnames[code.co_argcount : code.co_argcount + code.co_kwonlyargcount]
    taken = [name for name in keyword_only if name not in COMMON_FIELDS]
    if sorted(taken) != sorted(own):
        raise TypeError(f"{cls.__name__}.__init__ takes {taken}, but the class declares {own}.")


def passed_on(init_locals: dict[str, Any]) -> dict[str, Any]:
    """A typed export's ``__init__`` arguments (its ``locals()``) as keyword arguments of the base's."""
    given = {name: value for name, value in init_locals.items() if name not in ("self", "__class__", "kwargs")}
    return {**init_locals["kwargs"], **given}
