"""Reflection serves the protos with their comments, and only when the stored commented copy is the
very proto the server was compiled from (a stale copy is never served)."""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool

from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb
from service.api.reflection import CommentedPool, commented_files

FILES = {
    "prosthetic_alignment/v1/alignment.proto",
    "prosthetic_alignment/v1/alignment_service.proto",
    "prosthetic_alignment/v1/alignment_admin_service.proto",
}


def test_the_committed_descriptor_set_matches_the_compiled_protos() -> None:
    stored = commented_files()
    assert set(stored) == FILES
    assert all(f.source_code_info.location for f in stored.values())


def test_the_pool_serves_comments_for_our_files_and_plain_copies_for_others() -> None:
    pool = CommentedPool.default()
    served = descriptor_pb2.FileDescriptorProto()
    pool.FindFileContainingSymbol("prosthetic_alignment.v1.Recommendation").CopyToProto(served)
    comments = [loc.leading_comments for loc in served.source_code_info.location if loc.leading_comments]
    assert any("One plain-language line saying what to do now." in c for c in comments)
    deps = pool.FindFileByName(spb.DESCRIPTOR.name).dependencies
    assert [d.name for d in deps] == ["prosthetic_alignment/v1/alignment.proto"]
    health = descriptor_pb2.FileDescriptorProto()
    pool.FindFileContainingSymbol("grpc.health.v1.Health").CopyToProto(health)
    assert health.name.endswith("health.proto") and health.message_type


def test_a_stored_copy_that_differs_from_the_compiled_proto_is_not_served() -> None:
    # A server compiled from a proto with one more field than the stored commented copy.
    compiled = descriptor_pb2.FileDescriptorProto()
    descriptor_pool.Default().FindFileByName("prosthetic_alignment/v1/alignment.proto").CopyToProto(compiled)
    message = next(m for m in compiled.message_type if m.name == "ModelRef")
    message.field.add(name="extra", number=99, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING)
    other = descriptor_pool.DescriptorPool()
    other.Add(compiled)
    assert "prosthetic_alignment/v1/alignment.proto" not in commented_files(other)
