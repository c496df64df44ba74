//! Progress bars on stderr (indicatif hides them when stderr is not a
//! terminal, and they can be turned off for tests).

use indicatif::{ProgressBar, ProgressState, ProgressStyle};

/// A progress bar that may be hidden.
#[derive(Debug, Clone)]
pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    fn new(visible: bool, length: u64, template: &str) -> Self {
        let bar = if visible {
            // In the shared set, so log lines print above it (see `logging`).
            crate::logging::bars().add(ProgressBar::new(length))
        } else {
            ProgressBar::hidden()
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            let rate = |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                let _ = write!(out, "{:.0}/s", state.per_sec());
            };
            bar.set_style(style.progress_chars("=> ").with_key("rate", rate));
        }
        Self { bar }
    }

    /// The bar shown while `workers` workers start.
    pub fn startup(visible: bool, workers: usize) -> Self {
        Self::new(
            visible,
            workers as u64,
            "starting workers [{bar:30}] {pos}/{len} ready  {elapsed}",
        )
    }

    /// The bar shown while `requests` requests run.
    pub fn run(visible: bool, requests: u64) -> Self {
        Self::new(
            visible,
            requests,
            "[{bar:25}] {pos}/{len} {rate} {msg} {elapsed}",
        )
    }

    /// Sets the position.
    pub fn set(&self, position: u64) {
        self.bar.set_position(position);
    }

    /// Moves one step.
    pub fn step(&self) {
        self.bar.inc(1);
    }

    /// Sets the text after the bar.
    pub fn message(&self, text: String) {
        self.bar.set_message(text);
    }

    /// Removes the bar.
    pub fn clear(&self) {
        self.bar.finish_and_clear();
    }
}

/// The message of the run bar.
pub fn run_message(failed: u64, hung: u64, kills: u64) -> String {
    format!("failed {failed} hung {hung} killed {kills}")
}
