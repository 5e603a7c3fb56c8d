"""Server reflection that serves the protos' comments.

The generated _pb2 modules embed their file descriptors without source info, and a descriptor
copied out of the runtime pool (what grpcio-reflection serves) never carries it, so `grpcurl
describe` would show messages with no documentation. scripts/gen_protos.py also writes the protos
as a FileDescriptorSet with source info (`service/_generated/descriptor_set.binpb`); this pool hands
those files to the reflection servicer in place of the bare ones. A stored file that differs from
the compiled one in anything but its comments is not used (the bare descriptor is served instead):
reflection must describe exactly the messages the server speaks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection

log = logging.getLogger(__name__)
DESCRIPTOR_SET = "descriptor_set.binpb"


def commented_files(pool: Any = None) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    """The stored files with source info that match the compiled ones exactly, by file name."""
    pool = pool or descriptor_pool.Default()
    try:
        raw = resources.files("service._generated").joinpath(DESCRIPTOR_SET).read_bytes()
    except OSError:
        log.warning("no %s: reflection serves descriptors without comments", DESCRIPTOR_SET)
        return {}
    out: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    for stored in descriptor_pb2.FileDescriptorSet.FromString(raw).file:
        try:
            compiled = descriptor_pb2.FileDescriptorProto()
            pool.FindFileByName(stored.name).CopyToProto(compiled)
        except KeyError:
            continue
        if _bare(stored) == _bare(compiled):
            out[stored.name] = stored
        else:
            log.warning("%s differs from the compiled proto: served without comments", stored.name)
    return out


def _bare(file: descriptor_pb2.FileDescriptorProto) -> descriptor_pb2.FileDescriptorProto:
    """Without comments and json_name (protoc's set spells out the default JSON names; the runtime
    pool's copy leaves them out), so two descriptors of the same proto compare equal."""
    out = descriptor_pb2.FileDescriptorProto()
    out.CopyFrom(file)
    out.ClearField("source_code_info")
    messages = list(out.message_type)
    while messages:
        m = messages.pop()
        for f in (*m.field, *m.extension):
            f.ClearField("json_name")
        messages.extend(m.nested_type)
    for f in out.extension:
        f.ClearField("json_name")
    return out


class _File:
    """A FileDescriptor whose CopyToProto includes source info when a stored copy exists."""

    def __init__(self, descriptor: Any, stored: Mapping[str, descriptor_pb2.FileDescriptorProto]) -> None:
        self._descriptor = descriptor
        self._stored = stored
        self.name: str = descriptor.name

    @property
    def dependencies(self) -> list[_File]:
        return [_File(d, self._stored) for d in self._descriptor.dependencies]

    def CopyToProto(self, proto: descriptor_pb2.FileDescriptorProto) -> None:  # protobuf's method name
        stored = self._stored.get(self.name)
        if stored is None:
            self._descriptor.CopyToProto(proto)
        else:
            proto.CopyFrom(stored)


class CommentedPool:
    """The parts of a DescriptorPool the reflection servicer uses, with commented files."""

    def __init__(self, pool: Any, stored: Mapping[str, descriptor_pb2.FileDescriptorProto]) -> None:
        self._pool = pool
        self._stored = stored

    @classmethod
    def default(cls) -> CommentedPool:
        pool = descriptor_pool.Default()
        return cls(pool, commented_files(pool))

    def FindFileByName(self, name: str) -> _File:
        return _File(self._pool.FindFileByName(name), self._stored)

    def FindFileContainingSymbol(self, symbol: str) -> _File:
        return _File(self._pool.FindFileContainingSymbol(symbol), self._stored)

    def __getattr__(self, name: str) -> Any:
        # Message and extension look-ups return descriptors, not files: nothing to add to them.
        return getattr(self._pool, name)


def enable(server: grpc.Server, service_names: Iterable[str]) -> None:
    """Serve reflection for `service_names` (plus reflection itself), with the protos' comments."""
    names = (*service_names, reflection.SERVICE_NAME)
    # The servicer only calls the look-ups CommentedPool provides (grpcio-reflection 1.85 _base.py).
    reflection.enable_server_reflection(names, server, pool=CommentedPool.default())  # type: ignore[arg-type]
