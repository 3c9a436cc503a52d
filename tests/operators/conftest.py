"""Fixtures of the export operator tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from airflow_provider_followanalytics._compat import AIRFLOW_V_3


@pytest.fixture
def task_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """``caplog`` that also receives operator logs on Airflow 3.

    Airflow 3's operators log through structlog, which prints without touching the standard
    ``logging`` module; for the test, structlog is pointed at ``logging`` so ``caplog`` sees the
    records (the operator's own code path is unchanged). Airflow 2 logs to ``logging`` already.
    """
    caplog.set_level(logging.INFO)
    if not AIRFLOW_V_3:
        yield caplog
        return
    import structlog

    saved = structlog.get_config()
    structlog.configure(
        processors=[structlog.stdlib.PositionalArgumentsFormatter(), structlog.stdlib.render_to_log_kwargs],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    try:
        yield caplog
    finally:
        structlog.configure(**saved)
