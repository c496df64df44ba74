//! An HTTP/JSON service in front of a pool: programs, sessions and commands,
//! typed errors as HTTP statuses, graceful shutdown tied to the pool's.
//!
//! ```text
//! PYPOOL_HANDLERS=crates/pypool/examples/handlers/text_tools.py \
//!   cargo run -p pypool --example http_service -- --bind 127.0.0.1:8080 --size 2
//! ```
//!
//! Settings (flag, else environment variable, else default): `--bind` /
//! `PYPOOL_BIND` (`127.0.0.1:8080`; port 0 picks a free port), `--handlers` /
//! `PYPOOL_HANDLERS` (handler files, comma-separated), `--size` /
//! `PYPOOL_SIZE` (4 workers), `--queue-bound` / `PYPOOL_QUEUE_BOUND` (1024),
//! `--request-timeout-ms` / `PYPOOL_REQUEST_TIMEOUT_MS` (60000), `--python` /
//! `PYPOOL_PYTHON` (the interpreter, `python3`). The first
//! line on stdout is `listening on http://ADDRESS`.
//!
//! ```text
//! curl -X POST localhost:8080/programs/sum -d '{"kind":"python","spec":{"callable":"pypool_worker.demo:summarize"}}'
//! curl -X POST localhost:8080/programs/sum/run -d '{"text":"one two three","max_words":2}'
//! curl -X POST localhost:8080/sessions/alice/programs/mine -d '{"kind":"python","spec":{"callable":"pypool_worker.demo:summarize"}}'
//! curl -X POST localhost:8080/sessions/alice/programs/mine/run -d '{"text":"a b c"}'
//! curl -X POST localhost:8080/commands/demo.word_stats -d '{"text":"a b a"}'
//! curl localhost:8080/status
//! ```
//!
//! Errors answer `{"kind": ..., "message": ...}` ([`PoolError::kind`], or for
//! a handler's error the worker's kind, such as `invalid_input`): overloaded,
//! shutting down, circuit open, checkout timeout → 503 with `Retry-After`;
//! invalid input or arguments → 422; request deadline → 504; program or
//! command not found → 404; program not allowed, reserved command → 403;
//! program exists → 409; anything else → 500. On SIGINT or SIGTERM the
//! server stops taking connections, finishes the requests in flight, then
//! shuts the pool down.

use std::future::Future;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pypool::{Pool, PoolError, ProgramSpec, RemoteErrorKind, ShutdownReport, StoreError, Timeouts};
use serde_json::{Value, json};

/// An error response: a status, a `{"kind", "message"}` body, maybe `Retry-After`.
pub struct ApiError {
    status: StatusCode,
    kind: String,
    message: String,
    retry_after: Option<Duration>,
}

impl ApiError {
    fn unprocessable(kind: &str, message: String) -> Self {
        let (status, retry_after) = (StatusCode::UNPROCESSABLE_ENTITY, None);
        Self {
            status,
            kind: kind.to_owned(),
            message,
            retry_after,
        }
    }
}

