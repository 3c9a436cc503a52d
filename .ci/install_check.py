"""Install the built wheel the way a managed Airflow does, on every supported Airflow minor, and use it.

For each ``requirements/airflow-<minor>.lock`` (one patch release of each minor, 2.10 to 3.3):
1. a fresh virtualenv gets Airflow and the providers that lock pins (amazon, and on 2.10 / 3.3 also
   google, microsoft-azure and openlineage), at the pinned versions;
2. the wheel with the matching extras is added with the same pins as constraints, and nothing already
   installed may change version (the provider and its extras must fit inside that Airflow's pins; what
   they add, such as s3fs for ``[amazon]``, must be pinned by the lock);
3. ``airflow providers list`` / ``providers hooks`` show it;
4. the connection form as that minor builds it: ``ProvidersManager``'s field behaviour and widgets
   (2.x, 3.0 with wtforms, 3.2+) and, on 3.x, the API server's ``hook_meta`` (what its UI renders);
5. the example DAGs import (a DAG whose destination provider is not installed must say which);
6. ``make demo``'s run of the main example DAG (``airflow dags test``, i.e. ``dag.test()``) against the
   emulator and moto's S3, checked byte for byte;
7. ``airflow connections test`` logs in to the emulator shipped in the wheel, and a wrong password is
   reported without being printed.

Usage: python .ci/install_check.py --uv .tools/bin/uv [--only 3.0 [--only 3.1 ...]]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
# What a managed Airflow may already have, and the extra of the wheel that goes with each.
PROVIDERS = {
    "apache-airflow-providers-amazon": "amazon",
    "apache-airflow-providers-google": "google",
    "apache-airflow-providers-microsoft-azure": "azure",
    "apache-airflow-providers-openlineage": None,
}
DAG_IMPORT_CHECK = """
import re, sys
try:  # Airflow 3
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder=sys.argv[1])
except ImportError:  # Airflow 2
    from airflow.models.dagbag import DagBag
    bag = DagBag(dag_folder=sys.argv[1], include_examples=False)
missing = set(sys.argv[2].split(",")) - {""}
for path, error in bag.import_errors.items():
    # A DAG whose destination provider is not installed must say so, with the pip command.
    needs = re.search(r"needs airflow[.]providers[.](\\w+), which is not installed: pip install", error)
    assert needs and needs.group(1) in missing, (path, error)
assert bag.dags, "no DAG found"
print(f"{len(bag.dags)} example DAGs import ({len(bag.import_errors)} refused for a missing provider, "
      "as they should): " + ", ".join(sorted(bag.dags)))
