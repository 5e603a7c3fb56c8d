"""The one settings object: read once at start (environment `ALIGN_*` or CLI flags), passed down."""

from __future__ import annotations

import importlib.util
import ipaddress
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALIGN_", extra="forbid", frozen=True)

    # Where to listen. Plaintext is only allowed on loopback unless allow_insecure_remote is set.
    address: str = Field("127.0.0.1:50051", description="host:port to bind; port 0 picks a free port")
    models_dir: Path = Field(Path("./models"), description="directory with <name>/<version>/ model artifacts")
    model_name: str = Field("alignment", description="model name under models_dir")
    model_version: str = Field("", description="serve this version; empty = the newest valid one")
    max_loaded_versions: int = Field(3, ge=1, le=20, description="versions kept loaded for pinning")
    watch_models_interval_s: float = Field(0.0, ge=0.0, description="poll models_dir for new versions; 0 = off")

    # Security.
    tls_cert_file: Path | None = Field(None, description="server certificate (PEM); enables TLS")
    tls_key_file: Path | None = Field(None, description="server private key (PEM)")
    tls_client_ca_file: Path | None = Field(None, description="CA for client certificates; enables mutual TLS")
    auth_tokens: SecretStr | None = Field(None, description="comma-separated bearer tokens (name=token or token)")
    auth_tokens_file: Path | None = Field(None, description="file with one bearer token per line (name=token)")
    admin_tokens: SecretStr | None = Field(None, description="comma-separated tokens allowed to call admin RPCs")
    auth_exempt_health: bool = Field(True, description="health and reflection answer without a token")
    allow_insecure_remote: bool = Field(False, description="allow plaintext on a non-loopback address")

    # Limits.
    max_message_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="largest request or response")
    max_features_per_request: int = Field(256, ge=1, description="features in one assessment")
    # A full answer is ~2-3 KB per assessment: 1000 fits the 8 MiB message limit with room to spare.
    max_batch_size: int = Field(1000, ge=1, description="assessments in one batch call")
    # Batch calls are CPU-bound under one GIL: running more at once per worker adds no throughput,
    # only memory (each 1000-assessment call holds ~10-20 MB of objects while it runs).
    max_concurrent_batches: int = Field(2, ge=1, description="batch calls a worker runs at once; more wait")
    max_concurrent_rpcs: int = Field(256, ge=1, description="in-flight calls per worker before RESOURCE_EXHAUSTED")
    max_stream_messages: int = Field(100_000, ge=1, description="messages in one stream session")
    stream_idle_timeout_s: float = Field(300.0, gt=0, description="close a stream idle this long")
    grpc_threads: int = Field(16, ge=1, le=512, description="handler threads per worker")
    # Single-assessment calls are CPU-bound under one GIL: 16 of them interleaving on 16 threads cost
    # ~15-20% more CPU per call than a short queue in front of one thread, and one beat two by 11%
    # with 2 workers at c=64 (bench/RESULTS.md). A call takes well under a millisecond, so the queue
    # stays short. Streams, batches, health and reflection keep the grpc_threads pool, so a long
    # stream session or batch never holds up a single call's lane, nor the other way round.
    unary_threads: int = Field(
        1, ge=1, le=64, description="threads per worker for RecommendAdjustments and GetModel (own queue)"
    )
    # glibc gives each thread that allocates its own malloc arena (up to 8 per core) and keeps what a
    # 1000-assessment batch freed in that thread's arena: with the 16 handler threads a worker's RSS
    # rose 15-30 MB above the same load with 2 arenas, at the same throughput (bench/RESULTS.md).
    malloc_arenas: int = Field(
        2, ge=0, le=64, description="glibc malloc arenas per worker (0 = glibc's default); ignored elsewhere"
    )

    # Process model and lifecycle.
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=64)
    grace_period_s: float = Field(10.0, ge=0.0, description="drain time on SIGTERM")
    shutdown_delay_s: float = Field(
        0.0, ge=0.0, description="after SIGTERM keep answering (health NOT_SERVING) this long before draining"
    )
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus port (worker i: port+i); 0 = metrics off")
    metrics_address: str = Field("127.0.0.1", description="host for the metrics endpoint")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    # Opt-in, not "on whenever the package is importable": the API may arrive as another package's
    # dependency, and even with no-op spans the per-call interceptor costs 2-6% of unary throughput.
    tracing: bool = Field(
        False,
        description="a server span per RPC through the OpenTelemetry API (needs opentelemetry-api; "
        "configure the SDK and exporter in the deployment)",
    )

    # Fitting records (DESIGN 6.1; README "Fitting records"). Off unless a URL is set.
    records_url: SecretStr | None = Field(
        None,
        description="record store: sqlite:///path/records.db or postgresql://user@host/db; unset = recording off "
        "(RecordFitting answers FAILED_PRECONDITION); needs the records extra",
    )
    records_tokens: SecretStr | None = Field(
        None,
        description="comma-separated bearer tokens (name=token) with the records scope: they may call RecordFitting "
        "and every non-admin RPC; required when records_url is set",
    )
    records_threads: int = Field(4, ge=1, le=64, description="store writer threads (and pooled connections) per worker")
    records_timeout_s: float = Field(5.0, gt=0.0, le=60.0, description="store lock/connect wait before UNAVAILABLE")

    # Recommendation policy (DESIGN 3.1). Smallest change with a published effect; safe single step.
    min_change_deg: float = Field(2.0, ge=0.0, le=10.0)
    min_change_mm: float = Field(5.0, ge=0.0, le=20.0)
    min_change_length_mm: float = Field(5.0, ge=0.0, le=20.0)
    max_step_deg: float = Field(6.0, gt=0.0, le=15.0)
    max_step_mm: float = Field(10.0, gt=0.0, le=30.0)
    min_confidence: float = Field(0.7, ge=0.0, le=1.0, description="probability needed to RECOMMEND a change (below it a clear deviation gets a TRIAL)")
    deviation_z: float = Field(2.0, gt=0.0, description="|z| from which a feature counts as a deviation")
    # Occlusion re-runs the model once per sent feature: it doubles the CPU per request (bench/RESULTS.md),
    # so by default driving features come from the cited effect table ranked by |z|, and occlusion
    # is an opt-in for tools that show the model's own attribution.
    explain: bool = Field(False, description="driving features by model occlusion instead of the effect table")

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("mutual TLS (tls_client_ca_file) needs tls_cert_file and tls_key_file")
        if self.min_change_deg > self.max_step_deg or self.min_change_mm > self.max_step_mm:
            raise ValueError("min_change must not exceed max_step")
        if self.tracing and importlib.util.find_spec("opentelemetry") is None:
            raise ValueError("tracing needs the opentelemetry-api package (pip install opentelemetry-api)")
        if self.records_url is not None:
            self._check_records()
        if self.metrics_port and self.metrics_port + self.workers - 1 > 65535:
            raise ValueError("metrics_port + workers - 1 must be a valid port (worker i serves metrics on port+i)")
        if not self.tls_enabled and not self.is_loopback and not self.allow_insecure_remote:
            raise ValueError(
                f"refusing plaintext on non-loopback address {self.address!r}: set TLS "
                "(ALIGN_TLS_CERT_FILE/ALIGN_TLS_KEY_FILE) or ALIGN_ALLOW_INSECURE_REMOTE=true"
            )
        return self

    def _check_records(self) -> None:
        url = self.records_url.get_secret_value() if self.records_url else ""
        scheme = url.partition(":")[0].lower()
        if not (scheme.startswith("sqlite") or scheme.startswith("postgresql")):
            raise ValueError("records_url must be sqlite:///path/records.db or postgresql://...")
        needed = ["sqlalchemy", "alembic"] + (["psycopg"] if scheme.startswith("postgresql") else [])
        missing = [m for m in needed if importlib.util.find_spec(m) is None]
        if missing:
            raise ValueError(
                f"recording (ALIGN_RECORDS_URL) needs the records extra ({', '.join(missing)} missing): "
                "install .[records], i.e. pip install '.[records]'"
            )
        if not (self.records_tokens and self.records_tokens.get_secret_value().strip()):
            raise ValueError(
                "records_url is set but no records_tokens: only tokens with the records scope may write records "
                "(ALIGN_RECORDS_TOKENS=name=token)"
            )

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert_file is not None

    @property
    def host(self) -> str:
        host, _, _ = self.address.rpartition(":")
        return host.strip("[]")

    @property
    def is_loopback(self) -> bool:
        host = self.host
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False
