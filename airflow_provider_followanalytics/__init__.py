"""Apache Airflow provider for the FollowAnalytics platform.

Start FollowAnalytics data exports, wait for them in the triggerer, and stream
the files into S3, GCS, Azure or any object storage. Importing this package is cheap: it loads neither
Airflow nor any HTTP or cloud library.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.2.0.dev0"

PACKAGE_NAME = "airflow-provider-followanalytics"
#: Where the documentation site is published (also ``Documentation`` in the package metadata).
DOCUMENTATION_URL = "https://followanalytics.github.io/airflow-provider-followanalytics/"
CONN_TYPE = "followanalytics"
#: The connection every hook, operator, sensor and trigger uses unless told otherwise.
DEFAULT_CONN_ID = "followanalytics_default"

_INTEGRATION = "FollowAnalytics"


def get_provider_info() -> dict[str, Any]:
    """Describe the provider to Airflow's ProvidersManager (``apache_airflow_provider`` entry point)."""
    return {
        "package-name": PACKAGE_NAME,
        "name": "FollowAnalytics",
        "description": (
            "Export FollowAnalytics data (devices, events, analytics) and land it in S3, GCS, Azure or any "
            "object storage."
        ),
        "versions": [__version__],
        "documentation-url": DOCUMENTATION_URL,
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://dev.followanalytics.com/",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": ["airflow_provider_followanalytics.hooks.followanalytics"],
            }
        ],
        "operators": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": ["airflow_provider_followanalytics.operators.exports"],
            }
        ],
        "sensors": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": ["airflow_provider_followanalytics.sensors.export_ready"],
            }
        ],
        "triggers": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": ["airflow_provider_followanalytics.triggers.export_ready"],
            }
        ],
        "transfers": [
            {
                "source-integration-name": _INTEGRATION,
                "target-integration-name": "Amazon Simple Storage Service (S3)",
                "python-module": "airflow_provider_followanalytics.transfers.followanalytics_to_s3",
            },
            {
                "source-integration-name": _INTEGRATION,
                "target-integration-name": "Google Cloud Storage (GCS)",
                "python-module": "airflow_provider_followanalytics.transfers.followanalytics_to_gcs",
            },
            {
                "source-integration-name": _INTEGRATION,
                "target-integration-name": "Common IO",  # ObjectStoragePath: Azure, local files, S3, GCS, ...
                "python-module": "airflow_provider_followanalytics.transfers.followanalytics_to_object_storage",
            },
        ],
        # Airflow 2 deserializes a task's links only from classes registered here (or by a plugin).
        "extra-links": [
            "airflow_provider_followanalytics.links.S3ObjectLink",
            "airflow_provider_followanalytics.links.GCSObjectLink",
            "airflow_provider_followanalytics.links.AzureBlobLink",
        ],
        "connection-types": [
            {
                "connection-type": CONN_TYPE,
                "hook-class-name": "airflow_provider_followanalytics.hooks.followanalytics.FollowAnalyticsHook",
                "hook-name": "FollowAnalytics",
                # Airflow 3 builds the connection form from these two keys; Airflow 2 asks the hook.
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "extra"],
                    "relabeling": {"login": "Email", "host": "API base URL"},
                    "placeholders": {
                        "login": "you@example.com",
                        "password": "FollowAnalytics account password",
                        "host": "https://api.follow-apps.com (default)",
                        "timeout": "60",
                        "max_retries": "5",
                        "retry_delay": "1.0",
                    },
                },
                "conn-fields": {
                    "timeout": {
                        "label": "Request timeout (seconds)",
                        "description": "Connect and read timeout of each API request. Default 60.",
                        "schema": {"type": ["number", "null"], "minimum": 1},
                    },
                    "max_retries": {
                        "label": "Retries on network errors, 429 and 5xx",
                        "description": "How many times a failed request is retried. Default 5.",
                        "schema": {"type": ["integer", "null"], "minimum": 0},
                    },
                    "retry_delay": {
                        "label": "First retry delay (seconds)",
                        "description": "Base of the exponential backoff, with jitter. Default 1.0.",
                        "schema": {"type": ["number", "null"], "minimum": 0},
                    },
                    "verify": {
                        "label": "Verify TLS: true, false, or a CA bundle path",
                        "description": "true (default), or the path of a CA bundle (PEM) that every worker and "
                        "triggerer can read; false skips the check (a warning each time).",
                        "schema": {"type": ["string", "null"]},
                    },
                    "proxies": {
                        "label": "Proxies (JSON, as in requests)",
                        "description": 'e.g. {"https": "http://user:pass@proxy:3128", "no_proxy": "localhost"}; '
                        "replaces HTTPS_PROXY / NO_PROXY for this connection.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "allow_insecure_http": {
                        "label": "Allow plain http to a non-loopback host (local emulator only)",
                        "description": "Sends the password in clear text (a warning each time). Never the real API.",
                        "schema": {"type": ["boolean", "null"]},
                    },
                },
            }
        ],
    }
