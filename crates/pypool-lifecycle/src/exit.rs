//! How a worker process ended, as far as the lifecycle needs to know.

use std::fmt;

/// How a worker process ended: an exit code, a signal, or neither known.
///
/// The lifecycle's own copy of the seam's exit type, so this crate stays
/// independent of the seam.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ExitInfo {
    /// The exit status, if the process exited normally.
    pub code: Option<i32>,
    /// The signal that ended the process, if one did.
    pub signal: Option<i32>,
}

impl ExitInfo {
    /// An exit nothing is known about (for example a spawn that failed after
    /// the worker was already told to shut down).
    pub const UNKNOWN: ExitInfo = ExitInfo {
        code: None,
        signal: None,
    };

    /// A normal exit with `code`.
    pub const fn code(code: i32) -> Self {
        Self {
            code: Some(code),
            signal: None,
        }
    }

    /// Death by `signal`.
    pub const fn signal(signal: i32) -> Self {
        Self {
            code: None,
            signal: Some(signal),
        }
    }
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (_, Some(signal)) => write!(f, "was killed by signal {signal}"),
            (Some(code), None) => write!(f, "exited with code {code}"),
            (None, None) => f.write_str("exited (status unknown)"),
        }
    }
}
