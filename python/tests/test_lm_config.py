"""Where a dspy program's LM configuration comes from, and what is refused."""

import pytest

from pypool_worker.errors import CommandError
from pypool_worker.programs import lm_config

ENV = {"PYPOOL_LM_MODEL": "openai/from-env", "PYPOOL_LM_API_BASE": "http://env/v1", "PYPOOL_LM_API_KEY_ENV": "ENV_KEY"}


def test_the_definition_wins_over_settings_and_environment():
    config, source = lm_config.resolve({"model": "openai/from-definition"}, {"model": "openai/from-settings"}, ENV)
    assert (config["model"], source) == ("openai/from-definition", "definition.spec.lm")


def test_settings_win_over_the_environment():
    config, source = lm_config.resolve(None, {"model": "openai/from-settings", "temperature": 0.2}, ENV)
    assert (config["model"], config["temperature"], source) == ("openai/from-settings", 0.2, "settings.lm")


def test_the_environment_is_the_last_resort():
    config, source = lm_config.resolve(None, None, ENV)
    assert source == "environment"
    assert config == {
        "model": "openai/from-env",
        "api_base": "http://env/v1",
        "api_key_env": "ENV_KEY",
        "cache": False,
        "num_retries": 0,
    }


def test_defaults_are_no_cache_and_no_retries_unless_given():
    config, _ = lm_config.resolve({"model": "m/x"}, None, {})
    assert (config["cache"], config["num_retries"]) == (False, 0)
    config, _ = lm_config.resolve({"model": "m/x", "cache": True, "num_retries": 2}, None, {})
    assert (config["cache"], config["num_retries"]) == (True, 2)


def test_no_configuration_anywhere_is_an_lm_config_error():
    with pytest.raises(lm_config.LMConfigError, match="PYPOOL_LM_MODEL"):
        lm_config.resolve(None, None, {})


@pytest.mark.parametrize("where", ["definition", "settings"])
def test_an_api_key_field_is_refused_as_invalid_input(where):
    config = {"model": "openai/x", "api_key": "sk-secret"}
    args = (config, None) if where == "definition" else (None, config)
    with pytest.raises(CommandError) as caught:
        lm_config.resolve(*args, environ={})
    assert caught.value.kind == "invalid_input"
    assert "api_key" in caught.value.message and "api_key_env" in caught.value.message
    assert "sk-secret" not in caught.value.message


@pytest.mark.parametrize(
    "config, named",
    [
        ({}, "model"),
        ({"model": ""}, "model"),
        ({"model": "m/x", "temperature": "hot"}, "temperature"),
        ({"model": "m/x", "max_tokens": 0}, "max_tokens"),
        ({"model": "m/x", "cache": "yes"}, "cache"),
        ({"model": "m/x", "num_retries": True}, "num_retries"),
        ({"model": "m/x", "api_key_env": "NOT A NAME"}, "api_key_env"),
        ({"model": "m/x", "modle": "typo"}, "modle"),
    ],
)
def test_a_malformed_configuration_is_invalid_arguments_naming_the_key(config, named):
    with pytest.raises(CommandError) as caught:
        lm_config.check(config, "settings.lm")
    assert caught.value.kind == "invalid_arguments"
    assert named in caught.value.message


def test_the_key_is_read_from_the_named_variable():
    assert lm_config.api_key({"api_key_env": "MY_KEY"}, {"MY_KEY": "sk-123"}) == "sk-123"
    assert lm_config.api_key({}, {"MY_KEY": "sk-123"}) is None


def test_a_named_but_unset_key_variable_is_an_lm_config_error_naming_it():
    with pytest.raises(lm_config.LMConfigError, match="MY_KEY"):
        lm_config.api_key({"api_key_env": "MY_KEY"}, {})
