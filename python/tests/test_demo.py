"""The bundled demo handlers (``pypool_worker.demo``), used by ``pypool stress``."""

import hashlib

import pytest

from pypool_worker import demo
from pypool_worker.registry import registry


def test_the_demo_commands_are_registered_as_idempotent():
    for name in ("demo.word_stats", "demo.primes", "demo.digest"):
        found = registry.get(name)
        assert found is not None, name
        assert found.idempotent


def test_word_stats_counts_words_case_insensitively_and_ranks_ties_by_word():
    result = demo.word_stats("The cat, the dog; a CAT and the end", top=2)
    assert result == {"words": 9, "unique": 6, "top": [["the", 3], ["cat", 2]]}
    assert demo.word_stats("", top=3) == {"words": 0, "unique": 0, "top": []}
    with pytest.raises(TypeError, match="text must be a string"):
        demo.word_stats(42)


@pytest.mark.parametrize(
    "limit, count, largest",
    [(0, 0, None), (2, 0, None), (3, 1, 2), (10, 4, 7), (100, 25, 97), (1000, 168, 997), (1_000_000, 78498, 999983)],
)
def test_primes_below_a_limit(limit, count, largest):
    assert demo.primes(limit) == {"count": count, "largest": largest}


@pytest.mark.parametrize("limit", [-1, 1.5, True, "10", demo.MAX_PRIME_LIMIT + 1])
def test_primes_rejects_a_bad_limit(limit):
    with pytest.raises(ValueError, match="limit must be"):
        demo.primes(limit)


def test_digest_rehashes_the_given_number_of_rounds():
    once = hashlib.sha256(b"pypool").digest()
    twice = hashlib.sha256(once).hexdigest()
    assert demo.digest("pypool") == {"sha256": once.hex(), "rounds": 1}
    assert demo.digest("pypool", rounds=2) == {"sha256": twice, "rounds": 2}
    for rounds in (0, demo.MAX_DIGEST_ROUNDS + 1, "3"):
        with pytest.raises(ValueError, match="rounds must be"):
            demo.digest("x", rounds=rounds)


def test_summarize_keeps_the_first_words_and_says_whether_it_cut():
    assert demo.summarize("a b c d", max_words=2) == {"summary": "a b", "words": 4, "truncated": True}
    assert demo.summarize("a b", max_words=5) == {"summary": "a b", "words": 2, "truncated": False}
