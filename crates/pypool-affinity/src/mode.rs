//! How strictly a session sticks to its bound worker.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the pool treats a session's bound worker when that worker is busy.
///
/// This is only the setting; the pool facade implements the behaviour.
/// Preferring a worker is only an optimisation (warm caches), never a
/// requirement: programs live centrally in the host, so any worker can run
/// any session's request.
///
/// Serialised in snake case; the hint's wait is in whole milliseconds:
///
/// ```
/// use std::time::Duration;
/// use pypool_affinity::AffinityMode;
///
/// let mode: AffinityMode = serde_json::from_str(r#"{"hint":{"wait_ms":20}}"#)?;
/// assert_eq!(mode, AffinityMode::Hint { wait: Duration::from_millis(20) });
/// assert_eq!(serde_json::to_string(&AffinityMode::StrictFailFast)?, r#""strict_fail_fast""#);
/// assert_eq!(AffinityMode::default(), AffinityMode::Hint { wait: Duration::from_millis(50) });
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AffinityMode {
    /// Prefer the bound worker; if it stays busy longer than `wait`, run the
    /// request on another worker (and rebind the session to it).
    Hint {
        /// How long to wait for the bound worker before using another one.
        #[serde(rename = "wait_ms", with = "duration_ms")]
        wait: Duration,
    },
    /// Always wait for the bound worker, however long it is busy.
    Strict,
    /// Fail at once with an error if the bound worker is busy.
    StrictFailFast,
}

impl AffinityMode {
    /// The wait of the default [`AffinityMode::Hint`]: 50 ms.
    pub const DEFAULT_HINT_WAIT: Duration = Duration::from_millis(50);
}

impl Default for AffinityMode {
    fn default() -> Self {
        Self::Hint {
            wait: Self::DEFAULT_HINT_WAIT,
        }
    }
}

/// Serialises a [`Duration`] as whole milliseconds (sub-millisecond parts are
/// dropped; durations beyond `u64::MAX` ms saturate).
mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        duration: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        serializer.serialize_u64(millis)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_round_trips_through_json() {
        let modes = [
            AffinityMode::Hint {
                wait: Duration::from_millis(1_500),
            },
            AffinityMode::Strict,
            AffinityMode::StrictFailFast,
        ];
        let expected = [
            r#"{"hint":{"wait_ms":1500}}"#,
            r#""strict""#,
            r#""strict_fail_fast""#,
        ];
        for (mode, json) in modes.into_iter().zip(expected) {
            assert_eq!(serde_json::to_string(&mode).unwrap(), json);
            assert_eq!(serde_json::from_str::<AffinityMode>(json).unwrap(), mode);
        }
    }

    #[test]
    fn rejects_unknown_modes_and_negative_waits() {
        assert!(serde_json::from_str::<AffinityMode>(r#""sticky""#).is_err());
        assert!(serde_json::from_str::<AffinityMode>(r#"{"hint":{"wait_ms":-1}}"#).is_err());
    }
}
