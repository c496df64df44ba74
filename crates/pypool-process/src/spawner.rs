//! Starting a Python worker process and reading its handshake.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use pypool_seam::{
    SpawnError, SpawnRequest, WorkerConnection, WorkerExit, WorkerId, WorkerSpawner,
};
use pypool_wire::{Handshake, Message, MessageCodec, PROTOCOL_VERSION};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::watch;
use tokio_util::codec::FramedRead;

use crate::config::{EnvPolicy, PythonSpawnerConfig, StartMethod};
use crate::connection::ProcessConnection;
use crate::environment::{EnvironmentReport, check_environment};
use crate::runtime::{RuntimeUnpackError, embedded_runtime_dir};
use crate::signals::SpawnedProcess;
use crate::stderr::{self, StderrTail};

/// The worker module that speaks the template protocol (fork start method);
/// a spawner configured with another module always spawns.
const DEFAULT_WORKER_MODULE: &str = "pypool_worker";

/// The environment variable that tells the worker's guardian the host's pid.
pub(crate) const HOST_PID_ENV: &str = "PYPOOL_HOST_PID";

/// The variable that tells a worker which modules `python` programs may
/// name (comma-separated prefixes; see `docs/PROTOCOL.md`).
const ALLOWED_PROGRAM_MODULES_VAR: &str = "PYPOOL_ALLOWED_PROGRAM_MODULES";

/// How long, after a worker failed to start, we wait for the rest of its
/// stderr so the error can quote it.
const STDERR_DRAIN_GRACE: Duration = Duration::from_millis(500);

/// Starts real Python workers (`python -m pypool_worker`); see the crate docs.
#[derive(Debug, Clone)]
pub struct PythonSpawner {
    config: Arc<PythonSpawnerConfig>,
    /// The environment check, run once before the first worker and kept.
    environment: Arc<tokio::sync::OnceCell<EnvironmentReport>>,
    /// The fork template (fork start method), shared by clones.
    pub(crate) forks: Arc<crate::fork::TemplateSlot>,
}

impl PythonSpawner {
    /// A spawner that starts workers as `config` says.
    pub fn new(config: PythonSpawnerConfig) -> Self {
        Self {
            config: Arc::new(config),
            environment: Arc::new(tokio::sync::OnceCell::new()),
            forks: Arc::new(crate::fork::TemplateSlot::default()),
        }
    }

    /// The environment check for this spawner's configuration: run on the
    /// first call (or before the first worker), then kept for the spawner's
    /// life — clones share it.
    pub async fn environment(&self) -> &EnvironmentReport {
        self.environment
            .get_or_init(|| check_environment(&self.config))
            .await
    }

    /// The configuration workers are started with.
    pub fn config(&self) -> &PythonSpawnerConfig {
        &self.config
    }

    /// The pid of the standby forked ahead of need (fork start method, see
    /// [`PythonSpawnerConfig::standby`]), if one is ready now: the process the
    /// next spawn adopts. For monitoring and tests.
    pub fn standby_pid(&self) -> Option<u32> {
        self.forks.standby_pid()
    }

