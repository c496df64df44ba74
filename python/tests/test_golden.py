"""Every golden vector in tests/golden/vectors.json, shared with the Rust pypool-wire tests."""

import io
import json

import pytest

from harness import REPO_DIR
from pypool_worker import wire

GOLDEN_DIR = REPO_DIR / "tests" / "golden"
SPEC = json.loads((GOLDEN_DIR / "vectors.json").read_text(encoding="utf-8"))
MAX_FRAME_BYTES = SPEC["max_frame_bytes"]
MESSAGE_VECTORS = [v for v in SPEC["vectors"] if v["expect"] == "message"]
ERROR_VECTORS = [v for v in SPEC["vectors"] if v["expect"] == "error"]

ERROR_CLASSES = {
    cls.error_class: cls
    for cls in (wire.FrameTooLarge, wire.ZeroLength, wire.Truncated, wire.InvalidUtf8, wire.InvalidJson, wire.InvalidMessage)
}


def _bytes_of(vector):
    return (GOLDEN_DIR / vector["file"]).read_bytes()


def _ids(vectors):
    return [v["name"] for v in vectors]


def test_vectors_cover_both_outcomes_and_every_error_class():
    assert len(MESSAGE_VECTORS) >= 10
    assert {v["error"] for v in ERROR_VECTORS} == set(ERROR_CLASSES)


@pytest.mark.parametrize("vector", MESSAGE_VECTORS, ids=_ids(MESSAGE_VECTORS))
def test_message_vector_decodes_to_its_message(vector):
    assert wire.decode_frame(_bytes_of(vector), MAX_FRAME_BYTES) == vector["message"]


@pytest.mark.parametrize("vector", MESSAGE_VECTORS, ids=_ids(MESSAGE_VECTORS))
def test_message_vector_is_reproduced_byte_for_byte_by_the_encoder(vector):
    assert wire.encode(vector["message"], MAX_FRAME_BYTES) == _bytes_of(vector)


@pytest.mark.parametrize("vector", MESSAGE_VECTORS, ids=_ids(MESSAGE_VECTORS))
def test_message_vector_normalizes_to_its_normalized_form(vector):
    expected = vector.get("normalized", vector["message"])
    assert wire.normalize(wire.decode_frame(_bytes_of(vector), MAX_FRAME_BYTES)) == expected


@pytest.mark.parametrize("vector", ERROR_VECTORS, ids=_ids(ERROR_VECTORS))
def test_error_vector_raises_its_error_class(vector):
    expected = ERROR_CLASSES[vector["error"]]
    with pytest.raises(wire.WireError) as caught:
        wire.read_frame(io.BytesIO(_bytes_of(vector)), MAX_FRAME_BYTES)
    assert type(caught.value) is expected
    assert caught.value.error_class == vector["error"]


class _CountingStream(io.BytesIO):
    def __init__(self, data):
        super().__init__(data)
        self.bytes_read = 0

    def readinto(self, buffer):
        count = super().readinto(buffer)
        self.bytes_read += count
        return count


@pytest.mark.parametrize(
    "vector", [v for v in ERROR_VECTORS if v["error"] == "frame_too_large"],
    ids=_ids([v for v in ERROR_VECTORS if v["error"] == "frame_too_large"]),
)
def test_oversized_prefix_is_refused_before_reading_the_body(vector):
    stream = _CountingStream(_bytes_of(vector))
    with pytest.raises(wire.FrameTooLarge):
        wire.read_frame(stream, MAX_FRAME_BYTES)
    assert stream.bytes_read == 4


@pytest.mark.parametrize("vector", MESSAGE_VECTORS, ids=_ids(MESSAGE_VECTORS))
def test_message_vector_decodes_the_same_through_the_buffered_frame_reader(vector):
    reader = wire.FrameReader(io.BytesIO(_bytes_of(vector)), MAX_FRAME_BYTES)
    assert reader.read() == wire.read_frame(io.BytesIO(_bytes_of(vector)), MAX_FRAME_BYTES)
    assert reader.read() is None


@pytest.mark.parametrize("vector", ERROR_VECTORS, ids=_ids(ERROR_VECTORS))
def test_error_vector_raises_its_error_class_through_the_buffered_frame_reader(vector):
    expected = ERROR_CLASSES[vector["error"]]
    with pytest.raises(wire.WireError) as caught:
        wire.FrameReader(io.BytesIO(_bytes_of(vector)), MAX_FRAME_BYTES).read()
    assert type(caught.value) is expected


class _PrefixOnlyStream:
    """Gives the first 4 bytes, then fails the test if asked for more."""

    def __init__(self, data):
        self.prefix = data[:4]
        self.calls = 0

    def readinto(self, buffer):
        self.calls += 1
        assert self.calls == 1, "the reader waited for body bytes after an oversized prefix"
        buffer[:4] = self.prefix
        return 4


@pytest.mark.parametrize(
    "vector", [v for v in ERROR_VECTORS if v["error"] == "frame_too_large"],
    ids=_ids([v for v in ERROR_VECTORS if v["error"] == "frame_too_large"]),
)
def test_the_buffered_reader_refuses_an_oversized_prefix_without_waiting_for_the_body(vector):
    with pytest.raises(wire.FrameTooLarge):
        wire.FrameReader(_PrefixOnlyStream(_bytes_of(vector)), MAX_FRAME_BYTES).read()
