from service._generated.prosthetic_alignment.v1 import alignment_pb2 as _alignment_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecommendAdjustmentsRequest(_message.Message):
    __slots__ = ("assessment", "model_version")
    ASSESSMENT_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    assessment: _alignment_pb2.GaitAssessment
    model_version: str
    def __init__(self, assessment: _Optional[_Union[_alignment_pb2.GaitAssessment, _Mapping]] = ..., model_version: _Optional[str] = ...) -> None: ...

class RecommendAdjustmentsResponse(_message.Message):
    __slots__ = ("recommendation",)
    RECOMMENDATION_FIELD_NUMBER: _ClassVar[int]
    recommendation: _alignment_pb2.Recommendation
    def __init__(self, recommendation: _Optional[_Union[_alignment_pb2.Recommendation, _Mapping]] = ...) -> None: ...

class BatchRecommendAdjustmentsRequest(_message.Message):
    __slots__ = ("assessments", "model_version")
    ASSESSMENTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    assessments: _containers.RepeatedCompositeFieldContainer[_alignment_pb2.GaitAssessment]
    model_version: str
    def __init__(self, assessments: _Optional[_Iterable[_Union[_alignment_pb2.GaitAssessment, _Mapping]]] = ..., model_version: _Optional[str] = ...) -> None: ...

class BatchItemResult(_message.Message):
    __slots__ = ("assessment_id", "recommendation", "error")
    ASSESSMENT_ID_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    assessment_id: str
    recommendation: _alignment_pb2.Recommendation
    error: _alignment_pb2.ItemError
    def __init__(self, assessment_id: _Optional[str] = ..., recommendation: _Optional[_Union[_alignment_pb2.Recommendation, _Mapping]] = ..., error: _Optional[_Union[_alignment_pb2.ItemError, _Mapping]] = ...) -> None: ...

class BatchRecommendAdjustmentsResponse(_message.Message):
    __slots__ = ("results", "model")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[BatchItemResult]
    model: _alignment_pb2.ModelRef
    def __init__(self, results: _Optional[_Iterable[_Union[BatchItemResult, _Mapping]]] = ..., model: _Optional[_Union[_alignment_pb2.ModelRef, _Mapping]] = ...) -> None: ...

class StreamRecommendAdjustmentsRequest(_message.Message):
    __slots__ = ("assessment", "model_version")
    ASSESSMENT_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    assessment: _alignment_pb2.GaitAssessment
    model_version: str
    def __init__(self, assessment: _Optional[_Union[_alignment_pb2.GaitAssessment, _Mapping]] = ..., model_version: _Optional[str] = ...) -> None: ...

