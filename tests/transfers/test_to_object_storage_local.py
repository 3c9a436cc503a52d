"""FollowAnalyticsToObjectStorageOperator into local folders: created, refused before the download, renamed last."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator, expected_export_sha256
from airflow_provider_followanalytics.exceptions import FollowAnalyticsError
from tests.transfers._object_stores import (
    SIZE,
    _fresh_object_stores,  # noqa: F401 - autouse
    _operator,
)
from tests.transfers.conftest import sha256_of_chunks


def test_local_parents_are_created_and_the_file_appears_whole(
    start_export: Callable[..., str], tmp_path: Path, fa_conn: dict[str, Any]
) -> None:
    url = start_export("csv", SIZE)
    target = tmp_path / "a" / "b" / "c" / "devices.csv"
    _operator(f"file://{target}", url).execute({})
    assert sorted(p.name for p in target.parent.iterdir()) == ["devices.csv"]
    assert sha256_of_chunks([target.read_bytes()]) == (expected_export_sha256(SIZE, "csv"), SIZE)


def test_a_local_folder_that_cannot_be_created_fails_before_the_download(
    emulator: FollowAnalyticsEmulator, start_export: Callable[..., str], tmp_path: Path, fa_conn: dict[str, Any]
) -> None:
    (tmp_path / "lake").write_text("a file where the folder should be")
    url = start_export("csv", SIZE)
    emulator.requests.clear()
    with pytest.raises(
        FollowAnalyticsError, match=r"Cannot create the folder .*/lake/devices of .*nothing was downloaded"
    ):
        _operator(f"file://{tmp_path}/lake/devices/x.csv", url).execute({})
    assert emulator.requests_for("callback") == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lake"]


def test_a_local_folder_without_write_access_fails_before_the_download(
    emulator: FollowAnalyticsEmulator, start_export: Callable[..., str], fa_conn: dict[str, Any]
) -> None:
    # /sys refuses new files even to root (the suite may run as root, which every mode bit lets through).
    if not os.path.isdir("/sys/kernel") or os.path.exists("/sys/devices.csv"):
        pytest.skip("needs Linux's /sys")
    url = start_export("csv", SIZE)
    emulator.requests.clear()
    with pytest.raises(
        FollowAnalyticsError, match=r"Cannot write in the folder /sys of file:///sys/devices.csv: Permission denied"
    ):
        _operator("file:///sys/devices.csv", url).execute({})
    assert emulator.requests_for("callback") == []


def test_a_local_file_is_renamed_into_place_only_at_the_end(
    monkeypatch: pytest.MonkeyPatch, start_export: Callable[..., str], tmp_path: Path, fa_conn: dict[str, Any]
) -> None:
    from airflow_provider_followanalytics.hooks._export_reader import ExportReader

    target = tmp_path / "devices.csv"
    seen: list[list[str]] = []
    real_blocks = ExportReader.blocks

    def blocks(self: Any) -> Iterator[memoryview]:
        for block in real_blocks(self):
            seen.append(sorted(p.name for p in tmp_path.iterdir()))
            yield block
        seen.append(sorted(p.name for p in tmp_path.iterdir()))

    monkeypatch.setattr(ExportReader, "blocks", blocks)
    _operator(f"file://{target}", start_export("csv", SIZE)).execute({})

    assert len(seen) >= 4  # every download piece (1 MiB), then the end of the export
    for names in seen:  # while the export streams, only the hidden temporary file exists
        assert len(names) == 1
        assert names[0].startswith(".devices.csv.")
        assert names[0].endswith(".partial")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["devices.csv"]
