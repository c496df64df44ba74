"""pypool.apply_settings: the host replaces the worker's settings; handlers read them."""

import pytest

from harness import FIXTURES_DIR
from pypool_worker.settings_store import SettingsStore

LM = {"model": "openai/gpt-4o-mini", "api_base": "http://127.0.0.1:1/v1", "api_key_env": "SOME_KEY"}


@pytest.fixture
def worker(spawn):
    return spawn("--worker-id", "11", "--handlers", str(FIXTURES_DIR / "handlers_settings.py"))


def test_apply_settings_is_announced_as_idempotent(worker):
    announced = {c["name"]: c["idempotent"] for c in worker.handshake["commands"]}
    assert announced["pypool.apply_settings"] is True
    assert announced["pypool.run_program"] is False


def test_a_new_worker_has_empty_settings_at_version_0(worker):
    assert worker.ok("read_settings") == {"settings": {}, "version": 0}
    assert worker.ok("info")["settings_version"] == 0


def test_applied_settings_are_readable_by_handlers_and_reported_by_info(worker):
    assert worker.ok("pypool.apply_settings", version=3, settings={"lm": LM, "tone": "dry"}) == {
        "version": 3,
        "applied": True,
    }
    assert worker.ok("read_settings") == {"settings": {"lm": LM, "tone": "dry"}, "version": 3}
    assert worker.ok("info")["settings_version"] == 3


def test_a_newer_version_replaces_the_whole_map(worker):
    worker.ok("pypool.apply_settings", version=1, settings={"a": 1, "b": 2})
    worker.ok("pypool.apply_settings", version=2, settings={"b": 3})
    assert worker.ok("read_settings") == {"settings": {"b": 3}, "version": 2}


def test_an_older_version_is_ignored_and_the_reply_says_so(worker):
    worker.ok("pypool.apply_settings", version=5, settings={"current": True})
    assert worker.ok("pypool.apply_settings", version=4, settings={"stale": True}) == {"version": 5, "applied": False}
    assert worker.ok("read_settings") == {"settings": {"current": True}, "version": 5}


def test_reapplying_the_same_version_is_harmless(worker):
    for _ in range(2):
        assert worker.ok("pypool.apply_settings", version=7, settings={"x": 1}) == {"version": 7, "applied": True}
    assert worker.ok("read_settings")["settings"] == {"x": 1}


def test_handlers_get_a_copy_they_cannot_corrupt(worker):
    worker.ok("pypool.apply_settings", version=1, settings={"x": 1})
    assert worker.ok("mutate_settings") == {"changed_copy": {"x": 1, "injected": True}}
    assert worker.ok("read_settings")["settings"] == {"x": 1}


@pytest.mark.parametrize(
    "settings, path",
    [
        ({"lm": dict(LM, api_key="sk-secret")}, "settings.lm.api_key"),
        ({"other": {"deep": [{"api_key": "sk-secret"}]}}, "settings.other.deep[0].api_key"),
    ],
)
def test_an_api_key_anywhere_is_refused_and_nothing_changes(worker, settings, path):
    worker.ok("pypool.apply_settings", version=1, settings={"kept": True})
    error = worker.error("pypool.apply_settings", version=2, settings=settings)
    assert error["kind"] == "invalid_input"
    assert path in error["message"] and "api_key_env" in error["message"]
    assert "sk-secret" not in error["message"]
    assert worker.ok("read_settings") == {"settings": {"kept": True}, "version": 1}


@pytest.mark.parametrize(
    "args, named",
    [
        ({"version": -1, "settings": {}}, "version"),
        ({"version": "2", "settings": {}}, "version"),
        ({"version": True, "settings": {}}, "version"),
        ({"version": 1, "settings": []}, "settings"),
        ({"version": 1, "settings": {"lm": {"model": ""}}}, "settings.lm.model"),
        ({"version": 1}, "settings"),
    ],
)
def test_malformed_arguments_are_invalid_arguments(worker, args, named):
    error = worker.error("pypool.apply_settings", **args)
    assert error["kind"] == "invalid_arguments"
    assert named in error["message"]
    assert worker.ok("read_settings")["version"] == 0


def test_the_store_keeps_the_newest_version_and_returns_copies():
    store = SettingsStore()
    assert (store.version, store.snapshot()) == (0, {})
    original = {"lm": {"model": "m/x"}}
    assert store.apply(2, original) is True
    original["lm"]["model"] = "changed after apply"
    assert store.get("lm") == {"model": "m/x"}
    assert store.apply(1, {"old": True}) is False
    assert (store.version, store.snapshot()) == (2, {"lm": {"model": "m/x"}})
