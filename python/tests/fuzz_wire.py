"""Fuzzes the worker's frame reader (``pypool_worker.wire.read_frame``); run by ``cargo xtask fuzz``.

    PYTHONPATH=python python3 python/tests/fuzz_wire.py [--seed S] [--frames N] [--seconds T]

Each case is a host-to-worker byte stream of a few generated frames
(requests, wrong-direction messages, garbage, huge or zero length prefixes,
invalid UTF-8 or JSON, deep nesting, truncation), possibly mutated, fed to
``read_frame`` through a reader returning random short chunks until the
stream ends or a frame is rejected. Only the standard library is used
(``random`` seeded per case, so a run is deterministic by seed).

A case fails if ``read_frame`` raises anything but a ``WireError`` subclass
(or returns something that is not a validated message dict), or takes longer
than the per-case bound (an interval timer interrupts it). Prints the count,
the time, frames/s and a tally per outcome; exits 1 on any failure.
"""

import argparse
import random
import signal
import sys
import time
from collections import Counter

from pypool_worker import wire

#: A case running longer than this is a hang.
CASE_BOUND_S = 5.0

MAX_FRAME_CHOICES = (64, 1024, 64 * 1024, wire.DEFAULT_MAX_FRAME_BYTES)


class Hang(Exception):
    """Raised by the interval timer when a case exceeds its bound."""


def _on_alarm(signum, frame):
    raise Hang()


class ChunkedReader:
    """A blocking reader (``readinto``) delivering ``data`` in random short chunks."""

    def __init__(self, data, rng):
        self.data = data
        self.at = 0
        self.rng = rng

    def readinto(self, buffer):
        size = self.rng.choice((1, self.rng.randint(1, 8), self.rng.randint(1, 256), 65536))
        size = min(size, len(buffer), len(self.data) - self.at)
        buffer[:size] = self.data[self.at : self.at + size]
        self.at += size
        return size


def _frame(body):
    return len(body).to_bytes(4, "big") + body


def _random_json(rng, depth=0):
    choice = rng.randrange(5 if depth > 3 else 8)
    if choice == 0:
        return "null"
    if choice == 1:
        return "true"
    if choice == 2:
        return str(rng.randint(-(2**63), 2**63))
    if choice == 3:
        return repr(rng.random() * 1000)
    if choice == 4:
        return rng.choice(('""', '"héllo"', '"世界 🐍"', '"a\\nb"', '"\\ud800"'))
    if choice == 5:
        return "[%s]" % ",".join(_random_json(rng, depth + 1) for _ in range(rng.randrange(4)))
    return "{%s}" % ",".join('"k%d":%s' % (i, _random_json(rng, depth + 1)) for i in range(rng.randrange(4)))


def _one_frame(rng, max_frame_bytes):
    kind = rng.randrange(20)
    if kind <= 7:
        body = '{"type":"request","id":%d,"command":"echo","args":{"x":%s}}' % (
            rng.choice((1, 2, 0, 2**64 - 1, rng.getrandbits(64))),
            _random_json(rng),
        )
        return _frame(body.encode("utf-8", "surrogatepass"))
    if kind == 8:
        return _frame(b'{"type":"reply","id":1,"status":"ok","result":null}')
    if kind == 9:
        return _frame(b'{"type":"handshake","protocol":3,"worker_id":1,"pid":0,"python_version":"x","commands":[]}')
    if kind == 10:
        return _frame(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64))))
    if kind == 11:
        length = rng.choice((0xFFFFFFFF, min(max_frame_bytes + 1 + rng.randrange(1000), 0xFFFFFFFF)))
        return length.to_bytes(4, "big") + bytes(rng.getrandbits(8) for _ in range(rng.randrange(16)))
    if kind == 12:
        return b"\x00\x00\x00\x00"
    if kind == 13:
        body = bytearray(b'{"type":"request","id":1,"command":"ping"}')
        body.insert(rng.randrange(len(body)), rng.choice((0xFF, 0xC3, 0xED, 0x80)))
        return _frame(bytes(body))
    if kind == 14:
        return _frame(
            rng.choice(
                (
                    b'{"type":"request","id":1,"command":',
                    b'{"type":"request"} trailing',
                    b'{"type":"request","id":NaN,"command":"x"}',
                    b'{"type":"request","id":Infinity,"command":"x"}',
                    b"nul",
                    b"{'type':'request'}",
                )
            )
        )
    if kind == 15:
        return _frame(
            rng.choice(
                (
                    b"[1,2,3]",
                    b"42",
                    b'{"id":1}',
                    b'{"type":"draining_or_unknown"}',
                    b'{"type":"request","id":-1,"command":"x"}',
                    b'{"type":"request","id":"1","command":"x"}',
                    b'{"type":"request","id":18446744073709551616,"command":"x"}',
                    b'{"type":"request","id":1.5,"command":"x"}',
                    b'{"type":"request","id":true,"command":"x"}',
                    b'{"type":"request","id":1,"command":"x","args":[]}',
                    b'{"type":"request","id":1,"command":7}',
                )
            )
        )
    if kind == 16:
        depth = rng.choice((100, 127, 128, 129, 1000, 20000))
        return _frame(('{"type":"request","id":1,"command":"x","args":{"a":%s%s}}' % ("[" * depth, "]" * depth)).encode())
    if kind == 17:
        return bytes(rng.getrandbits(8) for _ in range(rng.randrange(32)))
    if kind == 18:
        body = b'{"type":"request","id":1,"command":"ping","args":{}}'
        return len(body).to_bytes(4, "big") + body[: rng.randrange(len(body))]
    # The same request twice (duplicate id).
    body = b'{"type":"request","id":5,"command":"ping"}'
    return _frame(body) + _frame(body)