    fn command(&self, worker_id: WorkerId, python_path: Option<OsString>) -> Command {
        let config = &*self.config;
        let mut command = Command::new(&config.interpreter);
        if let EnvPolicy::Clear { .. } = config.env_policy {
            command.env_clear();
            command.envs(std::env::vars_os().filter(|(name, _)| {
                name.to_str()
                    .is_some_and(|name| config.env_policy.passes(name))
            }));
        }
        match &config.allowed_program_modules {
            Some(prefixes) => command.env(ALLOWED_PROGRAM_MODULES_VAR, prefixes.join(",")),
            None => command.env_remove(ALLOWED_PROGRAM_MODULES_VAR),
        };
        command
            .arg("-m")
            .arg(&config.worker_module)
            .arg("--worker-id")
            .arg(worker_id.to_string())
            .arg("--log-level")
            .arg(&config.log_level)
            .arg("--max-frame-bytes")
            .arg(config.max_frame_bytes.to_string());
        for module in &config.preload {
            command.arg("--preload").arg(module);
        }
        if let Some(capacity) = config.capacity {
            command.arg("--capacity").arg(capacity.to_string());
        }
        if !config.handlers.is_empty() {
            command.arg("--handlers").args(&config.handlers);
        }
        if let Some(python_path) = python_path {
            command.env("PYTHONPATH", python_path);
        }
        command
            .env("PYTHONDONTWRITEBYTECODE", "1")
            // The guardian watches this process and takes the worker's tree
            // down when it dies (see `pypool_worker.guardian`).
            .env(HOST_PID_ENV, std::process::id().to_string())
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .envs(
                config
                    .env
                    .iter()
                    .map(|(k, v)| (OsString::from(k), OsString::from(v))),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = &config.working_dir {
            command.current_dir(dir);
        }
        command
    }
}

/// The worker's `PYTHONPATH`: the configured folders, then the embedded
/// runtime's folder (when enabled), then the host's own `PYTHONPATH`. Also
/// returns the runtime's folder. `None`: nothing to set.
pub(crate) fn python_path_for(
    config: &PythonSpawnerConfig,
) -> Result<(Option<OsString>, Option<std::path::PathBuf>), RuntimeUnpackError> {
    let mut paths: Vec<std::path::PathBuf> = config.python_path.clone();
    let runtime_dir = if config.embedded_runtime {
        let dir = embedded_runtime_dir()?;
        paths.push(dir.clone());
        Some(dir)
    } else {
        None
    };
    if paths.is_empty() {
        return Ok((None, runtime_dir));
    }
    if let Some(existing) = std::env::var_os("PYTHONPATH") {
        paths.extend(std::env::split_paths(&existing));
    }
    Ok((std::env::join_paths(paths).ok(), runtime_dir))
}

fn exit_of(status: ExitStatus) -> WorkerExit {
    WorkerExit {
        code: status.code(),
        signal: status.signal(),
    }
}

/// Reaps `child` on a thread of its own and publishes its exit. The thread
/// waits without reaping, then reaps through [`SpawnedProcess::wait_and_reap`],
/// so no signal can be sent to the pid once it may have been recycled.
fn watch_exit(
    mut child: Child,
    process: Arc<SpawnedProcess>,
    worker_id: WorkerId,
) -> std::io::Result<watch::Receiver<Option<WorkerExit>>> {
    let (sender, receiver) = watch::channel(None);
    std::thread::Builder::new()
        .name(format!("pypool-reap-{worker_id}"))
        .spawn(move || {
            let exit = process.wait_and_reap(|| match child.try_wait() {
                Ok(Some(status)) => exit_of(status),
                Ok(None) => {
                    tracing::warn!(worker_id, "worker reported exited but could not be reaped");
                    WorkerExit::default()
                }
                Err(error) => {
                    tracing::warn!(worker_id, %error, "could not wait for worker");
                    WorkerExit::default()
                }
            });
            tracing::debug!(worker_id, %exit, "worker process ended");
            let _ = sender.send(Some(exit));
        })?;
    Ok(receiver)
}

/// A process this spawner started, up to (not including) its first frame.
pub(crate) struct Started {
    /// The process the host spawned.
    pub(crate) process: Arc<SpawnedProcess>,
    /// Kills `process`'s tree unless disarmed.
    pub(crate) guard: KillOnDrop,
    /// Its exit, once reaped.
    pub(crate) exit: watch::Receiver<Option<WorkerExit>>,
    /// Its stdin, when it is a pipe (not for a template).
    pub(crate) stdin: Option<ChildStdin>,
    /// Its stdout.
    pub(crate) stdout: ChildStdout,
    /// The task forwarding its stderr.
    pub(crate) stderr_task: tokio::task::JoinHandle<()>,
    /// Its last stderr lines.
    pub(crate) tail: StderrTail,
}

#[async_trait]
impl WorkerSpawner for PythonSpawner {
    async fn spawn(&self, request: SpawnRequest) -> Result<Arc<dyn WorkerConnection>, SpawnError> {
        if self.config.check_environment {
            let report = self.environment().await;
            // A missing interpreter is left to the spawn below, which reports
            // it as `InterpreterNotFound`; a probe that ran and found problems
            // stops here, before any worker.
            if report.python_version.is_some() && !report.is_ok() {
                return Err(SpawnError::EnvironmentUnusable {
                    problems: report.problems.join("; "),
                });
            }
        }
        if self.config.start_method == StartMethod::Fork
            && self.config.worker_module == DEFAULT_WORKER_MODULE
            && !self.forks.fell_back()
        {
            if let Some(connection) = crate::fork::spawn_forked(self, &request).await? {
                return Ok(connection);
            }
        }
        let worker_id = request.worker_id;
        let started = self.start_process(worker_id, None)?;
        let pipes_missing = SpawnError::Io {
            worker_id,
            context: "taking the worker's stdin".to_owned(),
            source: Arc::new(std::io::Error::other("pipe not captured")),
        };
        let Started {
            process,
            guard,
            exit,
            stdin,
            stdout,
            stderr_task,
            tail,
        } = started;
        let stdin = stdin.ok_or(pipes_missing)?;
        self.await_handshake(
            worker_id,
            request.handshake_timeout,
            Handover {
                process,
                guard,
                exit,
                stderr_task,
                tail,
                keep_alive: None,
            },
            stdout,
            stdin,
        )
        .await
    }
}

/// What [`PythonSpawner::await_handshake`] hands to the connection, or kills.
pub(crate) struct Handover {
    pub(crate) process: Arc<SpawnedProcess>,
    pub(crate) guard: KillOnDrop,
    pub(crate) exit: watch::Receiver<Option<WorkerExit>>,
    pub(crate) stderr_task: tokio::task::JoinHandle<()>,
    pub(crate) tail: StderrTail,
    /// Kept alive as long as the connection (a forked worker's template).
    pub(crate) keep_alive: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl PythonSpawner {
    /// Spawns `python -m pypool_worker` for `worker_id` (a template when
    /// `template_control` is given: that socket becomes its stdin).
    pub(crate) fn start_process(
        &self,
        worker_id: WorkerId,
        template_control: Option<std::os::fd::OwnedFd>,
    ) -> Result<Started, SpawnError> {
        let (python_path, _runtime_dir) =
            python_path_for(&self.config).map_err(|error| SpawnError::EnvironmentUnusable {
                problems: error.to_string(),
            })?;
        let mut command = self.command(worker_id, python_path);
        let is_template = template_control.is_some();
        if let Some(control) = template_control {
            command.arg("--template").stdin(Stdio::from(control));
        }
        let mut child = command.spawn().map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                SpawnError::InterpreterNotFound {
                    interpreter: self.config.interpreter.clone(),
                    source: Arc::new(source),
                }
            }
            _ => SpawnError::Io {
                worker_id,
                context: format!("spawning `{}`", self.config.interpreter),
                source: Arc::new(source),
            },
        })?;
        let pid = child.id().unwrap_or_default();
        let Some(process) = SpawnedProcess::new(pid) else {
            return Err(SpawnError::Io {
                worker_id,
                context: format!("spawning `{}`", self.config.interpreter),
                source: Arc::new(std::io::Error::other(format!(
                    "the spawned process has no usable pid ({pid})"
                ))),
            });
        };
        let process = Arc::new(process);
        let pipes_missing = |what: &str| SpawnError::Io {
            worker_id,
            context: format!("taking the worker's {what}"),
            source: Arc::new(std::io::Error::other("pipe not captured")),
        };
        let stdin = child.stdin.take();
        if stdin.is_none() && !is_template {
            return Err(pipes_missing("stdin"));
        }
        let stdout = child.stdout.take().ok_or_else(|| pipes_missing("stdout"))?;
        let stderr_pipe = child.stderr.take().ok_or_else(|| pipes_missing("stderr"))?;
        let tail = StderrTail::new(self.config.stderr_tail_lines);
        let stderr_task = stderr::forward(worker_id, stderr_pipe, tail.clone());
        // From here on, any early return must kill the tree: the guard does.
        let guard = KillOnDrop(Some(Arc::clone(&process)));
        let exit = watch_exit(child, Arc::clone(&process), worker_id).map_err(|source| {
            SpawnError::Io {
                worker_id,
                context: "starting the thread that reaps the worker".to_owned(),
                source: Arc::new(source),
            }
        })?;
        Ok(Started {
            process,
            guard,
            exit,
            stdin,
            stdout,
            stderr_task,
            tail,
        })
    }

    /// Reads the worker's first frame from `stdout`; hands a connection
    /// back, or kills the worker and says why it failed.
    pub(crate) async fn await_handshake<R, W>(
        &self,
        worker_id: WorkerId,
        timeout: Duration,
        handover: Handover,
        stdout: R,
        stdin: W,
    ) -> Result<Arc<dyn WorkerConnection>, SpawnError>
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
        W: tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Handover {
            process,
            guard,
            exit,
            stderr_task,
            tail,
            keep_alive,
        } = handover;
        let pid = process.pid();
        let mut frames = FramedRead::new(stdout, MessageCodec::new(self.config.max_frame_bytes));
        let first = tokio::time::timeout(timeout, frames.next()).await;
        let failure = match first {
            Ok(Some(Ok(Message::Handshake(handshake)))) => {
                match check_handshake(&handshake, worker_id, &process) {
                    Ok(()) => {
                        guard.disarm();
                        tracing::debug!(worker_id, pid, "worker ready");
                        let connection = ProcessConnection::start(
                            handshake,
                            frames,
                            stdin,
                            self.config.max_frame_bytes,
                            exit,
                            process,
                        )
                        .keeping_alive(keep_alive);
                        return Ok(Arc::new(connection));
                    }
                    Err(failure) => failure,
                }
            }
            Ok(Some(Ok(Message::StartupError(error)))) => Failure::Startup {
                kind: error.kind,
                message: error.message,
                traceback: error.traceback,
            },
            Ok(Some(Ok(other))) => {
                Failure::Bad(format!("expected a handshake, got {}", describe(&other)))
            }
            Ok(Some(Err(error))) => Failure::Bad(error.to_string()),
            Ok(None) => Failure::Exited,
            Err(_elapsed) => Failure::Timeout,
        };
        drop(frames);
        drop(stdin);
        Err(self
            .fail(worker_id, failure, guard, exit, stderr_task, tail, timeout)
            .await)
    }
}

