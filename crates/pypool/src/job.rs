//! What a request asks of a worker: run a command, or run a central program
//! (shipping its definition when the worker may not hold it). Before either,
//! the worker is brought up to date with the pool's settings.

use std::sync::atomic::{AtomicU64, Ordering};

use pypool_seam::{CallError, Outcome, RemoteErrorKind, Request, RequestId};
use pypool_store::{Namespace, StoredProgram};
use serde_json::{Map, Value, json};

use crate::inner::Inner;
use crate::lease::Lease;

/// The prefix of the runtime's own commands; callers cannot run them.
pub(crate) const RESERVED_PREFIX: &str = "pypool.";
/// The worker command that runs a program (see `docs/PROTOCOL.md`).
pub(crate) const RUN_PROGRAM: &str = "pypool.run_program";
/// The worker command that replaces a worker's settings.
pub(crate) const APPLY_SETTINGS: &str = "pypool.apply_settings";
/// How many (program, version) pairs the host remembers per worker before it
/// starts afresh (the worker's own cache may hold fewer; a miss costs one
/// resend, never an error).
pub(crate) const REMEMBERED_PROGRAMS: usize = 4096;

/// One unit of work for a worker.
#[derive(Debug, Clone)]
pub(crate) enum Job {
    /// A registered command with keyword arguments.
    Command {
        /// The command name.
        command: String,
        /// Its keyword arguments.
        args: Map<String, Value>,
    },
    /// A central program with its inputs.
    Program {
        /// The program as stored.
        program: Box<StoredProgram>,
        /// Its inputs (keyword arguments).
        inputs: Map<String, Value>,
    },
}

impl Job {
    /// The name errors, metrics and breakers use: the command, or `program:<id>`.
    pub(crate) fn label(&self) -> String {
        match self {
            Self::Command { command, .. } => command.clone(),
            Self::Program { program, .. } => format!("program:{}", program.id.as_str()),
        }
    }

    /// What the request's circuit breaker and idempotency entry are keyed
    /// by: a command name, or a program *in its namespace* (session `a`'s
    /// program `p` is not session `b`'s, nor the global `p`).
    pub(crate) fn key(&self) -> JobKey {
        match self {
            Self::Command { command, .. } => JobKey::Command(command.clone()),
            Self::Program { program, .. } => JobKey::Program {
                namespace: wire_namespace(&program.owner),
                id: program.id.as_str().to_owned(),
            },
        }
    }
}

/// See [`Job::key`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum JobKey {
    /// A command, by name.
    Command(String),
    /// A program: its namespace as the wire names it (`global`,
    /// `session:<id>`) and its id.
    Program {
        /// `global` or `session:<id>`.
        namespace: String,
        /// The program's id.
        id: String,
    },
}

impl Inner {
    /// Runs `job` on the leased worker: settings first if the worker is
    /// behind, then the command or program.
    /// `in_flight_id` always holds the id of the request being sent, so a
    /// deadline can name it. `learned` receives the program the worker now
    /// holds, for the attempt's settle to remember (no lock taken here).
    pub(crate) async fn perform(
        &self,
        lease: &Lease,
        job: &Job,
        in_flight_id: &AtomicU64,
        learned: &mut Option<ProgramKey>,
    ) -> Result<Outcome, CallError> {
        let worker_id = lease.worker_id();
        if let Some(failed) = self.sync_settings(lease, in_flight_id).await {
            return failed;
        }
        match job {
            Job::Command { command, args } => {
                self.send(lease, command, args.clone(), in_flight_id).await
            }
            Job::Program { program, inputs } => {
                let key = (
                    wire_namespace(&program.owner),
                    program.id.as_str().to_owned(),
                    program.version.clone(),
                );
                let known = self.lock().core.knows_program(worker_id, &key);
                let mut outcome = self
                    .send(
                        lease,
                        RUN_PROGRAM,
                        program_args(program, inputs, !known),
                        in_flight_id,
                    )
                    .await;
                if known && is_not_cached(&outcome) {
                    // The worker evicted it: ship the definition this time.
                    outcome = self
                        .send(
                            lease,
                            RUN_PROGRAM,
                            program_args(program, inputs, true),
                            in_flight_id,
                        )
                        .await;
                }
                if matches!(outcome, Ok(Outcome::Ok { .. })) {
                    *learned = Some(key);
                }
                outcome
            }
        }
    }

    async fn send(
        &self,
        lease: &Lease,
        command: &str,
        args: Map<String, Value>,
        in_flight_id: &AtomicU64,
    ) -> Result<Outcome, CallError> {
        let request_id: RequestId = self.next_request_id();
        in_flight_id.store(request_id, Ordering::Relaxed);
        let request = Request {
            id: request_id,
            command: command.to_owned(),
            args,
        };
        lease.connection().call(request).await
    }

    /// Sends the pool's settings if this worker has an older version.
    /// Returns the failed attempt if the worker could not apply them.
    async fn sync_settings(
        &self,
        lease: &Lease,
        in_flight_id: &AtomicU64,
    ) -> Option<Result<Outcome, CallError>> {
        let worker_id = lease.worker_id();
        // The fast path takes no lock: the version is an atomic, and the
        // worker's applied version came with the lease.
        if self.settings_version() <= lease.settings_applied() {
            return None;
        }
        let (version, settings) = self.settings_snapshot();
        if version <= lease.settings_applied() {
            return None;
        }
        let args = json!({ "version": version, "settings": settings });
        let Value::Object(args) = args else {
            return None;
        };
        let outcome = self.send(lease, APPLY_SETTINGS, args, in_flight_id).await;
        match outcome {
            Ok(Outcome::Ok { .. }) => {
                self.lock().core.settings_applied(worker_id, version);
                None
            }
            failed => Some(failed),
        }
    }
}

fn is_not_cached(outcome: &Result<Outcome, CallError>) -> bool {
    matches!(outcome, Ok(Outcome::Error { error }) if error.kind == RemoteErrorKind::ProgramNotCached)
}

/// How the host names a program on a worker: (namespace, id, version).
pub(crate) type ProgramKey = (String, String, String);

/// The `namespace` field of `pypool.run_program`: `global`, or
/// `session:<id>` (session ids cannot contain `/` or spaces, so the two never
/// collide). Workers key their cache by it, so one namespace's definition can
/// never be run for another's program.
pub(crate) fn wire_namespace(namespace: &Namespace) -> String {
    match namespace {
        Namespace::Global => "global".to_owned(),
        Namespace::Session(session) => format!("session:{session}"),
    }
}

/// The arguments of `pypool.run_program`.
fn program_args(
    program: &StoredProgram,
    inputs: &Map<String, Value>,
    with_definition: bool,
) -> Map<String, Value> {
    let mut args = Map::new();
    args.insert(
        "namespace".into(),
        Value::String(wire_namespace(&program.owner)),
    );
    args.insert(
        "program_id".into(),
        Value::String(program.id.as_str().to_owned()),
    );
    args.insert("version".into(), Value::String(program.version.clone()));
    let definition = if with_definition {
        json!({ "kind": program.spec.kind.as_str(), "spec": program.spec.spec })
    } else {
        Value::Null
    };
    args.insert("definition".into(), definition);
    args.insert("inputs".into(), Value::Object(inputs.clone()));
    args
}
