"""RecordInput -> FittingRecord (canonical units), or InvalidInputError listing every problem.

Walk features go through the answer path's own validation (service.validation), so a record holds
exactly what the service would have accepted as an assessment, in the same canonical units, with the
same derived asymmetries. Field paths are those of RecordFittingRequest, e.g.
`record.walks[2].features[0].value`.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace

from service.catalog import FEATURE_INDEX, FEATURE_NAMES, PARAMETERS_BY_NAME
from service.domain import AssessmentInput, FeatureInput
from service.errors import InvalidInputError, InvalidRecordError, Violation
from service.records.domain import (
    Change,
    ChangeInput,
    FittingRecord,
    Outcome,
    Patient,
    RecordedAnswer,
    RecordedFeature,
    RecordedWalk,
    RecordInput,
)
from service.validation import Limits, validate_assessment

_DEFAULT_LIMITS = Limits()

# Keys: the caller's pseudonyms. A narrow alphabet leaves no room for names, dates with spaces or
# free text; the lengths are documented in the proto and the README.
KEY_PATTERN = re.compile(r"[A-Za-z0-9._:-]+")
MAX_FITTING_ID_CHARS = 128
MAX_PATIENT_KEY_CHARS = 128
MAX_CLINIC_KEY_CHARS = 64
MAX_WALKS = 50
MAX_MODEL_FIELD_CHARS = 64
MODEL_FIELD_PATTERN = re.compile(r"[A-Za-z0-9._+-]+")
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
RATING_RANGE = (1, 5)
COMFORT_RANGE = (0.0, 10.0)
# A single applied change beyond three study ranges is a data-entry error (as in the training schema).
CHANGE_LIMIT = {name: 3.0 * p.study_range for name, p in PARAMETERS_BY_NAME.items()}
ANSWER_KINDS = frozenset({"NO_CHANGE", "RECOMMENDED", "TRIAL", "NOT_ALIGNMENT", "INSUFFICIENT_EVIDENCE"})


def _key(value: str, field: str, limit: int, out: list[Violation]) -> None:
    if not value:
        out.append(Violation(field, f"{field.rsplit('.', 1)[-1]} is required", "RECORD_KEY_MISSING"))
    elif len(value) > limit or KEY_PATTERN.fullmatch(value) is None:
        out.append(
            Violation(
                field,
                f"{field.rsplit('.', 1)[-1]} must be 1-{limit} characters of [A-Za-z0-9._:-] (a pseudonym, never a "
                "name or date)",
                "RECORD_KEY_INVALID",
            )
        )


def _changes(items: tuple[ChangeInput, ...], field: str, out: list[Violation]) -> tuple[Change, ...]:
    seen: set[str] = set()
    good: list[Change] = []
    for i, c in enumerate(items):
        f = f"{field}[{i}]"
        if c.parameter is None:
            out.append(Violation(f + ".parameter", "parameter is required", "CHANGE_PARAMETER_MISSING"))
            continue
        if c.parameter in seen:
            out.append(Violation(f + ".parameter", f"{c.parameter} appears twice in {field}", "DUPLICATE_CHANGE"))
            continue
        seen.add(c.parameter)
        spec = PARAMETERS_BY_NAME[c.parameter]
        lim = CHANGE_LIMIT[c.parameter]
        if not math.isfinite(c.change) or abs(c.change) > lim:
            out.append(
                Violation(
                    f + ".change",
                    f"{c.parameter} change {c.change:g} {spec.unit} is outside -{lim:g} to {lim:g} {spec.unit}",
                    "CHANGE_OUT_OF_RANGE",
                    value=c.change if math.isfinite(c.change) else None,
                    unit=spec.unit,
                    allowed_min=-lim,
                    allowed_max=lim,
                )
            )
            continue
        good.append(Change(c.parameter, float(c.change)))
    return tuple(good)


def _model_field(value: str, field: str, out: list[Violation]) -> None:
    if len(value) > MAX_MODEL_FIELD_CHARS or (value and MODEL_FIELD_PATTERN.fullmatch(value) is None):
        out.append(
            Violation(field, f"must be at most {MAX_MODEL_FIELD_CHARS} characters of [A-Za-z0-9._+-]", "MODEL_REF_INVALID")
        )


def _moved(v: Violation, old: str, new: str) -> Violation:
    return replace(v, field=new + v.field.removeprefix(old))


def validate_record(r: RecordInput, limits: Limits = _DEFAULT_LIMITS) -> FittingRecord:
    out: list[Violation] = []
    _key(r.fitting_id, "record.fitting_id", MAX_FITTING_ID_CHARS, out)
    _key(r.patient_key, "record.patient_key", MAX_PATIENT_KEY_CHARS, out)
    _key(r.clinic_key, "record.clinic_key", MAX_CLINIC_KEY_CHARS, out)

    # The patient context once, by the answer path's rules (an assessment with no features).
    patient = None
    try:
        patient = validate_assessment(AssessmentInput("", r.patient, ()), limits).patient
    except InvalidInputError as exc:
        out.extend(_moved(v, "assessment.patient", "record.patient") for v in exc.violations)

    if not r.walks:
        out.append(Violation("record.walks", "a fitting record needs at least one walk", "WALKS_MISSING"))
    elif len(r.walks) > MAX_WALKS:
        out.append(Violation("record.walks", f"{len(r.walks)} walks sent; at most {MAX_WALKS}", "TOO_MANY_WALKS"))
    walks: list[RecordedWalk] = []
    for w, walk in enumerate(r.walks[:MAX_WALKS]):
        base = f"record.walks[{w}]"
        features: tuple[RecordedFeature, ...] = ()
        if not walk.features:
            out.append(Violation(base + ".features", "a recorded walk needs at least one feature", "FEATURES_MISSING"))
        elif r.patient is not None:
            try:
                g = validate_assessment(AssessmentInput("", r.patient, walk.features), limits)
            except InvalidInputError as exc:
                # Patient problems were reported once above.
                out.extend(
                    _moved(v, "assessment.features", base + ".features")
                    for v in exc.violations
                    if v.field.startswith("assessment.features")
                )
            else:
                sent = {FEATURE_INDEX[f.name]: f for f in walk.features}
                features = tuple(
                    RecordedFeature(
                        FEATURE_NAMES[i],
                        float(g.values[i]),
                        _source(sent[i]) if i in sent else "",
                        derived=i not in sent,
                    )
                    for i in sorted({*sent, *g.derived})
                )
        answer = None
        if walk.answer is not None:
            a = walk.answer
            _model_field(a.model_name, base + ".answer.model.name", out)
            _model_field(a.model_version, base + ".answer.model.version", out)
            if a.model_sha256 and SHA256_PATTERN.fullmatch(a.model_sha256) is None:
                out.append(
                    Violation(base + ".answer.model.sha256", "sha256 must be 64 lower-case hex digits", "MODEL_REF_INVALID")
                )
            if a.answer_kind not in ANSWER_KINDS:
                out.append(
                    Violation(
                        base + ".answer.answer_kind",
                        "answer_kind is required (the Recommendation.answer_kind the service gave)",
                        "ANSWER_KIND_MISSING",
                    )
                )
            rec = _changes(a.recommended, base + ".answer.recommended", out)
            answer = RecordedAnswer(a.model_name, a.model_version, a.model_sha256, a.answer_kind or "", rec)
        applied = _changes(walk.applied_after, base + ".applied_after", out)
        walks.append(RecordedWalk(features, answer, applied))

    outcome = None
    if r.outcome is None:
        out.append(Violation("record.outcome", "outcome is required", "OUTCOME_MISSING"))
    else:
        o = r.outcome
        if o.acceptance is None:
            out.append(
                Violation(
                    "record.outcome.acceptance", "acceptance is required (ACCEPTED or NOT_ACCEPTED)", "OUTCOME_MISSING"
                )
            )
        lo, hi = RATING_RANGE
        if not lo <= o.prosthetist_rating <= hi:
            out.append(
                Violation(
                    "record.outcome.prosthetist_rating",
                    f"prosthetist_rating {o.prosthetist_rating} is outside {lo} to {hi} (required)",
                    "OUTCOME_OUT_OF_RANGE",
                    value=float(o.prosthetist_rating),
                    allowed_min=float(lo),
                    allowed_max=float(hi),
                )
            )
        s = o.socket_comfort_score
        clo, chi = COMFORT_RANGE
        if s is not None and not (math.isfinite(s) and clo <= s <= chi):
            out.append(
                Violation(
                    "record.outcome.socket_comfort_score",
                    f"socket_comfort_score {s:g} is outside {clo:g} to {chi:g}",
                    "OUTCOME_OUT_OF_RANGE",
                    value=s if math.isfinite(s) else None,
                    allowed_min=clo,
                    allowed_max=chi,
                )
            )
        outcome = Outcome(o.acceptance == "ACCEPTED", o.prosthetist_rating, s)

    if out:
        raise InvalidRecordError(out, message=_summary(out))
    assert patient is not None and outcome is not None
    return FittingRecord(
        fitting_id=r.fitting_id,
        patient_key=r.patient_key,
        clinic_key=r.clinic_key,
        patient=Patient(
            amputation_level=patient.amputation_level.value,
            prosthetic_side=patient.prosthetic_side.value,
            body_mass_kg=float(patient.body_mass_kg),
            height_m=patient.height_m,
            k_level=patient.k_level,
            foot_type=patient.foot_type,
            knee_type=patient.knee_type,
        ),
        walks=tuple(walks),
        outcome=outcome,
    )


def _source(f: FeatureInput) -> str:
    return f.source.value if f.source is not None else ""


def _summary(vs: list[Violation]) -> str:
    text = "invalid fitting record: " + "; ".join(f"{v.field}: {v.description}" for v in vs[:5])
    return text + (f"; and {len(vs) - 5} more" if len(vs) > 5 else "")
