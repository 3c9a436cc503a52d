"""Sphinx configuration of the documentation site (``make docs``: warnings are errors, nitpicky).

No intersphinx: the build runs without internet, so references to the standard library, Airflow and
other third-party packages cannot be linked; the few that docstrings name are listed in
``nitpick_ignore_regex`` below and rendered as plain text.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))

# autodoc imports Airflow, which writes an airflow.cfg into AIRFLOW_HOME (default ~/airflow) when it has none.
os.environ.setdefault("AIRFLOW_HOME", str(DOCS / "_build" / "airflow-home"))

import airflow_provider_followanalytics  # noqa: E402

project = "airflow-provider-followanalytics"
author = "airflow-provider-followanalytics contributors"
copyright = "the airflow-provider-followanalytics contributors"
release = airflow_provider_followanalytics.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx_copybutton",
    "public_api_check",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []
html_static_path = ["_static"]
html_favicon = "_static/favicon.svg"

# Markdown (MyST): ::: fences, definition lists, and anchors for headings down to ###, so that
# [text](connection.md#behind-a-proxy--private-ca) links are checked like any other reference.
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = f"FollowAnalytics provider {release}"
html_show_sourcelink = False
html_copy_source = False

# API reference: signatures with their defaults as written in the source (``deferrable``'s depends on
# the Airflow configuration), the types beside each parameter's description (an operator takes some
# twenty arguments), members in source order, names without their module (the page's headings say it).
add_module_names = False
autodoc_typehints = "description"
autodoc_member_order = "bysource"
autodoc_class_signature = "mixed"
autodoc_preserve_defaults = True
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
}

# Copy only the commands of a shell snippet, not its prompt or output.
copybutton_prompt_text = r"\$ |>>> |\.\.\. "
copybutton_prompt_is_regexp = True

# Broken cross-references fail the build. Without intersphinx nothing outside this package can be
# linked: these are the standard library and the third-party packages that signatures and base classes
# name (rendered as plain text), and this package's internal modules, which the API page leaves out on
# purpose (a public object defined in one links to where the API page documents it: public_api_check).
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(collections\.abc|datetime|pathlib|ssl)\.\w+"),
    (r"py:.*", r"(airflow|aiohttp|requests)\..+"),
    (r"py:.*", r"airflow_provider_followanalytics\.(\w+\.)*_\w+\.\w+(\.\w+)?"),
    # operators._arguments.Arg (internal), named bare by the annotation of the class attribute
    # FollowAnalyticsExportOperator.export_arguments: autodoc cannot evaluate it against BaseOperator's.
    ("py:class", "Arg"),
]
