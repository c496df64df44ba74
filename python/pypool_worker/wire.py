"""The pypool wire protocol, version 3 (see docs/PROTOCOL.md).

A frame is a 4-byte big-endian length followed by that many bytes of UTF-8
JSON holding one object with a ``type`` field. This module is the only Python
code that knows those bytes; it must NOT know about commands, handlers or
processes.

Every failure raises a :class:`WireError` subclass whose ``error_class``
attribute is the name the golden vectors (``tests/golden/vectors.json``) use.
After any wire error the stream is unusable: the reader cannot know where the
next frame starts.
"""

import io
import json
import re
import struct
import sys
from typing import Any, Dict, Optional, Union

try:
    from typing import Protocol
except ImportError:  # pragma: no cover - Python < 3.8 is not supported anyway
    Protocol = object  # type: ignore[assignment]

#: The protocol version this module speaks.
PROTOCOL_VERSION = 3

#: Default maximum body size, the same on both sides of the pipe.
DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024

#: The largest body a 4-byte length prefix can describe.
MAX_PREFIX_VALUE = 0xFFFFFFFF

#: The deepest a request's ``args`` or a reply's ``result`` may be nested, in
#: levels of arrays and objects (``args`` itself counts); see PROTOCOL.md.
MAX_NESTING_DEPTH = 100

#: The message types the protocol defines.
MESSAGE_TYPES = (
    "handshake", "startup_error", "request", "reply", "draining", "cancel", "stream_request", "chunk", "credit",
)

#: How a command's requests may run relative to each other (see PROTOCOL.md).
CONCURRENCY_MODES = ("serial", "threads", "async")

_PREFIX = struct.Struct(">I")
_U32_MAX = 0xFFFFFFFF
_U64_MAX = 0xFFFFFFFFFFFFFFFF


class ReadableStream(Protocol):
    """Anything frames can be read from: a blocking ``readinto`` (``io.FileIO``, ``io.BytesIO``)."""

    def readinto(self, __buffer: Any) -> Optional[int]:
        """Reads into the buffer; returns the byte count, 0 at end of stream."""
        ...


class WireError(Exception):
    """Base class of every framing or message error."""

    #: The golden-vector name of this error class.
    error_class = "wire_error"


class FrameTooLarge(WireError):
    """A length prefix (or a message being encoded) exceeds the maximum frame size."""

    error_class = "frame_too_large"


class ZeroLength(WireError):
    """A frame announced an empty body."""

    error_class = "zero_length"


class Truncated(WireError):
    """The stream ended inside a length prefix or a body."""

    error_class = "truncated"


class InvalidUtf8(WireError):
    """A body is not valid UTF-8."""

    error_class = "invalid_utf8"


class InvalidJson(WireError):
    """A body is not valid JSON."""

    error_class = "invalid_json"


class InvalidMessage(WireError):
    """A body is JSON but not a protocol message (or a message cannot be encoded)."""

    error_class = "invalid_message"


class NestingTooDeep(WireError):
    """A message is nested deeper than :data:`MAX_NESTING_DEPTH` allows.

    The frame itself was read whole, so the stream is still in step: when the
    body is a request whose ``id`` and ``command`` could be read,
    :attr:`request_id` and :attr:`command` hold them, and the worker answers
    ``invalid_arguments`` instead of giving up on the connection.
    """

    error_class = "nesting_too_deep"

    def __init__(self, message: str, request_id: Optional[int] = None, command: Optional[str] = None) -> None:
        super().__init__(message)
        #: The id of the request, when it could be read.
        self.request_id = request_id
        #: The request's command, when it could be read.
        self.command = command


# ---------------------------------------------------------------------------
# Encoding


# One encoder for every frame: ``json.dumps`` with non-default options builds a
# new ``JSONEncoder`` per call, a measurable share of a ping's time.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_body(message: Dict[str, Any]) -> bytes:
    """Encodes ``message`` as compact UTF-8 JSON (no frame prefix).

    Raises :class:`InvalidMessage` when the message holds something JSON
    cannot represent (an object of an unknown type, NaN, a lone surrogate…).
    """
    if not isinstance(message, dict):
        raise InvalidMessage("a message must be a dict, not %s" % type(message).__name__)
    try:
        return _ENCODER.encode(message).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidMessage("cannot encode message as JSON: %s" % exc) from exc


