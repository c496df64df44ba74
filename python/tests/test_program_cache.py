"""ProgramCache: a bounded LRU keyed by (program_id, version), one version per id."""

import pytest

from pypool_worker.programs import DEFAULT_CAPACITY, ProgramCache


def test_the_default_capacity_is_256():
    assert DEFAULT_CAPACITY == 256
    assert ProgramCache().capacity == 256


def test_get_returns_what_put_stored_and_none_otherwise():
    cache = ProgramCache(4)
    cache.put("p", "1", "program-p1")
    assert cache.get("p", "1") == "program-p1"
    assert cache.get("p", "2") is None
    assert cache.get("q", "1") is None
    assert len(cache) == 1


def test_storing_a_version_evicts_the_other_versions_of_that_id():
    cache = ProgramCache(4)
    cache.put("p", "1", "p1")
    cache.put("q", "1", "q1")
    cache.put("p", "2", "p2")
    assert cache.get("p", "1") is None
    assert cache.get("p", "2") == "p2"
    assert cache.versions("p") == ("2",)
    assert cache.get("q", "1") == "q1"
    assert len(cache) == 2


def test_the_least_recently_used_program_goes_first():
    cache = ProgramCache(2)
    cache.put("a", "1", "a")
    cache.put("b", "1", "b")
    assert cache.get("a", "1") == "a"  # now b is the least recently used
    cache.put("c", "1", "c")
    assert ("b", "1") not in cache
    assert cache.get("a", "1") == "a" and cache.get("c", "1") == "c"
    assert len(cache) == 2


def test_rebuilding_the_same_version_replaces_it():
    cache = ProgramCache(2)
    cache.put("a", "1", "old")
    cache.put("a", "1", "new")
    assert cache.get("a", "1") == "new"
    assert len(cache) == 1


def test_a_capacity_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        ProgramCache(0)
