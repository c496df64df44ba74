//! The messages exchanged over frames (see `docs/PROTOCOL.md`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::fmt;

/// The protocol version this crate speaks; a worker announcing another is refused.
pub const PROTOCOL_VERSION: u32 = 3;

/// The identifier the host gives a request; unique per connection.
pub type RequestId = u64;

/// Any frame body: a JSON object tagged by its `type` field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// First frame a worker sends.
    Handshake(Handshake),
    /// Sent by a worker instead of a handshake when it cannot start.
    StartupError(StartupError),
    /// Host → worker: run a command.
    Request(Request),
    /// Worker → host: the outcome of a request.
    Reply(Reply),
    /// Worker → host: the worker is stopping (it received SIGTERM). It
    /// finishes the request it is running, answers any later request with a
    /// `not_started` error, and exits when the host closes its stdin.
    Draining(Draining),
    /// Host → worker: stop working on request `id` if it is still running.
    /// The worker still answers the request exactly once (with its result if
    /// it finished first, or a `cancelled` error); a cancel for an id the
    /// worker does not hold is ignored.
    Cancel(Cancel),
    /// Host → worker: run a command whose reply streams: the worker sends
    /// [`Message::Chunk`]s (at most as many as the host granted credit for)
    /// and ends the stream with an ordinary [`Message::Reply`].
    StreamRequest(StreamRequest),
    /// Worker → host: one piece of a streaming reply.
    Chunk(Chunk),
    /// Host → worker: the worker may send `grant` more chunks of stream `id`.
    Credit(Credit),
}

/// The body of a [`Message::StreamRequest`]: a [`Request`] whose reply
/// streams, with the number of chunks the worker may send before it must
/// wait for a [`Credit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamRequest {
    /// Unique per connection (shared with plain requests); chunks and the
    /// final reply carry it back.
    pub id: RequestId,
    /// The registered command name.
    pub command: String,
    /// Keyword arguments for the handler.
    #[serde(default)]
    pub args: Map<String, Value>,
    /// How many chunks the worker may send before the first [`Credit`]
    /// (the host's buffer for this stream; 0 means wait for a credit).
    pub credit: u32,
}

impl StreamRequest {
    /// A streaming request for `request`, with `credit` initial credit.
    pub fn new(request: Request, credit: u32) -> Self {
        Self {
            id: request.id,
            command: request.command,
            args: request.args,
            credit,
        }
    }

    /// The request part (id, command, arguments), without the credit.
    pub fn into_request(self) -> Request {
        Request {
            id: self.id,
            command: self.command,
            args: self.args,
        }
    }
}

/// The body of a [`Message::Chunk`]: one value a streaming handler produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    /// The streaming request this chunk belongs to.
    pub id: RequestId,
    /// Position in the stream: 0 for the first chunk, then +1 each.
    pub seq: u64,
    /// The value the handler yielded.
    pub data: Value,
}

/// The body of a [`Message::Credit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credit {
    /// The streaming request the credit is for; a credit for an id the
    /// worker does not hold (or that does not stream) is ignored.
    pub id: RequestId,
    /// How many more chunks the worker may send.
    pub grant: u32,
}

/// The body of a [`Message::Cancel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancel {
    /// The request to cancel.
    pub id: RequestId,
}

/// The body of a [`Message::Draining`]: no fields (unknown ones are ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Draining {}

/// The `error.kind` a draining worker answers a request it did not start
/// with; such a request never ran and may be sent to another worker.
pub const NOT_STARTED: &str = "not_started";

/// The worker's introduction, sent before anything else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handshake {
    /// Protocol version the worker speaks.
    pub protocol: u32,
    /// The id the host assigned on the worker's command line.
    pub worker_id: u64,
    /// The worker's operating-system process id.
    pub pid: u32,
    /// `platform.python_version()` of the worker.
    pub python_version: String,
    /// The commands the worker serves.
    pub commands: Vec<CommandInfo>,
    /// How many requests the worker holds at once (at least 1). Requests for
    /// [`Concurrency::Serial`] commands still run one at a time, in order.
    #[serde(default = "one_request")]
    pub capacity: u32,
}

fn one_request() -> u32 {
    1
}

