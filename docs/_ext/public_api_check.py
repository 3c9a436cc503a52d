"""Sphinx extension: the API page documents the whole public API, and every parameter of it.

At the consistency check (after every page is read; ``make docs`` rebuilds with ``-E``, so it runs each
time) it imports every public module of the package (no path component starting with ``_``) and warns,
which ``-W`` turns into a failed build, when a public class or function (defined in its module with a
name without a leading ``_``, or listed in the module's ``__all__``):

(a) is documented nowhere on the API page (``docs/api.md``), under any public name;
(b) has no docstring of its own;
(c) has a parameter (of a class: of its ``__init__``; ``self``, ``*args`` and ``**kwargs`` aside) that no
    ``:param name:`` field names, in its own docstring, its ``__init__``'s or that of a base class
    documented on the API page (the export operators document their shared arguments once, on
    ``FollowAnalyticsExportOperator``).

It also makes the references autodoc writes to a public object through the private module that defines
it (``operators._base.FollowAnalyticsExportOperator``, a base class or return type) link to where the API
page documents it; and it evaluates the annotations that the package imports only under
``TYPE_CHECKING``, so that signatures show the real types instead of unresolvable names.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import sys
from typing import TYPE_CHECKING, Any

from sphinx.pycode import ModuleAnalyzer
from sphinx.util import inspect as sphinx_inspect
from sphinx.util import logging
from sphinx.util.nodes import make_refnode
from sphinx.util.typing import stringify_annotation

if TYPE_CHECKING:
    from types import ModuleType

    from docutils import nodes
    from sphinx.addnodes import pending_xref
    from sphinx.application import Sphinx
    from sphinx.environment import BuildEnvironment

logger = logging.getLogger(__name__)

PACKAGE = "airflow_provider_followanalytics"
API_DOCNAME = "api"
_PARAM_FIELD = re.compile(r"^\s*:param\s+(?:[^:]*?\s)?\**(\w+)\s*:", re.MULTILINE)
_SKIPPED_KINDS = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def public_modules() -> list[ModuleType]:
    """The package and each of its modules whose dotted name has no component starting with ``_``."""
    package = importlib.import_module(PACKAGE)
    modules = [package]
    for info in pkgutil.walk_packages(package.__path__, prefix=f"{PACKAGE}."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            modules.append(importlib.import_module(info.name))
    return modules


def public_members(module: ModuleType) -> dict[str, Any]:
    """The classes and functions a module offers: its own public ones and those of its ``__all__``."""
    names = set(getattr(module, "__all__", ()))
    for name, obj in vars(module).items():
        if not name.startswith("_") and getattr(obj, "__module__", None) == module.__name__:
            names.add(name)
    members = {}
    for name in sorted(names):
        obj = getattr(module, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            members[name] = obj
    return members


def _resolve(fullname: str) -> Any:
    """The object a dotted name documented by autodoc stands for (None if it does not import)."""
    parts = fullname.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def documented_objects(env: BuildEnvironment) -> dict[int, tuple[str, Any]]:
    """id(object) -> (documented name, object) for each class and function the API page documents."""
    found: dict[int, tuple[str, Any]] = {}
    for fullname, entry in env.get_domain("py").objects.items():  # type: ignore[attr-defined]
        if entry.docname != API_DOCNAME or entry.objtype not in {"class", "exception", "function"}:
            continue
        obj = _resolve(fullname)
        if obj is not None:
            found.setdefault(id(obj), (fullname, obj))
    return found


def _location(obj: Any) -> str | None:
    try:
        return f"{inspect.getsourcefile(obj)}:{inspect.getsourcelines(obj)[1]}"
    except (OSError, TypeError):
        return None


def _own_init(cls: type) -> Any:
    """The class's ``__init__`` if this package defines it (not object's, Exception's or Airflow's)."""
    init = getattr(cls, "__init__", None)
    if inspect.isfunction(init) and init.__module__.split(".")[0] == PACKAGE:
        return init
    return None


def undocumented_parameters(obj: Any, documented: dict[int, tuple[str, Any]]) -> list[str]:
    """Parameters of a class's ``__init__`` or a function that no ``:param name:`` field names."""
    if inspect.isclass(obj):
        target = _own_init(obj)
        if target is None:
            return []
        sources = [obj.__dict__.get("__doc__"), target.__doc__]
        sources += [base.__dict__.get("__doc__") for base in obj.__mro__[1:] if id(base) in documented]
    else:
        target, sources = obj, [obj.__doc__]
    named = {match for doc in sources if doc for match in _PARAM_FIELD.findall(inspect.cleandoc(doc))}
    parameters = list(inspect.signature(target).parameters.values())
    if inspect.isclass(obj) and parameters:
        parameters = parameters[1:]  # self
    return [p.name for p in parameters if p.kind not in _SKIPPED_KINDS and p.name not in named]


def check_public_api(app: Sphinx, env: BuildEnvironment) -> None:
    """Warn about each public class or function missing from the API page, its docstring or a :param."""
    if API_DOCNAME not in env.found_docs:
        logger.warning("public API check: no %r page", API_DOCNAME, type="public_api")
        return
    documented = documented_objects(env)
    seen: set[int] = set()
    for module in public_modules():
        for name, obj in public_members(module).items():
            if id(obj) in seen:
                continue  # re-exported: checked once
            seen.add(id(obj))
            public_name = f"{module.__name__}.{name}"
            location = _location(obj)
            if id(obj) not in documented:
                logger.warning(
                    "public API check: %s is public but not documented on the API page (docs/api.md)",
                    public_name,
                    location=location,
                    type="public_api",
                )
            own_doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
            if not (own_doc or "").strip():
                logger.warning(
                    "public API check: %s has no docstring", public_name, location=location, type="public_api"
                )
                continue
            for parameter in undocumented_parameters(obj, documented):
                logger.warning(
                    "public API check: parameter %r of %s has no ':param %s:' in its docstring",
                    parameter,
                    public_name,
                    parameter,
                    location=location,
                    type="public_api",
                )


