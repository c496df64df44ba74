"""Regenerates the golden frame vectors in this folder.

Run: python3 tests/golden/make_vectors.py
Both the Rust (`pypool-wire`) and the Python (`python/tests`) test suites check
every vector listed in vectors.json, so the two sides cannot drift.

Each vector is one `.bin` file plus an entry in vectors.json:
* expect == "message": the file holds exactly one frame whose body is `message`
  (the raw JSON, byte-for-byte as written by `body` when given). Decoders must accept it.
  `normalized` (when present) is what a decoder that drops unknown fields and
  fills defaults must produce when the message is encoded back to JSON.
* expect == "error": decoding must fail with the named error class:
  frame_too_large, zero_length, truncated, invalid_utf8, invalid_json, invalid_message.
  `max_frame_bytes` applies to every vector.
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_FRAME_BYTES = 1024


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def compact(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


vectors = []


def message(name, obj, normalized=None, body=None):
    raw = body if body is not None else compact(obj)
    with open(os.path.join(HERE, name + ".bin"), "wb") as f:
        f.write(frame(raw))
    entry = {"name": name, "file": name + ".bin", "expect": "message", "message": obj}
    if normalized is not None:
        entry["normalized"] = normalized
    vectors.append(entry)


def error(name, data: bytes, error_class: str, why: str):
    with open(os.path.join(HERE, name + ".bin"), "wb") as f:
        f.write(data)
    vectors.append({"name": name, "file": name + ".bin", "expect": "error", "error": error_class, "why": why})


message("request_ping", {"type": "request", "id": 1, "command": "ping", "args": {}})
message("request_unicode_args", {"type": "request", "id": 18446744073709551615, "command": "echo",
                                 "args": {"text": "héllo — 世界 🐍", "n": [1, 2.5, None, True]}})
message("request_without_args", {"type": "request", "id": 7, "command": "info"},
        normalized={"type": "request", "id": 7, "command": "info", "args": {}})
message("reply_ok", {"type": "reply", "id": 1, "status": "ok", "result": {"pong": True}})
message("reply_ok_usage", {"type": "reply", "id": 3, "status": "ok", "result": {"answer": "4"},
                           "usage": {"calls": 1, "completion_tokens": 8, "cost": None,
                                     "models": {"openai/fake": {"calls": 1, "completion_tokens": 8,
                                                                "prompt_tokens": 120}},
                                     "prompt_tokens": 120, "total_tokens": 128}})
message("reply_ok_null", {"type": "reply", "id": 2, "status": "ok", "result": None})
message("reply_error_full", {"type": "reply", "id": 41, "status": "error",
                             "error": {"kind": "python_exception", "exception_type": "ValueError",
                                       "message": "text must not be empty",
                                       "traceback": "Traceback (most recent call last):\n  File \"h.py\", line 3\nValueError: text must not be empty\n"}})
message("reply_error_minimal", {"type": "reply", "id": 42, "status": "error",
                                "error": {"kind": "unknown_command", "message": "no command named 'nope'"}})
message("reply_error_unknown_kind", {"type": "reply", "id": 43, "status": "error",
                                     "error": {"kind": "from_the_future", "message": "a kind this host does not know"}})
message("handshake", {"type": "handshake", "protocol": 3, "worker_id": 3, "pid": 41234,
                      "python_version": "3.11.7",
                      "commands": [{"name": "ping", "idempotent": True, "concurrency": "serial"},
                                   {"name": "summarise", "idempotent": False, "concurrency": "threads"},
                                   {"name": "ask", "idempotent": False, "concurrency": "async"}],
                      "capacity": 64})
message("handshake_unknown_fields", {"type": "handshake", "protocol": 3, "worker_id": 0, "pid": 1,
                                     "python_version": "3.9.0", "commands": [{"name": "ping"}],
                                     "zygote": {"preloaded": ["dspy"]}, "extra": 1},
        normalized={"type": "handshake", "protocol": 3, "worker_id": 0, "pid": 1,
                    "python_version": "3.9.0",
                    "commands": [{"name": "ping", "idempotent": False, "concurrency": "serial"}],
                    "capacity": 1})
message("startup_error", {"type": "startup_error", "kind": "handler_import",
                          "message": "ModuleNotFoundError: No module named 'nope'",
                          "traceback": "Traceback (most recent call last):\nModuleNotFoundError: No module named 'nope'\n"})
message("draining", {"type": "draining"})
message("cancel", {"type": "cancel", "id": 41})
message("cancel_unknown_fields", {"type": "cancel", "id": 7, "reason": "deadline"},
        normalized={"type": "cancel", "id": 7})
message("draining_unknown_fields", {"type": "draining", "since": 1.5},
        normalized={"type": "draining"})
# Streaming replies (protocol version 3).
message("stream_request", {"type": "stream_request", "id": 41, "command": "tokens", "args": {"n": 3}, "credit": 16})
message("stream_request_without_args", {"type": "stream_request", "id": 42, "command": "tokens", "credit": 0},
        normalized={"type": "stream_request", "id": 42, "command": "tokens", "args": {}, "credit": 0})
message("chunk", {"type": "chunk", "id": 41, "seq": 0, "data": {"token": "Hel"}})
message("chunk_null_data", {"type": "chunk", "id": 41, "seq": 18446744073709551615, "data": None})
message("credit", {"type": "credit", "id": 41, "grant": 8})
message("credit_unknown_fields", {"type": "credit", "id": 41, "grant": 4294967295, "why": "consumer read"},
        normalized={"type": "credit", "id": 41, "grant": 4294967295})

error("oversized_length_prefix", struct.pack(">I", MAX_FRAME_BYTES + 1) + b"{}", "frame_too_large",
      "the length prefix exceeds max_frame_bytes; the body must not be read")
error("huge_length_prefix", b"\xff\xff\xff\xff", "frame_too_large", "4 GiB prefix")
error("zero_length", struct.pack(">I", 0), "zero_length", "an empty body is not a message")
error("truncated_prefix", b"\x00\x00", "truncated", "the stream ends inside the length prefix")
error("truncated_body", struct.pack(">I", 40) + b'{"type":"request"', "truncated",
      "the stream ends inside the body")
error("invalid_utf8", frame(b'{"type":"request","id":1,"command":"\xff\xfe","args":{}}'), "invalid_utf8",
      "the body is not UTF-8")
error("invalid_json", frame(b'{"type":"request","id":1,'), "invalid_json", "the body is not JSON")
error("not_an_object", frame(b'[1,2,3]'), "invalid_message", "a JSON array is not a message")
error("unknown_type", frame(b'{"type":"gossip","id":1}'), "invalid_message", "unknown message type")
error("missing_type", frame(b'{"id":1,"command":"ping"}'), "invalid_message", "no type field")
error("request_negative_id", frame(b'{"type":"request","id":-1,"command":"ping","args":{}}'), "invalid_message",
      "ids are unsigned 64-bit integers")
error("request_args_not_object", frame(b'{"type":"request","id":1,"command":"ping","args":[1]}'),
      "invalid_message", "args must be an object")
error("stream_request_without_credit", frame(b'{"type":"stream_request","id":1,"command":"tokens","args":{}}'),
      "invalid_message", "a streaming request must say how many chunks the worker may send")
error("chunk_without_seq", frame(b'{"type":"chunk","id":1,"data":"x"}'), "invalid_message",
      "a chunk needs its sequence number")
error("chunk_without_data", frame(b'{"type":"chunk","id":1,"seq":0}'), "invalid_message",
      "a chunk needs its data (null is a value, absence is not)")
error("credit_negative_grant", frame(b'{"type":"credit","id":1,"grant":-1}'), "invalid_message",
      "grants are unsigned 32-bit integers")
error("credit_grant_too_large", frame(b'{"type":"credit","id":1,"grant":4294967296}'), "invalid_message",
      "grants are unsigned 32-bit integers")

with open(os.path.join(HERE, "vectors.json"), "w", encoding="utf-8") as f:
    json.dump({"max_frame_bytes": MAX_FRAME_BYTES, "vectors": vectors}, f, indent=2, ensure_ascii=False)
    f.write("\n")
print(f"wrote {len(vectors)} vectors")