impl From<PoolError> for ApiError {
    fn from(error: PoolError) -> Self {
        let mut kind = error.kind().to_owned();
        let mut retry_after = None;
        let status = match &error {
            PoolError::Overloaded { .. }
            | PoolError::ShuttingDown { .. }
            | PoolError::CheckoutTimeout { .. }
            | PoolError::WorkerBusy { .. } => {
                retry_after = Some(Duration::from_secs(1));
                StatusCode::SERVICE_UNAVAILABLE
            }
            PoolError::CircuitOpen {
                retry_after: wait, ..
            } => {
                retry_after = Some(*wait);
                StatusCode::SERVICE_UNAVAILABLE
            }
            PoolError::DeadlineExceeded { .. } => StatusCode::GATEWAY_TIMEOUT,
            PoolError::InvalidArguments { .. }
            | PoolError::ArgumentsTooDeep { .. }
            | PoolError::InvalidId(_)
            | PoolError::Store(StoreError::InvalidSpec { .. })
            | PoolError::Store(StoreError::ApiKeyInDefinition { .. }) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            PoolError::Store(StoreError::ProgramNotFound { .. }) => StatusCode::NOT_FOUND,
            PoolError::Store(StoreError::ProgramExists { .. }) => StatusCode::CONFLICT,
            PoolError::ProgramNotAllowed { .. } | PoolError::ReservedCommand { .. } => {
                StatusCode::FORBIDDEN
            }
            PoolError::Remote { error: remote, .. } => {
                kind = remote.kind.as_str().to_owned();
                match remote.kind {
                    RemoteErrorKind::InvalidInput | RemoteErrorKind::InvalidArguments => {
                        StatusCode::UNPROCESSABLE_ENTITY
                    }
                    RemoteErrorKind::UnknownCommand => StatusCode::NOT_FOUND,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                }
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self {
            status,
            kind,
            message: error.to_string(),
            retry_after,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "kind": self.kind, "message": self.message }));
        let mut response = (self.status, body).into_response();
        if let Some(wait) = self.retry_after {
            // Whole seconds, rounded up: `Retry-After: 0` would invite a hot loop.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

type ApiResult = Result<(StatusCode, Json<Value>), ApiError>;

/// The request body as JSON (an empty body is `{}`), or a 422 naming what is
/// wrong with it. Any content type is read as JSON, so `curl -d` works.
fn body(raw: &Bytes) -> Result<Value, ApiError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(raw).map_err(|error| {
        ApiError::unprocessable("invalid_json", format!("the body is not JSON: {error}"))
    })
}

/// The request body as a program definition (`{"kind": ..., "spec": {...}}`).
fn spec(raw: &Bytes) -> Result<ProgramSpec, ApiError> {
    serde_json::from_value(body(raw)?).map_err(|error| {
        ApiError::unprocessable("invalid_spec", format!("not a program definition: {error}"))
    })
}

fn created(program: impl serde::Serialize) -> ApiResult {
    let program = serde_json::to_value(program).unwrap_or(Value::Null);
    Ok((StatusCode::CREATED, Json(program)))
}

async fn create_program(State(pool): State<Pool>, Path(id): Path<String>, raw: Bytes) -> ApiResult {
    created(pool.create_program(&id, spec(&raw)?).await?)
}

async fn run_program(State(pool): State<Pool>, Path(id): Path<String>, raw: Bytes) -> ApiResult {
    Ok((
        StatusCode::OK,
        Json(pool.execute_program(&id, body(&raw)?).await?),
    ))
}

async fn create_session_program(
    State(pool): State<Pool>,
    Path((sid, id)): Path<(String, String)>,
    raw: Bytes,
) -> ApiResult {
    created(pool.session(&sid)?.create_program(&id, spec(&raw)?).await?)
}

async fn run_session_program(
    State(pool): State<Pool>,
    Path((sid, id)): Path<(String, String)>,
    raw: Bytes,
) -> ApiResult {
    let result = pool
        .session(&sid)?
        .execute_program(&id, body(&raw)?)
        .await?;
    Ok((StatusCode::OK, Json(result)))
}

async fn run_command(State(pool): State<Pool>, Path(name): Path<String>, raw: Bytes) -> ApiResult {
    Ok((
        StatusCode::OK,
        Json(pool.execute(&name, body(&raw)?).await?),
    ))
}

async fn status(State(pool): State<Pool>) -> ApiResult {
    Ok((
        StatusCode::OK,
        Json(serde_json::to_value(pool.status()).unwrap_or(Value::Null)),
    ))
}

/// The service's routes over `pool`.
pub fn router(pool: Pool) -> Router {
    Router::new()
        .route("/programs/{id}", post(create_program))
        .route("/programs/{id}/run", post(run_program))
        .route(
            "/sessions/{sid}/programs/{id}",
            post(create_session_program),
        )
        .route(
            "/sessions/{sid}/programs/{id}/run",
            post(run_session_program),
        )
        .route("/commands/{name}", post(run_command))
        .route("/status", get(status))
        .with_state(pool)
}

/// Serves `pool` on `listener` until `shutdown` resolves, then lets the
/// requests in flight finish and shuts the pool down within `grace`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    pool: Pool,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<ShutdownReport> {
    axum::serve(listener, router(pool.clone()))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(pool.shutdown(grace).await)
}

/// Resolves on SIGINT or SIGTERM.
async fn signalled() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// A setting: `--flag value`, else the environment variable, else `default`.
fn setting(flag: &str, env: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|arg| arg == flag)
        .and_then(|at| args.get(at + 1).cloned())
        .or_else(|| std::env::var(env).ok())
        .unwrap_or_else(|| default.to_owned())
}

fn number<T: std::str::FromStr>(flag: &str, env: &str, default: &str) -> Result<T, String> {
    let text = setting(flag, env, default);
    text.parse()
        .map_err(|_| format!("{flag} / {env}: `{text}` is not a number"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bind = setting("--bind", "PYPOOL_BIND", "127.0.0.1:8080");
    let timeouts = Timeouts {
        request: Duration::from_millis(number(
            "--request-timeout-ms",
            "PYPOOL_REQUEST_TIMEOUT_MS",
            "60000",
        )?),
        ..Timeouts::default()
    };
    let mut builder = Pool::builder()
        .interpreter(setting("--python", "PYPOOL_PYTHON", "python3"))
        .size(number("--size", "PYPOOL_SIZE", "4")?)
        .queue_bound(number("--queue-bound", "PYPOOL_QUEUE_BOUND", "1024")?)
        .timeouts(timeouts);
    for handler in setting("--handlers", "PYPOOL_HANDLERS", "")
        .split(',')
        .filter(|h| !h.is_empty())
    {
        builder = builder.handler(handler);
    }
    let pool = builder.build()?;
    pool.ready().await?;
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let report = serve(listener, pool, signalled(), Duration::from_secs(10)).await?;
    eprintln!("shut down: {report:?}");
    Ok(())
}