class StreamRecommendAdjustmentsResponse(_message.Message):
    __slots__ = ("sequence", "recommendation", "error")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    recommendation: _alignment_pb2.Recommendation
    error: _alignment_pb2.ItemError
    def __init__(self, sequence: _Optional[int] = ..., recommendation: _Optional[_Union[_alignment_pb2.Recommendation, _Mapping]] = ..., error: _Optional[_Union[_alignment_pb2.ItemError, _Mapping]] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("model_version",)
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    def __init__(self, model_version: _Optional[str] = ...) -> None: ...

class GetModelResponse(_message.Message):
    __slots__ = ("model", "features", "parameters", "available_versions", "catalog_version")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    CATALOG_VERSION_FIELD_NUMBER: _ClassVar[int]
    model: _alignment_pb2.ModelInfo
    features: _containers.RepeatedCompositeFieldContainer[_alignment_pb2.FeatureDefinition]
    parameters: _containers.RepeatedCompositeFieldContainer[_alignment_pb2.AdjustmentParameterDefinition]
    available_versions: _containers.RepeatedScalarFieldContainer[str]
    catalog_version: str
    def __init__(self, model: _Optional[_Union[_alignment_pb2.ModelInfo, _Mapping]] = ..., features: _Optional[_Iterable[_Union[_alignment_pb2.FeatureDefinition, _Mapping]]] = ..., parameters: _Optional[_Iterable[_Union[_alignment_pb2.AdjustmentParameterDefinition, _Mapping]]] = ..., available_versions: _Optional[_Iterable[str]] = ..., catalog_version: _Optional[str] = ...) -> None: ...

class ExtractFeaturesRequest(_message.Message):
    __slots__ = ("patient", "recordings")
    PATIENT_FIELD_NUMBER: _ClassVar[int]
    RECORDINGS_FIELD_NUMBER: _ClassVar[int]
    patient: _alignment_pb2.PatientContext
    recordings: _containers.RepeatedCompositeFieldContainer[_alignment_pb2.Recording]
    def __init__(self, patient: _Optional[_Union[_alignment_pb2.PatientContext, _Mapping]] = ..., recordings: _Optional[_Iterable[_Union[_alignment_pb2.Recording, _Mapping]]] = ...) -> None: ...

class ExtractFeaturesResponse(_message.Message):
    __slots__ = ("features", "reports")
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    features: _containers.RepeatedCompositeFieldContainer[_alignment_pb2.FeatureValue]
    reports: _containers.RepeatedCompositeFieldContainer[_alignment_pb2.ExtractionReport]
    def __init__(self, features: _Optional[_Iterable[_Union[_alignment_pb2.FeatureValue, _Mapping]]] = ..., reports: _Optional[_Iterable[_Union[_alignment_pb2.ExtractionReport, _Mapping]]] = ...) -> None: ...

class RecommendFromRecordingsRequest(_message.Message):
    __slots__ = ("assessment_id", "patient", "recordings", "features", "model_version")
    ASSESSMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_FIELD_NUMBER: _ClassVar[int]
    RECORDINGS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    assessment_id: str
    patient: _alignment_pb2.PatientContext
    recordings: _containers.RepeatedCompositeFieldContainer[_alignment_pb2.Recording]
    features: _containers.RepeatedCompositeFieldContainer[_alignment_pb2.FeatureValue]
    model_version: str
    def __init__(self, assessment_id: _Optional[str] = ..., patient: _Optional[_Union[_alignment_pb2.PatientContext, _Mapping]] = ..., recordings: _Optional[_Iterable[_Union[_alignment_pb2.Recording, _Mapping]]] = ..., features: _Optional[_Iterable[_Union[_alignment_pb2.FeatureValue, _Mapping]]] = ..., model_version: _Optional[str] = ...) -> None: ...

class RecommendFromRecordingsResponse(_message.Message):
    __slots__ = ("recommendation", "extraction")
    RECOMMENDATION_FIELD_NUMBER: _ClassVar[int]
    EXTRACTION_FIELD_NUMBER: _ClassVar[int]
    recommendation: _alignment_pb2.Recommendation
    extraction: ExtractFeaturesResponse
    def __init__(self, recommendation: _Optional[_Union[_alignment_pb2.Recommendation, _Mapping]] = ..., extraction: _Optional[_Union[ExtractFeaturesResponse, _Mapping]] = ...) -> None: ...

class RecordFittingRequest(_message.Message):
    __slots__ = ("record",)
    RECORD_FIELD_NUMBER: _ClassVar[int]
    record: _alignment_pb2.FittingRecord
    def __init__(self, record: _Optional[_Union[_alignment_pb2.FittingRecord, _Mapping]] = ...) -> None: ...

class RecordFittingResponse(_message.Message):
    __slots__ = ("fitting_id", "already_recorded", "content_sha256")
    FITTING_ID_FIELD_NUMBER: _ClassVar[int]
    ALREADY_RECORDED_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    fitting_id: str
    already_recorded: bool
    content_sha256: str
    def __init__(self, fitting_id: _Optional[str] = ..., already_recorded: _Optional[bool] = ..., content_sha256: _Optional[str] = ...) -> None: ...
