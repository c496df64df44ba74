//! `pypool call COMMAND --args JSON`: one command on a small pool, its
//! result (or a typed error) as JSON on stdout.
//!
//! | exit | when | stdout |
//! |---|---|---|
//! | 0 | the command returned | its result |
//! | 1 | the pool or Python failed (start-up, the handler raised, a crash, …) | `{"error": {"kind", "message", …}}` |
//! | 2 | bad input (arguments not JSON or not an object, a bad setting) | `{"error": {"kind", "message"}}` |
//!
//! With `--stream` the reply is streamed: stdout gets one JSON line
//! `{"chunk": …}` per chunk as it arrives, then one last line, `{"result": …}`
//! or the error document (after the chunks already printed), with the same
//! exit statuses.

use std::time::Duration;

use futures::StreamExt;
use pypool::{PoolBuilder, PoolError, StreamItem};
use serde_json::{Map, Value, json};

/// How long the command may still run at shutdown before workers are killed.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// Exit status: the command returned.
pub const EXIT_OK: u8 = 0;
/// Exit status: the pool or Python failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit status: bad command-line input.
pub const EXIT_BAD_INPUT: u8 = 2;

/// What to print and how to exit.
#[derive(Debug, Clone, PartialEq)]
pub struct CallOutput {
    /// The JSON document for stdout.
    pub json: Value,
    /// The exit status.
    pub exit: u8,
}

impl CallOutput {
    /// An error document: `{"error": {"kind": …, "message": …}}`.
    pub fn error(kind: &str, message: impl Into<String>, exit: u8) -> Self {
        Self {
            json: json!({ "error": { "kind": kind, "message": message.into() } }),
            exit,
        }
    }

    /// The document as text (one line, or indented when `pretty`).
    pub fn render(&self, pretty: bool) -> String {
        let text = if pretty {
            serde_json::to_string_pretty(&self.json)
        } else {
            serde_json::to_string(&self.json)
        };
        text.unwrap_or_else(|error| {
            format!(r#"{{"error":{{"kind":"output","message":"{error}"}}}}"#)
        })
    }
}

/// Parses `args` (before any worker starts), builds and starts the pool,
/// runs `command`, shuts the pool down gracefully.
pub async fn run(builder: PoolBuilder, command: &str, args: &str) -> CallOutput {
    let args = match parse_args(args) {
        Ok(args) => args,
        Err(output) => return output,
    };
    let pool = match builder.build() {
        Ok(pool) => pool,
        Err(error) => {
            return CallOutput::error("invalid_setting", error.to_string(), EXIT_BAD_INPUT);
        }
    };
    let output = match pool.ready().await {
        Err(error) => from_pool_error(&error),
        Ok(()) => match pool.execute(command, Value::Object(args)).await {
            Ok(result) => CallOutput {
                json: result,
                exit: EXIT_OK,
            },
            Err(error) => from_pool_error(&error),
        },
    };
    let shutdown = pool.shutdown(SHUTDOWN_DEADLINE).await;
    if !shutdown.drained {
        tracing::warn!(
            killed = shutdown.killed,
            "workers had to be killed at shutdown"
        );
    }
    output
}

/// [`run`], streaming: `line` gets `{"chunk": …}` for each chunk as it
/// arrives; the returned output (`{"result": …}` or the error document) is
/// the last line.
pub async fn run_stream(
    builder: PoolBuilder,
    command: &str,
    args: &str,
    mut line: impl FnMut(&Value),
) -> CallOutput {
    let args = match parse_args(args) {
        Ok(args) => args,
        Err(output) => return output,
    };
    let pool = match builder.build() {
        Ok(pool) => pool,
        Err(error) => {
            return CallOutput::error("invalid_setting", error.to_string(), EXIT_BAD_INPUT);
        }
    };
    let output = match pool.ready().await {
        Err(error) => from_pool_error(&error),
        Ok(()) => {
            let mut stream = pool.execute_stream(command, Value::Object(args));
            let mut output = CallOutput::error(
                "connection",
                "the stream ended without a result",
                EXIT_FAILED,
            );
            while let Some(item) = stream.next().await {
                match item {
                    Ok(StreamItem::Chunk(chunk)) => line(&json!({ "chunk": chunk })),
                    Ok(StreamItem::Done(result)) => {
                        output = CallOutput {
                            json: json!({ "result": result }),
                            exit: EXIT_OK,
                        };
                    }
                    Err(error) => output = from_pool_error(&error),
                }
            }
            output
        }
    };
    let shutdown = pool.shutdown(SHUTDOWN_DEADLINE).await;
    if !shutdown.drained {
        tracing::warn!(
            killed = shutdown.killed,
            "workers had to be killed at shutdown"
        );
    }
    output
}

/// The arguments, a JSON object (or null for none).
pub fn parse_args(text: &str) -> Result<Map<String, Value>, CallOutput> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(args)) => Ok(args),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(other) => Err(CallOutput::error(
            "invalid_arguments",
            format!("--args must be a JSON object (keyword arguments), got `{other}`"),
            EXIT_BAD_INPUT,
        )),
        Err(error) => Err(CallOutput::error(
            "invalid_json",
            format!("--args is not valid JSON: {error}"),
            EXIT_BAD_INPUT,
        )),
    }
}

