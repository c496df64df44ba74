"""A loopback OpenAI-compatible chat-completions server that answers after a fixed latency.

Used by ``cargo xtask bench`` (the LM-bound workload) so that pypool and the
single-process baselines call the same "language model": one that spends no
CPU thinking and answers every ``POST .../chat/completions`` after
``--latency-ms`` milliseconds (default 100), the way a remote LM keeps a caller
waiting on the network.

Run as ``python python/bench/fake_lm.py [--port 0] [--latency-ms 100]``. It binds
127.0.0.1 only, prints ``READY <port>`` (one flushed line) once it accepts
connections, and serves until its standard input closes (so a benchmark that
dies leaves nothing behind) or it gets SIGTERM/SIGINT.

The reply is in DSPy's ChatAdapter format: one ``[[ ## field ## ]]`` section per
output field named in the system message ("Your output fields are:" ...,
default ``answer``), then ``[[ ## completed ## ]]``, so ``dspy.Predict`` of
``question -> answer`` parses it. ``GET /stats`` answers ``{"requests": n}``.

A request with ``"stream": true`` is answered with server-sent events instead
(OpenAI's ``chat.completion.chunk`` format, then ``data: [DONE]``): the same
content cut into word-sized tokens, the first after ``--first-token-ms``
(default: ``--latency-ms``), each next one ``--token-ms`` later (default 0),
so ``dspy.streamify`` can stream it and a benchmark can time the first token.

asyncio and the standard library only; HTTP/1.1 with keep-alive, so the
server's own cost per call stays small next to the clients'.
"""

import argparse
import asyncio
import json
import re
import signal
import sys
import threading
import time
from typing import Any, Dict, List, Optional

_OUTPUT_LINE = re.compile(r"^\s*\d+\.\s*`(\w+)`", re.MULTILINE)


def _text(message: Any) -> str:
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def output_fields(messages: List[Any]) -> List[str]:
    """The output field names the prompt asks for (default ``["answer"]``)."""
    system = "\n".join(_text(m) for m in messages if isinstance(m, dict) and m.get("role") in ("system", "developer"))
    marker = "Your output fields are:"
    if marker in system:
        section = system.split(marker, 1)[1].split("\n\n", 1)[0]
        found = _OUTPUT_LINE.findall(section)
        if found:
            return found
    return ["answer"]


def completion_text(messages: List[Any], number: int) -> str:
    """The assistant's reply: one section per output field, then ``completed``."""
    sections = ["[[ ## %s ## ]]\nfake %s %d" % (name, name, number) for name in output_fields(messages)]
    sections.append("[[ ## completed ## ]]")
    return "\n\n".join(sections)


def parse_request(body: bytes) -> Dict[str, Any]:
    """The request body as a dict (``{}`` when it is not a JSON object)."""
    try:
        request = json.loads(body.decode("utf-8") or "{}")
    except ValueError:
        return {}
    return request if isinstance(request, dict) else {}


_TOKEN = re.compile(r"\s*\S+\s*")


def tokens(text: str) -> List[str]:
    """``text`` cut into word-sized tokens (whitespace kept) that join back into it."""
    found = _TOKEN.findall(text)
    return found if "".join(found) == text else [text]


def stream_events(request: Dict[str, Any], number: int) -> List[bytes]:
    """The server-sent events of a streamed completion, ``data: [DONE]`` last."""
    messages = request.get("messages") if isinstance(request.get("messages"), list) else []
    base = {"id": "chatcmpl-bench-%d" % number, "object": "chat.completion.chunk", "created": int(time.time()),
            "model": request.get("model", "fake")}
    events = []
    for index, token in enumerate(tokens(completion_text(messages, number))):
        delta: Dict[str, Any] = {"content": token}
        if index == 0:
            delta["role"] = "assistant"
        events.append(dict(base, choices=[{"index": 0, "delta": delta, "finish_reason": None}]))
    events.append(dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}],
                       usage={"prompt_tokens": 10, "completion_tokens": len(events), "total_tokens": 10 + len(events)}))
    return [b"data: " + json.dumps(event).encode("utf-8") + b"\n\n" for event in events] + [b"data: [DONE]\n\n"]


def completion(body: bytes, number: int) -> Dict[str, Any]:
    """An OpenAI ``chat.completion`` object answering the request ``body``."""
    try:
        request = json.loads(body.decode("utf-8") or "{}")
    except ValueError:
        request = {}
    if not isinstance(request, dict):
        request = {}
    messages = request.get("messages") if isinstance(request.get("messages"), list) else []
    content = completion_text(messages, number)
    return {
        "id": "chatcmpl-bench-%d" % number,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "fake"),
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "logprobs": None, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


class Server:
    """Serves connections; counts completion requests."""

    def __init__(self, latency: float, first_token: Optional[float] = None, token_gap: float = 0.0) -> None:
        self.latency = latency
        self.first_token = latency if first_token is None else first_token
        self.token_gap = token_gap
        self.requests = 0

    async def stream(self, writer: asyncio.StreamWriter, body: bytes, number: int) -> None:
        """Answers a ``"stream": true`` completion with server-sent events, then closes."""
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Connection: close\r\n\r\n"
        )
        await writer.drain()
        for index, event in enumerate(stream_events(parse_request(body), number)):
            await asyncio.sleep(self.first_token if index == 0 else self.token_gap)
            writer.write(event)
            await writer.drain()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                parts = line.decode("latin-1").split()
                if len(parts) < 3:
                    return
                method, path, version = parts[0], parts[1], parts[2]
                headers: Dict[str, str] = {}
                while True:
                    header = await reader.readline()
                    if header in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                body = await reader.readexactly(length) if length > 0 else b""
                if method == "POST" and path.rstrip("/").endswith("/chat/completions"):
                    self.requests += 1
                    number = self.requests
                    if parse_request(body).get("stream") is True:
                        await self.stream(writer, body, number)
                        return
                    await asyncio.sleep(self.latency)
                    status, reply = 200, completion(body, number)
                elif method == "GET" and path.rstrip("/") == "/stats":
                    status, reply = 200, {"requests": self.requests}
                else:
                    status, reply = 404, {"error": {"message": "no such endpoint: %s %s" % (method, path)}}
                close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
                data = json.dumps(reply).encode("utf-8")
                writer.write(
                    b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
                    % (status, b"OK" if status == 200 else b"Not Found", len(data), b"Connection: close\r\n" if close else b"")
                    + data
                )
                await writer.drain()
                if close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            writer.close()


async def serve(port: int, latency: float, first_token: Optional[float] = None, token_gap: float = 0.0) -> None:
    server_state = Server(latency, first_token, token_gap)
    server = await asyncio.start_server(server_state.handle, "127.0.0.1", port, backlog=2048)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def watch_stdin() -> None:
        while sys.stdin.buffer.read1(65536):
            pass
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()
    sys.stdout.write("READY %d\n" % server.sockets[0].getsockname()[1])
    sys.stdout.flush()
    async with server:
        await stop.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="time before each completion is answered")
    parser.add_argument("--first-token-ms", type=float, default=None,
                        help="time before the first token of a streamed completion (default: --latency-ms)")
    parser.add_argument("--token-ms", type=float, default=0.0, help="time between the tokens of a streamed completion")
    args = parser.parse_args()
    first = None if args.first_token_ms is None else args.first_token_ms / 1000.0
    asyncio.run(serve(args.port, args.latency_ms / 1000.0, first, args.token_ms / 1000.0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
