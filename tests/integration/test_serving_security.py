"""TLS, mutual TLS and bearer-token auth on real servers and sockets (127.0.0.1 only)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service._generated.prosthetic_alignment.v1 import alignment_admin_service_pb2 as admin_pb
from service._generated.prosthetic_alignment.v1 import alignment_admin_service_pb2_grpc as admin_grpc
from service.api.server import RunningServer
from service.client import AlignmentClient, load_assessment
from service.errors import ConfigurationError
from service.settings import Settings
from tests.conftest import EXAMPLES
from tests.integration.conftest import rpc_error, start
from tests.integration.test_serving_support import Pki, make_pki

USER_TOKEN = "clinic-user-token-0123456789"
ADMIN_TOKEN = "operator-admin-token-9876543210"
ASSESSMENT = load_assessment(EXAMPLES / "toe_out_transtibial.json")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    pytest.importorskip("cryptography")
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_server(pki: Pki) -> Iterator[RunningServer]:
    running = start(tls_cert_file=pki.server_cert, tls_key_file=pki.server_key)
    yield running
    running.stop(0.5)


@pytest.fixture(scope="module")
def mtls_server(pki: Pki) -> Iterator[RunningServer]:
    running = start(tls_cert_file=pki.server_cert, tls_key_file=pki.server_key, tls_client_ca_file=pki.ca)
    yield running
    running.stop(0.5)


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tokens = tmp_path_factory.mktemp("auth") / "tokens"
    tokens.write_text(f"# clinic platforms\nclinic-a={USER_TOKEN}\n")
    running = start(auth_tokens_file=tokens, admin_tokens=f"ops={ADMIN_TOKEN}")
    yield running
    running.stop(0.5)


def test_tls_serves_and_a_plaintext_client_is_refused(tls_server: RunningServer, pki: Pki) -> None:
    with AlignmentClient.connect(f"127.0.0.1:{tls_server.port}", ca_file=pki.ca, timeout_s=10) as c:
        r = c.recommend(ASSESSMENT)
        assert r.model.version == tls_server.registry.get().version
        assert c.health() == "SERVING"
    with AlignmentClient.connect(f"127.0.0.1:{tls_server.port}", timeout_s=3) as plain:
        assert rpc_error(plain.recommend, ASSESSMENT).code() == grpc.StatusCode.UNAVAILABLE


def test_tls_client_that_does_not_trust_the_server_ca_is_refused(tls_server: RunningServer, pki: Pki) -> None:
    with AlignmentClient.connect(f"127.0.0.1:{tls_server.port}", ca_file=pki.rogue_cert, timeout_s=3) as c:
        assert rpc_error(c.recommend, ASSESSMENT).code() == grpc.StatusCode.UNAVAILABLE


def test_mtls_accepts_a_client_certificate_from_the_ca(mtls_server: RunningServer, pki: Pki) -> None:
    with AlignmentClient.connect(
        f"127.0.0.1:{mtls_server.port}", ca_file=pki.ca, cert_file=pki.client_cert, key_file=pki.client_key, timeout_s=10
    ) as c:
        assert c.recommend(ASSESSMENT).adjustments is not None
        assert c.get_model().model.version


@pytest.mark.parametrize("who", ["no client certificate", "certificate from another CA"])
def test_mtls_refuses_clients_without_a_trusted_certificate(mtls_server: RunningServer, pki: Pki, who: str) -> None:
    kw = {} if who == "no client certificate" else {"cert_file": pki.rogue_cert, "key_file": pki.rogue_key}
    with AlignmentClient.connect(f"127.0.0.1:{mtls_server.port}", ca_file=pki.ca, timeout_s=3, **kw) as c:  # type: ignore[arg-type]
        assert rpc_error(c.recommend, ASSESSMENT).code() == grpc.StatusCode.UNAVAILABLE


def test_token_is_required_and_checked(auth_server: RunningServer) -> None:
    target = f"127.0.0.1:{auth_server.port}"
    with AlignmentClient.connect(target, timeout_s=5) as anonymous:
        err = rpc_error(anonymous.recommend, ASSESSMENT)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED and "bearer" in (err.details() or "")
    with AlignmentClient.connect(target, token="wrong-token-but-long-enough", timeout_s=5) as wrong:
        assert rpc_error(wrong.recommend, ASSESSMENT).code() == grpc.StatusCode.UNAUTHENTICATED
        # Streams are refused the same way (the refusal handler has the stream's shape).
        assert rpc_error(lambda: list(wrong.stream([ASSESSMENT]))).code() == grpc.StatusCode.UNAUTHENTICATED
    with AlignmentClient.connect(target, token=USER_TOKEN, timeout_s=5) as user:
        assert user.recommend(ASSESSMENT).model.version
        assert [r.sequence for r in user.stream([ASSESSMENT, ASSESSMENT])] == [1, 2]
    with AlignmentClient.connect(target, token=ADMIN_TOKEN, timeout_s=5) as admin:  # admins may use the service too
        assert admin.recommend(ASSESSMENT).model.version
    with grpc.insecure_channel(target) as ch:
        stub = AlignmentClient(ch).stub
        from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb

        md = (("authorization", f"Basic {USER_TOKEN}"),)  # right secret, wrong scheme
        err = rpc_error(stub.GetModel, spb.GetModelRequest(), timeout=5, metadata=md)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED


def test_health_and_reflection_are_open_without_a_token(auth_server: RunningServer) -> None:
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    with grpc.insecure_channel(f"127.0.0.1:{auth_server.port}") as ch:
        resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
        services = ProtoReflectionDescriptorDatabase(ch).get_services()
        assert "prosthetic_alignment.v1.AlignmentAdminService" in services


def test_reload_models_needs_an_admin_token(auth_server: RunningServer) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{auth_server.port}") as ch:
        stub = admin_grpc.AlignmentAdminServiceStub(ch)
        req = admin_pb.ReloadModelsRequest()
        err = rpc_error(stub.ReloadModels, req, timeout=5)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        err = rpc_error(stub.ReloadModels, req, timeout=5, metadata=(("authorization", f"Bearer {USER_TOKEN}"),))
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
        resp = stub.ReloadModels(req, timeout=30, metadata=(("authorization", f"Bearer {ADMIN_TOKEN}"),))
        assert resp.current_version == auth_server.registry.get().version
        assert resp.loaded_versions and not resp.changed


def test_health_can_require_a_token(tmp_path: Path) -> None:
    running = start(auth_tokens=f"a={USER_TOKEN}", auth_exempt_health=False)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            err = rpc_error(stub.Check, health_pb2.HealthCheckRequest(), timeout=5)
            assert err.code() == grpc.StatusCode.UNAUTHENTICATED
            md = (("authorization", f"Bearer {USER_TOKEN}"),)
            assert stub.Check(health_pb2.HealthCheckRequest(), timeout=5, metadata=md).status == health_pb2.HealthCheckResponse.SERVING
    finally:
        running.stop(0.5)


def test_short_tokens_are_refused_at_startup() -> None:
    with pytest.raises(ConfigurationError, match="shorter than 16"):
        start(auth_tokens="a=short")


def test_plaintext_off_loopback_needs_explicit_opt_in() -> None:
    with pytest.raises(ValueError, match="refusing plaintext"):
        Settings(address="192.0.2.10:50051")
    # With the opt-in the settings are accepted (build_server then logs a warning; binding a
    # non-loopback address is out of bounds for these tests).
    s = Settings(address="192.0.2.10:50051", allow_insecure_remote=True)
    assert not s.tls_enabled and not s.is_loopback
    assert Settings(address="localhost:1").is_loopback and Settings(address="[::1]:1").is_loopback


# ------------------------------------------------------------------------------ issue 15, finding 9
@pytest.fixture(scope="module")
def allow_listed_server(pki: Pki) -> Iterator[RunningServer]:
    running = start(
        tls_cert_file=pki.server_cert, tls_key_file=pki.server_key, tls_client_ca_file=pki.ca,
        tls_client_allowed_names="clinic-platform, another-client",
    )
    yield running
    running.stop(0.5)


def test_mtls_allow_list_admits_listed_clients_and_refuses_other_certificates_of_the_ca(
    allow_listed_server: RunningServer, mtls_server: RunningServer, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: any certificate the client CA signed was accepted."""
    with AlignmentClient.connect(
        f"127.0.0.1:{allow_listed_server.port}", ca_file=pki.ca, cert_file=pki.client_cert, key_file=pki.client_key, timeout_s=10
    ) as c:
        assert c.get_model().model.version
    for port, expected in ((mtls_server.port, None), (allow_listed_server.port, grpc.StatusCode.PERMISSION_DENIED)):
        with caplog.at_level("WARNING", logger="service.auth"), AlignmentClient.connect(
            f"127.0.0.1:{port}", ca_file=pki.ca, cert_file=pki.unlisted_cert, key_file=pki.unlisted_key, timeout_s=10
        ) as c:
            if expected is None:  # without the list any certificate of the CA passes
                assert c.get_model().model.version
            else:
                assert rpc_error(c.get_model).code() == expected
                assert c.health() == "SERVING"  # health stays open (auth_exempt_health)
    refused = [r for r in caplog.records if r.getMessage() == "call refused"]
    assert refused and refused[-1].client == "unlisted-device"  # type: ignore[attr-defined]


def test_auth_refusals_are_logged_with_the_token_name_never_the_token(
    auth_server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "not-a-configured-token-0123456789"
    with caplog.at_level("WARNING", logger="service.auth"):
        for token in (None, wrong, USER_TOKEN):
            with AlignmentClient.connect(f"127.0.0.1:{auth_server.port}", timeout_s=10, token=token) as c:
                if token == USER_TOKEN:  # a user token calling an admin RPC
                    stub = admin_grpc.AlignmentAdminServiceStub(c.channel)
                    with pytest.raises(grpc.RpcError):
                        stub.ReloadModels(admin_pb.ReloadModelsRequest(), timeout=10, metadata=[("authorization", f"Bearer {token}")])
                else:
                    rpc_error(c.get_model)
    refused = [r for r in caplog.records if r.getMessage() == "call refused"]
    assert [r.token_name for r in refused] == ["none", "unknown", "clinic-a"], refused  # type: ignore[attr-defined]
    text = " ".join(str(r.__dict__) for r in caplog.records)
    assert wrong not in text and USER_TOKEN not in text
