//! The fork start method: one template process per spawner, workers forked
//! from it (`python/pypool_worker/template.py`; ARCHITECTURE.md, "Fork start
//! method"; docs/PROTOCOL.md, "Template control").
//!
//! The host spawns the template like any worker (its own process group, the
//! guardian in front of it), with a `SOCK_SEQPACKET` socket as its stdin. For
//! each worker it makes three pipes, sends `fork` with the child ends as
//! `SCM_RIGHTS`, closes its copies of those ends and waits for `forked`. The
//! forked pid is trusted only after a pidfd was opened on it and `/proc` says
//! its parent is the template (whose own pid was checked, at `template_ready`,
//! to lie in the spawned tree). The template keeps an exited child a zombie
//! until the host has recorded its end (`exited`, then the host's `release`),
//! so the host's pid and group signals never reach a recycled pid.

use std::collections::HashMap;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, sendmsg, socketpair,
};
use pypool_seam::{SpawnError, SpawnRequest, WorkerConnection, WorkerExit, WorkerId};
use pypool_wire::{TemplateCodec, TemplateCommand, TemplateEvent, encode_template_command};
use tokio::io::Interest;
use tokio::net::UnixDatagram;
use tokio::net::unix::pipe;
use tokio::sync::{oneshot, watch};
use tokio_util::codec::FramedRead;

use crate::signals::SpawnedProcess;
use crate::spawner::{Failure, Handover, KillOnDrop, PythonSpawner, Started};
use crate::stderr::{self, StderrTail};

/// The template's slot in a spawner (shared by its clones).
#[derive(Debug, Default)]
pub(crate) struct TemplateSlot {
    state: tokio::sync::Mutex<SlotState>,
    /// Counts finished template start attempts (read without the lock).
    finished: std::sync::atomic::AtomicU64,
    /// The template had threads: every later spawn is a plain spawn.
    fell_back: AtomicBool,
}

#[derive(Debug, Default)]
struct SlotState {
    template: Option<Arc<Template>>,
    /// The last attempt's failure, for spawns that waited for that attempt.
    failure: Option<(u64, SpawnError)>,
}

impl TemplateSlot {
    /// Whether the spawner fell back to plain spawn.
    pub(crate) fn fell_back(&self) -> bool {
        self.fell_back.load(Ordering::Relaxed)
    }

    /// The ready standby's pid (`None` also while a spawn holds the slot).
    pub(crate) fn standby_pid(&self) -> Option<u32> {
        let state = self.state.try_lock().ok()?;
        let template = state.template.as_ref()?;
        let standby = template
            .standby
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        standby
            .as_ref()
            .filter(|standby| standby.forked.exit.borrow().is_none())
            .map(|standby| standby.forked.process.pid())
    }
}

/// A running template: the process tree the host spawned for it, its
/// control socket, and the bookkeeping of its forks.
#[derive(Debug)]
pub(crate) struct Template {
    control: Arc<UnixDatagram>,
    shared: Arc<Mutex<Forks>>,
    /// The standby, once one is forked and not yet adopted.
    standby: Mutex<Option<Standby>>,
    /// A standby is being forked (at most one at a time).
    making_standby: AtomicBool,
    /// Names the next standby in the template's events.
    standby_names: std::sync::atomic::AtomicU64,
    /// Kills the template's tree (the template and every worker forked from
    /// it) when the last handle goes: the spawner's and every connection's.
    _guard: KillOnDrop,
}

#[derive(Debug, Default)]
struct Forks {
    /// Set when the template's event stream ended: how it ended.
    dead: Option<(WorkerExit, String)>,
    /// Spawns waiting for their `forked`.
    waiting: HashMap<WorkerId, oneshot::Sender<Result<Forked, SpawnError>>>,
    /// Forked workers not yet reported exited.
    live: HashMap<WorkerId, Live>,
}

#[derive(Debug)]
struct Live {
    process: Arc<SpawnedProcess>,
    exit: watch::Sender<Option<WorkerExit>>,
}

#[derive(Debug)]
struct Forked {
    process: Arc<SpawnedProcess>,
    exit: watch::Receiver<Option<WorkerExit>>,
}