def _mutate(rng, data):
    if not data:
        return bytearray(rng.getrandbits(8) for _ in range(rng.randint(1, 8)))
    at = rng.randrange(len(data))
    kind = rng.randrange(7)
    if kind == 0:
        data[at] ^= 1 << rng.randrange(8)
    elif kind == 1:
        data[at] = rng.getrandbits(8)
    elif kind == 2:
        data[at:at] = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 8)))
    elif kind == 3:
        del data[at : at + rng.randint(1, 8)]
    elif kind == 4:
        del data[at:]
    elif kind == 5:
        data[at:at] = data[at : at + rng.randint(1, 16)]
    else:
        length = rng.choice((0xFFFFFFFF, 0x7FFFFFFF, rng.getrandbits(24)))
        chunk = length.to_bytes(4, "big")[: len(data) - at]
        data[at : at + len(chunk)] = chunk
    return data


def generate_case(seed):
    """Returns ``(max_frame_bytes, frames, stream, rng)`` for ``seed``; ``rng`` then drives the chunking."""
    rng = random.Random(seed)
    max_frame_bytes = rng.choice(MAX_FRAME_CHOICES)
    frames = rng.randint(1, 6)
    data = bytearray()
    for _ in range(frames):
        data += _one_frame(rng, max_frame_bytes)
    if rng.random() < 0.5:
        for _ in range(rng.randint(1, 4)):
            data = _mutate(rng, data)
    return max_frame_bytes, frames, bytes(data), rng


def read_all(stream, max_frame_bytes, rng):
    """Reads frames until a clean end (``"eof"``) or a ``WireError`` (its class); returns ``(end, messages)``.

    Anything else raised propagates: that is a failure.
    """
    reader = ChunkedReader(stream, rng)
    messages = 0
    while True:
        try:
            message = wire.read_frame(reader, max_frame_bytes)
        except wire.WireError as exc:
            return exc.error_class, messages
        if message is None:
            return "eof", messages
        if not isinstance(message, dict) or message.get("type") not in wire.MESSAGE_TYPES:
            raise AssertionError("read_frame returned an unvalidated message: %r" % (message,))
        wire.normalize(message)
        messages += 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long even if fewer frames")
    options = parser.parse_args(argv)

    signal.signal(signal.SIGALRM, _on_alarm)
    master = random.Random(options.seed)
    ends = Counter()
    failures = []
    cases = frames = size = 0
    started = time.perf_counter()
    while frames < options.frames:
        if options.seconds is not None and time.perf_counter() - started > options.seconds:
            break
        seed = master.getrandbits(64)
        max_frame_bytes, count, stream, rng = generate_case(seed)
        cases += 1
        frames += count
        size += len(stream)
        signal.setitimer(signal.ITIMER_REAL, CASE_BOUND_S)
        try:
            end, _ = read_all(stream, max_frame_bytes, rng)
            ends[end] += 1
        except Hang:
            failures.append("seed %d: hang (over %.0f s)" % (seed, CASE_BOUND_S))
            ends["hang"] += 1
        except BaseException as exc:  # noqa: BLE001 - any other raise is exactly what we look for
            failures.append("seed %d: untyped %s: %s" % (seed, type(exc).__name__, exc))
            ends["untyped:" + type(exc).__name__] += 1
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    elapsed = time.perf_counter() - started
    print(
        "fuzz (python): seed %d, %d cases, %d frames, %d bytes in %.1f s: %.0f frames/s"
        % (options.seed, cases, frames, size, elapsed, frames / elapsed if elapsed else 0.0)
    )
    print("fuzz (python): how each case's stream ended:")
    for end, count in sorted(ends.items()):
        print("  %-18s %d" % (end, count))
    print("fuzz (python): %d failures" % len(failures))
    for failure in failures[:20]:
        print("  FAILED " + failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
