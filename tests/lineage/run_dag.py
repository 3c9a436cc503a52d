"""Child side of the OpenLineage harness: ``python -m tests.lineage.run_dag MODULE ATTRIBUTE``.

Imports ``MODULE``, runs the DAG in its ``ATTRIBUTE`` with ``tests.dagrun.run_dag`` (a real
``dag.test()`` on the session's metadata DB) and prints the run's states as one JSON line. The
parent (``tests.lineage.fixtures``) set the openlineage configuration in the environment before
this interpreter started, which is when the openlineage plugin decides whether to listen.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys


def main() -> None:
    module_name, attribute = sys.argv[1], sys.argv[2]
    dag = getattr(importlib.import_module(module_name), attribute)

    from tests.dagrun import run_dag

    result = run_dag(dag)
    print("DAGRUN_RESULT " + json.dumps(dataclasses.asdict(result), default=str), flush=True)


if __name__ == "__main__":
    main()