/// The error document for a pool error; a Python-side error carries the
/// worker's structured error (kind, message, exception type, traceback).
pub fn from_pool_error(error: &PoolError) -> CallOutput {
    let exit = match error {
        PoolError::InvalidArguments { .. } => EXIT_BAD_INPUT,
        _ => EXIT_FAILED,
    };
    let mut output = CallOutput::error(error.kind(), error.to_string(), exit);
    if let PoolError::Remote { error: remote, .. } = error {
        if let (Ok(remote), Some(details)) = (
            serde_json::to_value(remote),
            output.json["error"].as_object_mut(),
        ) {
            details.insert("remote".to_owned(), remote);
        }
    }
    output
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use pypool::{Pool, RemoteError, RemoteErrorKind};
    use pypool_mock::{Behaviour, MockSpawner};

    use super::*;

    #[test]
    fn invalid_json_and_non_objects_are_bad_input() {
        let output = parse_args("{nope").unwrap_err();
        assert_eq!(output.exit, EXIT_BAD_INPUT);
        assert_eq!(output.json["error"]["kind"], "invalid_json");
        assert!(
            output.json["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not valid JSON")
        );
        let output = parse_args("[1, 2]").unwrap_err();
        assert_eq!(output.exit, EXIT_BAD_INPUT);
        assert_eq!(output.json["error"]["kind"], "invalid_arguments");
        assert_eq!(parse_args("null").unwrap(), Map::new());
        assert_eq!(parse_args(r#"{"limit": 5}"#).unwrap()["limit"], 5);
    }

    #[test]
    fn a_remote_error_carries_the_python_details() {
        let error = PoolError::Remote {
            worker_id: 1,
            command: "demo.primes".into(),
            request_id: 7,
            error: RemoteError {
                kind: RemoteErrorKind::PythonException,
                message: "limit must be a non-negative integer, got -1".into(),
                exception_type: Some("ValueError".into()),
                traceback: Some("Traceback ...".into()),
            },
        };
        let output = from_pool_error(&error);
        assert_eq!(output.exit, EXIT_FAILED);
        let details = &output.json["error"];
        assert_eq!(details["kind"], "remote");
        assert!(details["message"].as_str().unwrap().contains("demo.primes"));
        assert_eq!(details["remote"]["kind"], "python_exception");
        assert_eq!(details["remote"]["exception_type"], "ValueError");
        assert_eq!(
            output.render(false),
            serde_json::to_string(&output.json).unwrap()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_on_mock_workers_prints_the_result_and_shuts_down() {
        let spawner = MockSpawner::with_behaviour(Behaviour::default()).unwrap();
        let builder = Pool::builder().size(1).spawner(spawner);
        let output = run(builder, "echo", r#"{"n": 3}"#).await;
        assert_eq!(output.exit, EXIT_OK, "{:?}", output.json);
        assert_eq!(output.json["echo"]["n"], 3);

        let failing = Behaviour::default().failure_rate(1.0);
        let spawner = MockSpawner::with_behaviour(failing).unwrap();
        let builder = Pool::builder().size(1).spawner(spawner);
        let output = run(builder, "echo", "{}").await;
        assert_eq!(output.exit, EXIT_FAILED);
        assert_eq!(output.json["error"]["kind"], "remote");
        assert_eq!(output.json["error"]["remote"]["kind"], "python_exception");
    }

    #[tokio::test(start_paused = true)]
    async fn a_streamed_call_prints_each_chunk_then_the_result() {
        let spawner = MockSpawner::with_behaviour(Behaviour::default().stream_chunks(3)).unwrap();
        let builder = Pool::builder().size(1).spawner(spawner);
        let mut lines = Vec::new();
        let output = run_stream(builder, "echo", r#"{"n": 3}"#, |line| {
            lines.push(line.clone())
        })
        .await;
        assert_eq!(output.exit, EXIT_OK, "{:?}", output.json);
        assert_eq!(output.json["result"]["echo"]["n"], 3);
        let expected: Vec<Value> = (0..3).map(|seq| json!({"chunk": {"seq": seq}})).collect();
        assert_eq!(lines, expected);

        let output = run_stream(Pool::builder().size(1), "echo", "[1]", |_| {}).await;
        assert_eq!(output.exit, EXIT_BAD_INPUT);
    }
}