/// A worker forked ahead of need, waiting on its stdin for its worker id
/// (`prefork`; `PythonSpawnerConfig::standby`). Dropping it closes its stdin,
/// and the standby exits.
#[derive(Debug)]
struct Standby {
    /// The host's name for it in the template's events (not a worker id).
    name: WorkerId,
    pipes: HostPipes,
    forked: Forked,
}

/// The host's ends of a forked worker's three pipes.
#[derive(Debug)]
struct HostPipes {
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
}

/// Standbys are named from here up in the template's events, far above any
/// worker id a pool hands out.
const STANDBY_NAMES_FROM: WorkerId = 1 << 62;

fn lock(forks: &Mutex<Forks>) -> std::sync::MutexGuard<'_, Forks> {
    forks.lock().unwrap_or_else(PoisonError::into_inner)
}

fn io_error(worker_id: WorkerId, context: &str, error: std::io::Error) -> SpawnError {
    SpawnError::Io {
        worker_id,
        context: context.to_owned(),
        source: Arc::new(error),
    }
}

impl Template {
    fn new(control: Arc<UnixDatagram>, shared: Arc<Mutex<Forks>>, guard: KillOnDrop) -> Self {
        Self {
            control,
            shared,
            standby: Mutex::new(None),
            making_standby: AtomicBool::new(false),
            standby_names: std::sync::atomic::AtomicU64::new(STANDBY_NAMES_FROM),
            _guard: guard,
        }
    }

    fn is_dead(&self) -> bool {
        lock(&self.shared).dead.is_some()
    }

    /// The standby, if one is ready and still alive (a dead one is dropped).
    fn take_standby(&self) -> Option<Standby> {
        let standby = self
            .standby
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        if standby.forked.exit.borrow().is_some() {
            tracing::debug!(
                name = standby.name,
                "the standby exited before it was adopted"
            );
            return None;
        }
        Some(standby)
    }

    /// Sends one command (with `fds` as `SCM_RIGHTS`) as one packet.
    async fn send(&self, command: &TemplateCommand, fds: &[&OwnedFd]) -> std::io::Result<()> {
        send_command(&self.control, command, fds).await
    }
}

async fn send_command(
    control: &UnixDatagram,
    command: &TemplateCommand,
    fds: &[&OwnedFd],
) -> std::io::Result<()> {
    let frame = encode_template_command(command).map_err(std::io::Error::other)?;
    let raw: Vec<i32> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    control
        .async_io(Interest::WRITABLE, || {
            let iov = [IoSlice::new(&frame)];
            let rights = [ControlMessage::ScmRights(&raw)];
            let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &rights };
            sendmsg::<()>(
                control.as_raw_fd(),
                &iov,
                cmsgs,
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
                None,
            )
            .map_err(std::io::Error::from)
        })
        .await
        .and_then(|sent| {
            if sent == frame.len() {
                Ok(())
            } else {
                Err(std::io::Error::other("the template command was cut short"))
            }
        })
}

/// Forks a worker from the spawner's template (starting the template first
/// if there is none or it died), or adopts the template's standby. `Ok(None)`:
/// the template cannot fork (it has threads); the caller spawns the worker
/// instead. Afterwards a new standby is forked in the background (when the
/// configuration keeps one).
pub(crate) async fn spawn_forked(
    spawner: &PythonSpawner,
    request: &SpawnRequest,
) -> Result<Option<Arc<dyn WorkerConnection>>, SpawnError> {
    let Some(template) = template_for(spawner, request).await? else {
        return Ok(None);
    };
    let started = match template.take_standby() {
        Some(standby) => match adopt(spawner, request.worker_id, standby) {
            Ok(adopted) => adopted,
            Err(standby) => {
                tracing::debug!(
                    name = standby.name,
                    "the standby could not be adopted (gone); forking instead"
                );
                fork(spawner, request, &template).await
            }
        },
        None => fork(spawner, request, &template).await,
    };
    if spawner.config().standby {
        make_standby(&template, request.handshake_timeout);
    }
    let (forked, stdin, stdout, stderr_task, tail) = started?;
    let guard = KillOnDrop(Some(Arc::clone(&forked.process)));
    let keep_alive: Arc<dyn std::any::Any + Send + Sync> = template;
    spawner
        .await_handshake(
            request.worker_id,
            request.handshake_timeout,
            Handover {
                process: forked.process,
                guard,
                exit: forked.exit,
                stderr_task,
                tail,
                keep_alive: Some(keep_alive),
            },
            stdout,
            stdin,
        )
        .await
        .map(Some)
}

