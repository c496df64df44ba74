"""The floor for any JSON protocol over a framed pipe: a minimal Python loop
that decodes each request and encodes a reply, and does nothing else.

Reads 4-byte big-endian length-prefixed frames on stdin, each a JSON request
like pypool's ``ping`` (``{"type": "request", "id": N, "command": "ping",
"args": {"payload": P}}``), and answers each with the JSON reply pypool's
worker sends for it, framed, flushing after each. No validation, no
dispatch, no threads: what is left is the JSON work any JSON protocol pays
in Python. ``cargo xtask bench``'s ping workload measures it beside the raw
echo (``raw_echo.py``) and pypool's worker runtime in the same run.
Standard library only.
"""

import json
import struct
import sys


def main() -> None:
    reader = sys.stdin.buffer
    writer = sys.stdout.buffer
    decode = json.JSONDecoder().decode
    encode = json.JSONEncoder(separators=(",", ":")).encode
    while True:
        header = reader.read(4)
        if len(header) < 4:
            return
        (length,) = struct.unpack(">I", header)
        request = decode(reader.read(length).decode("utf-8"))
        result = {"pong": True, "worker_id": 1, "payload": request["args"].get("payload")}
        body = encode({"type": "reply", "id": request["id"], "status": "ok", "result": result}).encode("utf-8")
        writer.write(struct.pack(">I", len(body)) + body)
        writer.flush()


if __name__ == "__main__":
    main()
