"""The ceiling of Python gRPC: the same grpc.server as service/api/server.py, with no work behind it.

Same framework and process settings as build_server() (including tune_gc): a ThreadPoolExecutor of Settings().grpc_threads threads,
the same channel options (message size limits, SO_REUSEPORT when several processes share the port),
maximum_concurrent_rpcs, the same generated AlignmentService servicer and the grpc.health.v1 service.
RecommendAdjustments parses the real request (the generated deserializer runs, as in the service) and
returns a canned RecommendAdjustmentsResponse captured from the real service for the same request
(the serializer runs on a message of the same size and shape). Nothing else: no validation, no model.

    python -m bench.echo_server --address 127.0.0.1:0 --response-file resp.bin [--reuse-port]
prints "listening on port N" like `python -m service`.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb
from service._generated.prosthetic_alignment.v1 import alignment_service_pb2_grpc as spb_grpc
from service.api.server import grpc_server, tune_gc
from service.settings import Settings


class EchoServicer(spb_grpc.AlignmentServiceServicer):
    def __init__(self, canned: spb.RecommendAdjustmentsResponse) -> None:
        self.canned = canned

    def RecommendAdjustments(
        self, request: spb.RecommendAdjustmentsRequest, context: grpc.ServicerContext
    ) -> spb.RecommendAdjustmentsResponse:
        return self.canned


def build(address: str, canned: spb.RecommendAdjustmentsResponse, reuse_port: bool) -> tuple[grpc.Server, int]:
    server = grpc_server(Settings(address=address, workers=1), reuse_port)
    spb_grpc.add_AlignmentServiceServicer_to_server(EchoServicer(canned), server)  # type: ignore[no-untyped-call]
    hs = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(hs, server)
    port = server.add_insecure_port(address)
    server.start()
    hs.set("", health_pb2.HealthCheckResponse.SERVING)
    return server, port


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.echo_server")
    ap.add_argument("--address", default="127.0.0.1:0")
    ap.add_argument("--response-file", type=Path, required=True, help="serialized RecommendAdjustmentsResponse")
    ap.add_argument("--reuse-port", action="store_true")
    args = ap.parse_args(argv)
    canned = spb.RecommendAdjustmentsResponse.FromString(args.response_file.read_bytes())
    server, port = build(args.address, canned, args.reuse_port)
    tune_gc()  # the same process settings as `python -m service` (serve_one)
    stop = threading.Event()

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    print(f"listening on port {port}", flush=True)
    stop.wait()
    server.stop(0.5).wait(1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
