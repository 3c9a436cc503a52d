"""Install the built wheel the way a managed Airflow does, and check that Airflow accepts it.

For each pinned Airflow (3.3.2 and 2.10.5):
1. a fresh virtualenv gets Airflow and the amazon / google / microsoft-azure / openlineage
   providers at the pinned versions;
2. the wheel with its extras is added with the same pins as constraints, and nothing already
   installed may change version (the provider and its extras must fit inside that Airflow's pins);
3. ``airflow providers list`` / ``providers hooks`` show it, the example DAGs import,
   and ``airflow connections test`` logs in to the emulator shipped in the wheel.

Usage: python .ci/install_check.py --uv .tools/bin/uv [--only airflow3|airflow2]
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What the managed Airflow already has; the wheel goes in with every extra, which must fit these pins.
PROVIDERS = [
    "apache-airflow-providers-amazon",
    "apache-airflow-providers-google",
    "apache-airflow-providers-microsoft-azure",
    "apache-airflow-providers-openlineage",
]
TARGETS = {"airflow3": ["apache-airflow", *PROVIDERS], "airflow2": ["apache-airflow", *PROVIDERS]}
EXTRAS = "amazon,google,azure"
DAG_IMPORT_CHECK = """
import sys
try:  # Airflow 3
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder=sys.argv[1])
except ImportError:  # Airflow 2
    from airflow.models.dagbag import DagBag
    bag = DagBag(dag_folder=sys.argv[1], include_examples=False)
assert not bag.import_errors, bag.import_errors
assert bag.dags, "no DAG found"
print(f"{len(bag.dags)} example DAGs import: " + ", ".join(sorted(bag.dags)))
"""


def run(cmd: list[str], env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
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


def check_target(uv: str, name: str, wheel: Path, workdir: Path) -> None:
    started = time.monotonic()
    lock = ROOT / "requirements" / f"{name}.lock"
    pinned = pins(lock)
    venv = workdir / f"venv-{name}"
    run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)])
    python = str(venv / "bin" / "python")
    base = [f"{pkg}=={pinned[pkg]}" for pkg in TARGETS[name]]
    run([uv, "pip", "install", "--quiet", "--python", python, "--constraint", str(lock), *base])
    before = freeze(uv, venv)
    run([uv, "pip", "install", "--quiet", "--python", python, "--constraint", str(lock), f"{wheel}[{EXTRAS}]"])
    after = freeze(uv, venv)
    changed = {pkg: (before[pkg], after.get(pkg)) for pkg in before if before[pkg] != after.get(pkg)}
    added = sorted(set(after) - set(before) - {"airflow-provider-followanalytics"})
    assert not changed, f"installing the wheel changed pinned packages: {changed}"
    assert not added, f"installing the wheel pulled in new packages: {added}"
    run([uv, "pip", "check", "--python", python])

    home = workdir / f"home-{name}"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
    }
    airflow = str(venv / "bin" / "airflow")
    providers = run([airflow, "providers", "list", "--output", "json"], env=env).stdout
    assert "airflow-provider-followanalytics" in providers, providers[-2000:]
    hooks = run([airflow, "providers", "hooks", "--output", "json"], env=env).stdout
    assert '"followanalytics"' in hooks and "FollowAnalyticsHook" in hooks, hooks[-2000:]
    print(f"[{name}] airflow providers list / hooks show the provider and the followanalytics connection type")

    if any((ROOT / "example_dags").glob("*.py")):
        # The example DAGs are not in the wheel: import them from the repo, with the wheel's package.
        dags = run([python, "-c", DAG_IMPORT_CHECK, str(ROOT / "example_dags")], env={**env, "PYTHONPATH": ""})
        print(f"[{name}] {dags.stdout.strip().splitlines()[-1]}")

    run([airflow, "db", "migrate"], env=env)
    emulator = subprocess.Popen(
        [python, "-m", "airflow_provider_followanalytics.emulator", "--port", "0", "--password", "ci-pass-123"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=workdir,
    )
    try:
        assert emulator.stdout is not None
        url = emulator.stdout.readline().strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:"), url
        conn = {"conn_type": "followanalytics", "login": "demo@example.com", "password": "ci-pass-123", "host": url}
        test_env = {**env, "AIRFLOW_CONN_FOLLOWANALYTICS_DEFAULT": json.dumps(conn)}
        result = run([airflow, "connections", "test", "followanalytics_default"], env=test_env)
        assert "Connection success" in result.stdout, result.stdout
        conn["password"] = "wrong-ci-pass"  # noqa: S105 - a deliberately wrong test password
        test_env["AIRFLOW_CONN_FOLLOWANALYTICS_DEFAULT"] = json.dumps(conn)
        bad = run([airflow, "connections", "test", "followanalytics_default"], env=test_env, check=False)
        output = bad.stdout + bad.stderr
        assert "Invalid email or password" in output and "wrong-ci-pass" not in output, output[-2000:]
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
    print(f"[{name}] airflow connections test: logs in, and reports a wrong password without printing it")
    print(f"[{name}] install check passed in {time.monotonic() - started:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uv", default=str(ROOT / ".tools" / "bin" / "uv"))
    parser.add_argument("--only", choices=sorted(TARGETS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fa-install-check-") as tmp:
        workdir = Path(tmp)
        wheel = build(args.uv, workdir / "dist")
        for name in [args.only] if args.only else sorted(TARGETS, reverse=True):
            check_target(args.uv, name, wheel, workdir)
    print("install check: OK")


if __name__ == "__main__":
    main()
