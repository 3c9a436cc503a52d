"""Every code block of README.md and docs/*.md, executed: one test per block, named ``<file>:<line>``.

Blocks whose info string starts with ``python``, ``bash``, ``shell`` or ``console`` run (see
``_markdown.py``); ``python norun`` / ``bash norun`` blocks are skipped with the reason their first
line gives (``pytest -rs`` lists them).

**Python blocks that define a DAG** are written into a fresh dags folder, parsed with a DagBag, and
each DAG is run with ``dag.test()`` (``tests.dagrun.run_dag``) for the logical date 2024-03-10 (the
data interval is 9 March) against the emulator (``followanalytics_default``; every export ready at
its first check, so no ``poll_interval`` is ever waited) and the stand-ins the snippet names, each
with an empty ``lake``: moto's S3 (``aws_default``), the GCS emulator (``google_cloud_default``),
Azurite (``wasb_default``). Every task must succeed; every XCom must be a callback URL of the
emulator, its e-mail confirmation, or the URL of an object that exists with the exact bytes of one of
the emulator's exports (gunzipped for ``.gz``), and the stores must hold nothing else. A DAG without
tasks (a downstream ``...`` placeholder) is parsed only: each asset it is scheduled on must be an
outlet of a task of the snippet. **Other Python blocks** run (``exec``) with the connection set.

**Shell blocks** of a page run as one bash script, in page order, in a new empty folder
(``_shell.py``), with ``set -e`` and a marker after each block; each block's test checks that its
block finished, the ``AIRFLOW_CONN_*`` values it set parse as Airflow connections, and the page's
last block also that the script exited 0 and nothing it started is left running (its ``*_PID``
processes and its whole process group). A page that does not make its own virtual environment but
runs ``pip``/``python`` gets one first, made as below. ``docs/get-started.md`` writes the DAG it says
to save to ``$AIRFLOW_HOME/dags/fa_try.py`` at its place and must print the object key
``followanalytics/events/2024-03-09.csv``; ``docs/emulator.md`` ends with the kill its prose gives.

Substitutions, all mechanical (``_shell.substitute``):

* ``file:///tmp/`` (Python) and ``/tmp/`` (shell) -> a temporary folder of the test;
* the fixed ports 8765 (emulator), 5055 (moto), 9023 (GCS emulator), 10000 (Azurite) -> free
  ports chosen at run time (bound to port 0);
* ``/path/to/airflow-provider-followanalytics`` -> this checkout;
* ``apache-airflow==X`` and ``requirements/airflow-X.lock`` -> the running Airflow's version and
  lock (3.3 on ``.venv``, 2.10 on ``.venv-af2``);
* ``python3 -m venv DIR`` -> ``_venv.py DIR`` with the test's interpreter: ``--system-site-packages``
  plus that interpreter's packages, so that every ``pip install`` finds its requirements installed
  (``PIP_NO_INDEX=1``, ``PIP_CONFIG_FILE=/dev/null``: no registry is asked);
* ``python -m build --wheel --outdir DIR CHECKOUT`` -> a copy of the wheel built once per session
  (``python -m build --no-isolation`` from the checkout's tracked files);
* ``npm install --prefix DIR azurite`` -> ``DIR/node_modules`` linked to the pinned Azurite of
  ``make azurite`` (``.tools/azurite``);
* a foreground ``python -m airflow_provider_followanalytics.emulator ...`` -> started in the
  background, awaited until it prints its URL, probed (an unauthenticated request gets 401, over
  https against the CA it printed), stopped with SIGTERM (as Ctrl-C); the ``# ...`` comment lines
  under it are output lines it must have printed;
* after a block line that starts a server in the background (``... &``), the script waits until
  that line's port accepts connections, as a person would before the next command.

The script's environment is clean: ``PATH``, ``HOME``, locale and proxy settings only, none of the
test session's Airflow, AWS or GCS variables.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from airflow_provider_followanalytics._compat import AIRFLOW_V_3
from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator, expected_export_sha256
from airflow_provider_followanalytics.emulator.server import EXPORT_KIND_OF_ENDPOINT
from tests.dagrun import run_dag
from tests.docs._markdown import Snippet, all_snippets
from tests.docs._shell import PageRun, alive
from tests.docs.conftest import LAKE, page_blocks
from tests.example_dags.conftest import parse_example_dags

SNIPPETS = all_snippets()
LOGICAL_DATE = dt.datetime(2024, 3, 10, tzinfo=dt.timezone.utc)
GET_STARTED_KEY = "followanalytics/events/2024-03-09.csv"


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[snippet.id for snippet in SNIPPETS])
def test_snippet(snippet: Snippet, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if snippet.norun is not None:
        assert snippet.norun, f"{snippet.id} is marked norun without a reason: its first line must be a # comment"
        pytest.skip(f"{snippet.id}: {snippet.norun}")
    if snippet.language == "shell":
        _check_shell_block(snippet, request.getfixturevalue("page_run")(snippet.file))
    elif snippet.is_dag:
        _run_dag_snippet(snippet, request, tmp_path)
    else:
        request.getfixturevalue("fa_conn")
        exec(compile(snippet.code, snippet.id, "exec"), {"__name__": "__snippet__"})  # noqa: S102 - the docs' code


# ------------------------------------------------------------------------------------- shell


def _check_shell_block(snippet: Snippet, run: PageRun) -> None:
    tail = run.output[-4000:]
    stopped = next(
        b.id
        for b in [*page_blocks(snippet.file), snippet]
        if (b.language == "shell" and b.id not in run.outputs) or b == snippet
    )
    assert stopped == snippet.id, f"not reached: the page's script stopped in block {stopped} (see its test)"
    assert snippet.id in run.outputs, f"the block did not finish (script exit status {run.returncode}):\n{tail}"
    checked = 0
    for name, value in run.conns.get(str(snippet.line), []):
        if name.removeprefix("AIRFLOW_CONN_") in snippet.code or name in snippet.code:
            _check_connection(name, value, run)
            checked += 1
    assert checked >= snippet.code.count("export AIRFLOW_CONN_"), run.conns
    if snippet.file == "docs/get-started.md" and "airflow dags test" in snippet.code:
        assert run.outputs[snippet.id].splitlines()[-1] == GET_STARTED_KEY, run.outputs[snippet.id][-3000:]
    if snippet == page_blocks(snippet.file)[-1] or (snippet.language == "shell" and _last_shell(snippet)):
        assert run.returncode == 0, tail
        started = set(re.findall(r"(\w+_PID)=\$!", "".join(b.code for b in page_blocks(snippet.file))))
        assert set(run.pids) == started, run.pids
        assert [name for name, pid in run.pids.items() if alive(pid)] == [], run.pids
        assert run.leftovers == [], f"still running after the script: {run.leftovers}"


def _last_shell(snippet: Snippet) -> bool:
    return [b for b in page_blocks(snippet.file) if b.language == "shell"][-1] == snippet


def _check_connection(name: str, value: str, run: PageRun) -> None:
    from airflow.models.connection import Connection

    conn_id = name.removeprefix("AIRFLOW_CONN_").lower()
    conn = (
        Connection.from_json(value, conn_id=conn_id)
        if value.lstrip().startswith("{")
        else Connection(conn_id=conn_id, uri=value)
    )
    expected_type = {
        "followanalytics": "followanalytics",
        "aws": "aws",
        "google": "google_cloud_platform",
        "wasb": "wasb",
    }
    assert conn.conn_type == next(t for prefix, t in expected_type.items() if conn_id.startswith(prefix)), (name, value)
    if conn.conn_type == "followanalytics":
        assert conn.login, (name, value)
        assert "@" in conn.login, (name, value)
        verify = conn.extra_dejson.get("verify")
        if isinstance(verify, str) and verify.startswith(str(run.workdir.parent)):
            assert Path(verify).is_file(), f"{name}: its CA file {verify} does not exist"


# --------------------------------------------------------------------------------------- DAGs


def _run_dag_snippet(snippet: Snippet, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    request.getfixturevalue("airflow_db")
    request.getfixturevalue("fa_conn")
    emulator: FollowAnalyticsEmulator = request.getfixturevalue("emulator")
    local = tmp_path / "local"
    code = snippet.code.replace("file:///tmp/", f"file://{local}/")
    stores = request.getfixturevalue("lake")(code)
    dags_folder = tmp_path / "dags"
    dags_folder.mkdir()
    (dags_folder / "snippet.py").write_text(code)
    bag = parse_example_dags(dags_folder)
    assert not bag.import_errors, bag.import_errors
    assert bag.dags, "the snippet defines no DAG"
    outlets = {outlet.uri for dag in bag.dags.values() for task in dag.tasks for outlet in task.outlets}
    written: set[str] = set()
    for dag in bag.dags.values():
        if not dag.tasks:
            assets = _scheduled_on(dag)
            assert assets, f"{dag.dag_id} has no task and no asset schedule"
            assert assets <= outlets, (assets, outlets)
            continue
        result = run_dag(dag, logical_date=LOGICAL_DATE)
        assert result.state == "success", result.task_states
        assert set(result.task_states.values()) == {"success"}, result.task_states
        assert set(result.xcoms) == set(dag.task_ids), result.xcoms
        for task_id, value in result.xcoms.items():
            if _is_emulator_answer(value, emulator):
                continue
            assert isinstance(value, str), f"{task_id} returned {value!r}"
            assert "://" in value, f"{task_id} returned {value!r}"
            _assert_exact_export(value, stores, local, emulator)
            written.add(value)
    assert _stored(stores, local) == written


def _is_emulator_answer(value: Any, emulator: FollowAnalyticsEmulator) -> bool:
    callback = f"{emulator.url}/api/exports/download_url?export_token="
    return isinstance(value, str) and (value.startswith(callback) or value.startswith("Your report is being generated"))


def _scheduled_on(dag: Any) -> set[str]:
    """The URIs of the assets (datasets on Airflow 2) a DAG is scheduled on."""
    condition = dag.timetable.asset_condition if AIRFLOW_V_3 else dag.timetable.dataset_condition
    found, todo = set(), [condition]
    while todo:
        item = todo.pop()
        if getattr(item, "uri", None):
            found.add(item.uri)
        todo.extend(getattr(item, "objects", ()))
    return found


def _read(url: str, stores: dict[str, Any], local: Path) -> bytes:
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if parts.scheme == "s3":
        assert parts.netloc == LAKE, url
        return bytes(stores["s3"].get_object(Bucket=LAKE, Key=name)["Body"].read())
    if parts.scheme == "gs":
        assert parts.netloc == LAKE, url
        return bytes(stores["gs"].blob(name).download_as_bytes())
    if parts.scheme in ("abfs", "abfss"):
        assert parts.netloc == LAKE, url
        return bytes(stores["abfs"].download_blob(name).readall())
    assert parts.scheme == "file", url
    assert Path(parts.path).is_relative_to(local), url
    return Path(parts.path).read_bytes()


def _assert_exact_export(url: str, stores: dict[str, Any], local: Path, emulator: FollowAnalyticsEmulator) -> None:
    data = _read(url, stores, local)
    if url.endswith(".gz"):
        assert data[:2] == b"\x1f\x8b", url
        data = gzip.decompress(data)
    exports = {
        expected_export_sha256(emulator.export_size, file_format, kind=kind)
        for kind in set(EXPORT_KIND_OF_ENDPOINT.values())
        for file_format in ("csv", "xls")
    }
    assert hashlib.sha256(data).hexdigest() in exports, f"{url}: not byte for byte an export of the emulator"


def _stored(stores: dict[str, Any], local: Path) -> set[str]:
    found = set()
    if "s3" in stores:
        found |= {f"s3://{LAKE}/{o['Key']}" for o in stores["s3"].list_objects_v2(Bucket=LAKE).get("Contents", [])}
    if "gs" in stores:
        found |= {f"gs://{LAKE}/{blob.name}" for blob in stores["gs"].list_blobs()}
    if "abfs" in stores:
        found |= {f"abfs://{LAKE}/{name}" for name in stores["abfs"].list_blob_names()}
    if local.exists():
        found |= {f"file://{path}" for path in local.rglob("*") if path.is_file()}
    return found
