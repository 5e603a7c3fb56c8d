"""Fitting-record validation and canonical content (pure: no store, no server)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import pytest
from pydantic import ValidationError

from service.catalog import AmputationLevel, SensorKind, Side
from service.domain import FeatureInput, PatientContextInput
from service.errors import InvalidRecordError
from service.records.domain import AnswerInput, ChangeInput, OutcomeInput, RecordInput, WalkInput, record_from_content
from service.records.validation import validate_record
from service.settings import Settings
from tests.conftest import ROOT

PATIENT = PatientContextInput(AmputationLevel.TRANSTIBIAL, Side.LEFT, 80.0, k_level=3)
WALK = WalkInput(
    features=(
        FeatureInput("step_length_prosthetic_m", 0.70, "", SensorKind.IMU),
        FeatureInput("step_length_sound_m", 0.62, "", SensorKind.IMU),
        FeatureInput("knee_frontal_shift_late_stance_mm", -0.9, "cm", SensorKind.MOTION_CAPTURE),
    ),
    answer=AnswerInput("alignment", "1.0.0", "", "TRIAL", (ChangeInput("FOOT_MEDIAL_SHIFT", 5.0),)),
    applied_after=(ChangeInput("FOOT_MEDIAL_SHIFT", 5.0),),
)
RECORD = RecordInput("F-1", "P-1", "C-1", PATIENT, (WALK, replace(WALK, applied_after=())), OutcomeInput("ACCEPTED", 5, None))


def _violations(r: RecordInput) -> dict[str, str]:
    with pytest.raises(InvalidRecordError) as exc:
        validate_record(r)
    return {v.field: v.reason for v in exc.value.violations}


def test_features_are_stored_in_catalog_units_with_the_derived_asymmetry() -> None:
    rec = validate_record(RECORD)
    feats = {f.name: f for f in rec.walks[0].features}
    assert feats["knee_frontal_shift_late_stance_mm"].value == pytest.approx(-9.0)
    assert feats["step_length_asymmetry_pct"].derived and feats["step_length_asymmetry_pct"].source == ""
    assert feats["step_length_prosthetic_m"].source == "IMU" and not feats["step_length_prosthetic_m"].derived
    assert record_from_content(rec.content()) == rec


def test_content_hash_is_unit_independent_and_content_sensitive() -> None:
    a = validate_record(RECORD)
    in_mm = replace(
        WALK, features=(*WALK.features[:2], FeatureInput("knee_frontal_shift_late_stance_mm", -9.0, "mm", SensorKind.MOTION_CAPTURE))
    )
    b = validate_record(replace(RECORD, walks=(in_mm, RECORD.walks[1])))
    assert a.content_sha256() == b.content_sha256()
    c = validate_record(replace(RECORD, outcome=OutcomeInput("NOT_ACCEPTED", 5, None)))
    assert c.content_sha256() != a.content_sha256()


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"fitting_id": ""}, "record.fitting_id", "RECORD_KEY_MISSING"),
        ({"patient_key": "Anna Smith"}, "record.patient_key", "RECORD_KEY_INVALID"),
        ({"clinic_key": "c" * 65}, "record.clinic_key", "RECORD_KEY_INVALID"),
        ({"patient": None}, "record.patient", "PATIENT_CONTEXT_MISSING"),
        ({"walks": ()}, "record.walks", "WALKS_MISSING"),
        ({"walks": (WALK,) * 51}, "record.walks", "TOO_MANY_WALKS"),
        ({"outcome": None}, "record.outcome", "OUTCOME_MISSING"),
        ({"outcome": OutcomeInput(None, 3, None)}, "record.outcome.acceptance", "OUTCOME_MISSING"),
        ({"outcome": OutcomeInput("ACCEPTED", 6, None)}, "record.outcome.prosthetist_rating", "OUTCOME_OUT_OF_RANGE"),
        ({"outcome": OutcomeInput("ACCEPTED", 3, float("nan"))}, "record.outcome.socket_comfort_score", "OUTCOME_OUT_OF_RANGE"),
    ],
)
def test_record_fields_are_checked(change: dict[str, object], field: str, reason: str) -> None:
    assert _violations(replace(RECORD, **change)).get(field) == reason  # type: ignore[arg-type]


def test_walk_fields_are_checked_with_request_paths() -> None:
    bad = WalkInput(
        features=(FeatureInput("step_width_m", 5.0), FeatureInput("step_lenght_sound_m", 0.6)),
        answer=AnswerInput("alignment v1", "1.0.0", "XYZ", None, (ChangeInput(None, 1.0),)),
        applied_after=(ChangeInput("HEEL_HEIGHT", 5.0), ChangeInput("HEEL_HEIGHT", 5.0), ChangeInput("PYLON_LENGTH", float("inf"))),
    )
    got = _violations(replace(RECORD, walks=(WALK, bad)))
    assert got == {
        "record.walks[1].features[0].value": "FEATURE_OUT_OF_RANGE",
        "record.walks[1].features[1].name": "UNKNOWN_FEATURE",
        "record.walks[1].answer.model.name": "MODEL_REF_INVALID",
        "record.walks[1].answer.model.sha256": "MODEL_REF_INVALID",
        "record.walks[1].answer.answer_kind": "ANSWER_KIND_MISSING",
        "record.walks[1].answer.recommended[0].parameter": "CHANGE_PARAMETER_MISSING",
        "record.walks[1].applied_after[1].parameter": "DUPLICATE_CHANGE",
        "record.walks[1].applied_after[2].change": "CHANGE_OUT_OF_RANGE",
    }
    empty = _violations(replace(RECORD, walks=(replace(WALK, features=()),)))
    assert empty == {"record.walks[0].features": "FEATURES_MISSING"}


def test_settings_need_records_tokens_and_a_supported_url(tmp_path: object) -> None:
    with pytest.raises(ValidationError, match="records_tokens"):
        Settings(records_url="sqlite:///tmp/r.db")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="sqlite:///path"):
        Settings(records_url="mysql://x/y", records_tokens="a=0123456789abcdef")  # type: ignore[arg-type]
    s = Settings(records_url="sqlite:///tmp/r.db", records_tokens="a=0123456789abcdef")  # type: ignore[arg-type]
    assert s.records_url is not None


def test_without_the_records_extra_the_service_exits_2_with_the_install_line(tmp_path: object) -> None:
    # A fresh interpreter where sqlalchemy cannot be found, as on an install without .[records].
    code = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('sqlalchemy', 'alembic', 'psycopg'): raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import importlib.util\n"
        "_orig = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda n, *a: None if n.split('.')[0] in ('sqlalchemy', 'alembic', 'psycopg') else _orig(n, *a)\n"
        "from service.__main__ import main\n"
        "sys.exit(main([]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIGN_")}
    env |= {"ALIGN_RECORDS_URL": "sqlite:///tmp/never.db", "ALIGN_RECORDS_TOKENS": "a=0123456789abcdef"}
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "install .[records]" in r.stderr
