"""Recordings over gRPC (issue 4): proto recordings -> service.extraction -> proto features.

Placeholder until the recordings work lands: both entry points answer FAILED_PRECONDITION-free,
explicit UNIMPLEMENTED-style domain errors so the contract is visible but never silently wrong.
"""

from __future__ import annotations

from service.errors import DependencyMissingError
from service._generated.prosthetic_alignment.v1 import alignment_pb2 as pb
from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb


def extract_features_rpc(request: spb.ExtractFeaturesRequest) -> spb.ExtractFeaturesResponse:
    raise DependencyMissingError("feature extraction over gRPC is not wired yet")


def assessment_from_recordings(
    request: spb.RecommendFromRecordingsRequest,
) -> tuple[spb.ExtractFeaturesResponse, pb.GaitAssessment]:
    raise DependencyMissingError("feature extraction over gRPC is not wired yet")