/// Kills the spawned process's tree when dropped, unless disarmed.
#[derive(Debug)]
pub(crate) struct KillOnDrop(pub(crate) Option<Arc<SpawnedProcess>>);

impl KillOnDrop {
    /// Hands the process over (to its connection): no kill on drop.
    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(process) = &self.0 {
            process.kill_tree();
        }
    }
}

pub(crate) enum Failure {
    Startup {
        kind: String,
        message: String,
        traceback: Option<String>,
    },
    Bad(String),
    Mismatch(u32),
    Exited,
    Timeout,
}

fn check_handshake(
    handshake: &Handshake,
    worker_id: WorkerId,
    process: &SpawnedProcess,
) -> Result<(), Failure> {
    if handshake.protocol != PROTOCOL_VERSION {
        return Err(Failure::Mismatch(handshake.protocol));
    }
    if handshake.worker_id != worker_id {
        return Err(Failure::Bad(format!(
            "it announced worker id {} instead of {worker_id}",
            handshake.worker_id
        )));
    }
    // The reported pid is information, never a signal target; still, a
    // worker that names a process outside its own tree is lying or broken.
    if !process.owns(handshake.pid) {
        return Err(Failure::Bad(format!(
            "it announced pid {}, which is neither the process the host started (pid {}) \
             nor one of its descendants",
            handshake.pid,
            process.pid()
        )));
    }
    Ok(())
}

