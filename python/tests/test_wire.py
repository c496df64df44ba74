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


class _ChunkedStream:
    """A stream handing out at most ``step`` bytes per ``readinto``; counts the calls."""

    def __init__(self, data, step):
        self.data = memoryview(data)
        self.step = step
        self.calls = 0

    def readinto(self, buffer):
        self.calls += 1
        count = min(len(buffer), self.step, len(self.data))
        buffer[:count] = self.data[:count]
        self.data = self.data[count:]
        return count


def _ping(request_id):
    return {"type": "request", "id": request_id, "command": "ping", "args": {"payload": request_id}}


@pytest.mark.parametrize("step", [1, 3, 7, 64, 1 << 20])
def test_the_frame_reader_reads_frames_split_anywhere(step):
    messages = [_ping(n) for n in range(20)] + [_ping(99) | {"args": {"blob": "x" * 200_000}}]
    data = b"".join(wire.encode(message) for message in messages)
    reader = wire.FrameReader(_ChunkedStream(data, step), chunk=1024)
    assert [reader.read() for _ in messages] == messages
    assert reader.read() is None
    assert len(reader._buffer) == 1024, "the buffer a large frame grew is given back"


def test_the_frame_reader_makes_one_read_per_frame_where_read_frame_makes_two():
    frames = [wire.encode(_ping(n)) for n in range(10)]

    class OneFrameAtATime:
        def __init__(self):
            self.calls = 0
            self.pending = list(frames)
            self.current = b""

        def readinto(self, buffer):
            # Like a pipe the host writes one frame to, then waits for the reply.
            self.calls += 1
            if not self.current:
                if not self.pending:
                    return 0
                self.current = self.pending.pop(0)
            count = min(len(buffer), len(self.current))
            buffer[:count] = self.current[:count]
            self.current = self.current[count:]
            return count

    buffered = OneFrameAtATime()
    reader = wire.FrameReader(buffered)
    plain = OneFrameAtATime()
    for n in range(10):
        assert reader.read() == _ping(n)
        assert wire.read_frame(plain) == _ping(n)
    assert buffered.calls == 10
    assert plain.calls == 20


@pytest.mark.parametrize(
    "data, error",
    [
        (b"\x00\x00", wire.Truncated),
        (b"\x00\x00\x00\x05{}", wire.Truncated),
        (b"\x00\x00\x00\x00", wire.ZeroLength),
        (b"\x00\x00\x00\x02[]", wire.InvalidMessage),
    ],
)
def test_the_frame_reader_raises_what_read_frame_raises(data, error):
    with pytest.raises(error):
        wire.read_frame(io.BytesIO(data))
    with pytest.raises(error):
        wire.FrameReader(io.BytesIO(data)).read()


def test_decode_frame_refuses_trailing_bytes():
    with pytest.raises(wire.InvalidMessage):
        wire.decode_frame(wire.encode(_request()) + b"\x00")


def test_unknown_fields_survive_decoding_and_are_dropped_by_normalize():
    message = _request(extra={"future": True})
    decoded = wire.decode_frame(wire.encode(message))
    assert decoded["extra"] == {"future": True}
    assert "extra" not in wire.normalize(decoded)
