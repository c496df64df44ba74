//! How a worker ended.

use std::fmt;

/// How a worker ended: an exit code, a signal, or neither known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct WorkerExit {
    /// The exit status, if the worker exited normally.
    pub code: Option<i32>,
    /// The signal that ended the worker, if one did.
    pub signal: Option<i32>,
}

impl WorkerExit {
    /// A normal exit with `code`.
    pub fn code(code: i32) -> Self {
        Self {
            code: Some(code),
            signal: None,
        }
    }

    /// Death by `signal`.
    pub fn signal(signal: i32) -> Self {
        Self {
            code: None,
            signal: Some(signal),
        }
    }

    /// Whether the worker exited with status 0.
    pub fn is_clean(&self) -> bool {
        self.code == Some(0)
    }
}

impl fmt::Display for WorkerExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (_, Some(signal)) => write!(f, "was killed by signal {signal}"),
            (Some(code), None) => write!(f, "exited with code {code}"),
            (None, None) => f.write_str("exited (status unknown)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_code_or_signal() {
        assert_eq!(WorkerExit::code(3).to_string(), "exited with code 3");
        assert_eq!(WorkerExit::signal(9).to_string(), "was killed by signal 9");
        assert!(WorkerExit::code(0).is_clean());
        assert!(!WorkerExit::signal(15).is_clean());
    }
}
