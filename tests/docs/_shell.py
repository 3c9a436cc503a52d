"""Run the shell snippets of one page as one bash script, as a person would in one terminal.

The blocks run in page order in a new empty folder, with ``set -e``; after each block the script
writes a marker (``### FA-BLOCK-END <file>:<line>``) so that each block's test reads its own output.
A Python block announced by "Save it as `PATH`" is written to ``PATH`` at its place in the page.
The substitutions (all mechanical, listed in ``tests/docs/test_snippets.py``) are made here.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.docs._markdown import ROOT, Snippet

MARKER = "### FA-BLOCK-END "
FIXED_PORTS = ("8765", "5055", "9023", "10000")  # emulator, moto, GCS emulator, Azurite
CHECKOUT = "/path/to/airflow-provider-followanalytics"
_FOREGROUND_EMULATOR = re.compile(r"^python -m airflow_provider_followanalytics\.emulator\b(?!.*&\s*(#.*)?$)")
_KEPT_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "NO_PROXY", "no_proxy", "USER", "TERM")

PRELUDE = r"""
set -e
__fa_wait_port() {  # a server started in the background accepts connections (a person would wait)
  local i
  for i in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "nothing listens on port $1 after 60 s" >&2; return 1
}
__fa_conns() {  # every value an AIRFLOW_CONN_* variable takes, for the block's connection checks
  local v
  for v in ${!AIRFLOW_CONN_@}; do printf '%s\0%s\0' "$v" "${!v}" >> "$__FA_OUT/conns.${__FA_BLOCK##*:}"; done
}
__fa_foreground() {  # a server in the foreground: started, awaited, its output printed, stopped (Ctrl-C)
  __FA_FG_OUT="$__FA_OUT/foreground.$RANDOM.log"
  "$@" > "$__FA_FG_OUT" 2>&1 &
  local pid=$! i
  for i in $(seq 600); do
    grep -q "listening on" "$__FA_FG_OUT" && break
    kill -0 "$pid" 2>/dev/null || { cat "$__FA_FG_OUT"; return 1; }
    sleep 0.1
  done
  cat "$__FA_FG_OUT"
  "$__FA_PY" "$__FA_HELPERS/_probe.py" "$__FA_FG_OUT"
  kill -TERM "$pid"; wait "$pid"
}
__fa_expect() {  # an output line the page shows as a comment under the command
  grep -qxF -- "$1" "$__FA_FG_OUT" || { echo "expected output line missing: $1" >&2; return 1; }
}
__FA_BLOCK=prelude:0
trap '__fa_conns || true' DEBUG
"""
EPILOGUE = r"""
trap - DEBUG
for __v in $(compgen -v | grep '_PID$' || true); do echo "$__v=${!__v}" >> "$__FA_OUT/pids"; done
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def airflow_version() -> str:
    from airflow import __version__

    return str(__version__)


@dataclass
class PageRun:
    """The outcome of one page's script."""

    returncode: int
    output: str
    outputs: dict[str, str]  # block id -> what the block printed (only blocks that finished)
    pids: dict[str, int]
    leftovers: list[int]  # processes of the script's group still alive after it exited
    conns: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    workdir: Path = Path()


