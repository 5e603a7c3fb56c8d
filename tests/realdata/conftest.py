"""Locate the shared third-party gait data (never copied into the repo; several sets are GPL/AGPL).

Path: $ALIGN_SHARED_DATA if set, else <repo>/../shared/data. Tests skip with a reason when absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def shared_data_dir() -> Path:
    env = os.environ.get("ALIGN_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return shared_data_dir()


def need(folder: Path) -> Path:
    if not folder.is_dir():
        pytest.skip(f"shared data folder {folder} not present (set ALIGN_SHARED_DATA)")
    return folder
