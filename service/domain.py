"""Domain types shared by validation, the recommender and the edge.

Frozen slotted dataclasses rather than pydantic models: these are built once per request on the
hot path, and validation is done explicitly (validation.py) against the catalog with numpy, so a
second validation layer would only cost time. Pydantic is used where parsing untrusted structure
pays (settings, manifests).

The four answer types built per assessment and parameter (Recommendation, ParameterEstimate,
Adjustment, Deviation) are NamedTuples instead: as immutable, but built in 0.2 us instead of 0.64 us
for eight fields (a frozen dataclass sets each field through object.__setattr__), and a batch of
1000 builds about 10,000 of them.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from service.catalog import SENSOR_CODE, AmputationLevel, Parameter, Plane, SensorKind, Side

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class PatientContextInput:
    """Patient context as received (anything may be missing; validation decides)."""

    amputation_level: AmputationLevel | None
    prosthetic_side: Side | None
    body_mass_kg: float | None
    height_m: float | None = None
    k_level: int | None = None
    foot_type: str = ""
    knee_type: str = ""


@dataclass(frozen=True, slots=True)
class FeatureInput:
    name: str
    value: float
    unit: str = ""
    source: SensorKind | None = None


@dataclass(frozen=True, slots=True)
class AppliedChange:
    """An alignment change the prosthetist made, signed in parameter units (DESIGN 3.1)."""

    parameter: Parameter
    change: float


@dataclass(frozen=True, slots=True)
class AppliedChangeInput:
    """An applied change as received: the parameter is None when the request named none we know."""

    parameter: Parameter | None
    change: float


@dataclass(frozen=True, slots=True)
class FittingWalkInput:
    """An earlier walk of the fitting as received (before the reference walk)."""

    features: tuple[FeatureInput, ...]
    applied_after: tuple[AppliedChangeInput, ...] = ()


@dataclass(frozen=True, slots=True)
class AssessmentInput:
    assessment_id: str
    patient: PatientContextInput | None
    features: tuple[FeatureInput, ...]
    # The same patient's features at the alignment last accepted, or the previous walk of this fitting
    # (optional; same rules as features).
    reference_features: tuple[FeatureInput, ...] = ()
    # The fitting loop (DESIGN 3.4): changes made between the reference walk and this walk, and the
    # walks before the reference walk, oldest first.
    applied_since_reference: tuple[AppliedChangeInput, ...] = ()
    fitting_history: tuple[FittingWalkInput, ...] = ()


@dataclass(frozen=True, slots=True)
class PatientContext:
    amputation_level: AmputationLevel
    prosthetic_side: Side
    body_mass_kg: float
    height_m: float | None
    k_level: int | None
    foot_type: str
    knee_type: str


@dataclass(frozen=True, slots=True)
class GaitAssessment:
    """A validated assessment: every present feature in canonical units, in catalog order."""

    assessment_id: str
    patient: PatientContext
    # Catalog-ordered values, NaN where the feature was not sent.
    values: FloatArray
    # Source per catalog index, for the features that were sent with one.
    sources: dict[int, SensorKind]
    # Catalog indices computed by the service (e.g. asymmetries from per-side values).
    derived: tuple[int, ...] = ()
    warnings: tuple[str, ...] = ()
    # Catalog-ordered values of the reference assessment (None when none was sent); the model reads
    # the change since the reference (catalog.REFERENCE_CHANGE_COLUMNS).
    reference_values: FloatArray | None = None
    # The fitting loop: changes since the reference walk (validated, one per parameter at most) and
    # the earlier walks, oldest first.
    applied_since_reference: tuple[AppliedChange, ...] = ()
    history: tuple[FittingWalk, ...] = ()
    # Source per catalog index of the reference walk's features.
    reference_sources: dict[int, SensorKind] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FittingWalk:
    """A validated earlier walk: catalog-ordered values (NaN where not sent), the change after it."""

    values: FloatArray
    applied_after: tuple[AppliedChange, ...] = ()


@dataclass(frozen=True, slots=True)
class BatchInput:
    """Many assessments as received, in columns: the edge fills it without an object per feature.

    Features are flattened assessment by assessment; `feature_counts[i]` of them belong to item i.
    """

    assessment_ids: list[str]
    patients: list[PatientContextInput | None]
    feature_counts: list[int]
    names: list[str]
    values: list[float]
    units: list[str]
    # Read only for items that fail validation (a GaitAssessment keeps them; nothing downstream of a
    # batch does), so the edge may pass a lazy sequence.
    sources: Sequence[SensorKind | None]
    # Reference walks by item index, for the items that carry one (validated item by item).
    references: dict[int, tuple[FeatureInput, ...]] = field(default_factory=dict)
    # The fitting loop's applied changes and history by item index (validated item by item).
    loops: dict[int, tuple[tuple[AppliedChangeInput, ...], tuple[FittingWalkInput, ...]]] = field(default_factory=dict)

    def item(self, i: int, start: int) -> AssessmentInput:
        """Item i (its features start at flat position `start`) as one AssessmentInput."""
        end = start + self.feature_counts[i]
        feats = tuple(
            map(
                FeatureInput,
                self.names[start:end],
                self.values[start:end],
                self.units[start:end],
                self.sources[start:end],
            )
        )
        applied, history = self.loops.get(i, ((), ()))
        return AssessmentInput(self.assessment_ids[i], self.patients[i], feats, self.references.get(i, ()), applied, history)


@dataclass(frozen=True, slots=True)
class AssessmentBatch:
    """Validated assessments in columns (what the recommender works on), row r = assessment r.

    Equivalent to a sequence of GaitAssessment minus `sources`, which nothing downstream reads.
    """

    assessment_ids: list[str]
    # [n, len(FEATURES)] in canonical units, catalog order, NaN where not sent.
    values: FloatArray
    levels: list[AmputationLevel]
    body_mass_kg: list[float]
    k_level: list[int | None]
    derived: list[tuple[int, ...]]
    warnings: list[tuple[str, ...]]
    # [n, len(FEATURES)] reference-walk values (rows of NaN for items without one); None when no item
    # has a reference walk.
    reference_values: FloatArray | None = None
    # [n, len(FEATURES)] int8: the sending sensor per feature as an index into catalog SENSOR_ORDER,
    # -1 where none was named (the deviations then assume the feature's typical sensor). None: all -1.
    source_codes: npt.NDArray[np.int8] | None = None
    # The fitting loop per row (empty tuples for rows without one); None when no row has one.
    applied: list[tuple[AppliedChange, ...]] | None = None
    history: list[tuple[FittingWalk, ...]] | None = None

    @classmethod
    def of(cls, assessments: Sequence[GaitAssessment]) -> AssessmentBatch:
        if not assessments:
            raise ValueError("an AssessmentBatch needs at least one assessment")
        refs = [r for r, a in enumerate(assessments) if a.reference_values is not None]
        loop = any(a.applied_since_reference or a.history for a in assessments)
        codes = source_code_matrix([a.sources for a in assessments], len(assessments[0].values))
        if len(assessments) == 1:  # the single-assessment RPCs: no copies, no per-field loops
            a = assessments[0]
            p = a.patient
            return cls(
                [a.assessment_id],
                a.values[None, :],
                [p.amputation_level],
                [p.body_mass_kg],
                [p.k_level],
                [a.derived],
                [a.warnings],
                None if a.reference_values is None else a.reference_values[None, :],
                codes,
                [a.applied_since_reference] if loop else None,
                [a.history] if loop else None,
            )
        values = np.empty((len(assessments), len(assessments[0].values)))
        for r, a in enumerate(assessments):
            values[r] = a.values
        reference: FloatArray | None = None
        if refs:
            reference = np.full_like(values, np.nan)
            for r in refs:
                reference[r] = assessments[r].reference_values
        return cls(
            assessment_ids=[a.assessment_id for a in assessments],
            values=values,
            levels=[a.patient.amputation_level for a in assessments],
            body_mass_kg=[a.patient.body_mass_kg for a in assessments],
            k_level=[a.patient.k_level for a in assessments],
            derived=[a.derived for a in assessments],
            warnings=[a.warnings for a in assessments],
            reference_values=reference,
            source_codes=codes,
            applied=[a.applied_since_reference for a in assessments] if loop else None,
            history=[a.history for a in assessments] if loop else None,
        )

    def __len__(self) -> int:
        return len(self.assessment_ids)


def source_code_matrix(sources: Sequence[dict[int, SensorKind]], n_features: int) -> npt.NDArray[np.int8] | None:
    """[n, n_features] sensor indices (catalog SENSOR_ORDER, -1 unnamed), None when nothing is named."""
    if not any(sources):
        return None
    out = np.full((len(sources), n_features), -1, dtype=np.int8)
    for r, s in enumerate(sources):
        for i, kind in s.items():
            out[r, i] = SENSOR_CODE[kind]
    return out


@dataclass(frozen=True, slots=True)
class ModelRef:
    name: str
    version: str
    sha256: str


class AnswerKind(enum.StrEnum):
    """What kind of answer a Recommendation is (DESIGN 3.3)."""

    NO_CHANGE = "NO_CHANGE"
    RECOMMENDED = "RECOMMENDED"
    TRIAL = "TRIAL"
    NOT_ALIGNMENT = "NOT_ALIGNMENT"
    INSUFFICIENT_EVIDENCE = "INSUFFICIENT_EVIDENCE"


class ConfidenceLevel(enum.StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"


class Deviation(NamedTuple):
    feature: str
    value: float
    unit: str
    normative_mean: float
    normative_sd: float
    z_score: float
    description: str


class Adjustment(NamedTuple):
    rank: int
    parameter: Parameter
    change: float
    unit: str
    direction: str
    confidence: float
    interval_lower: float
    interval_upper: float
    suggested_change: float
    clamped_to_safe_step: bool
    supporting_deviations: tuple[str, ...]
    driving_features: tuple[str, ...]
    rationale: str
    plane: Plane
    trial: bool = False
    reverts_applied_change: bool = False


class ParameterEstimate(NamedTuple):
    parameter: Parameter
    probability_decrease: float
    probability_no_change: float
    probability_increase: float
    magnitude: float
    unit: str
    recommended: bool
    reason: str


@dataclass(frozen=True, slots=True)
class NonAlignmentFinding:
    code: str
    message: str
    features: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MeasurementSuggestion:
    feature: str
    sensor_kind: SensorKind
    reason: str


@dataclass(frozen=True, slots=True)
class FeatureChange:
    """A feature's change since the reference walk (canonical units)."""

    feature: str
    reference_value: float
    value: float
    change: float
    unit: str
    change_in_sd: float