/// A forked (or adopted) worker before its handshake: the process, its
/// stdin and stdout wrapped for tokio, and its stderr being forwarded.
type Prepared = (
    Forked,
    pipe::Sender,
    pipe::Receiver,
    tokio::task::JoinHandle<()>,
    StderrTail,
);

/// Adopts `standby` as worker `worker_id`: writes the id to its stdin (8
/// bytes, big-endian, into an empty pipe: it never blocks). `Err`: the
/// standby is gone (its stdin is closed); the caller forks instead.
fn adopt(
    spawner: &PythonSpawner,
    worker_id: WorkerId,
    standby: Standby,
) -> Result<Result<Prepared, SpawnError>, Standby> {
    match rustix::io::write(&standby.pipes.stdin, &worker_id.to_be_bytes()) {
        Ok(8) => {}
        _ => return Err(standby),
    }
    tracing::debug!(worker_id, name = standby.name, "adopted the standby");
    let Standby { pipes, forked, .. } = standby;
    Ok(wrap(worker_id, pipes, spawner.config().stderr_tail_lines)
        .map(|(stdin, stdout, stderr_task, tail)| (forked, stdin, stdout, stderr_task, tail)))
}

/// Wraps the host's pipe ends for tokio and starts forwarding stderr.
fn wrap(
    worker_id: WorkerId,
    pipes: HostPipes,
    tail_lines: usize,
) -> Result<
    (
        pipe::Sender,
        pipe::Receiver,
        tokio::task::JoinHandle<()>,
        StderrTail,
    ),
    SpawnError,
> {
    let host_pipe =
        |error: std::io::Error| io_error(worker_id, "wrapping the worker's pipes", error);
    let stdin = pipe::Sender::from_owned_fd(pipes.stdin).map_err(host_pipe)?;
    let stdout = pipe::Receiver::from_owned_fd(pipes.stdout).map_err(host_pipe)?;
    let stderr_pipe = pipe::Receiver::from_owned_fd(pipes.stderr).map_err(host_pipe)?;
    let tail = StderrTail::new(tail_lines);
    let stderr_task = stderr::forward(worker_id, stderr_pipe, tail.clone());
    Ok((stdin, stdout, stderr_task, tail))
}

/// Forks a worker now: `fork` with fresh pipes, then waits for `forked`.
async fn fork(
    spawner: &PythonSpawner,
    request: &SpawnRequest,
    template: &Template,
) -> Result<Prepared, SpawnError> {
    let worker_id = request.worker_id;
    let (pipes, forked) =
        send_fork(template, worker_id, TemplateCommand::Fork { worker_id }).await?;
    let (stdin, stdout, stderr_task, tail) =
        wrap(worker_id, pipes, spawner.config().stderr_tail_lines)?;
    let forked = await_forked(template, worker_id, forked, request.handshake_timeout)
        .await
        .map_err(|error| match error {
            SpawnError::HandshakeTimeout {
                worker_id, timeout, ..
            } => SpawnError::HandshakeTimeout {
                worker_id,
                timeout,
                stderr_tail: tail.text(),
            },
            other => other,
        })?;
    Ok((forked, stdin, stdout, stderr_task, tail))
}

