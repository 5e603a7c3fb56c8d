"""Shared tiny-cohort fixtures: simulate, fit and export once per test session (CI budget < 60 s)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from training import workflow
from training.export import write_artifact
from training.oracle import OracleConfig
from training.pipeline import LgbmConfig

TINY_PATIENTS = 160
TINY_SEED = 11
# Small and fast: the tests check the machinery, not the accuracy.
TINY_CONFIG = LgbmConfig(max_rounds=60, fixed_rounds=30, early_stopping=10, num_leaves=7)
TINY_FITTINGS = 30  # per sensor subset and policy
TINY_ORACLE = OracleConfig(walks=120, candidates=2000, baseline_patients=1500)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    t0 = time.perf_counter()
    work = tmp_path_factory.mktemp("work")
    out = tmp_path_factory.mktemp("models")
    workflow.simulate(work, TINY_PATIENTS, TINY_SEED, 3)
    state = workflow.fit(work, None, split_seed=0, compare=True, config=TINY_CONFIG)
    res = workflow.run_evaluation(work, state)
    art = write_artifact(
        state, res, out, "0.0.1", work / "plots", fitting_patients=TINY_FITTINGS, oracle_config=TINY_ORACLE, pipeline_started=t0
    )
    return {"work": work, "state": state, "evaluation": res, "artifact": art}


@pytest.fixture(scope="session")
def artifact_dir(tiny_run: dict[str, object]) -> Path:
    return tiny_run["artifact"]  # type: ignore[return-value]
