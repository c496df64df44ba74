//! Running test commands while totalling what they report, so `cargo xtask
//! test` can close with one line counting every suite.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

/// Passed and failed tests summed over every suite run so far.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Tally {
    pub(crate) passed: u64,
    pub(crate) failed: u64,
}

impl Tally {
    /// Runs `command`, echoing its standard output line by line and adding up
    /// the counts in cargo's `test result:` lines and pytest's summary line.
    pub(crate) fn run(&mut self, command: &mut Command) -> Result<(), String> {
        eprintln!("xtask: running {command:?}");
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|error| format!("could not start {command:?}: {error}"))?;
        if let Some(stdout) = child.stdout.take() {
            let mut out = std::io::stdout().lock();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = writeln!(out, "{line}");
                self.add_line(&line);
            }
        }
        let status = child
            .wait()
            .map_err(|error| format!("could not wait for {command:?}: {error}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("{command:?} failed with {status}"))
        }
    }

    fn add_line(&mut self, line: &str) {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("test result: ") {
            // cargo: "test result: ok. 12 passed; 0 failed; 0 ignored; ..."
            self.passed += count_before(rest, " passed");
            self.failed += count_before(rest, " failed");
        } else if line.contains(" passed") && line.contains(" in ") && !line.contains(';') {
            // pytest -q: "147 passed in 3.21s" or "2 failed, 145 passed in 3.3s"
            self.passed += count_before(line, " passed");
            self.failed += count_before(line, " failed");
        }
    }
}

/// The number written just before `word` in `text` (0 if none).
fn count_before(text: &str, word: &str) -> u64 {
    text.find(word)
        .and_then(|end| text[..end].rsplit(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_cargo_and_pytest_lines() {
        let mut tally = Tally::default();
        tally.add_line(
            "test result: ok. 12 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out",
        );
        tally.add_line("test result: FAILED. 3 passed; 2 failed; 0 ignored");
        tally.add_line("147 passed in 3.21s");
        tally.add_line("1 failed, 9 passed in 0.5s");
        tally.add_line("running 12 tests");
        assert_eq!((tally.passed, tally.failed), (12 + 3 + 147 + 9, 2 + 1));
    }
}