def link_private_paths(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.TextElement
) -> nodes.Element | None:
    """Link what the py domain did not find but the API page documents, under another name.

    * ``pkg._private.Name`` (a base class, a return type): the public name of the same object;
    * a bare ``Name`` in a docstring of an object documented under a re-exporting module (the emulator
      package's ``FollowAnalyticsEmulator`` naming ``TLSFiles``): the one documented ``*.Name``, if unique.
    """
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py":
        return None
    py_objects = env.get_domain("py").objects  # type: ignore[attr-defined]
    if target.startswith(f"{PACKAGE}."):
        obj = _resolve(target)
        if obj is None:
            return None
        matches = [name for name, entry in py_objects.items() if name != target and _resolve(name) is obj]
    elif target.isidentifier():
        matches = [name for name in py_objects if name.startswith(f"{PACKAGE}.") and name.endswith(f".{target}")]
    else:
        return None
    if len(matches) != 1:
        return None
    entry = py_objects[matches[0]]
    return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, matches[0])


def comment_of_reexported_data(app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """Give a constant a public module re-exports the ``#:`` comment of the module that defines it.

    autodoc looks for the comment in the re-exporting module only, and finds there nothing, or the
    docstring of the value's type (``tuple``'s), which is never meant.
    """
    if what != "data" or not name.startswith(f"{PACKAGE}."):
        return
    type_doc = inspect.getdoc(type(obj)) or ""
    if lines and "\n".join(lines).strip() != type_doc.strip():
        return
    attr = name.rpartition(".")[2]
    for modname, module in sorted(sys.modules.items()):
        if modname.startswith(f"{PACKAGE}.") and module is not None and vars(module).get(attr) is obj:
            comment = ModuleAnalyzer.for_module(modname).find_attr_docs().get(("", attr))
            if comment:
                lines[:] = list(comment)
                return
    lines.clear()  # never the value type's docstring


_TYPE_CHECKING_DONE: set[str] = set()


def bind_type_checking_imports(app: Sphinx, obj: Any, bound_method: bool) -> None:
    """Run the ``if TYPE_CHECKING:`` imports of the package module defining ``obj``, in that module.

    Only in the documentation build, so that ``typing.get_type_hints`` (which autodoc uses for signatures)
    can evaluate annotations such as ``Context`` or ``ListLike``. Names the module already has are kept.
    """
    module = sys.modules.get(getattr(obj, "__module__", None) or "")
    if module is None or not module.__name__.startswith(PACKAGE) or module.__name__ in _TYPE_CHECKING_DONE:
        return
    _TYPE_CHECKING_DONE.add(module.__name__)
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError, SyntaxError):
        return
    for statement in tree.body:
        if isinstance(statement, ast.If) and ast.unparse(statement.test) in {"TYPE_CHECKING", "typing.TYPE_CHECKING"}:
            for inner in statement.body:
                if not isinstance(inner, ast.Import | ast.ImportFrom):
                    continue
                namespace: dict[str, Any] = {"__name__": module.__name__, "__package__": module.__package__}
                try:
                    exec(compile(ast.Module([inner], []), module.__name__, "exec"), namespace)  # noqa: S102
                except ImportError:
                    continue
                for name, value in namespace.items():
                    if not name.startswith("__"):
                        module.__dict__.setdefault(name, value)


def record_init_typehints(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, args: str | None, retann: str
) -> None:
    """Types of a class's parameters from its ``__init__``, for ``autodoc_typehints = "description"``.

    autodoc evaluates them with ``typing.get_type_hints`` on the class, which also evaluates every class
    annotation of every base (Airflow's included) and, at the first it cannot, gives up on all of them:
    the parameter list would show ``ListLike`` instead of ``str | Sequence[str]``.
    """
    init = _own_init(obj) if what in {"class", "exception"} and inspect.isclass(obj) else None
    if init is None:
        return
    try:
        signature = sphinx_inspect.signature(init, type_aliases=app.config.autodoc_type_aliases)
    except (TypeError, ValueError):
        return
    mode = "smart" if app.config.autodoc_typehints_format == "short" else "fully-qualified"
    recorded = app.env.current_document.autodoc_annotations.setdefault(name, {})
    for parameter in signature.parameters.values():
        if parameter.annotation is not parameter.empty:
            recorded[parameter.name] = stringify_annotation(parameter.annotation, mode)


def drop_object_base(app: Sphinx, name: str, obj: Any, options: Any, bases: list[type]) -> None:
    """No "Bases: object" line under a class that has no other base."""
    bases[:] = [base for base in bases if base is not object]


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("env-check-consistency", check_public_api)
    app.connect("missing-reference", link_private_paths)
    app.connect("autodoc-before-process-signature", bind_type_checking_imports)
    app.connect("autodoc-process-docstring", comment_of_reexported_data)
    app.connect("autodoc-process-bases", drop_object_base)
    app.connect("autodoc-process-signature", record_init_typehints)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
