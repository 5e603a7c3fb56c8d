"""Shared fixtures. Tiers: unit (pure core), contract (real artifact + proto), integration (real
server on port 0 and a real client), training (tiny cohort), realdata (skips without ../shared/data)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / "models"
EXAMPLES = ROOT / "examples"


def shared_data_dir() -> Path:
    return Path(os.environ.get("ALIGN_SHARED_DATA", ROOT.parent / "shared" / "data"))


def bundled_model_dir() -> Path:
    from service.registry import version_key

    root = MODELS_DIR / "alignment"
    versions = sorted((p.name for p in root.iterdir() if p.is_dir()), key=version_key) if root.is_dir() else []
    if not versions:
        pytest.fail("no bundled model under models/alignment: run `python -m training all`")
    return root / versions[-1]


@pytest.fixture(scope="session")
def bundled_model():  # type: ignore[no-untyped-def]
    from service.model import OnnxModel

    return OnnxModel.load(bundled_model_dir())


@pytest.fixture
def tmp_models(tmp_path: Path) -> Iterator[Path]:
    """A private copy of the bundled model tree that a test may corrupt or extend."""
    import shutil

    src = bundled_model_dir()
    dst = tmp_path / "models" / "alignment" / src.name
    shutil.copytree(src, dst)
    yield tmp_path / "models"