"""
# The connection form as each Airflow builds it. hook_meta first, in a process of its own: 3.1's
# builder reads the ProvidersManager's cache, which must not be filled before it stands in for wtforms.
HOOK_META_CHECK = """
import json
from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
meta = {m.connection_type: m.model_dump() for m in HookMetaService.hook_meta_data()}["followanalytics"]
print(json.dumps({"standard": meta["standard_fields"], "extra": meta["extra_fields"]}))
"""
PROVIDERS_MANAGER_CHECK = """
import json
from airflow.providers_manager import ProvidersManager
manager = ProvidersManager()
widgets = sorted(name for name in manager.connection_form_widgets if name.startswith("extra__followanalytics__"))
print(json.dumps({"behaviour": manager.field_behaviours.get("followanalytics"), "widgets": widgets}))
"""
DEMO_SECRETS = ("demo-password", "demo-secret")  # the passwords of scripts/demo.py's two connections
EXTRA_FIELDS = ["allow_insecure_http", "max_retries", "proxies", "retry_delay", "timeout", "verify"]


def run(cmd: list[str], env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, cwd=tempfile.gettempdir())
    if check and result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit(f"FAILED: {' '.join(cmd)}")
    return result


def pins(lock: Path) -> dict[str, str]:
    found = {}
    for line in lock.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if match:
            found[match.group(1).lower().replace("_", "-")] = match.group(2)
    return found


def freeze(uv: str, venv: Path) -> dict[str, str]:
    out = run([uv, "pip", "freeze", "--python", str(venv / "bin" / "python")]).stdout
    return {
        name.lower().replace("_", "-"): version
        for name, _, version in (line.partition("==") for line in out.splitlines() if "==" in line)
    }


def build(uv: str, dist: Path) -> Path:
    shutil.rmtree(dist, ignore_errors=True)
    run([uv, "build", "--quiet", "--out-dir", str(dist), str(ROOT)])
    wheels = list(dist.glob("*.whl"))
    sdists = list(dist.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, (wheels, sdists)
    print(f"built {wheels[0].name} and {sdists[0].name}")
    return wheels[0]


def last_json(output: str) -> dict[str, object]:
    return json.loads(output.strip().splitlines()[-1])  # type: ignore[no-any-return]


def check_form(python: str, env: dict[str, str], airflow_version: Version, name: str) -> None:
    """Assert the connection form the running Airflow builds: labels, placeholders, the extra fields."""
    if airflow_version.major >= 3:
        meta = last_json(run([python, "-c", HOOK_META_CHECK], env=env).stdout)
        standard, extra = meta["standard"], meta["extra"]
        assert isinstance(standard, dict) and isinstance(extra, dict), f"hook_meta has no form: {meta}"
        assert standard["login"] == {"hidden": False, "title": "Email", "placeholder": "you@example.com"}, standard
        assert standard["host"]["title"] == "API base URL" and standard["port"]["hidden"], standard
        assert sorted(extra) == EXTRA_FIELDS, extra
        assert extra["timeout"]["schema"]["title"] == "Request timeout (seconds)", extra["timeout"]
        assert "integer" in extra["max_retries"]["schema"]["type"], extra["max_retries"]
        assert "boolean" in extra["allow_insecure_http"]["schema"]["type"], extra["allow_insecure_http"]
        assert extra["verify"]["schema"]["title"].startswith("Verify TLS"), extra["verify"]
        assert extra["proxies"]["schema"]["title"].startswith("Proxies"), extra["proxies"]
        print(f"[{name}] API server hook_meta: Email / API base URL, port hidden, {len(extra)} extra fields")
    # 3.1 builds hooks' forms in ProvidersManager only where wtforms imports (its API server does not
    # need it); 3.0's lock has wtforms, without which 3.0 shows no provider's fields at all.
    if airflow_version.release[:2] == (3, 1):
        return
    manager = last_json(run([python, "-c", PROVIDERS_MANAGER_CHECK], env=env).stdout)
    behaviour = manager["behaviour"]
    assert isinstance(behaviour, dict), f"ProvidersManager has no field behaviour: {manager}"
    assert behaviour["relabeling"] == {"login": "Email", "host": "API base URL"}, behaviour
    assert set(behaviour["hidden_fields"]) == {"schema", "port", "extra"}, behaviour
    assert behaviour["placeholders"]["login"] == "you@example.com", behaviour
    assert manager["widgets"] == [f"extra__followanalytics__{field}" for field in EXTRA_FIELDS], manager
    print(f"[{name}] ProvidersManager: field behaviour and the {len(EXTRA_FIELDS)} extra widgets")


def check_target(uv: str, name: str, wheel: Path, workdir: Path) -> float:
    started = time.monotonic()
    lock = ROOT / "requirements" / f"airflow-{name}.lock"
    pinned = pins(lock)
    providers = [pkg for pkg in PROVIDERS if pkg in pinned]
    extras = ",".join(extra for pkg in providers if (extra := PROVIDERS[pkg]))
    missing = ",".join(pkg.rsplit("-", 1)[-1] for pkg in PROVIDERS if pkg not in pinned)
    venv = workdir / f"venv-{name}"
    run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)])
    python = str(venv / "bin" / "python")
    # wtforms where the lock has it: 3.0 builds connection forms only with it (FAB's provider brings it).
    base = [f"{pkg}=={pinned[pkg]}" for pkg in ["apache-airflow", *providers, "wtforms"] if pkg in pinned]
    run([uv, "pip", "install", "--quiet", "--python", python, "--constraint", str(lock), *base])
    before = freeze(uv, venv)
    run([uv, "pip", "install", "--quiet", "--python", python, "--constraint", str(lock), f"{wheel}[{extras}]"])
    after = freeze(uv, venv)
    changed = {pkg: (before[pkg], after.get(pkg)) for pkg in before if before[pkg] != after.get(pkg)}
    added = sorted(set(after) - set(before) - {"airflow-provider-followanalytics"})
    assert not changed, f"installing the wheel changed pinned packages: {changed}"
    # New packages are fine where the lock pins them (s3fs for the [amazon] extra): they fit that Airflow.
    unpinned = [f"{pkg}=={after[pkg]}" for pkg in added if pinned.get(pkg) != after[pkg]]
    assert not unpinned, f"installing the wheel pulled in packages the lock does not pin: {unpinned}"
    run([uv, "pip", "check", "--python", python])
    airflow_version = Version(after["apache-airflow"])
    print(f"[{name}] Airflow {airflow_version} + {wheel.name}[{extras}]: no pinned package changed")
    # moto's server for the demo's local S3: a test tool, added after the checks above.
    run(
        [
            uv,
            "pip",
            "install",
            "--quiet",
            "--python",
            python,
            "--constraint",
            str(lock),
            f"moto[s3,server]=={pinned['moto']}",
        ]
    )

    home = workdir / f"demo-{name}"  # the demo's Airflow home is home/airflow
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
        "PYTHONPATH": "",  # the wheel's package, never the checkout's
    }
    airflow = str(venv / "bin" / "airflow")
    listed = run([airflow, "providers", "list", "--output", "json"], env=env).stdout
    assert "airflow-provider-followanalytics" in listed, listed[-2000:]
    hooks = run([airflow, "providers", "hooks", "--output", "json"], env=env).stdout
    assert '"followanalytics"' in hooks and "FollowAnalyticsHook" in hooks, hooks[-2000:]
    print(f"[{name}] airflow providers list / hooks show the provider and the followanalytics connection type")
    check_form(python, env, airflow_version, name)

    # The example DAGs are not in the wheel: import them from the repo, with the wheel's package.
    dags = run([python, "-c", DAG_IMPORT_CHECK, str(ROOT / "example_dags"), missing], env=env)
    print(f"[{name}] {dags.stdout.strip().splitlines()[-1]}")

    demo = run([python, str(ROOT / "scripts" / "demo.py"), "--home", str(home)], env=env, check=False)
    if demo.returncode != 0 or "matches the file the emulator served, byte for byte" not in demo.stdout:
        log = home / "airflow-dags-test.log"
        sys.stderr.write(demo.stdout[-3000:] + demo.stderr[-3000:] + (log.read_text()[-6000:] if log.exists() else ""))
        raise SystemExit(f"FAILED: [{name}] the main example DAG did not land byte for byte")
    print(f"[{name}] one-task example DAG: bucket checked, export, deferred wait, S3; byte for byte (dags test)")
    check_demo_log(home / "airflow-dags-test.log", airflow_version, name)

    check_connections_test(python, airflow, env, workdir)
    print(f"[{name}] airflow connections test: logs in, and reports a wrong password without printing it")
    elapsed = time.monotonic() - started
    print(f"[{name}] install check passed in {elapsed:.0f}s")
    return elapsed


def check_demo_log(log: Path, airflow_version: Version, name: str) -> None:
    """No password of the demo's connections in its Airflow log, but where Airflow 3.0 itself prints it.

    3.0's ``airflow dags test`` logs every request its task process sends at debug level, including
    ``MaskSecret(value=...)`` for each connection's password (Airflow's own masking as well as the
    provider's); 3.1 no longer does. Any other line with a password fails the check.
    """
    airflow_own = "MaskSecret(value=" if airflow_version.release[:2] == (3, 0) else None
    leaks = [
        line
        for line in log.read_text(errors="replace").splitlines()
        if any(secret in line for secret in DEMO_SECRETS) and not (airflow_own and airflow_own in line)
    ]
    assert not leaks, f"[{name}] {len(leaks)} line(s) of the demo's log hold a connection password"
    print(
        f"[{name}] the demo's Airflow log holds no connection password"
        + (" but 3.0's own MaskSecret debug lines" if airflow_own else "")
    )


def check_connections_test(python: str, airflow: str, env: dict[str, str], workdir: Path) -> None:
    emulator = subprocess.Popen(
        [python, "-m", "airflow_provider_followanalytics.emulator", "--port", "0", "--password", "ci-pass-123"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=workdir,
        env=env,
    )
    try:
        assert emulator.stdout is not None
        url = emulator.stdout.readline().strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:"), url
        conn = {"conn_type": "followanalytics", "login": "demo@example.com", "password": "ci-pass-123", "host": url}
        test_env = {**env, "AIRFLOW_CONN_FOLLOWANALYTICS_DEFAULT": json.dumps(conn)}
        result = run([airflow, "connections", "test", "followanalytics_default"], env=test_env)
        assert "Connection success" in result.stdout, result.stdout
        assert logins(url) == 1, "the connection test did not log in exactly once"
        conn["password"] = "wrong-ci-pass"  # noqa: S105 - a deliberately wrong test password
        test_env["AIRFLOW_CONN_FOLLOWANALYTICS_DEFAULT"] = json.dumps(conn)
        bad = run([airflow, "connections", "test", "followanalytics_default"], env=test_env, check=False)
        output = bad.stdout + bad.stderr
        assert "Invalid email or password" in output and "wrong-ci-pass" not in output, output[-2000:]
        assert logins(url) == 1, "a wrong password logged in"
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)


def logins(emulator_url: str) -> int:
    """Successful logins the emulator counted (its control endpoint)."""
    with urllib.request.urlopen(f"{emulator_url}/_emulator/state", timeout=10) as answer:  # noqa: S310 - http://127.0.0.1
        return int(json.load(answer)["login_count"])


def minors() -> list[str]:
    """Every Airflow minor with a lock, oldest first."""
    found = [path.stem.removeprefix("airflow-") for path in (ROOT / "requirements").glob("airflow-*.lock")]
    return sorted(found, key=Version)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uv", default=str(ROOT / ".tools" / "bin" / "uv"))
    parser.add_argument("--only", action="append", choices=minors(), help="an Airflow minor (repeatable)")
    args = parser.parse_args()
    args.uv = str(Path(args.uv).resolve())  # the checks run in a temporary folder
    with tempfile.TemporaryDirectory(prefix="fa-install-check-") as tmp:
        workdir = Path(tmp)
        wheel = build(args.uv, workdir / "dist")
        times = {name: check_target(args.uv, name, wheel, workdir) for name in args.only or minors()}
    print("install check: OK (" + ", ".join(f"Airflow {name} {seconds:.0f}s" for name, seconds in times.items()) + ")")


if __name__ == "__main__":
    main()