fn describe(message: &Message) -> &'static str {
    match message {
        Message::Handshake(_) => "a handshake",
        Message::StartupError(_) => "a startup error",
        Message::Request(_) => "a request",
        Message::Reply(_) => "a reply",
        Message::Draining(_) => "a draining notice",
        Message::Cancel(_) => "a cancel",
        Message::StreamRequest(_) => "a streaming request",
        Message::Chunk(_) => "a chunk",
        Message::Credit(_) => "a credit",
    }
}

impl PythonSpawner {
    /// Turns a failed start into a [`SpawnError`], after killing the worker and
    /// collecting the rest of its stderr.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn fail(
        &self,
        worker_id: WorkerId,
        failure: Failure,
        guard: KillOnDrop,
        mut exit: watch::Receiver<Option<WorkerExit>>,
        stderr_task: tokio::task::JoinHandle<()>,
        tail: StderrTail,
        timeout: Duration,
    ) -> SpawnError {
        // A worker that exited on its own should be reaped before we kill its
        // group, so its real exit status is reported.
        let natural_exit = if matches!(failure, Failure::Exited | Failure::Startup { .. }) {
            tokio::time::timeout(STDERR_DRAIN_GRACE, exit.wait_for(Option::is_some))
                .await
                .ok()
                .and_then(|seen| seen.ok().and_then(|seen| *seen))
        } else {
            None
        };
        drop(guard);
        let _ = tokio::time::timeout(STDERR_DRAIN_GRACE, stderr_task).await;
        let stderr_tail = tail.text();
        match failure {
            Failure::Startup {
                kind,
                message,
                traceback,
            } => SpawnError::StartupFailed {
                worker_id,
                kind,
                message,
                traceback,
                stderr_tail,
            },
            Failure::Bad(reason) => SpawnError::BadHandshake {
                worker_id,
                reason,
                stderr_tail,
            },
            Failure::Mismatch(worker_version) => SpawnError::ProtocolMismatch {
                worker_id,
                worker_version,
                host_version: PROTOCOL_VERSION,
            },
            Failure::Exited => SpawnError::ExitedBeforeHandshake {
                worker_id,
                exit: natural_exit.unwrap_or_default(),
                stderr_tail,
            },
            Failure::Timeout => SpawnError::HandshakeTimeout {
                worker_id,
                timeout,
                stderr_tail,
            },
        }
    }
}
