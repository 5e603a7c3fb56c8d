"""Request messages decoded in the handler, not by grpc (issue 15, finding 5).

grpc's own deserializer turns an undecodable message into INTERNAL ("Exception deserializing
request!") with an ERROR traceback in the log, and in a stream it ends the whole call: a live fitting
that sent [valid, garbage, valid] got no answer at all. Registered with no deserializer, a handler
receives the raw bytes; these wrappers parse them, so a bad unary body is INVALID_ARGUMENT with a
field violation, and a bad stream message arrives in the request iterator as `Undecodable`, which
the stream handler answers with its own error item before going on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from service.api.errors import abort
from service.errors import InvalidInputError, Violation

UNDECODABLE = "UNDECODABLE_MESSAGE"
Deserializer = Callable[[bytes], Any]


class Undecodable:
    """A stream message that did not parse; `error` says why (for the answer, not the log)."""

    __slots__ = ("error",)

    def __init__(self, error: InvalidInputError) -> None:
        self.error = error


def undecodable_error(what: str, exc: BaseException) -> InvalidInputError:
    return InvalidInputError(
        [Violation("request", f"the {what} could not be decoded as protobuf ({type(exc).__name__})", UNDECODABLE)],
        message=f"the {what} could not be decoded as protobuf",
    )


def _parse(deserialize: Deserializer, raw: bytes) -> Any:
    try:
        return deserialize(raw)
    except (DecodeError, ValueError, TypeError, RuntimeError, OverflowError) as exc:
        # upb raises DecodeError; the pure-Python parser also ValueError/TypeError/RuntimeError on
        # some garbage (bad UTF-8, a too-deep recursion). None of them means our bug.
        return Undecodable(undecodable_error("request message", exc))


def _carry_pool(src: Any, dst: Any) -> Any:
    """Keep the thread-pool mark (server.on_pool) of the behaviour being wrapped."""
    pool = getattr(src, "experimental_thread_pool", None)
    if pool is not None:
        dst.experimental_thread_pool = pool
    return dst


def decoding_handler(
    handler: grpc.RpcMethodHandler,  # type: ignore[type-arg]
    response_serializer: Callable[[Any], bytes] | None = None,
    *,
    answers_undecodable: bool = False,
) -> grpc.RpcMethodHandler:  # type: ignore[type-arg]
    """`handler` registered without a request deserializer, parsing its requests itself.

    A request stream hands an `Undecodable` to a handler that `answers_undecodable` (ours); any other
    (grpc's reflection) has its call ended with INVALID_ARGUMENT at the bad message instead."""
    deserialize = handler.request_deserializer
    serializer = response_serializer or handler.response_serializer
    if deserialize is None:
        return handler
    if handler.unary_unary is not None or handler.unary_stream is not None:
        unary_behaviour = handler.unary_unary or handler.unary_stream
        assert unary_behaviour is not None

        def unary(raw: bytes, context: grpc.ServicerContext) -> Any:
            request = _parse(deserialize, raw)
            if isinstance(request, Undecodable):
                abort(context, request.error)
            return unary_behaviour(request, context)

        _carry_pool(unary_behaviour, unary)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(unary, request_deserializer=None, response_serializer=serializer)
        return grpc.unary_stream_rpc_method_handler(unary, request_deserializer=None, response_serializer=serializer)
    behaviour = handler.stream_stream or handler.stream_unary
    assert behaviour is not None

    def parsed(raw_requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[Any]:
        for raw in raw_requests:
            request = _parse(deserialize, raw)
            if isinstance(request, Undecodable) and not answers_undecodable:
                abort(context, request.error)
            yield request

    def streaming(raw_requests: Iterator[bytes], context: grpc.ServicerContext) -> Any:
        return behaviour(parsed(raw_requests, context), context)

    _carry_pool(behaviour, streaming)
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(streaming, request_deserializer=None, response_serializer=serializer)
    return grpc.stream_unary_rpc_method_handler(streaming, request_deserializer=None, response_serializer=serializer)
