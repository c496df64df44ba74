//! Validated identifiers: [`SessionId`] and the shared [`validate_id`] rules.

/// The longest id accepted, in bytes.
pub const MAX_ID_BYTES: usize = 128;

/// Why a piece of text is not a valid id.
///
/// Every variant names what kind of id it was (`kind`, such as `"session id"`)
/// so the message tells the user which value to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The id is the empty string.
    #[error("{kind} is empty; use 1 to {MAX_ID_BYTES} letters, digits or _ - . :")]
    Empty {
        /// What the id names, e.g. `"session id"`.
        kind: &'static str,
    },
    /// The id is longer than [`MAX_ID_BYTES`].
    #[error("{kind} is {len} bytes long, the maximum is {MAX_ID_BYTES}")]
    TooLong {
        /// What the id names, e.g. `"session id"`.
        kind: &'static str,
        /// The id's length in bytes.
        len: usize,
    },
    /// The id contains a character outside the allowed set.
    #[error(
        "{kind} `{}` is invalid: character {character:?} at byte {byte} is not allowed (use letters, digits, _ - . :)",
        text.escape_debug()
    )]
    InvalidCharacter {
        /// What the id names, e.g. `"session id"`.
        kind: &'static str,
        /// The rejected id.
        text: String,
        /// The first character that is not allowed.
        character: char,
        /// The byte offset of that character in `text`.
        byte: usize,
    },
}

impl IdError {
    /// What the rejected id names, e.g. `"session id"` or `"program id"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Empty { kind }
            | Self::TooLong { kind, .. }
            | Self::InvalidCharacter { kind, .. } => kind,
        }
    }
}

/// Whether `character` may appear in an id: ASCII letters, digits and `_ - . :`.
pub fn is_id_character(character: char) -> bool {
    character.is_ascii_alphanumeric() || matches!(character, '_' | '-' | '.' | ':')
}

/// Checks `text` against the id rules shared by every pypool id: 1 to
/// [`MAX_ID_BYTES`] bytes of ASCII letters, digits and `_ - . :`.
///
/// `kind` is the full noun the error messages use, such as `"session id"`,
/// `"program id"` or `"session data key"`.
///
/// ```
/// use pypool_affinity::validate_id;
///
/// assert!(validate_id("program id", "summarise.v2").is_ok());
/// let error = validate_id("program id", "a b").unwrap_err();
/// assert_eq!(
///     error.to_string(),
///     "program id `a b` is invalid: character ' ' at byte 1 is not allowed (use letters, digits, _ - . :)"
/// );
/// ```
pub fn validate_id(kind: &'static str, text: &str) -> Result<(), IdError> {
    if text.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if text.len() > MAX_ID_BYTES {
        return Err(IdError::TooLong {
            kind,
            len: text.len(),
        });
    }
    match text.char_indices().find(|&(_, c)| !is_id_character(c)) {
        Some((byte, character)) => Err(IdError::InvalidCharacter {
            kind,
            text: text.to_owned(),
            character,
            byte,
        }),
        None => Ok(()),
    }
}

/// Defines a validated id newtype: a `String` checked by [`validate_id`] with
/// the given noun (`"session id"`, `"program id"`), serialised as a plain
/// string and validated when deserialised, with `new`, `as_str`,
/// `into_string`, `KIND`, `Display`, `FromStr`, `TryFrom<String>`,
/// `Into<String>`, `AsRef<str>` and `Borrow<str>`. One definition for every
/// id type, so their rules and behaviour cannot drift apart. The crate using
/// it must depend on `serde` (with `derive`).
#[macro_export]
macro_rules! validated_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            #[doc = concat!("The noun used in error messages: \"", $kind, "\".")]
            pub const KIND: &'static str = $kind;

            #[doc = concat!("Validates `text` as a ", $kind, ".")]
            pub fn new(text: impl Into<String>) -> Result<Self, $crate::IdError> {
                let text = text.into();
                $crate::validate_id(Self::KIND, &text)?;
                Ok(Self(text))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id as an owned string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::IdError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::new(text)
            }
        }

        impl ::std::convert::TryFrom<String> for $name {
            type Error = $crate::IdError;

            fn try_from(text: String) -> Result<Self, Self::Error> {
                Self::new(text)
            }
        }

        impl ::std::convert::From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl ::std::convert::AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl ::std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

