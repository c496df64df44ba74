//! Content versions: a stable hash of a program's canonical JSON.
//!
//! The version must be the same in every process, on every host and after
//! every compiler upgrade, because workers cache programs by (id, version)
//! and a Redis-backed store shared by several hosts will compare versions
//! computed by different binaries. `std`'s `DefaultHasher` promises none of
//! that (its algorithm may change between Rust releases, and `RandomState`
//! is seeded per process), so the hash is 64-bit FNV-1a, written out here: a
//! fixed, published algorithm with published test vectors.

use serde_json::{Map, Value};

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The 64-bit FNV-1a hash of `bytes`.
///
/// ```
/// use pypool_store::fnv1a_64;
///
/// assert_eq!(fnv1a_64(b""), 0xcbf29ce484222325);
/// assert_eq!(fnv1a_64(b"a"), 0xaf63dc4c8601ec8c);
/// ```
pub fn fnv1a_64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET_BASIS, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
    })
}

/// `value` as compact JSON with the keys of every object in sorted order, so
/// that equal values always give the same text whatever order their keys
/// were written in (and whether or not serde_json's `preserve_order` feature
/// is enabled somewhere in the build).
pub fn canonical_json(value: &Value) -> String {
    sorted(value).to_string()
}

fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(fields) => {
            let mut keys: Vec<&String> = fields.keys().collect();
            keys.sort();
            let mut ordered = Map::new();
            for key in keys {
                if let Some(field) = fields.get(key) {
                    ordered.insert(key.clone(), sorted(field));
                }
            }
            Value::Object(ordered)
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// The content version of `value`: the FNV-1a hash of its canonical JSON as
/// 16 lower-case hex digits.
pub fn content_version(value: &Value) -> String {
    format!("{:016x}", fnv1a_64(canonical_json(value).as_bytes()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"z":[{"y":1,"x":2}],"c":null}}"#).unwrap();
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":null,"z":[{"x":2,"y":1}]},"b":1}"#
        );
    }

    #[test]
    fn versions_differ_for_different_values_and_keep_array_order() {
        assert_ne!(
            content_version(&json!([1, 2])),
            content_version(&json!([2, 1]))
        );
        assert_ne!(
            content_version(&json!({"a": 1})),
            content_version(&json!({"a": "1"}))
        );
        assert_eq!(content_version(&json!({"a": 1})).len(), 16);
    }
}
