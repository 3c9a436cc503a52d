"""OpenLineage test harness: run a DAG with ``dag.test()`` in a child interpreter and read its events."""
