"""The kept fuzz regression vectors (tests/golden/fuzz_vectors.txt) through the worker's frame reader.

The vectors are worker output the Rust fuzzer (``cargo xtask fuzz``) found
worth keeping; to the frame reader they are hostile bytes like any other.
Every one must end cleanly or with a typed ``WireError``, never another
exception, and within a bound.
"""

import io

import pytest

from harness import REPO_DIR
from pypool_worker import wire

VECTORS_FILE = REPO_DIR / "tests" / "golden" / "fuzz_vectors.txt"


def _vectors():
    vectors = []
    for line in VECTORS_FILE.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = dict(field.split("=", 1) for field in line.split())
        vectors.append(pytest.param(int(fields["max"]), bytes.fromhex(fields["bytes"]), id=fields["seed"]))
    return vectors


VECTORS = _vectors()


def test_there_are_kept_vectors():
    assert len(VECTORS) >= 10


@pytest.mark.parametrize("max_frame_bytes,stream", VECTORS)
def test_kept_vector_ends_cleanly_or_with_a_wire_error(max_frame_bytes, stream):
    reader = io.BytesIO(stream)
    for _ in range(len(stream) + 1):  # each frame consumes at least 4 bytes: a bound, not a hang
        try:
            message = wire.read_frame(reader, max_frame_bytes)
        except wire.WireError as exc:
            assert exc.error_class in {"frame_too_large", "zero_length", "truncated", "invalid_utf8", "invalid_json", "invalid_message", "nesting_too_deep"}
            return
        if message is None:
            return
        wire.normalize(message)
    pytest.fail("read_frame kept returning messages past the end of the stream")
