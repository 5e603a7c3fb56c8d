"""Fitting records as received from the edge and as validated (canonical units, checked keys).

A record is pseudonymous by construction: its only strings are the caller's keys (restricted to
[A-Za-z0-9._:-] and a length limit), catalog names and model identifiers. There is no field where a
name, a date of birth or free text could go.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from service.domain import FeatureInput, PatientContextInput


@dataclass(frozen=True, slots=True)
class ChangeInput:
    """One signed change as received; parameter None when the client left it unspecified."""

    parameter: str | None
    change: float


@dataclass(frozen=True, slots=True)
class AnswerInput:
    model_name: str
    model_version: str
    model_sha256: str
    answer_kind: str | None
    recommended: tuple[ChangeInput, ...]


@dataclass(frozen=True, slots=True)
class WalkInput:
    features: tuple[FeatureInput, ...]
    answer: AnswerInput | None
    applied_after: tuple[ChangeInput, ...]


@dataclass(frozen=True, slots=True)
class OutcomeInput:
    acceptance: str | None  # "ACCEPTED", "NOT_ACCEPTED" or None (unspecified)
    prosthetist_rating: int
    socket_comfort_score: float | None


@dataclass(frozen=True, slots=True)
class RecordInput:
    fitting_id: str
    patient_key: str
    clinic_key: str
    patient: PatientContextInput | None
    walks: tuple[WalkInput, ...]
    outcome: OutcomeInput | None


# -- validated ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RecordedFeature:
    """A feature in its catalog unit. `derived`: computed by the service (e.g. an asymmetry from the
    per-side values sent), exactly as the answer path computes it."""

    name: str
    value: float
    source: str  # SensorKind value, "" when the client sent none
    derived: bool = False


@dataclass(frozen=True, slots=True)
class Change:
    parameter: str  # catalog.Parameter value
    change: float  # signed, parameter unit (deg or mm)


@dataclass(frozen=True, slots=True)
class RecordedAnswer:
    model_name: str
    model_version: str
    model_sha256: str
    answer_kind: str  # AnswerKind name without prefix, e.g. "RECOMMENDED"
    recommended: tuple[Change, ...]


@dataclass(frozen=True, slots=True)
class RecordedWalk:
    features: tuple[RecordedFeature, ...]
    answer: RecordedAnswer | None
    applied_after: tuple[Change, ...]


@dataclass(frozen=True, slots=True)
class Patient:
    amputation_level: str
    prosthetic_side: str
    body_mass_kg: float
    height_m: float | None
    k_level: int | None
    foot_type: str
    knee_type: str


@dataclass(frozen=True, slots=True)
class Outcome:
    accepted: bool
    prosthetist_rating: int  # 1 (poor) .. 5 (excellent)
    socket_comfort_score: float | None  # 0 .. 10, patient-reported


@dataclass(frozen=True, slots=True)
class FittingRecord:
    fitting_id: str
    patient_key: str
    clinic_key: str
    patient: Patient
    walks: tuple[RecordedWalk, ...]
    outcome: Outcome

    def content(self) -> dict[str, Any]:
        """Everything stored about the fitting, as plain JSON-able data (the canonical form)."""
        p, o = self.patient, self.outcome
        return {
            "fitting_id": self.fitting_id,
            "patient_key": self.patient_key,
            "clinic_key": self.clinic_key,
            "patient": {
                "amputation_level": p.amputation_level,
                "prosthetic_side": p.prosthetic_side,
                "body_mass_kg": p.body_mass_kg,
                "height_m": p.height_m,
                "k_level": p.k_level,
                "foot_type": p.foot_type,
                "knee_type": p.knee_type,
            },
            "walks": [walk_content(w) for w in self.walks],
            "outcome": {
                "accepted": o.accepted,
                "prosthetist_rating": o.prosthetist_rating,
                "socket_comfort_score": o.socket_comfort_score,
            },
        }

    def content_sha256(self) -> str:
        """sha256 of the canonical content: equal for the same fitting sent in other accepted units."""
        text = json.dumps(self.content(), sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def changes_content(cs: tuple[Change, ...]) -> list[dict[str, Any]]:
    return [{"parameter": c.parameter, "change": c.change} for c in cs]


def features_content(fs: tuple[RecordedFeature, ...]) -> list[dict[str, Any]]:
    return [{"name": f.name, "value": f.value, "source": f.source, "derived": f.derived} for f in fs]


def walk_content(w: RecordedWalk) -> dict[str, Any]:
    a = w.answer
    return {
        "features": features_content(w.features),
        "answer": None
        if a is None
        else {
            "model_name": a.model_name,
            "model_version": a.model_version,
            "model_sha256": a.model_sha256,
            "answer_kind": a.answer_kind,
            "recommended": changes_content(a.recommended),
        },
        "applied_after": changes_content(w.applied_after),
    }


def changes_from_content(items: list[dict[str, Any]]) -> tuple[Change, ...]:
    return tuple(Change(str(c["parameter"]), float(c["change"])) for c in items)


def record_from_content(d: dict[str, Any]) -> FittingRecord:
    """The inverse of FittingRecord.content (what the store reads back)."""
    p, o = d["patient"], d["outcome"]
    walks = []
    for w in d["walks"]:
        a = w["answer"]
        walks.append(
            RecordedWalk(
                features=tuple(
                    RecordedFeature(str(f["name"]), float(f["value"]), str(f["source"]), bool(f["derived"]))
                    for f in w["features"]
                ),
                answer=None
                if a is None
                else RecordedAnswer(
                    str(a["model_name"]),
                    str(a["model_version"]),
                    str(a["model_sha256"]),
                    str(a["answer_kind"]),
                    changes_from_content(a["recommended"]),
                ),
                applied_after=changes_from_content(w["applied_after"]),
            )
        )
    return FittingRecord(
        fitting_id=str(d["fitting_id"]),
        patient_key=str(d["patient_key"]),
        clinic_key=str(d["clinic_key"]),
        patient=Patient(
            amputation_level=str(p["amputation_level"]),
            prosthetic_side=str(p["prosthetic_side"]),
            body_mass_kg=float(p["body_mass_kg"]),
            height_m=None if p["height_m"] is None else float(p["height_m"]),
            k_level=None if p["k_level"] is None else int(p["k_level"]),
            foot_type=str(p["foot_type"]),
            knee_type=str(p["knee_type"]),
        ),
        walks=tuple(walks),
        outcome=Outcome(
            accepted=bool(o["accepted"]),
            prosthetist_rating=int(o["prosthetist_rating"]),
            socket_comfort_score=None if o["socket_comfort_score"] is None else float(o["socket_comfort_score"]),
        ),
    )


@dataclass(frozen=True, slots=True)
class RecordResult:
    fitting_id: str
    content_sha256: str
    already_recorded: bool
