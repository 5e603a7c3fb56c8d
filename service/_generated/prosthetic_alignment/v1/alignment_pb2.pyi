from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SensorKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SENSOR_KIND_UNSPECIFIED: _ClassVar[SensorKind]
    SENSOR_KIND_INSTRUMENTED_PYLON: _ClassVar[SensorKind]
    SENSOR_KIND_IMU: _ClassVar[SensorKind]
    SENSOR_KIND_PRESSURE_INSOLE: _ClassVar[SensorKind]
    SENSOR_KIND_FORCE_PLATE: _ClassVar[SensorKind]
    SENSOR_KIND_MOTION_CAPTURE: _ClassVar[SensorKind]
    SENSOR_KIND_VIDEO_POSE: _ClassVar[SensorKind]
    SENSOR_KIND_OBSERVATION: _ClassVar[SensorKind]

class AmputationLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AMPUTATION_LEVEL_UNSPECIFIED: _ClassVar[AmputationLevel]
    AMPUTATION_LEVEL_TRANSTIBIAL: _ClassVar[AmputationLevel]
    AMPUTATION_LEVEL_TRANSFEMORAL: _ClassVar[AmputationLevel]

class Side(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIDE_UNSPECIFIED: _ClassVar[Side]
    SIDE_LEFT: _ClassVar[Side]
    SIDE_RIGHT: _ClassVar[Side]

class FootType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FOOT_TYPE_UNSPECIFIED: _ClassVar[FootType]
    FOOT_TYPE_SACH: _ClassVar[FootType]
    FOOT_TYPE_SINGLE_AXIS: _ClassVar[FootType]
    FOOT_TYPE_MULTIAXIAL: _ClassVar[FootType]
    FOOT_TYPE_ENERGY_STORING: _ClassVar[FootType]
    FOOT_TYPE_MICROPROCESSOR: _ClassVar[FootType]
    FOOT_TYPE_OTHER: _ClassVar[FootType]

class KneeType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KNEE_TYPE_UNSPECIFIED: _ClassVar[KneeType]
    KNEE_TYPE_ANATOMICAL: _ClassVar[KneeType]
    KNEE_TYPE_LOCKING: _ClassVar[KneeType]
    KNEE_TYPE_SINGLE_AXIS_MECHANICAL: _ClassVar[KneeType]
    KNEE_TYPE_POLYCENTRIC: _ClassVar[KneeType]
    KNEE_TYPE_HYDRAULIC: _ClassVar[KneeType]
    KNEE_TYPE_MICROPROCESSOR: _ClassVar[KneeType]
    KNEE_TYPE_OTHER: _ClassVar[KneeType]

class AdjustmentParameter(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ADJUSTMENT_PARAMETER_UNSPECIFIED: _ClassVar[AdjustmentParameter]
    ADJUSTMENT_PARAMETER_FOOT_ROTATION: _ClassVar[AdjustmentParameter]
    ADJUSTMENT_PARAMETER_SOCKET_FLEXION: _ClassVar[AdjustmentParameter]
    ADJUSTMENT_PARAMETER_SOCKET_ADDUCTION: _ClassVar[AdjustmentParameter]
    ADJUSTMENT_PARAMETER_HEEL_HEIGHT: _ClassVar[AdjustmentParameter]
    ADJUSTMENT_PARAMETER_FOOT_ANTERIOR_SHIFT: _ClassVar[AdjustmentParameter]
    ADJUSTMENT_PARAMETER_FOOT_MEDIAL_SHIFT: _ClassVar[AdjustmentParameter]
    ADJUSTMENT_PARAMETER_PYLON_LENGTH: _ClassVar[AdjustmentParameter]

class AnatomicalPlane(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ANATOMICAL_PLANE_UNSPECIFIED: _ClassVar[AnatomicalPlane]
    ANATOMICAL_PLANE_SAGITTAL: _ClassVar[AnatomicalPlane]
    ANATOMICAL_PLANE_CORONAL: _ClassVar[AnatomicalPlane]
    ANATOMICAL_PLANE_TRANSVERSE: _ClassVar[AnatomicalPlane]
    ANATOMICAL_PLANE_LENGTH: _ClassVar[AnatomicalPlane]

class ConfidenceLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONFIDENCE_LEVEL_UNSPECIFIED: _ClassVar[ConfidenceLevel]
    CONFIDENCE_LEVEL_LOW: _ClassVar[ConfidenceLevel]
    CONFIDENCE_LEVEL_MEDIUM: _ClassVar[ConfidenceLevel]
    CONFIDENCE_LEVEL_HIGH: _ClassVar[ConfidenceLevel]

class AnswerKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ANSWER_KIND_UNSPECIFIED: _ClassVar[AnswerKind]
    ANSWER_KIND_NO_CHANGE: _ClassVar[AnswerKind]
    ANSWER_KIND_RECOMMENDED: _ClassVar[AnswerKind]
    ANSWER_KIND_TRIAL: _ClassVar[AnswerKind]
    ANSWER_KIND_NOT_ALIGNMENT: _ClassVar[AnswerKind]
    ANSWER_KIND_INSUFFICIENT_EVIDENCE: _ClassVar[AnswerKind]

class FittingAcceptance(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FITTING_ACCEPTANCE_UNSPECIFIED: _ClassVar[FittingAcceptance]
    FITTING_ACCEPTANCE_ACCEPTED: _ClassVar[FittingAcceptance]
    FITTING_ACCEPTANCE_NOT_ACCEPTED: _ClassVar[FittingAcceptance]
SENSOR_KIND_UNSPECIFIED: SensorKind
SENSOR_KIND_INSTRUMENTED_PYLON: SensorKind
SENSOR_KIND_IMU: SensorKind
SENSOR_KIND_PRESSURE_INSOLE: SensorKind
SENSOR_KIND_FORCE_PLATE: SensorKind
SENSOR_KIND_MOTION_CAPTURE: SensorKind
SENSOR_KIND_VIDEO_POSE: SensorKind
SENSOR_KIND_OBSERVATION: SensorKind
AMPUTATION_LEVEL_UNSPECIFIED: AmputationLevel
AMPUTATION_LEVEL_TRANSTIBIAL: AmputationLevel
AMPUTATION_LEVEL_TRANSFEMORAL: AmputationLevel
SIDE_UNSPECIFIED: Side
SIDE_LEFT: Side
SIDE_RIGHT: Side
FOOT_TYPE_UNSPECIFIED: FootType
FOOT_TYPE_SACH: FootType
FOOT_TYPE_SINGLE_AXIS: FootType
FOOT_TYPE_MULTIAXIAL: FootType
FOOT_TYPE_ENERGY_STORING: FootType
FOOT_TYPE_MICROPROCESSOR: FootType
FOOT_TYPE_OTHER: FootType
KNEE_TYPE_UNSPECIFIED: KneeType
KNEE_TYPE_ANATOMICAL: KneeType
KNEE_TYPE_LOCKING: KneeType
KNEE_TYPE_SINGLE_AXIS_MECHANICAL: KneeType
KNEE_TYPE_POLYCENTRIC: KneeType
KNEE_TYPE_HYDRAULIC: KneeType
KNEE_TYPE_MICROPROCESSOR: KneeType
KNEE_TYPE_OTHER: KneeType
ADJUSTMENT_PARAMETER_UNSPECIFIED: AdjustmentParameter
ADJUSTMENT_PARAMETER_FOOT_ROTATION: AdjustmentParameter
ADJUSTMENT_PARAMETER_SOCKET_FLEXION: AdjustmentParameter
ADJUSTMENT_PARAMETER_SOCKET_ADDUCTION: AdjustmentParameter
ADJUSTMENT_PARAMETER_HEEL_HEIGHT: AdjustmentParameter
ADJUSTMENT_PARAMETER_FOOT_ANTERIOR_SHIFT: AdjustmentParameter
ADJUSTMENT_PARAMETER_FOOT_MEDIAL_SHIFT: AdjustmentParameter
ADJUSTMENT_PARAMETER_PYLON_LENGTH: AdjustmentParameter
ANATOMICAL_PLANE_UNSPECIFIED: AnatomicalPlane
ANATOMICAL_PLANE_SAGITTAL: AnatomicalPlane
ANATOMICAL_PLANE_CORONAL: AnatomicalPlane
ANATOMICAL_PLANE_TRANSVERSE: AnatomicalPlane
ANATOMICAL_PLANE_LENGTH: AnatomicalPlane
CONFIDENCE_LEVEL_UNSPECIFIED: ConfidenceLevel
CONFIDENCE_LEVEL_LOW: ConfidenceLevel
CONFIDENCE_LEVEL_MEDIUM: ConfidenceLevel
CONFIDENCE_LEVEL_HIGH: ConfidenceLevel
ANSWER_KIND_UNSPECIFIED: AnswerKind
ANSWER_KIND_NO_CHANGE: AnswerKind
ANSWER_KIND_RECOMMENDED: AnswerKind
ANSWER_KIND_TRIAL: AnswerKind
ANSWER_KIND_NOT_ALIGNMENT: AnswerKind
ANSWER_KIND_INSUFFICIENT_EVIDENCE: AnswerKind
FITTING_ACCEPTANCE_UNSPECIFIED: FittingAcceptance
FITTING_ACCEPTANCE_ACCEPTED: FittingAcceptance
FITTING_ACCEPTANCE_NOT_ACCEPTED: FittingAcceptance

class AppliedChange(_message.Message):
    __slots__ = ("parameter", "change")
    PARAMETER_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    parameter: AdjustmentParameter
    change: float
    def __init__(self, parameter: _Optional[_Union[AdjustmentParameter, str]] = ..., change: _Optional[float] = ...) -> None: ...

class FittingWalk(_message.Message):
    __slots__ = ("features", "applied_after")
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    APPLIED_AFTER_FIELD_NUMBER: _ClassVar[int]
    features: _containers.RepeatedCompositeFieldContainer[FeatureValue]
    applied_after: _containers.RepeatedCompositeFieldContainer[AppliedChange]
    def __init__(self, features: _Optional[_Iterable[_Union[FeatureValue, _Mapping]]] = ..., applied_after: _Optional[_Iterable[_Union[AppliedChange, _Mapping]]] = ...) -> None: ...

class PatientContext(_message.Message):
    __slots__ = ("amputation_level", "prosthetic_side", "body_mass_kg", "height_m", "k_level", "foot_type", "knee_type")
    AMPUTATION_LEVEL_FIELD_NUMBER: _ClassVar[int]
    PROSTHETIC_SIDE_FIELD_NUMBER: _ClassVar[int]
    BODY_MASS_KG_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_M_FIELD_NUMBER: _ClassVar[int]
    K_LEVEL_FIELD_NUMBER: _ClassVar[int]
    FOOT_TYPE_FIELD_NUMBER: _ClassVar[int]
    KNEE_TYPE_FIELD_NUMBER: _ClassVar[int]
    amputation_level: AmputationLevel
    prosthetic_side: Side
    body_mass_kg: float
    height_m: float
    k_level: int
    foot_type: FootType
    knee_type: KneeType
    def __init__(self, amputation_level: _Optional[_Union[AmputationLevel, str]] = ..., prosthetic_side: _Optional[_Union[Side, str]] = ..., body_mass_kg: _Optional[float] = ..., height_m: _Optional[float] = ..., k_level: _Optional[int] = ..., foot_type: _Optional[_Union[FootType, str]] = ..., knee_type: _Optional[_Union[KneeType, str]] = ...) -> None: ...

class FeatureValue(_message.Message):
    __slots__ = ("name", "value", "unit", "source")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: float
    unit: str
    source: SensorKind
    def __init__(self, name: _Optional[str] = ..., value: _Optional[float] = ..., unit: _Optional[str] = ..., source: _Optional[_Union[SensorKind, str]] = ...) -> None: ...

class GaitAssessment(_message.Message):
    __slots__ = ("assessment_id", "patient", "features", "reference_features", "applied_since_reference", "fitting_history")
    ASSESSMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FEATURES_FIELD_NUMBER: _ClassVar[int]
    APPLIED_SINCE_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    FITTING_HISTORY_FIELD_NUMBER: _ClassVar[int]
    assessment_id: str
    patient: PatientContext
    features: _containers.RepeatedCompositeFieldContainer[FeatureValue]
    reference_features: _containers.RepeatedCompositeFieldContainer[FeatureValue]
    applied_since_reference: _containers.RepeatedCompositeFieldContainer[AppliedChange]
    fitting_history: _containers.RepeatedCompositeFieldContainer[FittingWalk]
    def __init__(self, assessment_id: _Optional[str] = ..., patient: _Optional[_Union[PatientContext, _Mapping]] = ..., features: _Optional[_Iterable[_Union[FeatureValue, _Mapping]]] = ..., reference_features: _Optional[_Iterable[_Union[FeatureValue, _Mapping]]] = ..., applied_since_reference: _Optional[_Iterable[_Union[AppliedChange, _Mapping]]] = ..., fitting_history: _Optional[_Iterable[_Union[FittingWalk, _Mapping]]] = ...) -> None: ...

class ModelRef(_message.Message):
    __slots__ = ("name", "version", "sha256")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    sha256: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., sha256: _Optional[str] = ...) -> None: ...

class GaitDeviation(_message.Message):
    __slots__ = ("feature", "value", "unit", "normative_mean", "normative_sd", "z_score", "description")
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    NORMATIVE_MEAN_FIELD_NUMBER: _ClassVar[int]
    NORMATIVE_SD_FIELD_NUMBER: _ClassVar[int]
    Z_SCORE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    feature: str
    value: float
    unit: str
    normative_mean: float
    normative_sd: float
    z_score: float
    description: str
    def __init__(self, feature: _Optional[str] = ..., value: _Optional[float] = ..., unit: _Optional[str] = ..., normative_mean: _Optional[float] = ..., normative_sd: _Optional[float] = ..., z_score: _Optional[float] = ..., description: _Optional[str] = ...) -> None: ...

class Adjustment(_message.Message):
    __slots__ = ("rank", "parameter", "change_deg", "change_mm", "unit", "direction", "confidence", "interval_lower", "interval_upper", "suggested_change", "clamped_to_safe_step", "supporting_deviations", "driving_features", "rationale", "plane", "trial", "reverts_applied_change")
    RANK_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_FIELD_NUMBER: _ClassVar[int]
    CHANGE_DEG_FIELD_NUMBER: _ClassVar[int]
    CHANGE_MM_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_LOWER_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_UPPER_FIELD_NUMBER: _ClassVar[int]
    SUGGESTED_CHANGE_FIELD_NUMBER: _ClassVar[int]
    CLAMPED_TO_SAFE_STEP_FIELD_NUMBER: _ClassVar[int]
    SUPPORTING_DEVIATIONS_FIELD_NUMBER: _ClassVar[int]
    DRIVING_FEATURES_FIELD_NUMBER: _ClassVar[int]
    RATIONALE_FIELD_NUMBER: _ClassVar[int]
    PLANE_FIELD_NUMBER: _ClassVar[int]
    TRIAL_FIELD_NUMBER: _ClassVar[int]
    REVERTS_APPLIED_CHANGE_FIELD_NUMBER: _ClassVar[int]
    rank: int
    parameter: AdjustmentParameter
    change_deg: float
    change_mm: float
    unit: str
    direction: str
    confidence: float
    interval_lower: float
    interval_upper: float
    suggested_change: float
    clamped_to_safe_step: bool
    supporting_deviations: _containers.RepeatedScalarFieldContainer[str]
    driving_features: _containers.RepeatedScalarFieldContainer[str]
    rationale: str
    plane: AnatomicalPlane
    trial: bool
    reverts_applied_change: bool
    def __init__(self, rank: _Optional[int] = ..., parameter: _Optional[_Union[AdjustmentParameter, str]] = ..., change_deg: _Optional[float] = ..., change_mm: _Optional[float] = ..., unit: _Optional[str] = ..., direction: _Optional[str] = ..., confidence: _Optional[float] = ..., interval_lower: _Optional[float] = ..., interval_upper: _Optional[float] = ..., suggested_change: _Optional[float] = ..., clamped_to_safe_step: _Optional[bool] = ..., supporting_deviations: _Optional[_Iterable[str]] = ..., driving_features: _Optional[_Iterable[str]] = ..., rationale: _Optional[str] = ..., plane: _Optional[_Union[AnatomicalPlane, str]] = ..., trial: _Optional[bool] = ..., reverts_applied_change: _Optional[bool] = ...) -> None: ...

class ParameterEstimate(_message.Message):
    __slots__ = ("parameter", "probability_decrease", "probability_no_change", "probability_increase", "magnitude", "unit", "recommended", "reason")
    PARAMETER_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_DECREASE_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_NO_CHANGE_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_INCREASE_FIELD_NUMBER: _ClassVar[int]
    MAGNITUDE_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    parameter: AdjustmentParameter
    probability_decrease: float
    probability_no_change: float
    probability_increase: float
    magnitude: float
    unit: str
    recommended: bool
    reason: str
    def __init__(self, parameter: _Optional[_Union[AdjustmentParameter, str]] = ..., probability_decrease: _Optional[float] = ..., probability_no_change: _Optional[float] = ..., probability_increase: _Optional[float] = ..., magnitude: _Optional[float] = ..., unit: _Optional[str] = ..., recommended: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class NonAlignmentFinding(_message.Message):
    __slots__ = ("code", "message", "features")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    features: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., features: _Optional[_Iterable[str]] = ...) -> None: ...

class MeasurementSuggestion(_message.Message):
    __slots__ = ("feature", "sensor_kind", "reason")
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    SENSOR_KIND_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    feature: str
    sensor_kind: SensorKind
    reason: str
    def __init__(self, feature: _Optional[str] = ..., sensor_kind: _Optional[_Union[SensorKind, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class Recommendation(_message.Message):
    __slots__ = ("assessment_id", "model", "adjustments", "no_change_needed", "deviations", "non_alignment_findings", "missing_features", "imputed_features", "overall_confidence", "confidence_level", "suggested_measurements", "warnings", "parameter_estimates", "changes_since_reference", "answer_kind", "differentials", "summary")
    ASSESSMENT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ADJUSTMENTS_FIELD_NUMBER: _ClassVar[int]
    NO_CHANGE_NEEDED_FIELD_NUMBER: _ClassVar[int]
    DEVIATIONS_FIELD_NUMBER: _ClassVar[int]
    NON_ALIGNMENT_FINDINGS_FIELD_NUMBER: _ClassVar[int]
    MISSING_FEATURES_FIELD_NUMBER: _ClassVar[int]
    IMPUTED_FEATURES_FIELD_NUMBER: _ClassVar[int]
    OVERALL_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_LEVEL_FIELD_NUMBER: _ClassVar[int]
    SUGGESTED_MEASUREMENTS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_ESTIMATES_FIELD_NUMBER: _ClassVar[int]
    CHANGES_SINCE_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    ANSWER_KIND_FIELD_NUMBER: _ClassVar[int]
    DIFFERENTIALS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    assessment_id: str
    model: ModelRef
    adjustments: _containers.RepeatedCompositeFieldContainer[Adjustment]
    no_change_needed: bool
    deviations: _containers.RepeatedCompositeFieldContainer[GaitDeviation]
    non_alignment_findings: _containers.RepeatedCompositeFieldContainer[NonAlignmentFinding]
    missing_features: _containers.RepeatedScalarFieldContainer[str]
    imputed_features: _containers.RepeatedScalarFieldContainer[str]
    overall_confidence: float
    confidence_level: ConfidenceLevel
    suggested_measurements: _containers.RepeatedCompositeFieldContainer[MeasurementSuggestion]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    parameter_estimates: _containers.RepeatedCompositeFieldContainer[ParameterEstimate]
    changes_since_reference: _containers.RepeatedCompositeFieldContainer[FeatureChange]
    answer_kind: AnswerKind
    differentials: _containers.RepeatedCompositeFieldContainer[Differential]
    summary: str
    def __init__(self, assessment_id: _Optional[str] = ..., model: _Optional[_Union[ModelRef, _Mapping]] = ..., adjustments: _Optional[_Iterable[_Union[Adjustment, _Mapping]]] = ..., no_change_needed: _Optional[bool] = ..., deviations: _Optional[_Iterable[_Union[GaitDeviation, _Mapping]]] = ..., non_alignment_findings: _Optional[_Iterable[_Union[NonAlignmentFinding, _Mapping]]] = ..., missing_features: _Optional[_Iterable[str]] = ..., imputed_features: _Optional[_Iterable[str]] = ..., overall_confidence: _Optional[float] = ..., confidence_level: _Optional[_Union[ConfidenceLevel, str]] = ..., suggested_measurements: _Optional[_Iterable[_Union[MeasurementSuggestion, _Mapping]]] = ..., warnings: _Optional[_Iterable[str]] = ..., parameter_estimates: _Optional[_Iterable[_Union[ParameterEstimate, _Mapping]]] = ..., changes_since_reference: _Optional[_Iterable[_Union[FeatureChange, _Mapping]]] = ..., answer_kind: _Optional[_Union[AnswerKind, str]] = ..., differentials: _Optional[_Iterable[_Union[Differential, _Mapping]]] = ..., summary: _Optional[str] = ...) -> None: ...

class CandidateCause(_message.Message):
    __slots__ = ("parameter", "direction_sign", "direction", "probability", "probability_opposite", "evidence_for", "evidence_against", "table_rows", "vetoed")
    PARAMETER_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_SIGN_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_OPPOSITE_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FOR_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_AGAINST_FIELD_NUMBER: _ClassVar[int]
    TABLE_ROWS_FIELD_NUMBER: _ClassVar[int]
    VETOED_FIELD_NUMBER: _ClassVar[int]
    parameter: AdjustmentParameter
    direction_sign: int
    direction: str
    probability: float
    probability_opposite: float
    evidence_for: _containers.RepeatedScalarFieldContainer[str]
    evidence_against: _containers.RepeatedScalarFieldContainer[str]
    table_rows: str
    vetoed: bool
    def __init__(self, parameter: _Optional[_Union[AdjustmentParameter, str]] = ..., direction_sign: _Optional[int] = ..., direction: _Optional[str] = ..., probability: _Optional[float] = ..., probability_opposite: _Optional[float] = ..., evidence_for: _Optional[_Iterable[str]] = ..., evidence_against: _Optional[_Iterable[str]] = ..., table_rows: _Optional[str] = ..., vetoed: _Optional[bool] = ...) -> None: ...

class Differential(_message.Message):
    __slots__ = ("feature", "z_score", "description", "candidates", "non_alignment_causes", "separating_measurement")
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    Z_SCORE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    NON_ALIGNMENT_CAUSES_FIELD_NUMBER: _ClassVar[int]
    SEPARATING_MEASUREMENT_FIELD_NUMBER: _ClassVar[int]
    feature: str
    z_score: float
    description: str
    candidates: _containers.RepeatedCompositeFieldContainer[CandidateCause]
    non_alignment_causes: _containers.RepeatedScalarFieldContainer[str]
    separating_measurement: MeasurementSuggestion
    def __init__(self, feature: _Optional[str] = ..., z_score: _Optional[float] = ..., description: _Optional[str] = ..., candidates: _Optional[_Iterable[_Union[CandidateCause, _Mapping]]] = ..., non_alignment_causes: _Optional[_Iterable[str]] = ..., separating_measurement: _Optional[_Union[MeasurementSuggestion, _Mapping]] = ...) -> None: ...

class FeatureChange(_message.Message):
    __slots__ = ("feature", "reference_value", "value", "change", "unit", "change_in_sd")
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_VALUE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    CHANGE_IN_SD_FIELD_NUMBER: _ClassVar[int]
    feature: str
    reference_value: float
    value: float
    change: float
    unit: str
    change_in_sd: float
    def __init__(self, feature: _Optional[str] = ..., reference_value: _Optional[float] = ..., value: _Optional[float] = ..., change: _Optional[float] = ..., unit: _Optional[str] = ..., change_in_sd: _Optional[float] = ...) -> None: ...

class FieldViolation(_message.Message):
    __slots__ = ("field", "description", "reason")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    field: str
    description: str
    reason: str
    def __init__(self, field: _Optional[str] = ..., description: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ItemError(_message.Message):
    __slots__ = ("code", "message", "reason", "field_violations")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FIELD_VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    reason: str
    field_violations: _containers.RepeatedCompositeFieldContainer[FieldViolation]
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., reason: _Optional[str] = ..., field_violations: _Optional[_Iterable[_Union[FieldViolation, _Mapping]]] = ...) -> None: ...

class NormativeValue(_message.Message):
    __slots__ = ("amputation_level", "mean", "sd")
    AMPUTATION_LEVEL_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    SD_FIELD_NUMBER: _ClassVar[int]
    amputation_level: AmputationLevel
    mean: float
    sd: float
    def __init__(self, amputation_level: _Optional[_Union[AmputationLevel, str]] = ..., mean: _Optional[float] = ..., sd: _Optional[float] = ...) -> None: ...

class FeatureDefinition(_message.Message):
    __slots__ = ("name", "unit", "accepted_units", "min_value", "max_value", "normative_values", "sensor_kinds", "description", "citation", "group")
    NAME_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_UNITS_FIELD_NUMBER: _ClassVar[int]
    MIN_VALUE_FIELD_NUMBER: _ClassVar[int]
    MAX_VALUE_FIELD_NUMBER: _ClassVar[int]
    NORMATIVE_VALUES_FIELD_NUMBER: _ClassVar[int]
    SENSOR_KINDS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CITATION_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    name: str
    unit: str
    accepted_units: _containers.RepeatedScalarFieldContainer[str]
    min_value: float
    max_value: float
    normative_values: _containers.RepeatedCompositeFieldContainer[NormativeValue]
    sensor_kinds: _containers.RepeatedScalarFieldContainer[SensorKind]
    description: str
    citation: str
    group: str
    def __init__(self, name: _Optional[str] = ..., unit: _Optional[str] = ..., accepted_units: _Optional[_Iterable[str]] = ..., min_value: _Optional[float] = ..., max_value: _Optional[float] = ..., normative_values: _Optional[_Iterable[_Union[NormativeValue, _Mapping]]] = ..., sensor_kinds: _Optional[_Iterable[_Union[SensorKind, str]]] = ..., description: _Optional[str] = ..., citation: _Optional[str] = ..., group: _Optional[str] = ...) -> None: ...

class AdjustmentParameterDefinition(_message.Message):
    __slots__ = ("parameter", "unit", "plane", "plus_means", "minus_means", "min_change", "max_step")
    PARAMETER_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    PLANE_FIELD_NUMBER: _ClassVar[int]
    PLUS_MEANS_FIELD_NUMBER: _ClassVar[int]
    MINUS_MEANS_FIELD_NUMBER: _ClassVar[int]
    MIN_CHANGE_FIELD_NUMBER: _ClassVar[int]
    MAX_STEP_FIELD_NUMBER: _ClassVar[int]
    parameter: AdjustmentParameter
    unit: str
    plane: AnatomicalPlane
    plus_means: str
    minus_means: str
    min_change: float
    max_step: float
    def __init__(self, parameter: _Optional[_Union[AdjustmentParameter, str]] = ..., unit: _Optional[str] = ..., plane: _Optional[_Union[AnatomicalPlane, str]] = ..., plus_means: _Optional[str] = ..., minus_means: _Optional[str] = ..., min_change: _Optional[float] = ..., max_step: _Optional[float] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "version", "sha256", "training_data_fingerprint", "training_data_kind", "model_family", "created_time", "metrics", "catalog_version", "limitations")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    TRAINING_DATA_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    TRAINING_DATA_KIND_FIELD_NUMBER: _ClassVar[int]
    MODEL_FAMILY_FIELD_NUMBER: _ClassVar[int]
    CREATED_TIME_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    CATALOG_VERSION_FIELD_NUMBER: _ClassVar[int]
    LIMITATIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    sha256: str
    training_data_fingerprint: str
    training_data_kind: str
    model_family: str
    created_time: str
    metrics: _containers.ScalarMap[str, float]
    catalog_version: str
    limitations: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., sha256: _Optional[str] = ..., training_data_fingerprint: _Optional[str] = ..., training_data_kind: _Optional[str] = ..., model_family: _Optional[str] = ..., created_time: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., catalog_version: _Optional[str] = ..., limitations: _Optional[str] = ...) -> None: ...

class RecordingChannel(_message.Message):
    __slots__ = ("name", "values", "components", "unit", "group")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    name: str
    values: _containers.RepeatedScalarFieldContainer[float]
    components: int
    unit: str
    group: str
    def __init__(self, name: _Optional[str] = ..., values: _Optional[_Iterable[float]] = ..., components: _Optional[int] = ..., unit: _Optional[str] = ..., group: _Optional[str] = ...) -> None: ...

class ChannelGroup(_message.Message):
    __slots__ = ("name", "sample_counter", "sample_times_s", "counter_modulus")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_COUNTER_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_TIMES_S_FIELD_NUMBER: _ClassVar[int]
    COUNTER_MODULUS_FIELD_NUMBER: _ClassVar[int]
    name: str
    sample_counter: _containers.RepeatedScalarFieldContainer[int]
    sample_times_s: _containers.RepeatedScalarFieldContainer[float]
    counter_modulus: int
    def __init__(self, name: _Optional[str] = ..., sample_counter: _Optional[_Iterable[int]] = ..., sample_times_s: _Optional[_Iterable[float]] = ..., counter_modulus: _Optional[int] = ...) -> None: ...

class Recording(_message.Message):
    __slots__ = ("sensor_kind", "sampling_rate_hz", "channels", "c3d_file", "options", "observations", "channel_groups")
    class OptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class ObservationsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SENSOR_KIND_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    C3D_FILE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    OBSERVATIONS_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_GROUPS_FIELD_NUMBER: _ClassVar[int]
    sensor_kind: SensorKind
    sampling_rate_hz: float
    channels: _containers.RepeatedCompositeFieldContainer[RecordingChannel]
    c3d_file: bytes
    options: _containers.ScalarMap[str, str]
    observations: _containers.ScalarMap[str, str]
    channel_groups: _containers.RepeatedCompositeFieldContainer[ChannelGroup]
    def __init__(self, sensor_kind: _Optional[_Union[SensorKind, str]] = ..., sampling_rate_hz: _Optional[float] = ..., channels: _Optional[_Iterable[_Union[RecordingChannel, _Mapping]]] = ..., c3d_file: _Optional[bytes] = ..., options: _Optional[_Mapping[str, str]] = ..., observations: _Optional[_Mapping[str, str]] = ..., channel_groups: _Optional[_Iterable[_Union[ChannelGroup, _Mapping]]] = ...) -> None: ...

class FeatureProvenance(_message.Message):
    __slots__ = ("feature", "sensor_kind", "method", "precision", "n_values")
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    SENSOR_KIND_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    N_VALUES_FIELD_NUMBER: _ClassVar[int]
    feature: str
    sensor_kind: SensorKind
    method: str
    precision: str
    n_values: int
    def __init__(self, feature: _Optional[str] = ..., sensor_kind: _Optional[_Union[SensorKind, str]] = ..., method: _Optional[str] = ..., precision: _Optional[str] = ..., n_values: _Optional[int] = ...) -> None: ...

class ExtractionReport(_message.Message):
    __slots__ = ("sensor_kind", "strides_used", "strides_dropped", "warnings", "provenance", "aligned_start_s", "aligned_end_s", "samples_filled", "channel_groups", "strides_dropped_for_gaps")
    SENSOR_KIND_FIELD_NUMBER: _ClassVar[int]
    STRIDES_USED_FIELD_NUMBER: _ClassVar[int]
    STRIDES_DROPPED_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    ALIGNED_START_S_FIELD_NUMBER: _ClassVar[int]
    ALIGNED_END_S_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FILLED_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_GROUPS_FIELD_NUMBER: _ClassVar[int]
    STRIDES_DROPPED_FOR_GAPS_FIELD_NUMBER: _ClassVar[int]
    sensor_kind: SensorKind
    strides_used: int
    strides_dropped: int
    warnings: _containers.RepeatedScalarFieldContainer[str]
    provenance: _containers.RepeatedCompositeFieldContainer[FeatureProvenance]
    aligned_start_s: float
    aligned_end_s: float
    samples_filled: int
    channel_groups: _containers.RepeatedCompositeFieldContainer[ChannelGroupReport]
    strides_dropped_for_gaps: _containers.RepeatedCompositeFieldContainer[GapDroppedStride]
    def __init__(self, sensor_kind: _Optional[_Union[SensorKind, str]] = ..., strides_used: _Optional[int] = ..., strides_dropped: _Optional[int] = ..., warnings: _Optional[_Iterable[str]] = ..., provenance: _Optional[_Iterable[_Union[FeatureProvenance, _Mapping]]] = ..., aligned_start_s: _Optional[float] = ..., aligned_end_s: _Optional[float] = ..., samples_filled: _Optional[int] = ..., channel_groups: _Optional[_Iterable[_Union[ChannelGroupReport, _Mapping]]] = ..., strides_dropped_for_gaps: _Optional[_Iterable[_Union[GapDroppedStride, _Mapping]]] = ...) -> None: ...

class ChannelGroupReport(_message.Message):
    __slots__ = ("name", "channels", "start_s", "end_s", "samples_received", "samples_filled", "samples_unfilled", "gaps", "gap_count", "samples_repeated")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FILLED_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_UNFILLED_FIELD_NUMBER: _ClassVar[int]
    GAPS_FIELD_NUMBER: _ClassVar[int]
    GAP_COUNT_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_REPEATED_FIELD_NUMBER: _ClassVar[int]
    name: str
    channels: _containers.RepeatedScalarFieldContainer[str]
    start_s: float
    end_s: float
    samples_received: int
    samples_filled: int
    samples_unfilled: int
    gaps: _containers.RepeatedCompositeFieldContainer[TimelineGap]
    gap_count: int
    samples_repeated: int
    def __init__(self, name: _Optional[str] = ..., channels: _Optional[_Iterable[str]] = ..., start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., samples_received: _Optional[int] = ..., samples_filled: _Optional[int] = ..., samples_unfilled: _Optional[int] = ..., gaps: _Optional[_Iterable[_Union[TimelineGap, _Mapping]]] = ..., gap_count: _Optional[int] = ..., samples_repeated: _Optional[int] = ...) -> None: ...

class TimelineGap(_message.Message):
    __slots__ = ("start_s", "duration_s", "samples_missing", "filled")
    START_S_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_MISSING_FIELD_NUMBER: _ClassVar[int]
    FILLED_FIELD_NUMBER: _ClassVar[int]
    start_s: float
    duration_s: float
    samples_missing: int
    filled: bool
    def __init__(self, start_s: _Optional[float] = ..., duration_s: _Optional[float] = ..., samples_missing: _Optional[int] = ..., filled: _Optional[bool] = ...) -> None: ...

class GapDroppedStride(_message.Message):
    __slots__ = ("side", "start_s", "end_s", "group")
    SIDE_FIELD_NUMBER: _ClassVar[int]
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    side: Side
    start_s: float
    end_s: float
    group: str
    def __init__(self, side: _Optional[_Union[Side, str]] = ..., start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., group: _Optional[str] = ...) -> None: ...

class RecordedAnswer(_message.Message):
    __slots__ = ("model", "answer_kind", "recommended")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ANSWER_KIND_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDED_FIELD_NUMBER: _ClassVar[int]
    model: ModelRef
    answer_kind: AnswerKind
    recommended: _containers.RepeatedCompositeFieldContainer[AppliedChange]
    def __init__(self, model: _Optional[_Union[ModelRef, _Mapping]] = ..., answer_kind: _Optional[_Union[AnswerKind, str]] = ..., recommended: _Optional[_Iterable[_Union[AppliedChange, _Mapping]]] = ...) -> None: ...

class RecordedWalk(_message.Message):
    __slots__ = ("features", "applied_after", "answer")
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    APPLIED_AFTER_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    features: _containers.RepeatedCompositeFieldContainer[FeatureValue]
    applied_after: _containers.RepeatedCompositeFieldContainer[AppliedChange]
    answer: RecordedAnswer
    def __init__(self, features: _Optional[_Iterable[_Union[FeatureValue, _Mapping]]] = ..., applied_after: _Optional[_Iterable[_Union[AppliedChange, _Mapping]]] = ..., answer: _Optional[_Union[RecordedAnswer, _Mapping]] = ...) -> None: ...

class FittingOutcome(_message.Message):
    __slots__ = ("acceptance", "prosthetist_rating", "socket_comfort_score")
    ACCEPTANCE_FIELD_NUMBER: _ClassVar[int]
    PROSTHETIST_RATING_FIELD_NUMBER: _ClassVar[int]
    SOCKET_COMFORT_SCORE_FIELD_NUMBER: _ClassVar[int]
    acceptance: FittingAcceptance
    prosthetist_rating: int
    socket_comfort_score: float
    def __init__(self, acceptance: _Optional[_Union[FittingAcceptance, str]] = ..., prosthetist_rating: _Optional[int] = ..., socket_comfort_score: _Optional[float] = ...) -> None: ...

class FittingRecord(_message.Message):
    __slots__ = ("fitting_id", "patient_key", "clinic_key", "patient", "walks", "outcome")
    FITTING_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_KEY_FIELD_NUMBER: _ClassVar[int]
    CLINIC_KEY_FIELD_NUMBER: _ClassVar[int]
    PATIENT_FIELD_NUMBER: _ClassVar[int]
    WALKS_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    fitting_id: str
    patient_key: str
    clinic_key: str
    patient: PatientContext
    walks: _containers.RepeatedCompositeFieldContainer[RecordedWalk]
    outcome: FittingOutcome
    def __init__(self, fitting_id: _Optional[str] = ..., patient_key: _Optional[str] = ..., clinic_key: _Optional[str] = ..., patient: _Optional[_Union[PatientContext, _Mapping]] = ..., walks: _Optional[_Iterable[_Union[RecordedWalk, _Mapping]]] = ..., outcome: _Optional[_Union[FittingOutcome, _Mapping]] = ...) -> None: ...
