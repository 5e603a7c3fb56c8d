"""A real server on port 0 and a real client: every RPC, every error class, health, reflection."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import descriptor_pool
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from grpc_status import rpc_status

from service._generated.prosthetic_alignment.v1 import alignment_pb2 as pb
from service.api.server import RunningServer
from service.client import AlignmentClient, field_violations, load_assessment
from tests.conftest import EXAMPLES
from tests.integration.conftest import rpc_error

FOOT_ROTATION = pb.ADJUSTMENT_PARAMETER_FOOT_ROTATION


def _assessment(features: dict[str, float | tuple[float, str]], **patient: object) -> pb.GaitAssessment:
    p = {"amputation_level": pb.AMPUTATION_LEVEL_TRANSTIBIAL, "prosthetic_side": pb.SIDE_LEFT, "body_mass_kg": 80.0}
    p.update(patient)
    a = pb.GaitAssessment(assessment_id="it-1", patient=pb.PatientContext(**p))  # type: ignore[arg-type]
    for name, v in features.items():
        value, unit = v if isinstance(v, tuple) else (v, "")
        a.features.add(name=name, value=value, unit=unit, source=pb.SENSOR_KIND_IMU)
    return a


def test_health_is_serving_and_reflection_lists_the_service(server: RunningServer) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        for name in ("", "prosthetic_alignment.v1.AlignmentService"):
            assert stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status == health_pb2.HealthCheckResponse.SERVING
        db = ProtoReflectionDescriptorDatabase(ch)
        services = db.get_services()
        assert "prosthetic_alignment.v1.AlignmentService" in services
        assert "grpc.health.v1.Health" in services
        pool = descriptor_pool.DescriptorPool(db)
        svc = pool.FindServiceByName("prosthetic_alignment.v1.AlignmentService")
        assert {m.name for m in svc.methods} >= {"RecommendAdjustments", "BatchRecommendAdjustments", "StreamRecommendAdjustments", "GetModel"}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.stem)
def test_examples_return_ranked_adjustments_naming_the_model(client: AlignmentClient, server: RunningServer, path) -> None:  # type: ignore[no-untyped-def]
    r = client.recommend(load_assessment(path))
    assert r.model.version == server.registry.get().version
    assert len(r.model.sha256) == 64
    assert r.assessment_id
    assert [a.rank for a in r.adjustments] == list(range(1, len(r.adjustments) + 1))
    assert r.no_change_needed == (len(r.adjustments) == 0)
    assert len(r.parameter_estimates) == 7


def test_marked_toe_out_ranks_foot_rotation_negative_first(client: AlignmentClient) -> None:
    r = client.recommend(load_assessment(EXAMPLES / "toe_out_transtibial.json"))
    first = r.adjustments[0]
    assert first.parameter == FOOT_ROTATION
    assert first.WhichOneof("change") == "change_deg" and first.change_deg < 0
    assert "foot_progression_angle_prosthetic_deg" in first.supporting_deviations


def test_batch_keeps_good_items_when_one_is_bad(client: AlignmentClient) -> None:
    good = load_assessment(EXAMPLES / "toe_out_transtibial.json")
    bad = _assessment({"walking_speed_m_per_s": 99.0})
    resp = client.recommend_batch([good, bad, good])
    kinds = [r.WhichOneof("result") for r in resp.results]
    assert kinds == ["recommendation", "error", "recommendation"]
    err = resp.results[1].error
    assert err.code == "INVALID_ARGUMENT"
    assert err.field_violations[0].field == "assessments[1].features[0].value"
    assert "0.05 to 3 m/s" in err.field_violations[0].description
    assert resp.model.version


def test_batch_too_large_is_rejected(server: RunningServer, client: AlignmentClient) -> None:
    n = server.settings.max_batch_size + 1
    err = rpc_error(client.recommend_batch, [pb.GaitAssessment()] * n)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_stream_answers_every_update_and_survives_a_bad_one(client: AlignmentClient) -> None:
    good = load_assessment(EXAMPLES / "toe_out_transtibial.json")
    bad = _assessment({"no_such_feature": 1.0})
    out = list(client.stream([good, bad, good]))
    assert [o.sequence for o in out] == [1, 2, 3]
    assert [o.WhichOneof("result") for o in out] == ["recommendation", "error", "recommendation"]
    assert out[1].error.field_violations[0].reason == "UNKNOWN_FEATURE"


def test_get_model_describes_catalogs(client: AlignmentClient) -> None:
    m = client.get_model()
    assert m.model.version and len(m.model.sha256) == 64
    assert m.model.training_data_kind == "simulated"
    assert "not clinically validated" in m.model.limitations
    assert m.model.training_data_fingerprint
    names = {f.name for f in m.features}
    assert "socket_coronal_moment_early_stance_nm_per_kg" in names
    assert {p.parameter for p in m.parameters} == set(range(1, 8))
    rot = next(p for p in m.parameters if p.parameter == FOOT_ROTATION)
    assert rot.unit == "deg" and rot.min_change == 2.0 and rot.max_step == 6.0 and "toe-out" in rot.plus_means
    assert m.model.metrics


ERROR_CASES = {
    "unknown feature": ({"toe_out_deg": 5.0}, {}, "UNKNOWN_FEATURE"),
    "nan": ({"walking_speed_m_per_s": float("nan")}, {}, "FEATURE_NOT_FINITE"),
    "infinity": ({"walking_speed_m_per_s": float("inf")}, {}, "FEATURE_NOT_FINITE"),
    "out of range": ({"cadence_steps_per_min": 400.0}, {}, "FEATURE_OUT_OF_RANGE"),
    "unknown unit": ({"step_width_m": (10.0, "inch")}, {}, "UNKNOWN_UNIT"),
    "missing side": ({"walking_speed_m_per_s": 1.0}, {"prosthetic_side": pb.SIDE_UNSPECIFIED}, "PATIENT_CONTEXT_MISSING"),
    "missing mass": ({"walking_speed_m_per_s": 1.0}, {"body_mass_kg": 0.0}, "PATIENT_CONTEXT_MISSING"),
    "contradictory": ({"walking_speed_m_per_s": 1.0}, {"knee_type": pb.KNEE_TYPE_MICROPROCESSOR}, "PATIENT_CONTEXT_CONTRADICTORY"),
}


@pytest.mark.parametrize("case", ERROR_CASES, ids=list(ERROR_CASES))
def test_bad_input_is_invalid_argument_with_field_violations(client: AlignmentClient, case: str) -> None:
    feats, patient, reason = ERROR_CASES[case]
    err = rpc_error(client.recommend, _assessment(feats, **patient))  # type: ignore[arg-type]
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(err)
    assert violations and violations[0].reason == reason
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    infos = [d for d in status.details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
    assert infos, "ErrorInfo detail missing"
    assert "Traceback" not in (err.details() or "")


def test_duplicate_feature_is_rejected(client: AlignmentClient) -> None:
    a = _assessment({"walking_speed_m_per_s": 1.0})
    a.features.add(name="walking_speed_m_per_s", value=1.1)
    err = rpc_error(client.recommend, a)
    assert field_violations(err)[0].reason == "DUPLICATE_FEATURE"


def test_out_of_range_violation_names_feature_unit_and_range(client: AlignmentClient) -> None:
    err = rpc_error(client.recommend, _assessment({"step_length_prosthetic_m": (250.0, "cm")}))
    (v,) = field_violations(err)
    assert v.field == "assessment.features[0].value"
    assert "step_length_prosthetic_m" in v.description and "250 cm" in v.description and "0.05 to 1.5 m" in v.description


def test_missing_patient_and_assessment(client: AlignmentClient) -> None:
    a = pb.GaitAssessment(assessment_id="x")
    assert field_violations(rpc_error(client.recommend, a))[0].field == "assessment.patient"
    from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb

    err = rpc_error(client.stub.RecommendAdjustments, spb.RecommendAdjustmentsRequest(), timeout=5)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_unknown_model_version_is_not_found(client: AlignmentClient) -> None:
    err = rpc_error(client.recommend, load_assessment(EXAMPLES / "toe_out_transtibial.json"), model_version="9.9.9")
    assert err.code() == grpc.StatusCode.NOT_FOUND


def test_pinned_current_version_answers(client: AlignmentClient, server: RunningServer) -> None:
    v = server.registry.get().version
    r = client.recommend(load_assessment(EXAMPLES / "toe_out_transtibial.json"), model_version=v)
    assert r.model.version == v


def test_too_little_information_gets_low_confidence_and_advice(client: AlignmentClient) -> None:
    r = client.recommend(_assessment({"walking_speed_m_per_s": 1.0}))
    assert r.confidence_level == pb.CONFIDENCE_LEVEL_LOW
    assert r.suggested_measurements
    assert len(r.missing_features) > 20


def test_deadline_shorter_than_the_work_is_deadline_exceeded(client: AlignmentClient) -> None:
    from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb

    a = load_assessment(EXAMPLES / "toe_out_transtibial.json")
    req = spb.BatchRecommendAdjustmentsRequest(assessments=[a] * 1000)
    err = rpc_error(client.stub.BatchRecommendAdjustments, req, timeout=0.005)
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_reference_walk_is_accepted_and_its_errors_name_the_reference_field(client: AlignmentClient) -> None:
    a = load_assessment(EXAMPLES / "toe_out_transtibial.json")
    a.reference_features.extend(a.features)
    r = client.recommend(a)
    assert len(r.parameter_estimates) == 7
    a.reference_features[0].value = 99.0  # walking speed out of range in the reference only
    err = rpc_error(client.recommend, a)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    (v,) = field_violations(err)
    assert v.field == "assessment.reference_features[0].value"
    assert v.reason == "FEATURE_OUT_OF_RANGE"
    assert "walking_speed_m_per_s" in v.description and "m/s" in v.description


def test_batch_with_many_bad_items_reports_each_and_answers_the_rest(client: AlignmentClient) -> None:
    good = load_assessment(EXAMPLES / "toe_out_transtibial.json")
    bad = _assessment({"walking_speed_m_per_s": 99.0, "cadence_steps_per_min": (2.0, "furlong"), "no_such_feature": 1.0})
    items = [bad if i % 4 == 1 else good for i in range(400)]
    resp = client.recommend_batch(items)
    assert len(resp.results) == 400
    for i, r in enumerate(resp.results):
        if i % 4 == 1:
            assert r.WhichOneof("result") == "error"
            fields = {v.field: v for v in r.error.field_violations}
            assert set(fields) == {
                f"assessments[{i}].features[0].value",
                f"assessments[{i}].features[1].unit",
                f"assessments[{i}].features[2].name",
            }
            assert "0.05 to 3 m/s" in fields[f"assessments[{i}].features[0].value"].description
            assert "furlong" in fields[f"assessments[{i}].features[1].unit"].description
        else:
            assert r.WhichOneof("result") == "recommendation"
            assert r.recommendation.assessment_id == r.assessment_id == good.assessment_id
            assert r.recommendation.adjustments


def test_batch_and_stream_read_the_reference_walk_like_a_single_call(client: AlignmentClient) -> None:
    plain = load_assessment(EXAMPLES / "toe_out_transtibial.json")
    follow_up = load_assessment(EXAMPLES / "toe_out_since_last_visit_transtibial.json")
    bad = load_assessment(EXAMPLES / "toe_out_since_last_visit_transtibial.json")
    bad.reference_features[0].value = -5.0  # walking speed below its range, reference only
    single = client.recommend(follow_up)
    resp = client.recommend_batch([plain, follow_up, bad, plain])
    assert [r.WhichOneof("result") for r in resp.results] == ["recommendation", "recommendation", "error", "recommendation"]
    assert resp.results[2].error.field_violations[0].field == "assessments[2].reference_features[0].value"
    got = resp.results[1].recommendation
    assert [(e.probability_decrease, e.probability_increase) for e in got.parameter_estimates] == [
        (e.probability_decrease, e.probability_increase) for e in single.parameter_estimates
    ]
    # The reference changes the answer (the toe-out is new since the last visit).
    alone = resp.results[0].recommendation
    assert got.parameter_estimates[0].probability_decrease != alone.parameter_estimates[0].probability_decrease
    streamed = list(client.stream([follow_up]))
    assert streamed[0].recommendation.parameter_estimates[0].probability_decrease == single.parameter_estimates[0].probability_decrease


def test_follow_up_answer_names_what_changed_since_the_reference(client: AlignmentClient) -> None:
    r = client.recommend(load_assessment(EXAMPLES / "toe_out_since_last_visit_transtibial.json"))
    changes = {c.feature: c for c in r.changes_since_reference}
    toe = changes["foot_progression_angle_prosthetic_deg"]
    assert (toe.reference_value, toe.value, toe.change, toe.unit) == (9.0, 22.0, 13.0, "deg")
    assert toe.change_in_sd > 2
    assert "walking_speed_m_per_s" not in changes  # unchanged
    assert not client.recommend(load_assessment(EXAMPLES / "toe_out_transtibial.json")).changes_since_reference
