"""Frame encoding and decoding beyond the golden vectors."""

import io
import struct

import pytest

from pypool_worker import wire


def _request(request_id=1, **fields):
    message = {"type": "request", "id": request_id, "command": "echo", "args": {"x": 1}}
    message.update(fields)
    return message


def test_round_trip_of_every_message_type():
    messages = [
        _request(),
        {"type": "reply", "id": 2, "status": "ok", "result": [1, "two", None, {"3": 4.5}]},
        {"type": "reply", "id": 3, "status": "error", "error": {"kind": "internal", "message": "m"}},
        {"type": "handshake", "protocol": 3, "worker_id": 9, "pid": 4, "python_version": "3.9.18", "commands": []},
        {"type": "startup_error", "kind": "bad_arguments", "message": "no"},
    ]
    stream = io.BytesIO(b"".join(wire.encode(m) for m in messages))
    decoded = []
    while True:
        message = wire.read_frame(stream)
        if message is None:
            break
        decoded.append(message)
    assert decoded == messages


def test_clean_eof_at_a_frame_boundary_is_none():
    assert wire.read_frame(io.BytesIO(b"")) is None


def test_unicode_is_sent_as_raw_utf8():
    frame = wire.encode(_request(args={"text": "héllo 🐍"}))
    assert "héllo 🐍".encode("utf-8") in frame
    assert wire.decode_frame(frame)["args"]["text"] == "héllo 🐍"


def test_length_prefix_counts_body_bytes_big_endian():
    frame = wire.encode(_request(args={"t": "é"}))
    (length,) = struct.unpack(">I", frame[:4])
    assert length == len(frame) - 4


def test_encoding_an_oversized_message_fails():
    message = _request(args={"blob": "x" * 2000})
    with pytest.raises(wire.FrameTooLarge):
        wire.encode(message, max_frame_bytes=1024)
    assert len(wire.encode(message, max_frame_bytes=4096)) > 2000


def test_a_frame_exactly_at_the_limit_is_accepted():
    body = wire.encode_body(_request())
    assert wire.decode_frame(wire.encode(_request()), max_frame_bytes=len(body)) == _request()
    with pytest.raises(wire.FrameTooLarge):
        wire.decode_frame(wire.encode(_request()), max_frame_bytes=len(body) - 1)


@pytest.mark.parametrize("value", [{1, 2}, float("nan"), float("inf"), object(), "\ud800"])
def test_unencodable_content_is_invalid_message(value):
    with pytest.raises(wire.InvalidMessage):
        wire.encode({"type": "reply", "id": 1, "status": "ok", "result": value})


@pytest.mark.parametrize("body", [b"NaN", b'{"type":"reply","id":1,"status":"ok","result":Infinity}'])
def test_non_standard_json_constants_are_rejected(body):
    with pytest.raises(wire.InvalidJson):
        wire.decode_body(body)


def test_a_bom_is_not_tolerated():
    with pytest.raises(wire.InvalidJson):
        wire.decode_body(b"\xef\xbb\xbf" + wire.encode_body(_request()))


@pytest.mark.parametrize(
    "message, complaint",
    [
        (_request(id=True), "id"),
        (_request(id=1.0), "id"),
        (_request(id=2 ** 64), "id"),
        (_request(command=3), "command"),
        (_request(args=None), "args"),
        ({"type": "request", "command": "x"}, "id"),
        ({"type": "reply", "id": 1, "status": "ok"}, "result"),
        ({"type": "reply", "id": 1, "status": "maybe", "result": 1}, "status"),
        ({"type": "reply", "id": 1, "status": "error", "error": {"kind": "k"}}, "message"),
        ({"type": "handshake", "protocol": 2, "worker_id": 1, "pid": 1, "python_version": "3", "commands": [{}]}, "name"),
        ({"type": "startup_error", "kind": "internal"}, "message"),
        ({"type": 5}, "type"),
    ],
)
def test_malformed_messages_are_invalid_and_say_why(message, complaint):
    with pytest.raises(wire.InvalidMessage, match=complaint):
        wire.validate(message)


def test_decode_frame_refuses_trailing_bytes():
    with pytest.raises(wire.InvalidMessage):
        wire.decode_frame(wire.encode(_request()) + b"\x00")


def test_unknown_fields_survive_decoding_and_are_dropped_by_normalize():
    message = _request(extra={"future": True})
    decoded = wire.decode_frame(wire.encode(message))
    assert decoded["extra"] == {"future": True}
    assert "extra" not in wire.normalize(decoded)
