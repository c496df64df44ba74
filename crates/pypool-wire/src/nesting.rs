//! The nesting limit both sides agree on (see `docs/PROTOCOL.md`).

use serde_json::Value;

/// The deepest a request's `args` or a reply's `result` may be nested, in
/// levels of arrays and objects (`{}` and `[]` are 1, `{"a": [1]}` is 2; a
/// request's `args` object counts). The host refuses to send deeper
/// arguments and the worker answers `invalid_arguments`; a worker answers a
/// deeper result with `invalid_result`. Kept well below JSON decoders' own
/// limits (128 for `serde_json`, about 1,000 for Python's `json`), so a
/// whole message always decodes.
pub const MAX_NESTING_DEPTH: usize = 100;

/// How deeply `value` is nested: 0 for a scalar, 1 for a flat array or
/// object, one more for each level inside. Iterative: any depth is safe.
///
/// ```
/// use pypool_wire::nesting_depth;
/// use serde_json::json;
///
/// assert_eq!(nesting_depth(&json!(1)), 0);
/// assert_eq!(nesting_depth(&json!({"a": [1, {"b": []}]})), 4);
/// ```
pub fn nesting_depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 1_usize)];
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(fields) => Box::new(fields.values()),
            _ => continue,
        };
        deepest = deepest.max(depth);
        stack.extend(children.map(|child| (child, depth + 1)));
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(depth: usize) -> Value {
        let mut value = json!([]);
        for _ in 1..depth {
            value = json!([value]);
        }
        value
    }

    #[test]
    fn counts_levels_of_arrays_and_objects() {
        assert_eq!(nesting_depth(&json!("text")), 0);
        assert_eq!(nesting_depth(&json!({})), 1);
        assert_eq!(nesting_depth(&json!({"a": 1, "b": {"c": [[]]}})), 4);
        assert_eq!(nesting_depth(&nested(MAX_NESTING_DEPTH)), MAX_NESTING_DEPTH);
    }
}
