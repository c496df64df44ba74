//! The validated id of a program.

pypool_affinity::validated_id!(
    /// The id a user gives a program, validated with the same rules as session
    /// ids (`pypool_affinity::validate_id`: 1 to 128 bytes of ASCII letters, digits and `_ - . :`).
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
    ProgramId,
    "program id"
);

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