/// Makes three pipes, registers the wait for `forked` under `name` and sends
/// `command` with the child ends (closed here once sent).
async fn send_fork(
    template: &Template,
    name: WorkerId,
    command: TemplateCommand,
) -> Result<(HostPipes, oneshot::Receiver<Result<Forked, SpawnError>>), SpawnError> {
    let (stdin_child, stdin_host) = pipe_pair(name)?;
    let (stdout_host, stdout_child) = pipe_pair(name)?;
    let (stderr_host, stderr_child) = pipe_pair(name)?;
    let (reply, forked) = oneshot::channel();
    {
        let mut forks = lock(&template.shared);
        if let Some((exit, tail)) = &forks.dead {
            return Err(SpawnError::TemplateExited {
                worker_id: name,
                exit: *exit,
                stderr_tail: tail.clone(),
            });
        }
        if forks.waiting.contains_key(&name) || forks.live.contains_key(&name) {
            // The template's events name processes by this id: a second
            // process under it would take the first one's events.
            return Err(io_error(
                name,
                "forking the worker from the template",
                std::io::Error::other(format!(
                    "worker id {name} is already in use by a process forked from this template"
                )),
            ));
        }
        forks.waiting.insert(name, reply);
    }
    let sent = template
        .send(&command, &[&stdin_child, &stdout_child, &stderr_child])
        .await;
    // Only the worker holds the child ends from here on.
    drop((stdin_child, stdout_child, stderr_child));
    if let Err(error) = sent {
        let mut forks = lock(&template.shared);
        forks.waiting.remove(&name);
        // A template that cannot take a command has died (the socket's
        // other end is closed): the same typed error as for a spawn that
        // was waiting when it died.
        tracing::debug!(worker_id = name, %error, "could not send a fork command");
        // The next spawn starts a new template (its reader will record how
        // this one ended).
        let (exit, stderr_tail) = forks.dead.get_or_insert_with(Default::default).clone();
        return Err(SpawnError::TemplateExited {
            worker_id: name,
            exit,
            stderr_tail,
        });
    }
    Ok((
        HostPipes {
            stdin: stdin_host,
            stdout: stdout_host,
            stderr: stderr_host,
        },
        forked,
    ))
}

/// Waits for the template's `forked` for `name`.
async fn await_forked(
    template: &Template,
    name: WorkerId,
    forked: oneshot::Receiver<Result<Forked, SpawnError>>,
    timeout: std::time::Duration,
) -> Result<Forked, SpawnError> {
    match tokio::time::timeout(timeout, forked).await {
        Ok(Ok(result)) => result,
        Ok(Err(_dropped)) => {
            let (exit, stderr_tail) = lock(&template.shared).dead.clone().unwrap_or_default();
            Err(SpawnError::TemplateExited {
                worker_id: name,
                exit,
                stderr_tail,
            })
        }
        Err(_elapsed) => {
            lock(&template.shared).waiting.remove(&name);
            Err(SpawnError::HandshakeTimeout {
                worker_id: name,
                timeout,
                stderr_tail: String::new(),
            })
        }
    }
}

/// Forks a standby in the background unless one is ready or being made.
fn make_standby(template: &Arc<Template>, timeout: std::time::Duration) {
    if template.is_dead()
        || template
            .standby
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
        || template.making_standby.swap(true, Ordering::AcqRel)
    {
        return;
    }
    let template = Arc::clone(template);
    tokio::spawn(async move {
        let name = template.standby_names.fetch_add(1, Ordering::Relaxed);
        let made = async {
            let (pipes, forked) = send_fork(
                &template,
                name,
                TemplateCommand::Prefork { worker_id: name },
            )
            .await?;
            let forked = await_forked(&template, name, forked, timeout).await?;
            Ok::<_, SpawnError>(Standby {
                name,
                pipes,
                forked,
            })
        }
        .await;
        match made {
            Ok(standby) => {
                tracing::debug!(name, pid = standby.forked.process.pid(), "standby forked");
                *template
                    .standby
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(standby);
            }
            Err(error) => tracing::debug!(name, %error, "could not fork a standby"),
        }
        template.making_standby.store(false, Ordering::Release);
    });
}

/// A pipe as (read end, write end), both close-on-exec.
fn pipe_pair(worker_id: WorkerId) -> Result<(OwnedFd, OwnedFd), SpawnError> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|error| io_error(worker_id, "making the worker's pipes", error.into()))
}

