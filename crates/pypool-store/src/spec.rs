//! Program definitions as users give them, and their validation.

use std::fmt;

use pypool_wire::json_type;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::StoreError;
use crate::version::{canonical_json, content_version};

/// What kind of program a definition describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgramKind {
    /// A Python callable, `{"callable": "package.module:function"}`.
    Python,
    /// A DSPy module built from a signature.
    Dspy,
}

impl ProgramKind {
    /// The kind's name as serialised: `python` or `dspy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Python => "python",
            Self::Dspy => "dspy",
        }
    }
}

impl fmt::Display for ProgramKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A program's definition, as the user gives it.
///
/// - `python`: `{"callable": "package.module:function"}` — a module path and
///   an attribute path, both dotted Python identifiers.
/// - `dspy`: `{"module": "Predict", "signature": "question: str -> answer: str",
///   "instructions": "...", "state": {...}, "lm": {"model": "...", "api_base":
///   "...", "api_key_env": "OPENAI_API_KEY"}}` — `module` and `signature` are
///   required; `instructions` (a string), `state` (an object) and `lm` (an
///   object with a `model` string) are optional.
///
/// Other keys are kept as given. No definition may hold an API key: a key
/// named `api_key`, or ending in `_key` (case-insensitive, `-` counted as
/// `_`), at any depth, is rejected; the definition names the environment
/// variable that holds the key with `api_key_env` instead.
///
/// ```
/// use pypool_store::{ProgramKind, ProgramSpec};
/// use serde_json::json;
///
/// let spec = ProgramSpec::new(ProgramKind::Dspy, json!({
///     "module": "Predict",
///     "signature": "question: str -> answer: str",
///     "lm": {"model": "gpt-4o-mini", "api_key_env": "OPENAI_API_KEY"},
/// }));
/// assert!(spec.validate().is_ok());
///
/// let leaky = ProgramSpec::new(ProgramKind::Dspy, json!({
///     "module": "Predict",
///     "signature": "question -> answer",
///     "lm": {"model": "gpt-4o-mini", "api_key": "sk-..."},
/// }));
/// assert_eq!(
///     leaky.validate().unwrap_err().to_string(),
///     "API keys must not be stored in program definitions (found key `lm.api_key`); \
///      name the environment variable with `api_key_env`"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgramSpec {
    /// What kind of program this is.
    pub kind: ProgramKind,
    /// The kind-specific definition (a JSON object).
    pub spec: Value,
}

impl ProgramSpec {
    /// A definition of `kind`; call [`validate`](Self::validate) (the stores
    /// do) before relying on it.
    pub fn new(kind: ProgramKind, spec: Value) -> Self {
        Self { kind, spec }
    }

    /// A Python program running `callable` (`"package.module:function"`).
    pub fn python(callable: impl Into<String>) -> Self {
        Self::new(ProgramKind::Python, json!({ "callable": callable.into() }))
    }

    /// Checks the definition: no API keys anywhere, then the kind's rules.
    pub fn validate(&self) -> Result<(), StoreError> {
        reject_api_keys(&self.spec, &mut String::new())?;
        let Value::Object(fields) = &self.spec else {
            return Err(self.invalid(format!(
                "the definition must be a JSON object, got {}",
                json_type(&self.spec)
            )));
        };
        let problem = match self.kind {
            ProgramKind::Python => python_problem(fields),
            ProgramKind::Dspy => dspy_problem(fields),
        };
        match problem {
            Some(problem) => Err(self.invalid(problem)),
            None => Ok(()),
        }
    }

    /// The definition (kind and spec) as canonical JSON: compact, with the
    /// keys of every object sorted.
    pub fn canonical_json(&self) -> String {
        canonical_json(&self.as_json())
    }

    /// The content version: 16 hex digits of the FNV-1a hash of
    /// [`canonical_json`](Self::canonical_json). Equal definitions have equal
    /// versions in every process; any change gives a new version (barring a
    /// 64-bit hash collision).
    pub fn version(&self) -> String {
        content_version(&self.as_json())
    }

    fn as_json(&self) -> Value {
        json!({ "kind": self.kind.as_str(), "spec": self.spec })
    }

