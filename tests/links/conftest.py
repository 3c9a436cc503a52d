"""The links tests run the transfers' fixtures: the stores (local folder, GCS emulator, moto's S3, Azurite)."""

from __future__ import annotations

from tests.transfers._object_stores import _fresh_object_stores  # noqa: F401 - autouse
from tests.transfers.conftest import moto_process, start_export, store  # noqa: F401 - fixtures
