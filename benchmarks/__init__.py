"""Benchmarks of airflow-provider-followanalytics against the Airflow anchors.

Run them all with ``make bench`` (``python -m benchmarks.run``); see BENCHMARKS.md for
what each figure measures. They are not tests: ``make test`` does not collect them.
"""