    fn invalid(&self, problem: String) -> StoreError {
        StoreError::InvalidSpec {
            kind: self.kind,
            problem,
        }
    }
}

/// Whether `key` names an API key: `api_key`, or anything ending in `_key`
/// other than `api_key_env` (case-insensitive; `-` counts as `_`).
pub fn is_api_key_name(key: &str) -> bool {
    let key = key.to_ascii_lowercase().replace('-', "_");
    key == "api_key" || (key.ends_with("_key") && key != "api_key_env")
}

fn reject_api_keys(value: &Value, path: &mut String) -> Result<(), StoreError> {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                if is_api_key_name(key) {
                    return Err(StoreError::ApiKeyInDefinition { path: path.clone() });
                }
                reject_api_keys(field, path)?;
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{index}]"));
                reject_api_keys(item, path)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

fn python_problem(fields: &Map<String, Value>) -> Option<String> {
    const FORM: &str = "write it as \"package.module:function\"";
    let callable = match fields.get("callable") {
        None => return Some(format!("`callable` is missing; {FORM}")),
        Some(Value::String(callable)) => callable,
        Some(other) => {
            return Some(format!(
                "`callable` must be a string, got {}; {FORM}",
                json_type(other)
            ));
        }
    };
    let Some((module, attribute)) = callable.split_once(':') else {
        return Some(format!("`callable` \"{callable}\" has no `:`; {FORM}"));
    };
    if module.is_empty() {
        return Some(format!(
            "`callable` \"{callable}\" has no module path before `:`; {FORM}"
        ));
    }
    if attribute.is_empty() {
        return Some(format!(
            "`callable` \"{callable}\" has no function after `:`; {FORM}"
        ));
    }
    for name in [module, attribute] {
        if let Some(part) = name.split('.').find(|part| !is_python_identifier(part)) {
            return Some(format!(
                "`callable` \"{callable}\" is not of the form package.module:function: \"{part}\" is not a Python identifier"
            ));
        }
    }
    None
}

fn dspy_problem(fields: &Map<String, Value>) -> Option<String> {
    for name in ["module", "signature"] {
        match fields.get(name) {
            None => return Some(format!("`{name}` is missing")),
            Some(Value::String(text)) if text.trim().is_empty() => {
                return Some(format!("`{name}` is empty"));
            }
            Some(Value::String(_)) => {}
            Some(other) => {
                return Some(format!(
                    "`{name}` must be a string, got {}",
                    json_type(other)
                ));
            }
        }
    }
    if let Some(Value::String(signature)) = fields.get("signature") {
        match signature.split_once("->") {
            None => {
                return Some(format!(
                    "`signature` \"{signature}\" has no `->`; write it as \"inputs -> outputs\", e.g. \"question: str -> answer: str\""
                ));
            }
            Some((_, outputs)) if outputs.trim().is_empty() => {
                return Some(format!(
                    "`signature` \"{signature}\" names no output after `->`"
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(instructions) = fields
        .get("instructions")
        .filter(|value| !value.is_string())
    {
        return Some(format!(
            "`instructions` must be a string, got {}",
            json_type(instructions)
        ));
    }
    if let Some(state) = fields.get("state").filter(|value| !value.is_object()) {
        return Some(format!(
            "`state` must be an object, got {}",
            json_type(state)
        ));
    }
    match fields.get("lm") {
        None => None,
        Some(Value::Object(lm)) => match lm.get("model") {
            Some(Value::String(model)) if !model.trim().is_empty() => None,
            Some(Value::String(_)) => Some("`lm.model` is empty".to_owned()),
            None => Some(
                "`lm.model` is missing; name the model, e.g. \"openai/gpt-4o-mini\"".to_owned(),
            ),
            Some(other) => Some(format!(
                "`lm.model` must be a string, got {}",
                json_type(other)
            )),
        },
        Some(other) => Some(format!("`lm` must be an object, got {}", json_type(other))),
    }
}

fn is_python_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) if first == '_' || first.is_alphabetic() => {
            chars.all(|c| c == '_' || c.is_alphanumeric())
        }
        _ => false,
    }
}
