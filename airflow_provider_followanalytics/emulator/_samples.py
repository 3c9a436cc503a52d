"""The JSON sample data the emulator answers with: the login's user object and the automated exporters.

Shaped like the API overview's examples; export files come from :mod:`.content` instead.
"""

from __future__ import annotations

import secrets
from typing import Any

__all__ = ["DATA_EXPORTERS", "make_user"]

#: What ``GET /api/data_exporters`` lists (the automated exporters of the demo account).
DATA_EXPORTERS: tuple[dict[str, Any], ...] = (
    {
        "identifier": "FADATAEXP_1",
        "name": "Daily devices",
        "export_type": "devices",
        "format": "csv",
        "frequency": "daily",
        "active": True,
        "destination": {"type": "s3", "bucket": "followanalytics-exports", "prefix": "devices/"},
        "last_run_at": "2024-01-01T02:00:00Z",
    },
    {
        "identifier": "FADATAEXP_2",
        "name": "Hourly events",
        "export_type": "events",
        "format": "csv",
        "frequency": "hourly",
        "active": False,
        "destination": {"type": "sftp", "host": "sftp.example.com", "path": "/exports/events"},
        "last_run_at": None,
    },
)


def make_user(email: str) -> dict[str, Any]:
    """Build a user object shaped like the API overview's, with freshly generated API keys."""
    return {
        "id": 42,
        "uid": "4422",
        "first_name": "Demo",
        "last_name": "User",
        "full_name": "Demo User",
        "email": email,
        "entities": [
            {
                "id": 24,
                "name": "DemoEntity_1",
                "description": "Emulated entity",
                "identifier": "FAENTITY_demo001",
                "active": True,
                "qa_api_key": secrets.token_urlsafe(16),
                "prod_api_key": secrets.token_urlsafe(16),
                "data_retention_in_months": 18,
            },
            {
                "id": 25,
                "name": "DemoEntity_2",
                "description": "Emulated entity",
                "identifier": "FAENTITY_demo002",
                "active": True,
                "qa_api_key": secrets.token_urlsafe(16),
                "prod_api_key": secrets.token_urlsafe(16),
                "data_retention_in_months": 18,
            },
        ],
        "enable": {
            name: True
            for name in (
                "apps",
                "campaign_view",
                "campaign_draft",
                "campaign_publish",
                "segments_view",
                "segments_manage",
                "usage_analytics_view",
                "downloads",
                "crashes_view",
                "gdpr_data_manage",
                "api_keys_manage",
            )
        },
        "admin": True,
        "superadmin": False,
        "prefered_entity": {"id": 24, "name": "DemoEntity_1"},
    }
