//! `Pool::configure` checks the settings before it accepts them: an invalid
//! `lm` (or a secret) is refused with an error naming the field, and the
//! settings in force — and every later request — are untouched.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use pypool::PoolError;
use serde_json::{Map, Value, json};
use support::fake_runtime::APPLY_SETTINGS;
use support::{fake_pool, occupy};

fn settings(value: Value) -> Map<String, Value> {
    let Value::Object(map) = value else {
        panic!("settings must be an object");
    };
    map
}

#[tokio::test(start_paused = true)]
async fn an_invalid_lm_is_refused_and_the_settings_in_force_stay() {
    let (pool, _spawns, runtime) = fake_pool(2).await;
    let good = settings(json!({"lm": {"model": "openai/gpt-4o-mini"}}));
    assert_eq!(pool.configure(good.clone()).unwrap(), 1);

    for (bad, names) in [
        (json!({"lm": {"model": ""}}), "settings.lm.model"),
        (json!({"lm": {"temperature": 0.1}}), "settings.lm.model"),
        (json!({"lm": "gpt-4o"}), "settings.lm"),
        (json!({"lm": {"model": "m", "colour": "red"}}), "colour"),
        (
            json!({"lm": {"model": "m", "max_tokens": 0}}),
            "settings.lm.max_tokens",
        ),
        (
            json!({"lm": {"model": "m", "api_key": "sk-1"}}),
            "settings.lm.api_key",
        ),
        (
            json!({"nested": [{"api_key": "sk-1"}]}),
            "settings.nested[0].api_key",
        ),
    ] {
        let error = pool.configure(settings(bad.clone())).unwrap_err();
        assert!(
            matches!(error, PoolError::InvalidSettings { .. }),
            "{bad}: {error:?}"
        );
        assert_eq!(error.kind(), "invalid_settings");
        assert!(error.to_string().contains(names), "{bad}: {error}");
        assert_eq!(pool.settings(), (1, good.clone()), "{bad} changed nothing");
    }

    // Requests still run under the good settings.
    occupy(&pool, &runtime, 2).await.release(&runtime).await;
    for worker in runtime.workers() {
        assert_eq!(runtime.commands(worker), [APPLY_SETTINGS, "occupy"]);
        assert_eq!(runtime.settings(worker), Some((1, good.clone())));
    }
}
