"""Fixtures of the snippet tests: the provider wheel, the page scripts, the stores' ``lake``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.docs._markdown import ROOT, Snippet, all_snippets
from tests.docs._shell import FIXED_PORTS, PageRun, free_port, run_page, script_of

LAKE = "lake"
# What a page's prose asks for after its last block ("Stop them with `kill ...`").
EPILOGUES = {"docs/emulator.md": 'kill "$MOTO_PID" "$GCS_PID" "$AZURITE_PID"\n'}
_VENV_PRELUDE = '"$__FA_PY" "$__FA_HELPERS/_venv.py" "$__FA_OUT/venv"\n. "$__FA_OUT/venv/bin/activate"\n'


@pytest.fixture(scope="session")
def provider_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The provider wheel, built once per session from a copy of the checkout's tracked files."""
    tmp = tmp_path_factory.mktemp("wheel")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        if (ROOT / name).is_file():
            (tmp / "src" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tmp / "src" / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--skip-dependency-check",
            "--outdir",
            str(tmp / "dist"),
            str(tmp / "src"),
        ],
        capture_output=True,
        check=True,
        timeout=300,
    )
    (wheel,) = (tmp / "dist").glob("airflow_provider_followanalytics-*.whl")
    return wheel


def page_blocks(file: str) -> list[Snippet]:
    """The blocks of a page's script: its shell blocks, and the files it says to save."""
    return [s for s in all_snippets() if s.file == file and s.norun is None and (s.language == "shell" or s.save_as)]


@pytest.fixture(scope="session")
def page_run(tmp_path_factory: pytest.TempPathFactory, provider_wheel: Path) -> Callable[[str], PageRun]:
    """``page_run("docs/get-started.md")``: that page's script, run once per session."""
    runs: dict[str, PageRun] = {}

    def _run(file: str) -> PageRun:
        if file not in runs:
            blocks = page_blocks(file)
            ports = {fixed: free_port() for fixed in FIXED_PORTS}
            base = tmp_path_factory.mktemp("page")
            needs_python = any("venv" not in b.code and ("pip " in b.code or "python" in b.code) for b in blocks)
            makes_venv = any("python3 -m venv" in b.code for b in blocks)
            prelude = _VENV_PRELUDE if needs_python and not makes_venv else ""
            script = script_of(blocks, ports, base / "tmp", prelude, EPILOGUES.get(file, ""))
            (base / "tmp").mkdir()
            runs[file] = run_page(script, base / "work", provider_wheel)
        return runs[file]

    return _run


@pytest.fixture
def lake(request: pytest.FixtureRequest) -> Callable[[str], dict[str, Any]]:
    """``lake(code)``: the stand-ins the snippet names, each with an empty ``lake``; their clients."""

    def _prepare(code: str) -> dict[str, Any]:
        clients: dict[str, Any] = {}
        if "s3" in code.lower():
            s3 = request.getfixturevalue("s3_client")
            if LAKE not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
                s3.create_bucket(Bucket=LAKE)
            for item in s3.list_objects_v2(Bucket=LAKE).get("Contents", []):
                s3.delete_object(Bucket=LAKE, Key=item["Key"])
            clients["s3"] = s3
        if "gcs" in code.lower() or "gs://" in code:
            from google.auth.credentials import AnonymousCredentials
            from google.cloud import storage

            request.getfixturevalue("gcp_conn")
            client = storage.Client(project="test-project", credentials=AnonymousCredentials())
            bucket = client.lookup_bucket(LAKE) or client.create_bucket(LAKE)
            for blob in bucket.list_blobs():
                blob.delete()
            clients["gs"] = bucket
        if "abfs://" in code or "wasb" in code:
            request.getfixturevalue("azure_conn")
            service = request.getfixturevalue("azure_service_client")
            container = service.get_container_client(LAKE)
            if not container.exists():
                container.create_container()
            for name in container.list_blob_names():
                container.delete_blob(name)
            clients["abfs"] = container
        if "ObjectStoragePath" in code or "://" in code:
            request.getfixturevalue("object_store_cache")
        return clients

    return _prepare
