"""What the fault matrix modules share: both sensor modes, the export sizes, and where a failed run must stop."""

from __future__ import annotations

from typing import Any

import pytest

from tests.hardening._pipeline import MiB

MODES = [pytest.param(False, id="poke"), pytest.param(True, id="deferrable")]
SMALL = 64 * 1024  # the emulator fixture's export size
BIG = 6 * MiB  # two S3 parts of 5 MiB: when a download breaks at CUT, one part is already uploaded
CUT = 5 * MiB + 512 * 1024
DOWNSTREAM_OF = {"start_export": ("wait", "to_s3"), "wait": ("to_s3",), "to_s3": ()}


def _assert_failed_at(result: Any, task_id: str) -> None:
    """``task_id`` failed, everything after it was not run, everything before it succeeded."""
    assert result.state == "failed", result.task_states
    assert result.task_states[task_id] == "failed", result.task_states
    for downstream in DOWNSTREAM_OF[task_id]:
        assert result.task_states[downstream] == "upstream_failed", result.task_states
    before = [t for t in ("start_export", "wait") if t != task_id and t not in DOWNSTREAM_OF[task_id]]
    for upstream in before:
        assert result.task_states[upstream] == "success", result.task_states
