"""ProgramCache: a bounded LRU keyed by (namespace, program_id, version), one version per id and namespace."""

import pytest

from pypool_worker.programs import DEFAULT_CAPACITY, ProgramCache


def test_the_default_capacity_is_256():
    assert DEFAULT_CAPACITY == 256
    assert ProgramCache().capacity == 256


def test_get_returns_what_put_stored_and_none_otherwise():
    cache = ProgramCache(4)
    cache.put("ns", "p", "1", "program-p1")
    assert cache.get("ns", "p", "1") == "program-p1"
    assert cache.get("ns", "p", "2") is None
    assert cache.get("ns", "q", "1") is None
    assert len(cache) == 1


def test_storing_a_version_evicts_the_other_versions_of_that_id():
    cache = ProgramCache(4)
    cache.put("ns", "p", "1", "p1")
    cache.put("ns", "q", "1", "q1")
    cache.put("ns", "p", "2", "p2")
    assert cache.get("ns", "p", "1") is None
    assert cache.get("ns", "p", "2") == "p2"
    assert cache.versions("ns", "p") == ("2",)
    assert cache.get("ns", "q", "1") == "q1"
    assert len(cache) == 2


def test_the_least_recently_used_program_goes_first():
    cache = ProgramCache(2)
    cache.put("ns", "a", "1", "a")
    cache.put("ns", "b", "1", "b")
    assert cache.get("ns", "a", "1") == "a"  # now b is the least recently used
    cache.put("ns", "c", "1", "c")
    assert ("ns", "b", "1") not in cache
    assert cache.get("ns", "a", "1") == "a" and cache.get("ns", "c", "1") == "c"
    assert len(cache) == 2


def test_rebuilding_the_same_version_replaces_it():
    cache = ProgramCache(2)
    cache.put("ns", "a", "1", "old")
    cache.put("ns", "a", "1", "new")
    assert cache.get("ns", "a", "1") == "new"
    assert len(cache) == 1


def test_a_capacity_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        ProgramCache(0)


def test_namespaces_are_separate_caches():
    cache = ProgramCache(4)
    cache.put("session:a", "p", "1", "a's program")
    assert cache.get("session:b", "p", "1") is None
    cache.put("session:b", "p", "1", "b's program")
    assert cache.get("session:a", "p", "1") == "a's program"
    assert cache.get("session:b", "p", "1") == "b's program"
    assert cache.versions("session:a", "p") == ("1",)
    assert len(cache) == 2