def substitute(code: str, ports: dict[str, int], tmp: Path) -> str:
    """The mechanical substitutions of a shell block (see the test module's docstring)."""
    version = airflow_version()
    minor = ".".join(version.split(".")[:2])
    # /tmp/ of the page first: the checkout (and the test's folder) may themselves be under /tmp.
    code = re.sub(r"(?<![\w./-])/tmp/", f"{tmp}/", code)
    code = code.replace(CHECKOUT, str(ROOT))
    for fixed, port in ports.items():
        code = re.sub(rf"\b{fixed}\b", str(port), code)
    code = re.sub(r"apache-airflow==[0-9.]+", f"apache-airflow=={version}", code)
    code = re.sub(r"requirements/airflow-[0-9.]+\.lock", f"requirements/airflow-{minor}.lock", code)
    code = re.sub(r"^python3 -m venv (\S+)$", r'"$__FA_PY" "$__FA_HELPERS/_venv.py" \1', code, flags=re.M)
    code = re.sub(
        r"^python -m build --wheel --outdir (\S+) \S+$", r'mkdir -p \1 && cp "$__FA_WHEEL" \1/', code, flags=re.M
    )
    azurite = ROOT / ".tools" / "azurite" / "node_modules"
    code = re.sub(
        r"^npm install --prefix (\S+) azurite$", rf'mkdir -p \1 && ln -s "{azurite}" \1/node_modules', code, flags=re.M
    )
    lines, out, after_foreground = code.splitlines(), [], False
    for line in lines:
        if _FOREGROUND_EMULATOR.match(line):
            out.append(f"__fa_foreground {line}")
            after_foreground = True
        elif after_foreground and line.startswith("# "):
            out.append(f"__fa_expect {shlex.quote(line[2:])}")
        else:
            after_foreground = False
            out.append(line)
            if line.rstrip().endswith("&") or re.search(r"&\s+#", line):
                out.extend(f"__fa_wait_port {port}" for port in ports.values() if re.search(rf"\b{port}\b", line))
    return "\n".join(out) + "\n"


def script_of(blocks: list[Snippet], ports: dict[str, int], tmp: Path, prelude: str = "", epilogue: str = "") -> str:
    parts = [PRELUDE, prelude]
    for block in blocks:
        parts.append(f"__FA_BLOCK={shlex.quote(block.id)}\n")
        if block.language == "python":  # "Save it as `PATH`": the file, written at its place in the page
            parts.append(f'mkdir -p "$(dirname "{block.save_as}")"\ncat > "{block.save_as}" <<\'__FA_EOF__\'\n')
            parts.append(block.code + "__FA_EOF__\n")
        else:
            parts.append(substitute(block.code, ports, tmp))
        parts.append(f"echo; echo {shlex.quote(MARKER + block.id)}\n")
    parts.append(epilogue)
    parts.append(EPILOGUE)
    return "".join(parts)


def script_env(out: Path, wheel: Path | None) -> dict[str, str]:
    """A clean environment: nothing of the test session's Airflow, AWS or GCS settings."""
    env = {key: os.environ[key] for key in _KEPT_ENV if key in os.environ}
    env.update(
        {
            "__FA_PY": sys.executable,
            "__FA_OUT": str(out),
            "__FA_WHEEL": str(wheel or ""),
            "__FA_HELPERS": str(Path(__file__).parent),
            "PIP_NO_INDEX": "1",  # no registry: everything the pages install is installed already
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
    )
    return env


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def run_page(script: str, workdir: Path, wheel: Path | None, timeout: float = 240.0) -> PageRun:
    """Run ``script`` with bash in ``workdir``; collect each block's output, the pids and leftovers."""
    out = workdir.parent / f"{workdir.name}-out"
    out.mkdir(parents=True, exist_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    (out / "script.sh").write_text(script)
    log = out / "output.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            ["bash", str(out / "script.sh")],
            cwd=workdir,
            env=script_env(out, wheel),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            returncode = proc.wait()
    deadline = time.monotonic() + 10  # a killed server may take a moment to exit
    while _group_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    leftovers = _group_members(proc.pid)
    if leftovers:  # the script's own process group: stopped so that nothing outlives the test
        os.killpg(proc.pid, signal.SIGKILL)
    output = log.read_text(errors="replace")
    outputs, start = {}, 0
    for match in re.finditer(rf"^{re.escape(MARKER)}(\S+)$", output, flags=re.M):
        outputs[match[1]] = output[start : match.start()].strip("\n")
        start = match.end()
    pids = {}
    if (out / "pids").exists():
        for line in (out / "pids").read_text().split():
            name, _, value = line.partition("=")
            if value.isdigit():
                pids[name] = int(value)
    conns: dict[str, list[tuple[str, str]]] = {}
    for path in out.glob("conns.*"):
        items = path.read_text().split("\0")
        pairs = sorted(set(zip(items[0:-1:2], items[1::2], strict=True)))
        conns[path.name.removeprefix("conns.")] = pairs  # by the block's line
    return PageRun(returncode, output, outputs, pids, leftovers, conns, workdir)


def alive(pid: int) -> bool:
    return _alive(pid)