validated_id!(
    /// The id of a client session, validated by [`validate_id`].
    ///
    /// Serialises as a plain string; deserialising validates it.
    SessionId,
    "session id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_allowed_character_class() {
        for text in ["a", "Z", "0", "_", "-", ".", ":", "user-42:chat_7.v1"] {
            assert_eq!(SessionId::new(text).unwrap().as_str(), text);
        }
        let longest = "x".repeat(MAX_ID_BYTES);
        assert_eq!(SessionId::new(longest.clone()).unwrap().as_str(), longest);
    }

    #[test]
    fn messages_tell_the_user_what_to_fix() {
        assert_eq!(
            SessionId::new("a b").unwrap_err().to_string(),
            "session id `a b` is invalid: character ' ' at byte 1 is not allowed (use letters, digits, _ - . :)"
        );
        assert_eq!(
            SessionId::new("").unwrap_err().to_string(),
            "session id is empty; use 1 to 128 letters, digits or _ - . :"
        );
        assert_eq!(
            SessionId::new("x".repeat(200)).unwrap_err().to_string(),
            "session id is 200 bytes long, the maximum is 128"
        );
    }

    #[test]
    fn reports_the_first_bad_character_and_its_byte_offset() {
        let error = SessionId::new("ab\u{e9}c/d").unwrap_err();
        assert_eq!(
            error,
            IdError::InvalidCharacter {
                kind: "session id",
                text: "ab\u{e9}c/d".to_owned(),
                character: '\u{e9}',
                byte: 2,
            }
        );
        let error = SessionId::new("abc\u{e9}/").unwrap_err();
        assert!(matches!(
            error,
            IdError::InvalidCharacter {
                character: '\u{e9}',
                byte: 3,
                ..
            }
        ));
        let error = SessionId::new("abcd/\u{e9}").unwrap_err();
        assert!(matches!(
            error,
            IdError::InvalidCharacter {
                character: '/',
                byte: 4,
                ..
            }
        ));
    }

    #[test]
    fn control_characters_are_escaped_in_the_message() {
        let message = SessionId::new("a\nb").unwrap_err().to_string();
        assert_eq!(
            message,
            "session id `a\\nb` is invalid: character '\\n' at byte 1 is not allowed (use letters, digits, _ - . :)"
        );
    }

    #[test]
    fn length_is_checked_in_bytes_before_characters() {
        let error = SessionId::new("\u{e9}".repeat(65)).unwrap_err();
        assert_eq!(
            error,
            IdError::TooLong {
                kind: "session id",
                len: 130
            }
        );
        assert_eq!(error.kind(), "session id");
    }

    #[test]
    fn serde_round_trips_and_validates() {
        let id = SessionId::new("chat:1").unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"chat:1\"");
        assert_eq!(serde_json::from_str::<SessionId>(&json).unwrap(), id);
        let error = serde_json::from_str::<SessionId>("\"a b\"").unwrap_err();
        assert!(
            error.to_string().contains("character ' ' at byte 1"),
            "{error}"
        );
        assert!(serde_json::from_str::<SessionId>("\"\"").is_err());
    }

    #[test]
    fn parses_and_displays_as_the_same_text() {
        let id: SessionId = "s-1".parse().unwrap();
        assert_eq!(id.to_string(), "s-1");
        assert_eq!(String::from(id.clone()), "s-1");
        assert_eq!(id.into_string(), "s-1");
        assert!("s 1".parse::<SessionId>().is_err());
    }

    #[test]
    fn validate_id_uses_the_given_kind() {
        assert_eq!(
            validate_id("program id", "").unwrap_err(),
            IdError::Empty { kind: "program id" }
        );
    }
}
