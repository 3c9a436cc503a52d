"""Make a virtual environment that sees the test interpreter's packages: ``python _venv.py DEST``.

What ``python3 -m venv DEST`` is replaced with in the shell snippets (stdlib only; run with the
test's own interpreter). Without internet, ``pip install apache-airflow==... --constraint LOCK``
must find everything installed already, so the new environment:

* is created with ``--system-site-packages`` and pip (``ensurepip``);
* adds the test interpreter's site-packages after its own (a ``.pth`` file), since that
  interpreter is itself a virtual environment, whose packages are not the "system" ones;
* drops the old setuptools that ``ensurepip`` bundles before Python 3.12, which would hide the
  locked one (and make pip want to install the lock's setuptools);
* gets the console scripts pip would have written had it installed the packages (``airflow``,
  ``moto_server``, ``gcp-storage-emulator``...), pointing at the new environment's python.
"""

from __future__ import annotations

import shutil
import sys
import sysconfig
import venv
from pathlib import Path


def make(dest: Path) -> None:
    parent_bin = Path(sys.executable).parent
    parent_site = sysconfig.get_paths()["purelib"]
    venv.EnvBuilder(system_site_packages=True, with_pip=True, symlinks=True).create(dest)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = dest / "lib" / version / "site-packages"
    (site / "_fa_parent_site.pth").write_text(f"import site; site.addsitedir({parent_site!r})\n")
    for bundled in [
        *site.glob("setuptools*"),
        *site.glob("_distutils_hack"),
        *site.glob("pkg_resources"),
        *site.glob("distutils-precedence.pth"),
    ]:
        shutil.rmtree(bundled) if bundled.is_dir() else bundled.unlink()
    python = dest / "bin" / "python"
    for script in parent_bin.iterdir():
        target = dest / "bin" / script.name
        if target.exists() or not script.is_file():
            continue
        with script.open("rb") as source:
            first = source.readline()
        if first.startswith(b"#!") and b"python" in first:
            target.write_bytes(b"#!" + str(python).encode() + b"\n" + script.read_bytes().split(b"\n", 1)[1])
            target.chmod(0o755)


if __name__ == "__main__":
    make(Path(sys.argv[1]).absolute())