/// The live template, started if needed. `Ok(None)`: fell back to spawn.
async fn template_for(
    spawner: &PythonSpawner,
    request: &SpawnRequest,
) -> Result<Option<Arc<Template>>, SpawnError> {
    let slot = &spawner.forks;
    // Spawns that queue behind a failing start get that start's error
    // rather than each starting (and failing) a template of its own.
    let seen = slot.finished.load(Ordering::Acquire);
    let mut state = slot.state.lock().await;
    if slot.fell_back() {
        return Ok(None);
    }
    if let Some(template) = &state.template {
        if !template.is_dead() {
            return Ok(Some(Arc::clone(template)));
        }
        tracing::warn!("the fork template exited; starting a new one");
        state.template = None;
    }
    if let Some((attempt, error)) = &state.failure {
        if *attempt > seen {
            return Err(with_worker_id(error.clone(), request.worker_id));
        }
    }
    let result = start_template(spawner, request).await;
    let attempt = slot.finished.fetch_add(1, Ordering::AcqRel) + 1;
    match result {
        Ok(Some(template)) => {
            let template = Arc::new(template);
            state.template = Some(Arc::clone(&template));
            state.failure = None;
            Ok(Some(template))
        }
        Ok(None) => {
            slot.fell_back.store(true, Ordering::Relaxed);
            Ok(None)
        }
        Err(error) => {
            state.failure = Some((attempt, error.clone()));
            Err(error)
        }
    }
}

/// The same error for another waiting spawn.
fn with_worker_id(mut error: SpawnError, id: WorkerId) -> SpawnError {
    match &mut error {
        SpawnError::Io { worker_id, .. }
        | SpawnError::StartupFailed { worker_id, .. }
        | SpawnError::ExitedBeforeHandshake { worker_id, .. }
        | SpawnError::HandshakeTimeout { worker_id, .. }
        | SpawnError::ProtocolMismatch { worker_id, .. }
        | SpawnError::BadHandshake { worker_id, .. }
        | SpawnError::TemplateExited { worker_id, .. } => *worker_id = id,
        _ => {}
    }
    error
}

/// Spawns a template and waits for `template_ready`. `Ok(None)`: it has
/// threads (logged; it is killed).
async fn start_template(
    spawner: &PythonSpawner,
    request: &SpawnRequest,
) -> Result<Option<Template>, SpawnError> {
    let worker_id = request.worker_id;
    let (host_end, template_end) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
    )
    .map_err(|errno| io_error(worker_id, "making the fork template's socket", errno.into()))?;
    // The template's end must block (it is the template's stdin).
    let template_end = std::os::unix::net::UnixDatagram::from(template_end);
    template_end
        .set_nonblocking(false)
        .map_err(|error| io_error(worker_id, "making the fork template's socket", error))?;
    let template_end = OwnedFd::from(template_end);
    let Started {
        process,
        guard,
        exit,
        stdin: _,
        stdout,
        stderr_task,
        tail,
    } = spawner.start_process(worker_id, Some(template_end))?;
    // A `SOCK_SEQPACKET` socket: tokio's datagram type only registers it
    // with the reactor; every send goes through `sendmsg` below.
    let control =
        tokio::net::UnixDatagram::from_std(std::os::unix::net::UnixDatagram::from(host_end))
            .map_err(|error| io_error(worker_id, "watching the fork template's socket", error))?;
    let mut events = FramedRead::new(stdout, TemplateCodec::new(spawner.config().max_frame_bytes));
    let timeout = request.handshake_timeout;
    let failure = match tokio::time::timeout(timeout, events.next()).await {
        Ok(Some(Ok(TemplateEvent::TemplateReady { pid, threads }))) => {
            if !process.owns(pid) {
                Failure::Bad(format!(
                    "the fork template announced pid {pid}, which is not in the tree the host \
                     started (pid {})",
                    process.pid()
                ))
            } else if threads > 1 {
                tracing::warn!(
                    threads,
                    "the fork template has {threads} threads after importing the handlers and \
                     preloads (a preload started threads); forking it would be unsafe, so this \
                     pool starts every worker with plain spawn from now on"
                );
                drop(guard);
                return Ok(None);
            } else {
                let shared = Arc::new(Mutex::new(Forks::default()));
                let control = Arc::new(control);
                tokio::spawn(read_events(
                    events,
                    Arc::clone(&shared),
                    Arc::clone(&control),
                    Arc::clone(&process),
                    pid,
                    exit,
                    tail,
                ));
                tracing::debug!(pid, "fork template ready");
                return Ok(Some(Template::new(control, shared, guard)));
            }
        }
        Ok(Some(Ok(TemplateEvent::StartupError(error)))) => Failure::Startup {
            kind: error.kind,
            message: error.message,
            traceback: error.traceback,
        },
        Ok(Some(Ok(other))) => Failure::Bad(format!(
            "the fork template sent {other:?} before it was ready"
        )),
        Ok(Some(Err(error))) => Failure::Bad(error.to_string()),
        Ok(None) => Failure::Exited,
        Err(_elapsed) => Failure::Timeout,
    };
    drop(events);
    drop(control);
    Err(spawner
        .fail(worker_id, failure, guard, exit, stderr_task, tail, timeout)
        .await)
}

