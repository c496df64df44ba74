//! One frame body (without its length prefix) to and from a [`Message`].

use serde::Deserialize;
use serde_json::Value;

use crate::{Message, WireError};

/// Decodes one frame body (the bytes after the length prefix) into a [`Message`].
///
/// The checks run in the order the Python worker runs them, so both sides
/// classify a bad body the same way:
///
/// 1. an empty body is [`WireError::ZeroLength`];
/// 2. bytes that are not UTF-8 are [`WireError::InvalidUtf8`];
/// 3. text that is not one JSON value is [`WireError::InvalidJson`];
/// 4. JSON that is not a message (not an object, an unknown or missing
///    `type`, a missing field, a negative id, `args` that is not an object, …)
///    is [`WireError::InvalidMessage`].
///
/// Unknown fields are ignored.
///
/// ```
/// use pypool_wire::{decode_body, Message};
///
/// let message = decode_body(br#"{"type":"request","id":1,"command":"ping"}"#)?;
/// assert!(matches!(message, Message::Request(request) if request.command == "ping"));
///
/// let error = decode_body(b"[1,2,3]").unwrap_err();
/// assert_eq!(error.class(), "invalid_message");
/// # Ok::<(), pypool_wire::WireError>(())
/// ```
pub fn decode_body(body: &[u8]) -> Result<Message, WireError> {
    if body.is_empty() {
        return Err(WireError::ZeroLength);
    }
    let text = std::str::from_utf8(body).map_err(|error| WireError::InvalidUtf8 {
        valid_up_to: error.valid_up_to(),
    })?;
    // Parsing to a `Value` first separates syntax from shape: deserialising
    // `Message` straight from text would report an unknown `type` before
    // noticing that the rest of the body is not even JSON.
    let value: Value = serde_json::from_str(text).map_err(|error| WireError::InvalidJson {
        detail: error.to_string(),
    })?;
    if !value.is_object() {
        return Err(WireError::InvalidMessage {
            detail: format!(
                "expected a JSON object with a \"type\" field, got {}",
                json_type(&value)
            ),
        });
    }
    Message::deserialize(value).map_err(|error| WireError::InvalidMessage {
        detail: error.to_string(),
    })
}

/// Serialises `message` as a compact JSON body (no length prefix, no size check).
pub(crate) fn encode_body(message: &Message) -> Result<Vec<u8>, WireError> {
    serde_json::to_vec(message).map_err(|error| WireError::InvalidMessage {
        detail: format!("cannot serialise message as JSON: {error}"),
    })
}

/// What kind of JSON value `value` is, for error messages ("null", "a
/// boolean", "a number", "a string", "an array", "an object"). The one
/// helper every pypool crate uses to say what it got instead.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
