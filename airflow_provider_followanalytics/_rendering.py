"""Keep the export token of a templated ``callback_url`` out of what Airflow shows and logs.

Airflow stores the rendered template fields of every task (the UI's *Rendered Template* tab),
through its secret masker, right after rendering and before ``execute()``. A task that receives
the callback URL from XCom must therefore register its token with the masker as soon as it is
rendered, not later when a hook first sees it.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_followanalytics._compat import mask_secret
from airflow_provider_followanalytics._urls import export_token_of


class MasksCallbackUrl:
    """Mixin for operators with a templated ``callback_url``: mask its token once rendered."""

    callback_url: Any

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Render as usual, then register the callback URL's export token with the secret masker."""
        super().render_template_fields(context, jinja_env)  # type: ignore[misc]
        if isinstance(self.callback_url, str):
            mask_secret(export_token_of(self.callback_url))
