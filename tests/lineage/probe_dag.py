"""A tiny DAG whose tasks report lineage through ``transfers._lineage.lineage_of``, as a transfer will.

``LineageProbeOperator`` writes nothing: it returns its destination and reports the export as input
and the destination as output from ``get_openlineage_facets_on_complete``, the method (and
signature) the openlineage provider calls after ``execute`` succeeds.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow_provider_followanalytics._compat import AIRFLOW_V_3, BaseOperator
from airflow_provider_followanalytics.transfers._lineage import lineage_of

if AIRFLOW_V_3:
    from airflow.sdk import DAG
else:
    from airflow import DAG  # type: ignore[no-redef]

TOKEN = "tok-lineage-SECRET-4242"
CALLBACK_URL = f"https://api.follow-apps.com/api/exports/download_url?export_token={TOKEN}"
DESTINATIONS = {
    "to_s3": "s3://aws_default@lake/followanalytics/devices/2026-12-01.csv",
    "to_azure": "abfs://wasb_default@lake/followanalytics/devices/2026-12-01.csv",
    "to_local": "file:///data/followanalytics/devices/2026-12-01.csv",
}
AZURE_ACCOUNT = "devstoreaccount1"


class LineageProbeOperator(BaseOperator):
    """Return ``destination``; report ``callback_url`` -> ``destination`` as OpenLineage datasets.

    :param callback_url: the export's callback URL (templated).
    :param destination: the destination URL (templated).
    :param account_name: the Azure storage account of an ``abfs://conn@container`` destination.
    """

    template_fields = ("callback_url", "destination")

    def __init__(self, *, callback_url: str, destination: str, account_name: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.callback_url = callback_url
        self.destination = destination
        self.account_name = account_name

    def execute(self, context: Any) -> str:
        return self.destination

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        return lineage_of(self.callback_url, self.destination, account_name=self.account_name)


with DAG(
    dag_id="followanalytics_lineage_probe",
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    schedule=None,
    catchup=False,
) as dag:
    for task_id, destination in DESTINATIONS.items():
        LineageProbeOperator(
            task_id=task_id,
            callback_url=CALLBACK_URL,
            destination=destination,
            account_name=AZURE_ACCOUNT if task_id == "to_azure" else None,
        )
