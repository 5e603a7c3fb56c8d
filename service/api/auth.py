"""Bearer-token authentication as a server interceptor.

Tokens come from settings (env) or a file, one per line as `name=token` (the name is what gets
logged, never the token). Comparison is constant-time. Health and reflection may stay open so that
load balancers and Kubernetes probes work without secrets.

Scopes: plain tokens call the AlignmentService RPCs except RecordFitting; admin tokens (ALIGN_ADMIN_TOKENS)
also the admin RPCs; records tokens (ALIGN_RECORDS_TOKENS) also RecordFitting, the only RPC that writes
patient data. A known token without the needed scope gets PERMISSION_DENIED, an unknown one
UNAUTHENTICATED.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import grpc

OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.ServerReflection/", "/grpc.reflection.v1.ServerReflection/")
ADMIN_PREFIX = "/prosthetic_alignment.v1.AlignmentAdminService/"
RECORDS_METHODS = ("/prosthetic_alignment.v1.AlignmentService/RecordFitting",)


def parse_tokens(lines: Iterable[str]) -> dict[str, str]:
    """`name=token` or bare `token` (named token-N) -> {token: name}; blank lines and # comments skipped."""
    out: dict[str, str] = {}
    for n, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, token = line.partition("=")
        if not sep:
            name, token = f"token-{n}", line
        token = token.strip()
        if len(token) < 16:
            raise ValueError(f"auth token {name.strip()!r} is shorter than 16 characters")
        out[token] = name.strip()
    return out


def load_tokens(inline: str | None, path: Path | None) -> dict[str, str]:
    tokens: dict[str, str] = {}
    if inline:
        tokens.update(parse_tokens(inline.split(",")))
    if path is not None:
        tokens.update(parse_tokens(path.read_text(encoding="utf-8").splitlines()))
    return tokens


def _match(presented: str, tokens: dict[str, str]) -> str | None:
    found = None
    # Compare against every token so timing does not reveal which one (or how many) matched.
    for token, name in tokens.items():
        if hmac.compare_digest(presented.encode(), token.encode()):
            found = name
    return found


class BearerAuthInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    def __init__(
        self,
        tokens: dict[str, str],
        admin_tokens: dict[str, str],
        *,
        exempt_health: bool,
        on_denied: Callable[[grpc.StatusCode], None] | None = None,
        records_tokens: dict[str, str] | None = None,
        on_records_denied: Callable[[grpc.StatusCode], None] | None = None,
    ) -> None:
        self.tokens = tokens
        self.admin_tokens = admin_tokens
        self.records_tokens = records_tokens or {}
        # RecordFitting refusals also count as refused records (metrics.records_refused).
        self.on_records_denied = on_records_denied
        self.exempt_health = exempt_health
        # Refusals never reach the servicer (and its metrics): report them here (metrics counter).
        self.on_denied = on_denied

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],  # type: ignore[type-arg]
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:  # type: ignore[type-arg]
        method = details.method
        if self.exempt_health and method.startswith(OPEN_PREFIXES):
            return continuation(details)
        auth = ""
        for key, value in details.invocation_metadata or ():
            if key == "authorization":
                auth = value if isinstance(value, str) else value.decode()
                break
        scheme, _, presented = auth.partition(" ")
        presented = presented.strip()
        if scheme.lower() != "bearer" or not presented:
            if method in RECORDS_METHODS and self.on_records_denied is not None:
                self.on_records_denied(grpc.StatusCode.UNAUTHENTICATED)
            return self._deny(continuation(details), grpc.StatusCode.UNAUTHENTICATED, "missing bearer token")
        if method.startswith(ADMIN_PREFIX):
            if _match(presented, self.admin_tokens) is not None:
                return continuation(details)
            if _match(presented, self.tokens) is not None or _match(presented, self.records_tokens) is not None:
                return self._deny(continuation(details), grpc.StatusCode.PERMISSION_DENIED, "token may not call admin RPCs")
            return self._deny(continuation(details), grpc.StatusCode.UNAUTHENTICATED, "unknown bearer token")
        if method in RECORDS_METHODS:
            if _match(presented, self.records_tokens) is not None:
                return continuation(details)
            known = _match(presented, self.tokens) is not None or _match(presented, self.admin_tokens) is not None
            code = grpc.StatusCode.PERMISSION_DENIED if known else grpc.StatusCode.UNAUTHENTICATED
            if self.on_records_denied is not None:
                self.on_records_denied(code)
            return self._deny(
                continuation(details), code, "token lacks the records scope (ALIGN_RECORDS_TOKENS)" if known else "unknown bearer token"
            )
        if (
            _match(presented, self.tokens) is None
            and _match(presented, self.admin_tokens) is None
            and _match(presented, self.records_tokens) is None
        ):
            return self._deny(continuation(details), grpc.StatusCode.UNAUTHENTICATED, "unknown bearer token")
        return continuation(details)

    def _deny(self, handler: grpc.RpcMethodHandler | None, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:  # type: ignore[type-arg]
        if self.on_denied is not None:
            self.on_denied(code)
        return _denied(handler, code, message)


def _denied(handler: grpc.RpcMethodHandler | None, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:  # type: ignore[type-arg]
    """A handler of the same streaming shape as the real one that only aborts."""

    def abort(_req: Any, ctx: grpc.ServicerContext) -> Any:
        ctx.abort(code, message)

    if handler is None or (not handler.request_streaming and not handler.response_streaming):
        return grpc.unary_unary_rpc_method_handler(abort)
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort)
    return grpc.unary_stream_rpc_method_handler(abort)
