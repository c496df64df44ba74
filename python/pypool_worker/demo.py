"""Example handlers doing real (small) work, bundled with the runtime.

Load with ``--handlers pypool_worker.demo``; ``pypool stress`` uses them as
its default workload. Standard library only.

Commands (all idempotent: same input, same output, no side effects):
  demo.word_stats(text, top=3)   -> {"words", "unique", "top": [[word, count], ...]}
  demo.primes(limit)             -> {"count", "largest"}  (sieve of Eratosthenes, limit <= 1,000,000)
  demo.digest(data, rounds=1)    -> {"sha256", "rounds"}   (rounds <= 10,000)

Program callable (for ``python`` programs):
  pypool_worker.demo:summarize(text, max_words=12) -> {"summary", "words", "truncated"}
"""

import hashlib
import re
from collections import Counter
from typing import Any, Dict

from .registry import command

_WORD = re.compile(r"[A-Za-z0-9']+")

#: The largest ``limit`` ``demo.primes`` accepts (keeps one call in milliseconds).
MAX_PRIME_LIMIT = 1_000_000
#: The most ``rounds`` ``demo.digest`` accepts.
MAX_DIGEST_ROUNDS = 10_000


def _words(text: Any) -> list:
    if not isinstance(text, str):
        raise TypeError("text must be a string, got %s" % type(text).__name__)
    return _WORD.findall(text.lower())


@command("demo.word_stats", idempotent=True)
def word_stats(text: str, top: int = 3) -> Dict[str, Any]:
    """Counts the words of ``text`` and returns the ``top`` most common ones."""
    words = _words(text)
    counts = Counter(words)
    most = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[: max(0, int(top))]
    return {"words": len(words), "unique": len(counts), "top": [[w, n] for w, n in most]}


@command("demo.primes", idempotent=True)
def primes(limit: int) -> Dict[str, Any]:
    """Counts the primes below ``limit`` with a sieve."""
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise ValueError("limit must be a non-negative integer, got %r" % (limit,))
    if limit > MAX_PRIME_LIMIT:
        raise ValueError("limit must be at most %d, got %d" % (MAX_PRIME_LIMIT, limit))
    if limit < 3:
        return {"count": 0, "largest": None}
    sieve = bytearray([1]) * limit
    sieve[0] = sieve[1] = 0
    for n in range(2, int(limit**0.5) + 1):
        if sieve[n]:
            sieve[n * n :: n] = bytearray(len(range(n * n, limit, n)))
    count = sum(sieve)
    largest = limit - 1 - sieve[::-1].index(1)
    return {"count": count, "largest": largest}


@command("demo.digest", idempotent=True)
def digest(data: str, rounds: int = 1) -> Dict[str, Any]:
    """SHA-256 of ``data``, re-hashed ``rounds`` times."""
    if not isinstance(rounds, int) or isinstance(rounds, bool) or not 1 <= rounds <= MAX_DIGEST_ROUNDS:
        raise ValueError("rounds must be an integer from 1 to %d, got %r" % (MAX_DIGEST_ROUNDS, rounds))
    value = str(data).encode("utf-8")
    for _ in range(rounds):
        value = hashlib.sha256(value).digest()
    return {"sha256": value.hex(), "rounds": rounds}


def summarize(text: str, max_words: int = 12) -> Dict[str, Any]:
    """A program callable: the first ``max_words`` words of ``text``."""
    words = str(text).split()
    kept = words[: max(1, int(max_words))]
    return {"summary": " ".join(kept), "words": len(words), "truncated": len(words) > len(kept)}
