"""The command registry and the @command decorator."""

import pytest

import pypool_worker
from pypool_worker import Registry, registry as default_registry
from pypool_worker.registry import DuplicateCommand


def test_decorator_forms_register_names_and_idempotency():
    reg = Registry()

    @reg.command
    def bare():
        return 1

    @reg.command()
    def empty_call():
        return 2

    @reg.command("renamed", idempotent=True)
    def original_name():
        return 3

    @reg.command(idempotent=True)
    def keyword_only():
        return 4

    assert reg.describe() == [
        {"name": "bare", "idempotent": False, "concurrency": "serial"},
        {"name": "empty_call", "idempotent": False, "concurrency": "serial"},
        {"name": "renamed", "idempotent": True, "concurrency": "serial"},
        {"name": "keyword_only", "idempotent": True, "concurrency": "serial"},
    ]
    # The decorator hands the function back unchanged.
    assert original_name() == 3
    assert reg.get("renamed").handler is original_name
    assert reg.get("original_name") is None


def test_explicit_registries_do_not_touch_the_default_one():
    before = default_registry.names()
    reg = Registry()
    reg.add("private_only", lambda: None)
    assert default_registry.names() == before
    assert "private_only" in reg and "private_only" not in default_registry


def test_module_level_decorator_uses_the_default_registry():
    name = "test_registry_default_probe"
    assert name not in default_registry

    @pypool_worker.command(name)
    def probe():
        return "ok"

    try:
        assert default_registry.get(name).handler is probe
    finally:
        default_registry._commands.pop(name)


def test_duplicate_names_are_refused_naming_the_first_owner():
    reg = Registry()

    @reg.command("twice")
    def first():
        return 1

    with pytest.raises(DuplicateCommand, match="twice.*first"):
        reg.add("twice", lambda: 2)


@pytest.mark.parametrize("name", ["", None, 5])
def test_names_must_be_non_empty_strings(name):
    with pytest.raises(ValueError):
        Registry().add(name, lambda: None)


def test_handlers_must_be_callable():
    with pytest.raises(TypeError):
        Registry().add("x", 42)


def test_argument_check_names_missing_and_unexpected_parameters():
    reg = Registry()

    @reg.command
    def add(a, b, scale=1):
        return (a + b) * scale

    command = reg.get("add")
    command.check_arguments({"a": 1, "b": 2})
    command.check_arguments({"a": 1, "b": 2, "scale": 3})
    with pytest.raises(TypeError, match="'b'"):
        command.check_arguments({"a": 1})
    with pytest.raises(TypeError, match="'c'"):
        command.check_arguments({"a": 1, "b": 2, "c": 3})


@pytest.mark.parametrize(
    "args",
    [{}, {"a": 1}, {"b": 1}, {"a": 1, "b": 2}, {"a": 1, "b": 2, "scale": 3}, {"a": 1, "c": 3}, {"c": 1}],
)
def test_the_fast_argument_check_agrees_with_signature_bind(args):
    reg = Registry()

    @reg.command
    def add(a, b, *, scale=1):
        return (a + b) * scale

    @reg.command
    def positional_only(a, b=2, /):
        return a

    for name, handler in (("add", add), ("positional_only", positional_only)):
        import inspect

        try:
            inspect.signature(handler).bind(**args)
            expected = None
        except TypeError as exc:
            expected = str(exc)
        command = reg.get(name)
        if expected is None:
            command.check_arguments(args)
        else:
            with pytest.raises(TypeError) as caught:
                command.check_arguments(args)
            assert str(caught.value) == expected


def test_var_keyword_handlers_accept_anything():
    reg = Registry()
    reg.add("echo", lambda **kwargs: kwargs)
    reg.get("echo").check_arguments({"anything": 1, "goes": 2})


def test_the_decorator_takes_the_concurrency_and_async_def_defaults_to_async():
    from pypool_worker.registry import Registry

    reg = Registry()

    @reg.command
    def plain():
        return 1

    @reg.command(concurrency="threads")
    def pooled():
        return 2

    @reg.command
    async def coroutine():
        return 3

    @reg.command(concurrency="serial")
    async def one_at_a_time():
        return 4

    modes = {c["name"]: c["concurrency"] for c in reg.describe()}
    assert modes == {"plain": "serial", "pooled": "threads", "coroutine": "async", "one_at_a_time": "serial"}


@pytest.mark.parametrize("concurrency, complaint", [("async", "async def"), ("parallel", "must be one of")])
def test_an_impossible_concurrency_is_refused_at_registration(concurrency, complaint):
    from pypool_worker.registry import Registry

    reg = Registry()
    with pytest.raises(ValueError, match=complaint):

        @reg.command(concurrency=concurrency)
        def plain():
            return 1

    assert "plain" not in reg