@dataclass(frozen=True, slots=True)
class CandidateCause:
    """One candidate alignment cause of a deviation: the fix that undoes it, and the evidence."""

    parameter: Parameter
    direction_sign: int
    direction: str
    probability: float
    probability_opposite: float
    evidence_for: tuple[str, ...]
    evidence_against: tuple[str, ...]
    table_rows: str
    vetoed: bool


@dataclass(frozen=True, slots=True)
class Differential:
    """A clear deviation, its candidate causes ranked, the other causes, what would separate them."""

    feature: str
    z_score: float
    description: str
    candidates: tuple[CandidateCause, ...]
    non_alignment_causes: tuple[str, ...]
    separating_measurement: MeasurementSuggestion | None


class Recommendation(NamedTuple):
    assessment_id: str
    model: ModelRef
    adjustments: tuple[Adjustment, ...]
    no_change_needed: bool
    deviations: tuple[Deviation, ...]
    non_alignment_findings: tuple[NonAlignmentFinding, ...]
    missing_features: tuple[str, ...]
    imputed_features: tuple[str, ...]
    overall_confidence: float
    confidence_level: ConfidenceLevel
    suggested_measurements: tuple[MeasurementSuggestion, ...]
    warnings: tuple[str, ...]
    parameter_estimates: tuple[ParameterEstimate, ...] = ()
    changes_since_reference: tuple[FeatureChange, ...] = ()
    answer_kind: AnswerKind = AnswerKind.NO_CHANGE
    differentials: tuple[Differential, ...] = ()
    summary: str = ""