def encode(message: Dict[str, Any], max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> bytes:
    """Encodes ``message`` as one complete frame (length prefix + body).

    Raises :class:`FrameTooLarge` when the body exceeds ``max_frame_bytes``
    and :class:`InvalidMessage` when the message cannot be encoded.
    """
    body = encode_body(message)
    limit = min(max_frame_bytes, MAX_PREFIX_VALUE)
    if len(body) > limit:
        raise FrameTooLarge(
            "message of %d bytes exceeds the maximum frame size of %d bytes" % (len(body), limit)
        )
    return _PREFIX.pack(len(body)) + body


# ---------------------------------------------------------------------------
# Decoding


# A JSON string (skipped whole, escapes included), or a run of opening or of
# closing brackets.
_STRUCTURE = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[{]+|[\]}]+')


#: Above this recursion limit (raised by a handler), Python's JSON decoder could
#: exhaust the C stack on a deep body, so deep-looking bodies are scanned first.
_SAFE_RECURSION_LIMIT = 4000


def may_be_too_deep(body: Union[bytes, bytearray, memoryview], limit: int) -> bool:
    """False when a JSON text cannot nest more than ``limit`` levels: it has no
    more opening brackets than that (nearly every body; counted at C speed)."""
    data = body if isinstance(body, (bytes, bytearray)) else bytes(body)
    return data.count(b"[") + data.count(b"{") > limit


def body_too_deep(body: Union[bytes, bytearray, memoryview], limit: int) -> bool:
    """Whether a JSON text nests arrays and objects more than ``limit`` levels
    deep. Never parses and never recurses (strings are skipped)."""
    if not may_be_too_deep(body, limit):
        return False
    return _scan(bytes(body))[0] > limit


def nesting_depth_exceeds(value: Any, limit: int) -> bool:
    """Whether a decoded JSON value nests lists and dicts more than ``limit``
    levels deep (``[]`` is 1). Iterative, one level at a time; stops at the
    first level too deep."""
    containers = (dict, list, tuple)
    level = [value] if isinstance(value, containers) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list = []
        for item in level:
            children = item.values() if isinstance(item, dict) else item
            below += [child for child in children if isinstance(child, containers)]
        level = below
    return False


def _scan(data: bytes) -> "tuple[int, bytes]":
    """Returns the deepest nesting of a JSON text, and the text with every value
    below the top-level object replaced by ``null`` (so its scalar members can be
    read whatever the nesting)."""
    depth = 0
    deepest = 0
    shallow = []
    kept_from = 0
    start = -1
    for match in _STRUCTURE.finditer(data):
        token = match.group()
        if token[:1] == b'"':
            continue
        run = len(token)
        position = match.start()
        if token[:1] in (b"[", b"{"):
            if depth <= 1 < depth + run:
                start = position + (1 - depth)
            depth += run
            deepest = max(deepest, depth)
        else:
            if depth >= 2 and depth - run <= 1 and start >= 0:
                end = position + (depth - 1)
                shallow.append(data[kept_from:start])
                shallow.append(b"null")
                kept_from = end
                start = -1
            depth -= run
    shallow.append(data[kept_from:])
    return deepest, b"".join(shallow)


