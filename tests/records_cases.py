"""Fitting records for tests and benchmarks, built from the example assessments (no real patients)."""

from __future__ import annotations

import random

from service._generated.prosthetic_alignment.v1 import alignment_pb2 as pb
from service.client import load_assessment
from tests.conftest import EXAMPLES

RECORDS_TOKEN = "records-token-0123456789abcdef"
PLAIN_TOKEN = "plain-token-0123456789abcdef"
ADMIN_TOKEN = "admin-token-0123456789abcdef"
_BASE = load_assessment(EXAMPLES / "toe_out_transtibial.json")


def fitting_record(fitting_id: str, patient_key: str = "P-0001", *, walks: int = 3, seed: int = 0) -> pb.FittingRecord:
    """A toe-out fitting: foot rotated internally after each walk until accepted."""
    rng = random.Random(seed)
    rec = pb.FittingRecord(fitting_id=fitting_id, patient_key=patient_key, clinic_key="CLINIC-7")
    rec.patient.CopyFrom(_BASE.patient)
    toe_out = 22.0
    for w in range(walks):
        walk = rec.walks.add()
        for f in _BASE.features:
            v = f.value
            if f.name == "foot_progression_angle_prosthetic_deg":
                v = toe_out
            elif f.name == "walking_speed_m_per_s":
                v = round(f.value + rng.uniform(-0.05, 0.05), 3)
            walk.features.add(name=f.name, value=v, unit=f.unit, source=f.source)
        walk.answer.model.name = "alignment"
        walk.answer.model.version = "1.0.0"
        walk.answer.model.sha256 = "ab" * 32
        last = w == walks - 1
        walk.answer.answer_kind = pb.ANSWER_KIND_NO_CHANGE if last else pb.ANSWER_KIND_RECOMMENDED
        if not last:
            walk.answer.recommended.add(parameter=pb.ADJUSTMENT_PARAMETER_FOOT_ROTATION, change=-6.0)
            # The prosthetist applied less than advised: the record keeps what was actually done.
            walk.applied_after.add(parameter=pb.ADJUSTMENT_PARAMETER_FOOT_ROTATION, change=-4.0)
            toe_out -= 4.0 * 0.6
    rec.outcome.acceptance = pb.FITTING_ACCEPTANCE_ACCEPTED
    rec.outcome.prosthetist_rating = 4
    rec.outcome.socket_comfort_score = 8.0
    return rec
