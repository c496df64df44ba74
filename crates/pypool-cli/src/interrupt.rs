//! SIGINT and SIGTERM for the `pypool` command.
//!
//! The first signal asks for a graceful stop: `stress` starts no new request,
//! lets those in flight finish until [`GRACE`], shuts the pool down and
//! reports what was cut short; other commands get the same grace to finish.
//! The second signal stops at once: the process exits with the interrupted
//! status, and each worker's guardian (see `pypool_worker.guardian`) takes
//! its worker and everything it started down with the host.
//!
//! Exit status after an interruption: 130 for SIGINT, 143 for SIGTERM (128 +
//! the signal's number, the shell's convention).

use std::sync::OnceLock;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// How long in-flight work may take to finish after the first signal.
pub const GRACE: Duration = Duration::from_secs(10);

/// Which signal interrupted the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interruption {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM.
    Terminate,
}

impl Interruption {
    /// The signal's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Interrupt => "SIGINT",
            Self::Terminate => "SIGTERM",
        }
    }

    /// The exit status that says the command was interrupted (128 + signal).
    pub fn exit_status(self) -> u8 {
        match self {
            Self::Interrupt => 130,
            Self::Terminate => 143,
        }
    }
}

static STATE: OnceLock<watch::Sender<Option<Interruption>>> = OnceLock::new();

fn state() -> &'static watch::Sender<Option<Interruption>> {
    STATE.get_or_init(|| watch::Sender::new(None))
}

/// Starts listening for SIGINT and SIGTERM (inside the runtime). Until it is
/// called, the signals keep their default action (the process dies).
pub fn install() -> std::io::Result<()> {
    let mut interrupts = signal(SignalKind::interrupt())?;
    let mut terminates = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        loop {
            let received = tokio::select! {
                Some(()) = interrupts.recv() => Interruption::Interrupt,
                Some(()) = terminates.recv() => Interruption::Terminate,
                else => return,
            };
            on_signal(received);
        }
    });
    Ok(())
}

fn on_signal(received: Interruption) {
    let first = *state().borrow();
    match first {
        None => {
            eprintln!(
                "pypool: {} received: finishing the requests in flight (up to {}s), then \
                 stopping; send it again to stop at once",
                received.name(),
                GRACE.as_secs()
            );
        }
        Some(first) => {
            eprintln!("pypool: {} received again: stopping now", received.name());
            // The workers' guardians see the host go and kill every worker
            // and everything they started.
            std::process::exit(i32::from(first.exit_status()));
        }
    }
    state().send_if_modified(|current| {
        if current.is_none() {
            *current = Some(received);
            true
        } else {
            false
        }
    });
}

/// The first signal received, if any.
pub fn requested() -> Option<Interruption> {
    *state().borrow()
}

/// Resolves at the first signal (at once if one was already received).
pub async fn wait() -> Interruption {
    let mut receiver = state().subscribe();
    loop {
        if let Some(received) = *receiver.borrow_and_update() {
            return received;
        }
        if receiver.changed().await.is_err() {
            // The sender is static: never dropped.
            std::future::pending::<()>().await;
        }
    }
}