def _too_deep_request(data: bytes) -> NestingTooDeep:
    """The error for a request body nested too deep, with its id and command when readable."""
    detail = "request arguments are nested deeper than %d levels of arrays and objects" % MAX_NESTING_DEPTH
    try:
        envelope = json.loads(_scan(data)[1].decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return NestingTooDeep(detail)
    if not isinstance(envelope, dict) or envelope.get("type") not in ("request", "stream_request"):
        return NestingTooDeep(detail)
    request_id = envelope.get("id")
    command = envelope.get("command")
    if not (_is_int(request_id) and 0 <= request_id <= _U64_MAX) or not isinstance(command, str):
        return NestingTooDeep(detail)
    return NestingTooDeep(detail, request_id, command)


def _reject_constant(name: str) -> Any:
    raise ValueError("%s is not valid JSON" % name)


# One decoder for every frame (``json.loads`` with an option builds a new one per call).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def decode_body(body: Union[bytes, bytearray, memoryview]) -> Dict[str, Any]:
    """Decodes and validates one frame body; returns the message as a dict.

    Unknown fields are kept (callers ignore them); see :func:`normalize`.
    """
    if not body:
        raise ZeroLength("a frame body must not be empty")
    try:
        text = str(body, "utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidUtf8("frame body is not valid UTF-8: %s" % exc) from exc
    # The message object adds one level around ``args``.
    limit = MAX_NESTING_DEPTH + 1
    suspect = may_be_too_deep(body, limit)
    if suspect and sys.getrecursionlimit() > _SAFE_RECURSION_LIMIT and body_too_deep(body, limit):
        # A handler raised the recursion limit: a deep body must not reach the
        # decoder, which could then exhaust the C stack.
        raise _too_deep_request(bytes(body))
    try:
        message = _DECODER.decode(text)
    except RecursionError as exc:
        if body_too_deep(body, limit):
            raise _too_deep_request(bytes(body)) from exc
        raise InvalidJson("frame body is not valid JSON: %s" % exc) from exc
    except ValueError as exc:
        raise InvalidJson("frame body is not valid JSON: %s" % exc) from exc
    if suspect and isinstance(message, dict) and nesting_depth_exceeds(message, limit):
        raise _too_deep_request(bytes(body))
    validate(message)
    result: Dict[str, Any] = message
    return result


def read_frame(stream: ReadableStream, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> Optional[Dict[str, Any]]:
    """Reads one frame from ``stream`` (anything with a blocking ``readinto``).

    Returns ``None`` on a clean end of stream at a frame boundary. The length
    prefix is checked against ``max_frame_bytes`` before any body byte is read.
    """
    prefix = _read_exactly(stream, _PREFIX.size)
    if not prefix:
        return None
    if len(prefix) < _PREFIX.size:
        raise Truncated("stream ended after %d of %d length-prefix bytes" % (len(prefix), _PREFIX.size))
    (length,) = _PREFIX.unpack(prefix)
    if length == 0:
        raise ZeroLength("frame announces an empty body")
    if length > max_frame_bytes:
        raise FrameTooLarge(
            "frame announces %d bytes, more than the maximum frame size of %d bytes" % (length, max_frame_bytes)
        )
    body = _read_exactly(stream, length)
    if len(body) < length:
        raise Truncated("stream ended after %d of %d body bytes" % (len(body), length))
    return decode_body(body)


class FrameReader:
    """Reads frames from ``stream`` like :func:`read_frame`, with fewer system calls.

    It asks the stream for as much as it has (up to ``chunk`` bytes, at least
    what the frame being read still lacks) and keeps what follows a frame for
    the next one: one ``readinto`` per frame while frames come one at a time,
    fewer when they come in batches, where :func:`read_frame` makes two. The
    errors, and when they are raised, are :func:`read_frame`'s: the length
    prefix is checked before any body byte is waited for.
    """

    def __init__(
        self, stream: ReadableStream, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES, chunk: int = 64 * 1024
    ) -> None:
        self._stream = stream
        self._max = max_frame_bytes
        self._chunk = chunk
        self._buffer = bytearray(chunk)
        # Unread bytes are ``_buffer[_start:_end]``.
        self._start = 0
        self._end = 0

    def _fill(self, need: int) -> bool:
        """Reads until ``need`` unread bytes are buffered; False at end of stream first."""
        if self._end - self._start >= need:
            return True
        unread = self._end - self._start
        if self._start:
            self._buffer[:unread] = self._buffer[self._start : self._end]
            self._start, self._end = 0, unread
        if need > len(self._buffer):
            self._buffer.extend(bytes(need - len(self._buffer)))
        view = memoryview(self._buffer)
        try:
            while self._end < need:
                got = self._stream.readinto(view[self._end :])
                if not got:
                    return False
                self._end += got
        finally:
            view.release()
        return True

    def read(self) -> Optional[Dict[str, Any]]:
        """The next message; ``None`` at a clean end of stream at a frame boundary."""
        if not self._fill(_PREFIX.size):
            held = self._end - self._start
            if held == 0:
                return None
            raise Truncated("stream ended after %d of %d length-prefix bytes" % (held, _PREFIX.size))
        (length,) = _PREFIX.unpack_from(self._buffer, self._start)
        if length == 0:
            raise ZeroLength("frame announces an empty body")
        if length > self._max:
            raise FrameTooLarge(
                "frame announces %d bytes, more than the maximum frame size of %d bytes" % (length, self._max)
            )
        if not self._fill(_PREFIX.size + length):
            held = self._end - self._start - _PREFIX.size
            raise Truncated("stream ended after %d of %d body bytes" % (held, length))
        start = self._start + _PREFIX.size
        body = bytes(self._buffer[start : start + length])
        self._start = start + length
        if self._start == self._end:
            self._start = self._end = 0
            if len(self._buffer) > self._chunk:
                # A large frame grew the buffer: give the memory back.
                self._buffer = bytearray(self._chunk)
        return decode_body(body)


def decode_frame(data: bytes, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> Dict[str, Any]:
    """Decodes ``data``, which must hold exactly one frame."""
    stream = io.BytesIO(data)
    message = read_frame(stream, max_frame_bytes)
    if message is None:
        raise Truncated("no frame: the data is empty")
    if stream.tell() != len(data):
        raise InvalidMessage("%d bytes follow the frame" % (len(data) - stream.tell()))
    return message


def _read_exactly(stream: ReadableStream, count: int) -> memoryview:
    """Reads up to ``count`` bytes, stopping early only at end of stream."""
    buffer = bytearray(count)
    view = memoryview(buffer)
    filled = 0
    while filled < count:
        got = stream.readinto(view[filled:])
        if not got:
            break
        filled += got
    return view[:filled]


# ---------------------------------------------------------------------------
# Validation


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require(message: Dict[str, Any], field: str, kind: str) -> Any:
    if field not in message:
        raise InvalidMessage("%s message lacks the %r field" % (message["type"], field))
    value = message[field]
    if kind == "u64" or kind == "u32":
        limit = _U64_MAX if kind == "u64" else _U32_MAX
        if not (_is_int(value) and 0 <= value <= limit):
            raise InvalidMessage(
                "%s.%s must be an unsigned %s-bit integer, got %r" % (message["type"], field, kind[1:], value)
            )
    elif kind == "str":
        if not isinstance(value, str):
            raise InvalidMessage("%s.%s must be a string, got %r" % (message["type"], field, value))
    return value


def _optional_str(owner: str, container: Dict[str, Any], field: str) -> None:
    value = container.get(field)
    if value is not None and not isinstance(value, str):
        raise InvalidMessage("%s.%s must be a string when present, got %r" % (owner, field, value))


def _validate_request(message: Dict[str, Any]) -> None:
    _require(message, "id", "u64")
    _require(message, "command", "str")
    if "args" in message and not isinstance(message["args"], dict):
        raise InvalidMessage("request.args must be an object, got %r" % (message["args"],))


def _validate_reply(message: Dict[str, Any]) -> None:
    _require(message, "id", "u64")
    status = _require(message, "status", "str")
    if status == "ok":
        if "result" not in message:
            raise InvalidMessage("an ok reply lacks the 'result' field")
    elif status == "error":
        error = message.get("error")
        if not isinstance(error, dict):
            raise InvalidMessage("an error reply needs an 'error' object, got %r" % (error,))
        for field in ("kind", "message"):
            if not isinstance(error.get(field), str):
                raise InvalidMessage("reply.error.%s must be a string, got %r" % (field, error.get(field)))
        _optional_str("reply.error", error, "exception_type")
        _optional_str("reply.error", error, "traceback")
    else:
        raise InvalidMessage("reply.status must be 'ok' or 'error', got %r" % (status,))
    if message.get("usage") is not None and not isinstance(message["usage"], dict):
        raise InvalidMessage("reply.usage must be an object when present, got %r" % (message["usage"],))


def _validate_handshake(message: Dict[str, Any]) -> None:
    _require(message, "protocol", "u32")
    _require(message, "worker_id", "u64")
    _require(message, "pid", "u32")
    _require(message, "python_version", "str")
    commands = message.get("commands")
    if not isinstance(commands, list):
        raise InvalidMessage("handshake.commands must be an array, got %r" % (commands,))
    for entry in commands:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise InvalidMessage("each handshake command needs a string 'name', got %r" % (entry,))
        if not isinstance(entry.get("idempotent", False), bool):
            raise InvalidMessage("handshake command 'idempotent' must be a boolean, got %r" % (entry,))
        if entry.get("concurrency", "serial") not in CONCURRENCY_MODES:
            raise InvalidMessage(
                "handshake command 'concurrency' must be one of %s, got %r" % (", ".join(CONCURRENCY_MODES), entry)
            )
    if "capacity" in message:
        _require(message, "capacity", "u32")


def _validate_startup_error(message: Dict[str, Any]) -> None:
    _require(message, "kind", "str")
    _require(message, "message", "str")
    _optional_str("startup_error", message, "traceback")


def _validate_draining(message: Dict[str, Any]) -> None:
    """``draining`` has no fields of its own."""


def _validate_cancel(message: Dict[str, Any]) -> None:
    _require(message, "id", "u64")


def _validate_stream_request(message: Dict[str, Any]) -> None:
    _validate_request(message)
    _require(message, "credit", "u32")


def _validate_chunk(message: Dict[str, Any]) -> None:
    _require(message, "id", "u64")
    _require(message, "seq", "u64")
    if "data" not in message:
        raise InvalidMessage("chunk message lacks the 'data' field")


def _validate_credit(message: Dict[str, Any]) -> None:
    _require(message, "id", "u64")
    _require(message, "grant", "u32")


_NO_ARGS: Dict[str, Any] = {}


_VALIDATORS = {
    "stream_request": _validate_stream_request,
    "chunk": _validate_chunk,
    "credit": _validate_credit,
    "request": _validate_request,
    "reply": _validate_reply,
    "handshake": _validate_handshake,
    "startup_error": _validate_startup_error,
    "draining": _validate_draining,
    "cancel": _validate_cancel,
}


def validate(message: Any) -> None:
    """Raises :class:`InvalidMessage` unless ``message`` is a well-formed protocol message."""
    if type(message) is dict and message.get("type") == "request":
        # The common case first, checked inline (the full checks below say
        # what is wrong when this does not hold).
        request_id = message.get("id")
        args = message.get("args", _NO_ARGS)
        if (
            type(request_id) is int
            and 0 <= request_id <= _U64_MAX
            and type(message.get("command")) is str
            and (args is _NO_ARGS or type(args) is dict)
        ):
            return
    if not isinstance(message, dict):
        raise InvalidMessage("a message must be a JSON object, got %s" % type(message).__name__)
    kind = message.get("type")
    if not isinstance(kind, str):
        raise InvalidMessage("a message needs a string 'type' field")
    validator = _VALIDATORS.get(kind)
    if validator is None:
        raise InvalidMessage("unknown message type %r (known: %s)" % (kind, ", ".join(MESSAGE_TYPES)))
    validator(message)


def normalize(message: Dict[str, Any]) -> Dict[str, Any]:
    """Returns a validated copy of ``message`` without unknown fields and with defaults filled.

    Optional fields that are absent (or null) stay absent, as the Rust side
    skips them when encoding.
    """
    validate(message)
    kind = message["type"]
    out: Dict[str, Any] = {"type": kind}
    if kind == "request":
        out.update(id=message["id"], command=message["command"], args=message.get("args", {}))
    elif kind == "reply":
        out.update(id=message["id"], status=message["status"])
        if message["status"] == "ok":
            out["result"] = message["result"]
        else:
            error = message["error"]
            kept = {"kind": error["kind"], "message": error["message"]}
            for field in ("exception_type", "traceback"):
                if error.get(field) is not None:
                    kept[field] = error[field]
            out["error"] = kept
        if message.get("usage") is not None:
            out["usage"] = message["usage"]
    elif kind == "handshake":
        out.update(
            protocol=message["protocol"],
            worker_id=message["worker_id"],
            pid=message["pid"],
            python_version=message["python_version"],
            commands=[
                {
                    "name": entry["name"],
                    "idempotent": entry.get("idempotent", False),
                    "concurrency": entry.get("concurrency", "serial"),
                }
                for entry in message["commands"]
            ],
            capacity=message.get("capacity", 1),
        )
    elif kind == "cancel":
        out.update(id=message["id"])
    elif kind == "stream_request":
        out.update(id=message["id"], command=message["command"], args=message.get("args", {}), credit=message["credit"])
    elif kind == "chunk":
        out.update(id=message["id"], seq=message["seq"], data=message["data"])
    elif kind == "credit":
        out.update(id=message["id"], grant=message["grant"])
    elif kind == "draining":
        pass
    else:  # startup_error
        out.update(kind=message["kind"], message=message["message"])
        if message.get("traceback") is not None:
            out["traceback"] = message["traceback"]
    return out
