"""Keep the export token of a templated ``callback_url`` out of what Airflow shows and logs: Airflow
stores rendered fields (the *Rendered Template* tab) through its masker right after rendering, before
``execute()``, so the token must be registered then, not when a hook first sees it."""

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