/// Reads the template's events until its stream ends, then fails every
/// waiting spawn and ends every forked worker it still had.
async fn read_events<R>(
    mut events: FramedRead<R, TemplateCodec>,
    shared: Arc<Mutex<Forks>>,
    control: Arc<UnixDatagram>,
    spawned: Arc<SpawnedProcess>,
    template_pid: u32,
    mut template_exit: watch::Receiver<Option<WorkerExit>>,
    tail: StderrTail,
) where
    R: tokio::io::AsyncRead + Unpin,
{
    while let Some(event) = events.next().await {
        match event {
            Ok(TemplateEvent::Forked { worker_id, pid }) => {
                let waiter = lock(&shared).waiting.remove(&worker_id);
                let process = SpawnedProcess::forked(pid, template_pid);
                match process {
                    Ok(process) => {
                        let process = Arc::new(process);
                        let (exit, exit_receiver) = watch::channel(None);
                        lock(&shared).live.insert(
                            worker_id,
                            Live {
                                process: Arc::clone(&process),
                                exit,
                            },
                        );
                        let forked = Forked {
                            process: Arc::clone(&process),
                            exit: exit_receiver,
                        };
                        if waiter.is_none_or(|waiter| waiter.send(Ok(forked)).is_err()) {
                            // Nobody waits for it any more (timed out): kill it.
                            process.kill_tree();
                        }
                    }
                    Err(reason) => {
                        tracing::error!(worker_id, %reason, "the fork template reported a bad pid");
                        if let Some(waiter) = waiter {
                            let _ = waiter.send(Err(SpawnError::BadHandshake {
                                worker_id,
                                reason,
                                stderr_tail: String::new(),
                            }));
                        }
                    }
                }
            }
            Ok(TemplateEvent::ForkFailed { worker_id, message }) => {
                if let Some(waiter) = lock(&shared).waiting.remove(&worker_id) {
                    let _ = waiter.send(Err(SpawnError::Io {
                        worker_id,
                        context: "forking the worker from the template".to_owned(),
                        source: Arc::new(std::io::Error::other(message)),
                    }));
                }
            }
            Ok(TemplateEvent::Exited {
                worker_id,
                code,
                signal,
            }) => {
                let live = lock(&shared).live.remove(&worker_id);
                if let Some(live) = live {
                    // Recorded before the template may reap it.
                    live.process.mark_reaped();
                    let exit = WorkerExit { code, signal };
                    tracing::debug!(worker_id, %exit, "forked worker ended");
                    let _ = live.exit.send(Some(exit));
                }
                if let Err(error) =
                    send_command(&control, &TemplateCommand::Release { worker_id }, &[]).await
                {
                    tracing::debug!(worker_id, %error, "could not release a forked worker");
                }
            }
            Ok(other) => {
                tracing::warn!(?other, "unexpected event from the fork template; ignored");
            }
            Err(error) => {
                tracing::error!(%error, "the fork template broke its event stream; killing it");
                spawned.kill_tree();
                break;
            }
        }
    }
    // The template is gone (or broke the protocol): its guardian takes every
    // forked worker down with it.
    let exit = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        template_exit.wait_for(Option::is_some),
    )
    .await
    .ok()
    .and_then(|seen| seen.ok().and_then(|seen| *seen))
    .unwrap_or_default();
    tracing::warn!(%exit, "the fork template ended");
    let mut forks = lock(&shared);
    forks.dead = Some((exit, tail.text()));
    for (worker_id, waiter) in forks.waiting.drain() {
        let _ = waiter.send(Err(SpawnError::TemplateExited {
            worker_id,
            exit,
            stderr_tail: tail.text(),
        }));
    }
    for (_, live) in forks.live.drain() {
        // Its parent is gone; someone else reaps it: never signal it again.
        live.process.forget();
        let _ = live.exit.send(Some(WorkerExit {
            code: None,
            signal: Some(9),
        }));
    }
}
