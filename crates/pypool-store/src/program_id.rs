//! The validated id of a program.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use pypool_affinity::{IdError, validate_id};
use serde::{Deserialize, Serialize};

/// The id a user gives a program, validated with the same rules as session
/// ids ([`validate_id`]: 1 to 128 bytes of ASCII letters, digits and `_ - . :`).
///
/// Serialises as a plain string; deserialising validates it.
///
/// ```
/// use pypool_store::ProgramId;
///
/// let id: ProgramId = "qa.v2".parse()?;
/// assert_eq!(id.as_str(), "qa.v2");
/// assert_eq!(
///     ProgramId::new("").unwrap_err().to_string(),
///     "program id is empty; use 1 to 128 letters, digits or _ - . :"
/// );
/// # Ok::<(), pypool_affinity::IdError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProgramId(String);

impl ProgramId {
    /// The noun used in error messages about program ids.
    pub const KIND: &'static str = "program id";

    /// Validates `text` as a program id.
    pub fn new(text: impl Into<String>) -> Result<Self, IdError> {
        let text = text.into();
        validate_id(Self::KIND, &text)?;
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

impl fmt::Display for ProgramId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ProgramId {
    type Err = IdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::new(text)
    }
}

impl TryFrom<String> for ProgramId {
    type Error = IdError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::new(text)
    }
}

impl From<ProgramId> for String {
    fn from(id: ProgramId) -> Self {
        id.0
    }
}

impl AsRef<str> for ProgramId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for ProgramId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_the_shared_id_rules_with_its_own_name() {
        assert_eq!(
            ProgramId::new("a b").unwrap_err().to_string(),
            "program id `a b` is invalid: character ' ' at byte 1 is not allowed (use letters, digits, _ - . :)"
        );
        assert_eq!(
            ProgramId::new("p".repeat(129)).unwrap_err().to_string(),
            "program id is 129 bytes long, the maximum is 128"
        );
        assert_eq!(
            ProgramId::new("qa:v1.2_x-y").unwrap().to_string(),
            "qa:v1.2_x-y"
        );
    }

    #[test]
    fn serde_validates() {
        let id: ProgramId = serde_json::from_str("\"qa\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"qa\"");
        assert!(serde_json::from_str::<ProgramId>("\"q/a\"").is_err());
    }
}
