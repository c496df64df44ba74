"""The floor for any framed-pipe design: a minimal Python loop echoing frames.

Reads 4-byte big-endian length-prefixed frames on stdin and writes each one
back unchanged on stdout, flushing after each frame; exits at end of input.
``cargo xtask bench`` drives it from Rust (ping latency, and no-op throughput
with many frames in flight) as the baseline pypool's protocol is measured
against. Standard library only.
"""

import struct
import sys


def main() -> None:
    reader = sys.stdin.buffer
    writer = sys.stdout.buffer
    while True:
        header = reader.read(4)
        if len(header) < 4:
            return
        (length,) = struct.unpack(">I", header)
        writer.write(header + reader.read(length))
        writer.flush()


if __name__ == "__main__":
    main()
