//! The pool's errors.

use std::time::Duration;

use pypool_affinity::IdError;
use pypool_seam::{RemoteError, RequestId, SpawnError, WorkerExit, WorkerId};
use pypool_store::StoreError;

/// Everything that can go wrong with a pool call. Each message names what a
/// user needs to act: the worker, the command, the request, the exit.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// `Pool::configure` was given settings a worker would refuse; the
    /// settings in force are unchanged.
    #[error("invalid settings, not applied: {detail}")]
    InvalidSettings {
        /// What is wrong, naming the field.
        detail: String,
    },
    /// The queue of waiting requests is full; back off and retry.
    #[error(
        "pool overloaded: {queued} requests already wait for a worker (queue bound {bound}); retry later or raise the queue bound"
    )]
    Overloaded {
        /// Requests waiting when this one was refused.
        queued: usize,
        /// The configured bound.
        bound: usize,
    },
    /// No worker became free within the checkout timeout.
    #[error(
        "no worker became free within {waited:?} for `{command}`; the pool is saturated or its workers cannot start"
    )]
    CheckoutTimeout {
        /// The command that waited.
        command: String,
        /// How long it waited.
        waited: Duration,
    },
    /// The pool is shutting down and accepts no more requests.
    #[error("the pool is shutting down; `{command}` was not run")]
    ShuttingDown {
        /// The refused command.
        command: String,
    },
    /// Workers could not be started.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// The worker died while running the request.
    #[error("worker {worker_id} {exit} while running `{command}` (request {request_id})")]
    WorkerExited {
        /// The worker.
        worker_id: WorkerId,
        /// The command.
        command: String,
        /// The request.
        request_id: RequestId,
        /// How the worker ended.
        exit: WorkerExit,
    },
    /// The request ran past its deadline: it was cancelled on its worker, and
    /// the worker is killed and replaced if the request has not ended within
    /// `Timeouts::cancel_grace`.
    #[error(
        "`{command}` (request {request_id}) on worker {worker_id} did not finish within {deadline:?}; it was cancelled, and its worker is killed and replaced unless the request ends within the cancel grace"
    )]
    DeadlineExceeded {
        /// The worker.
        worker_id: WorkerId,
        /// The command.
        command: String,
        /// The request.
        request_id: RequestId,
        /// The deadline that passed.
        deadline: Duration,
    },
    /// A streamed request sent nothing (no chunk, no end) for longer than
    /// `Timeouts::stream_idle`: it was cancelled on its worker, as at a
    /// deadline (the worker is killed and replaced unless the request ends
    /// within the cancel grace).
    #[error(
        "`{command}` (request {request_id}) on worker {worker_id} sent nothing for {idle:?} (the stream's idle limit); it was cancelled, and its worker is killed and replaced unless the request ends within the cancel grace"
    )]
    StreamIdle {
        /// The worker.
        worker_id: WorkerId,
        /// The command.
        command: String,
        /// The request.
        request_id: RequestId,
        /// The idle limit that passed.
        idle: Duration,
    },
    /// The worker broke the protocol; it was killed and is being replaced.
    #[error(
        "worker {worker_id} broke the protocol while running `{command}` (request {request_id}): {detail}; it was killed and is being replaced"
    )]
    ProtocolViolation {
        /// The worker.
        worker_id: WorkerId,
        /// The command.
        command: String,
        /// The request.
        request_id: RequestId,
        /// What went wrong.
        detail: String,
    },
    /// The connection to the worker failed for another reason.
    #[error("worker {worker_id} could not run `{command}` (request {request_id}): {detail}")]
    Connection {
        /// The worker.
        worker_id: WorkerId,
        /// The command.
        command: String,
        /// The request.
        request_id: RequestId,
        /// What went wrong.
        detail: String,
    },
    /// The handler reported an error (it raised, the arguments did not bind,
    /// the command is unknown, …). The worker is fine and keeps serving.
    #[error("`{command}` (request {request_id}) failed on worker {worker_id}: {error}")]
    Remote {
        /// The worker.
        worker_id: WorkerId,
        /// The command.
        command: String,
        /// The request.
        request_id: RequestId,
        /// The worker's structured error (kind, message, traceback).
        error: RemoteError,
    },
    /// The command's circuit breaker is open after repeated failures.
    #[error(
        "`{command}` is failing repeatedly; its circuit breaker is open, retry in {retry_after:?}"
    )]
    CircuitOpen {
        /// The command.
        command: String,
        /// When the breaker will admit a probe.
        retry_after: Duration,
    },
    /// A session id is not valid.
    #[error(transparent)]
    InvalidId(#[from] IdError),
    /// The program or session store refused (program not found, already
    /// exists, invalid definition, API key in a definition, limits, …).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `strict_fail_fast` affinity: the session's worker is busy.
    #[error(
        "session `{session}` is bound to worker {worker_id}, which is busy (affinity mode strict_fail_fast); retry, or use the hint or strict mode"
    )]
    WorkerBusy {
        /// The session.
        session: String,
        /// Its worker.
        worker_id: WorkerId,
    },
    /// The command is one of the runtime's own (`pypool.*`), which callers
    /// cannot run.
    #[error(
        "`{command}` is reserved: commands starting with `pypool.` belong to pypool's runtime and cannot be run through execute (run programs with execute_program, change settings with configure)"
    )]
    ReservedCommand {
        /// The refused command.
        command: String,
    },
    /// A `python` program names a callable outside the pool's allowed modules.
    #[error(
        "program `{program}` names `{callable}`, whose module is not allowed in this pool (allowed module prefixes: {allowed}); a program definition is code, see PoolBuilder::allowed_program_modules"
    )]
    ProgramNotAllowed {
        /// The program id.
        program: String,
        /// The `module:function` it names.
        callable: String,
        /// The allowed prefixes, comma-separated.
        allowed: String,
    },
    /// The arguments are nested deeper than the protocol allows.
    #[error(
        "arguments for `{command}` are nested deeper than {limit} levels of arrays and objects (the protocol's limit); flatten them"
    )]
    ArgumentsTooDeep {
        /// The command.
        command: String,
        /// The limit.
        limit: usize,
    },
    /// The arguments are not a JSON object.
    #[error("arguments for `{command}` must be a JSON object (keyword arguments), got {got}")]
    InvalidArguments {
        /// The command.
        command: String,
        /// What was given instead.
        got: &'static str,
    },
}

