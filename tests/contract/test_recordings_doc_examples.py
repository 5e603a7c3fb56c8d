"""The protobuf JSON examples in docs/recordings.md parse into the contract's request message, so a
renamed or misspelt field in the documentation fails here rather than in a clinic tool."""

from __future__ import annotations

import re
from pathlib import Path

from google.protobuf import json_format

from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb

DOC = Path(__file__).resolve().parents[2] / "docs" / "recordings.md"


def test_every_json_example_is_a_valid_extract_features_request() -> None:
    blocks = re.findall(r"```json\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 2
    for block in blocks:
        req = json_format.Parse(block, spb.ExtractFeaturesRequest())  # raises on an unknown field
        assert req.recordings and req.patient.prosthetic_side


def test_the_xsens_example_puts_each_foot_on_its_own_counter() -> None:
    blocks = re.findall(r"```json\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    grouped = [json_format.Parse(b, spb.ExtractFeaturesRequest()) for b in blocks if "channelGroups" in b]
    (req,) = grouped
    rec = req.recordings[0]
    counters = {g.name: list(g.sample_counter) for g in rec.channel_groups}
    for ch in rec.channels:
        assert len(ch.values) == len(counters[ch.group])
    assert len({len(ch.values) for ch in rec.channels}) == 2  # the feet differ in length, as sent
