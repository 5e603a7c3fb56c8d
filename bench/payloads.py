"""Requests the bench sends, built from examples/*.json, and gRPC wire framing for h2load."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import grpc

from service._generated.prosthetic_alignment.v1 import alignment_pb2 as pb
from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb
from service._generated.prosthetic_alignment.v1 import alignment_service_pb2_grpc as spb_grpc
from service.client import load_assessment

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
# A realistic single request: a transtibial fitting with IMU, mocap and instrumented-pylon features.
SAMPLE = EXAMPLES / "toe_out_transtibial.json"
SERVICE = "prosthetic_alignment.v1.AlignmentService"


def grpc_frame(message: bytes) -> bytes:
    """The gRPC length-prefixed message: 1 byte compressed flag (0), 4 bytes big-endian length."""
    return struct.pack(">BI", 0, len(message)) + message


def split_frames(body: bytes) -> list[bytes]:
    out: list[bytes] = []
    i = 0
    while i + 5 <= len(body):
        _flag, n = struct.unpack(">BI", body[i:i + 5])
        out.append(body[i + 5:i + 5 + n])
        i += 5 + n
    return out


def sample_assessment() -> pb.GaitAssessment:
    return load_assessment(SAMPLE)


def recommend_request() -> spb.RecommendAdjustmentsRequest:
    return spb.RecommendAdjustmentsRequest(assessment=sample_assessment())


def batch_request(n: int, with_reference: bool = False) -> spb.BatchRecommendAdjustmentsRequest:
    """n assessments cycling over the examples (different levels, feature subsets, answers).

    Examples that carry a reference walk are left out unless ``with_reference``: a batch with any
    reference runs the model's reference stage (about 2x the model time), which would make runs
    before and after the reference walk existed incomparable.
    """
    bases = [load_assessment(p) for p in sorted(EXAMPLES.glob("*.json"))]
    bases = [b for b in bases if with_reference or not b.reference_features]
    req = spb.BatchRecommendAdjustmentsRequest()
    for i in range(n):
        a = req.assessments.add()
        a.CopyFrom(bases[i % len(bases)])
        a.assessment_id = f"bench-{i:05d}"
    return req


def stream_body(n: int) -> bytes:
    """One stream session of n updates as a single HTTP/2 request body (n framed messages)."""
    msg = spb.StreamRecommendAdjustmentsRequest(assessment=sample_assessment()).SerializeToString()
    return grpc_frame(msg) * n


def stub(channel: grpc.Channel) -> Any:
    """The generated AlignmentService stub (protoc leaves it untyped)."""
    return spb_grpc.AlignmentServiceStub(channel)  # type: ignore[no-untyped-call]