impl PoolError {
    /// A short, stable name for the kind of error, for metrics and reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Overloaded { .. } => "overloaded",
            Self::InvalidSettings { .. } => "invalid_settings",
            Self::CheckoutTimeout { .. } => "checkout_timeout",
            Self::ShuttingDown { .. } => "shutting_down",
            Self::Spawn(_) => "spawn",
            Self::WorkerExited { .. } => "worker_exited",
            Self::DeadlineExceeded { .. } => "deadline_exceeded",
            Self::StreamIdle { .. } => "stream_idle",
            Self::ProtocolViolation { .. } => "protocol_violation",
            Self::Connection { .. } => "connection",
            Self::Remote { .. } => "remote",
            Self::CircuitOpen { .. } => "circuit_open",
            Self::InvalidArguments { .. } | Self::ArgumentsTooDeep { .. } => "invalid_arguments",
            Self::ReservedCommand { .. } => "reserved_command",
            Self::ProgramNotAllowed { .. } => "program_not_allowed",
            Self::InvalidId(_) => "invalid_id",
            Self::Store(StoreError::ProgramNotFound { .. }) => "program_not_found",
            Self::Store(StoreError::StoreUnavailable { .. }) => "store_unavailable",
            Self::Store(_) => "store",
            Self::WorkerBusy { .. } => "worker_busy",
        }
    }
}
