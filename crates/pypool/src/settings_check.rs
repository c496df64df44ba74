//! Checking worker-wide settings before the pool accepts them, with the
//! rules the Python runtime applies (`pypool.apply_settings`): no `api_key`
//! anywhere, and an `lm` that names a model. Settings a worker would refuse
//! would otherwise fail every later request on every worker.

use serde_json::{Map, Value};

/// Keys an `lm` configuration may hold (the runtime's `lm_config._KEYS`).
const LM_KEYS: [&str; 7] = [
    "model",
    "api_base",
    "api_key_env",
    "temperature",
    "max_tokens",
    "cache",
    "num_retries",
];

/// Field names refused anywhere in the settings (secrets travel by the
/// name of an environment variable, never by value).
const REFUSED_KEYS: [&str; 1] = ["api_key"];

/// Why `settings` would be refused by a worker, or `None`.
pub(crate) fn problem(settings: &Map<String, Value>) -> Option<String> {
    if let Some(path) = secret(&Value::Object(settings.clone()), "settings") {
        return Some(format!(
            "refusing {path}: API keys must not be sent in settings; put the key in an environment variable of the worker and name that variable with 'api_key_env'"
        ));
    }
    match settings.get("lm") {
        None | Some(Value::Null) => None,
        Some(lm) => lm_problem(lm, "settings.lm"),
    }
}

fn secret(value: &Value, path: &str) -> Option<String> {
    match value {
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            let here = format!("{path}.{key}");
            if REFUSED_KEYS.contains(&key.as_str()) {
                Some(here)
            } else {
                secret(item, &here)
            }
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, item)| secret(item, &format!("{path}[{index}]"))),
        _ => None,
    }
}

fn lm_problem(lm: &Value, where_: &str) -> Option<String> {
    let Value::Object(config) = lm else {
        return Some(format!(
            "{where_} must be an object, got {}",
            pypool_wire::json_type(lm)
        ));
    };
    let unknown: Vec<&str> = config
        .keys()
        .map(String::as_str)
        .filter(|key| !LM_KEYS.contains(key))
        .collect();
    if !unknown.is_empty() {
        return Some(format!(
            "{where_}: unknown key(s) {} (allowed: {})",
            unknown.join(", "),
            LM_KEYS.join(", ")
        ));
    }
    match config.get("model") {
        Some(Value::String(model)) if !model.trim().is_empty() => {}
        other => {
            return Some(format!(
                "{where_}.model must be a non-empty dspy.LM model string such as 'openai/gpt-4o-mini', got {}",
                other.map_or_else(|| "nothing".to_owned(), ToString::to_string)
            ));
        }
    }
    let field = |name: &str| config.get(name).filter(|value| !value.is_null());
    for name in ["api_base", "api_key_env"] {
        if let Some(value) = field(name) {
            if !value.is_string() {
                return Some(format!("{where_}.{name} must be a string, got {value}"));
            }
        }
    }
    if let Some(Value::String(name)) = field("api_key_env") {
        let mut chars = name.chars();
        let valid = chars
            .next()
            .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Some(format!(
                "{where_}.api_key_env must name an environment variable, got {name:?}"
            ));
        }
    }
    if let Some(value) = field("temperature") {
        if !value.as_f64().is_some_and(|t| t >= 0.0) {
            return Some(format!(
                "{where_}.temperature must be a number, not negative, got {value}"
            ));
        }
    }
    for (name, minimum) in [("max_tokens", 1), ("num_retries", 0)] {
        if let Some(value) = field(name) {
            if value.as_i64().is_none_or(|n| n < minimum) {
                return Some(format!(
                    "{where_}.{name} must be an integer of at least {minimum}, got {value}"
                ));
            }
        }
    }
    if let Some(value) = field("cache") {
        if !value.is_boolean() {
            return Some(format!("{where_}.cache must be a boolean, got {value}"));
        }
    }
    None
}
