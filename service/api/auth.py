"""Bearer-token authentication and the mutual-TLS client allow-list, as server interceptors.

Tokens come from settings (env) or a file, one per line as `name=token` (the name is what gets
logged, never the token). Comparison is constant-time. Health and reflection may stay open so that
load balancers and Kubernetes probes work without secrets.

Scopes: plain tokens call the AlignmentService RPCs except RecordFitting; admin tokens (ALIGN_ADMIN_TOKENS)
also the admin RPCs; records tokens (ALIGN_RECORDS_TOKENS) also RecordFitting, the only RPC that writes
patient data. A known token without the needed scope gets PERMISSION_DENIED, an unknown one
UNAUTHENTICATED.

Every refusal is logged (rate-limited)
with the RPC, the code and the token's name ("none" without a token, "unknown" for a token that is
not configured), besides the metric.

With mutual TLS any certificate the client CA signed is accepted, the server's own included, unless
`tls_client_allowed_names` lists the client identities (subject alternative names or common name).
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import grpc

log = logging.getLogger("service.auth")

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
            return self._deny(continuation(details), grpc.StatusCode.UNAUTHENTICATED, "missing bearer token", method, "none")
        if method.startswith(ADMIN_PREFIX):
            if _match(presented, self.admin_tokens) is not None:
                return continuation(details)
            user = _match(presented, self.tokens)
            if user is None:
                user = _match(presented, self.records_tokens)
            if user is not None:
                return self._deny(continuation(details), grpc.StatusCode.PERMISSION_DENIED, "token may not call admin RPCs", method, user)
            return self._deny(continuation(details), grpc.StatusCode.UNAUTHENTICATED, "unknown bearer token", method, "unknown")
        if method in RECORDS_METHODS:
            if _match(presented, self.records_tokens) is not None:
                return continuation(details)
            user = _match(presented, self.tokens)
            if user is None:
                user = _match(presented, self.admin_tokens)
            code = grpc.StatusCode.PERMISSION_DENIED if user is not None else grpc.StatusCode.UNAUTHENTICATED
            if self.on_records_denied is not None:
                self.on_records_denied(code)
            why = "token lacks the records scope (ALIGN_RECORDS_TOKENS)" if user is not None else "unknown bearer token"
            return self._deny(continuation(details), code, why, method, user if user is not None else "unknown")
        if (
            _match(presented, self.tokens) is None
            and _match(presented, self.admin_tokens) is None
            and _match(presented, self.records_tokens) is None
        ):
            return self._deny(continuation(details), grpc.StatusCode.UNAUTHENTICATED, "unknown bearer token", method, "unknown")
        return continuation(details)

    def _deny(
        self, handler: grpc.RpcMethodHandler | None, code: grpc.StatusCode, message: str, method: str, token_name: str  # type: ignore[type-arg]
    ) -> grpc.RpcMethodHandler:  # type: ignore[type-arg]
        if self.on_denied is not None:
            self.on_denied(code)
        log_refusal(message, method, code, token_name=token_name)
        return _denied(handler, code, message)


class _RefusalLog:
    """At most `per_s` refusal lines a second (a flood of bad calls must not flood the log); the
    next line that gets through says how many were left out."""

    def __init__(self, per_s: int = 20) -> None:
        self.per_s = per_s
        self._lock = threading.Lock()
        self._second = 0
        self._count = 0
        self._suppressed = 0

    def __call__(self, message: str, method: str, code: grpc.StatusCode, **extra: str) -> None:
        now = int(time.monotonic())
        with self._lock:
            if now != self._second:
                self._second, self._count = now, 0
            self._count += 1
            if self._count > self.per_s:
                self._suppressed += 1
                return
            suppressed, self._suppressed = self._suppressed, 0
        log.warning(
            "call refused",
            extra={"reason": message, "rpc": method, "code": code.name, **extra, "refusals_not_logged": suppressed},
        )


log_refusal = _RefusalLog()


def _identities(context: grpc.ServicerContext) -> list[str]:
    """The client certificate's subject alternative names and common name (empty without mTLS)."""
    auth = context.auth_context()
    out: list[str] = []
    for key in ("x509_subject_alternative_name", "x509_common_name"):
        out += [v.decode(errors="replace") if isinstance(v, bytes) else str(v) for v in auth.get(key, ())]
    return out


class ClientIdentityInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """Mutual TLS: only clients whose certificate names one of `allowed` (SAN or CN) may call.

    The peer's certificate is known only inside the call (ServicerContext.auth_context), so the
    check wraps the method's behaviour, keeping its thread-pool mark (api/lanes.py)."""

    def __init__(self, allowed: frozenset[str], *, exempt_health: bool, on_denied: Callable[[grpc.StatusCode], None] | None = None) -> None:
        self.allowed = allowed
        self.exempt_health = exempt_health
        self.on_denied = on_denied

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],  # type: ignore[type-arg]
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:  # type: ignore[type-arg]
        handler = continuation(details)
        if handler is None or (self.exempt_health and details.method.startswith(OPEN_PREFIXES)):
            return handler
        return _checked(handler, self._check, details.method)

    def _check(self, context: grpc.ServicerContext, method: str) -> None:
        names = _identities(context)
        if any(n in self.allowed for n in names):
            return
        if self.on_denied is not None:
            self.on_denied(grpc.StatusCode.PERMISSION_DENIED)
        who = names[-1] if names else "none"  # the common name comes last
        log_refusal("client certificate not in tls_client_allowed_names", method, grpc.StatusCode.PERMISSION_DENIED, client=who)
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "client certificate not allowed")


def _checked(
    handler: grpc.RpcMethodHandler, check: Callable[[grpc.ServicerContext, str], None], method: str  # type: ignore[type-arg]
) -> grpc.RpcMethodHandler:  # type: ignore[type-arg]
    """`handler` with `check(context, method)` run before its behaviour."""
    behaviour: Any = handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream

    def guarded(request: Any, context: grpc.ServicerContext) -> Any:
        check(context, method)
        return behaviour(request, context)

    pool = getattr(behaviour, "experimental_thread_pool", None)
    if pool is not None:
        guarded.experimental_thread_pool = pool  # type: ignore[attr-defined]
    kw: dict[str, Any] = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(guarded, **kw)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(guarded, **kw)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(guarded, **kw)
    return grpc.stream_stream_rpc_method_handler(guarded, **kw)


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