/// How a worker runs a command's requests relative to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Concurrency {
    /// One at a time, in arrival order, on the worker's main thread.
    #[default]
    Serial,
    /// Concurrently on the worker's bounded thread pool.
    Threads,
    /// Concurrently as coroutines on the worker's one event loop.
    Async,
}

/// One command a worker serves, as announced in its handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandInfo {
    /// The name requests use.
    pub name: String,
    /// Whether running it twice is harmless (the recovery policy may retry it).
    #[serde(default)]
    pub idempotent: bool,
    /// How the worker runs this command's requests.
    #[serde(default)]
    pub concurrency: Concurrency,
}

/// Why a worker could not start serving.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartupError {
    /// `handler_import`, `bad_arguments`, `internal`, or a kind this host does not know.
    pub kind: String,
    /// Human-readable explanation.
    pub message: String,
    /// Python traceback, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceback: Option<String>,
}

/// A command for a worker to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Unique per connection; the reply carries it back.
    pub id: RequestId,
    /// The registered command name.
    pub command: String,
    /// Keyword arguments for the handler.
    #[serde(default)]
    pub args: Map<String, Value>,
}

/// The outcome of one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The id of the request this answers.
    pub id: RequestId,
    /// Result or error.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// What the request consumed, beside its outcome, when the handler
    /// reports it: for a `dspy` program, its language-model usage
    /// (`{"calls", "prompt_tokens", "completion_tokens", "total_tokens",
    /// "cost", "models"}`, see `docs/PROTOCOL.md`). Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Value>,
}

/// What a request produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// The handler returned `result`.
    Ok {
        /// The handler's return value.
        result: Value,
    },
    /// The request failed inside the worker; the worker is still serving.
    Error {
        /// What went wrong.
        error: RemoteError,
    },
}

/// A structured error reported by a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteError {
    /// The class of failure.
    pub kind: RemoteErrorKind,
    /// Human-readable explanation.
    pub message: String,
    /// The Python exception class, for `python_exception`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception_type: Option<String>,
    /// The Python traceback, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceback: Option<String>,
}

/// The class of a [`RemoteError`]; unknown kinds are kept as text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RemoteErrorKind {
    /// The user's handler raised.
    PythonException,
    /// No handler is registered under the command name.
    UnknownCommand,
    /// The arguments do not bind to the handler's parameters.
    InvalidArguments,
    /// The handler returned something that is not JSON-serialisable.
    InvalidResult,
    /// A bug in the worker runtime.
    Internal,
    /// The worker does not hold the program (id and version) it was asked to
    /// run; the host resends the request with the definition.
    ProgramNotCached,
    /// A program's inputs failed validation (a required input is missing or
    /// empty, an unknown input was given); the message names the input.
    InvalidInput,
    /// The host cancelled the request (a `cancel` frame) before it finished;
    /// the message says whether it had started.
    Cancelled,
    /// A kind this version of the host does not know.
    Other(String),
}

impl RemoteErrorKind {
    /// The wire spelling of this kind.
    pub fn as_str(&self) -> &str {
        match self {
            Self::PythonException => "python_exception",
            Self::UnknownCommand => "unknown_command",
            Self::InvalidArguments => "invalid_arguments",
            Self::InvalidResult => "invalid_result",
            Self::Internal => "internal",
            Self::ProgramNotCached => "program_not_cached",
            Self::InvalidInput => "invalid_input",
            Self::Cancelled => "cancelled",
            Self::Other(text) => text,
        }
    }

    /// Parses the wire spelling; never fails (unknown spellings become [`Self::Other`]).
    pub fn from_wire(text: &str) -> Self {
        match text {
            "python_exception" => Self::PythonException,
            "unknown_command" => Self::UnknownCommand,
            "invalid_arguments" => Self::InvalidArguments,
            "invalid_result" => Self::InvalidResult,
            "internal" => Self::Internal,
            "program_not_cached" => Self::ProgramNotCached,
            "invalid_input" => Self::InvalidInput,
            "cancelled" => Self::Cancelled,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for RemoteErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RemoteErrorKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RemoteErrorKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(Self::from_wire(&text))
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.exception_type {
            Some(ty) => write!(f, "{} ({ty}): {}", self.kind, self.message),
            None => write!(f, "{}: {}", self.kind, self.message),
        }
    }
}
