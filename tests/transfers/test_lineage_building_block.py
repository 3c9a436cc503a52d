"""``transfers._lineage``: OpenLineage datasets of a transfer, by the spec's naming, in a real DAG run."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from airflow_provider_followanalytics._compat import AIRFLOW_V_3
from airflow_provider_followanalytics.transfers._lineage import export_dataset, lineage_of, object_dataset

CALLBACK_URL = "https://api.follow-apps.com/api/exports/download_url?export_token=tok-lineage-SECRET-4242"

TOKEN = "tok-unit-SECRET-9876"


# ---------------------------------------------------------------------------------- the input side


@pytest.mark.parametrize(
    ("callback_url", "expected"),
    [
        (
            f"https://api.follow-apps.com/api/exports/download_url?export_token={TOKEN}",
            ("https://api.follow-apps.com", "/api/exports/download_url"),
        ),
        (
            f"https://API.Follow-Apps.com:443/api/exports/download_url?export_token={TOKEN}#x",
            ("https://api.follow-apps.com", "/api/exports/download_url"),
        ),
        (
            f"http://127.0.0.1:8123/api/exports/download_url?export_token={TOKEN}",
            ("http://127.0.0.1:8123", "/api/exports/download_url"),
        ),
        (
            f"https://me:{TOKEN}@api.follow-apps.com:8443/api/exports/download_url?export_token={TOKEN}",
            ("https://api.follow-apps.com:8443", "/api/exports/download_url"),
        ),
        (f"http://[::1]:9000/x?export_token={TOKEN}", ("http://[::1]:9000", "/x")),
    ],
)
def test_the_export_is_named_by_api_host_and_path_never_the_token(callback_url: str, expected: Any) -> None:
    assert export_dataset(callback_url) == expected
    assert TOKEN not in "".join(export_dataset(callback_url))


# --------------------------------------------------------------------------------- the output side


@pytest.mark.parametrize(
    ("uri", "account", "expected"),
    [
        ("s3://aws_default@lake/followanalytics/x.csv", None, ("s3://lake", "followanalytics/x.csv")),
        ("s3://lake/followanalytics/x.csv", None, ("s3://lake", "followanalytics/x.csv")),
        ("s3a://lake/", None, ("s3://lake", "/")),
        ("gs://google_cloud_default@lake/a/b.csv", None, ("gs://lake", "a/b.csv")),
        ("gcs://lake/a/b.csv", None, ("gs://lake", "a/b.csv")),
        ("file:///data/x.csv", None, ("file", "/data/x.csv")),
        ("/data/x.csv", None, ("file", "/data/x.csv")),
        ("file://nas01/share/x.csv", None, ("file://nas01", "/share/x.csv")),
        (
            "abfs://wasb_default@lake/fa/x.csv",
            "acct",
            ("abfss://lake@acct.dfs.core.windows.net", "fa/x.csv"),
        ),
        ("abfs://wasb_default@lake/fa/x.csv", None, ("abfss://lake", "fa/x.csv")),
        (
            "abfss://lake@acct.dfs.core.windows.net/fa/x.csv",
            None,
            ("abfss://lake@acct.dfs.core.windows.net", "fa/x.csv"),
        ),
        ("wasb://azure_conn@lake/fa/x.csv", "acct", ("wasbs://lake@acct.dfs.core.windows.net", "fa/x.csv")),
        (
            "wasbs://lake@acct.blob.core.windows.net/fa/x.csv",
            None,
            ("wasbs://lake@acct.dfs.core.windows.net", "fa/x.csv"),
        ),
        ("sftp://drop_conn@files.example.com:2222/in/x.csv", None, ("sftp://files.example.com:2222", "in/x.csv")),
    ],
)
def test_the_object_is_named_by_the_openlineage_spec(uri: str, account: str | None, expected: Any) -> None:
    assert object_dataset(uri, account) == expected


def test_names_match_the_openlineage_clients_naming_helpers() -> None:
    from openlineage.client.naming import dataset as naming

    cases = [
        ("s3://conn@lake/a/b.csv", None, naming.S3(bucket_name="lake", object_key="a/b.csv")),
        ("gs://conn@lake/a/b.csv", None, naming.GCS(bucket_name="lake", object_key="a/b.csv")),
        ("file:///data/b.csv", None, naming.LocalFileSystem(path="/data/b.csv")),
        ("abfs://conn@lake/a/b.csv", "acct", naming.ABFSS(container="lake", service="acct", path="a/b.csv")),
        (
            "wasb://conn@lake/a/b.csv",
            "acct",
            naming.WASBS(container="lake", service_name="acct", object_key="a/b.csv"),
        ),
    ]
    for uri, account, spec in cases:
        assert object_dataset(uri, account) == (spec.get_namespace(), spec.get_name()), uri


def test_names_match_the_providers_asset_converters() -> None:
    # The amazon, google and common-io providers turn Airflow assets into OpenLineage datasets.
    from airflow.providers.amazon.aws.assets.s3 import convert_asset_to_openlineage as from_s3
    from airflow.providers.common.io.assets.file import convert_asset_to_openlineage as from_file
    from airflow.providers.google.assets.gcs import convert_asset_to_openlineage as from_gcs

    from airflow_provider_followanalytics._compat import lineage_uri_object

    converters = [("s3://lake/a/b.csv", from_s3), ("gs://lake/a/b.csv", from_gcs), ("file:///d/b.csv", from_file)]
    for uri, convert in converters:
        dataset = convert(lineage_uri_object(uri), None)
        assert object_dataset(uri) == (dataset.namespace, dataset.name), uri


# --------------------------------------------------------------------------------------- lineage_of


def test_lineage_of_builds_the_providers_operator_lineage() -> None:
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.openlineage.extractors import OperatorLineage

    lineage = lineage_of(CALLBACK_URL, "s3://aws_default@lake/k.csv")
    assert isinstance(lineage, OperatorLineage)
    assert lineage.inputs == [Dataset(namespace="https://api.follow-apps.com", name="/api/exports/download_url")]
    assert lineage.outputs == [Dataset(namespace="s3://lake", name="k.csv")]


def test_lineage_of_a_failed_transfer_reports_the_input_only() -> None:
    lineage = lineage_of(CALLBACK_URL)
    assert lineage is not None
    assert [d.namespace for d in lineage.inputs] == ["https://api.follow-apps.com"]
    assert lineage.outputs == []


def test_lineage_of_an_azure_object_storage_path_reads_the_account_from_its_filesystem(
    azure_conn: str, azure_container: str, object_store_cache: Any
) -> None:
    if AIRFLOW_V_3:
        from airflow.sdk import ObjectStoragePath
    else:
        from airflow.io.path import ObjectStoragePath

    path = ObjectStoragePath(f"abfs://{azure_conn}@{azure_container}/fa/x.csv")
    lineage = lineage_of(CALLBACK_URL, path)
    assert lineage is not None
    assert [(d.namespace, d.name) for d in lineage.outputs] == [
        (f"abfss://{azure_container}@devstoreaccount1.dfs.core.windows.net", "fa/x.csv")
    ]


def test_lineage_of_is_none_without_the_openlineage_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes the import raise ImportError, as if the provider were absent.
    monkeypatch.setitem(sys.modules, "airflow.providers.openlineage.extractors", None)
    assert lineage_of(CALLBACK_URL, "s3://lake/k.csv") is None


def test_importing_the_module_does_not_import_openlineage() -> None:
    code = (
        "import sys\n"
        "import airflow_provider_followanalytics.transfers._lineage\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('openlineage', 'airflow.providers.openlineage')))\n"
        "print(loaded)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"


# A real DAG run's events (the transfers', each calling lineage_of): tests/transfers/test_lineage.py.
