//! A fake of the Python worker runtime (`pypool_worker`) behind scripted mock
//! workers: it caches programs per worker by (id, version) as the real one
//! does, applies settings, holds `occupy` requests until the test releases
//! them, and records every request each worker saw.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use pypool::{RemoteError, RemoteErrorKind, WorkerExit, WorkerId};
use pypool_mock::{PendingRequest, SpawnHandle, WorkerHandle};
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, watch};

/// The command that runs a program (see `docs/PROTOCOL.md`).
pub const RUN_PROGRAM: &str = "pypool.run_program";
/// The command that replaces a worker's settings.
pub const APPLY_SETTINGS: &str = "pypool.apply_settings";
/// A command the fake runtime holds until the test releases (or crashes) it.
pub const OCCUPY: &str = "occupy";
/// A program whose definition has this callable raises when run.
pub const FAILING_CALLABLE: &str = "x:fail";

/// How the fake runtime answered a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Not answered yet (an `occupy` still held).
    Pending,
    /// A result.
    Ok,
    /// `program_not_cached`: no definition was sent and none was cached.
    NotCached,
    /// A `python_exception` (the program's callable is [`FAILING_CALLABLE`]).
    PythonError,
    /// The request's arguments were malformed (`invalid_arguments`).
    InvalidArguments,
    /// The worker crashed while holding it.
    Crashed,
    /// The worker was killed (or the runtime stopped) before it answered.
    Unanswered,
}

/// What a `pypool.run_program` request asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramCall {
    /// The program's id.
    pub id: String,
    /// The version asked for.
    pub version: String,
    /// Whether the request carried the definition.
    pub shipped_definition: bool,
}

/// One request a worker received.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// The request's id.
    pub request_id: u64,
    /// Its command.
    pub command: String,
    /// Its arguments.
    pub args: Map<String, Value>,
    /// For `pypool.run_program`: what it asked for.
    pub program: Option<ProgramCall>,
    /// The settings version the worker held when the request arrived (0: none).
    pub settings_version: u64,
    /// How the runtime answered.
    pub answer: Answer,
}

/// What the test can make a worker do while it serves.
#[derive(Debug)]
enum Control {
    /// Reply to the `occupy` being held.
    Release,
    /// Die now (mid-`occupy` if one is held).
    Crash(WorkerExit),
}

/// One worker as the fake runtime sees it.
#[derive(Debug)]
struct WorkerRecord {
    cache: HashMap<(String, String), Value>,
    settings: Option<(u64, Map<String, Value>)>,
    seen: Vec<Seen>,
    occupied: bool,
    alive: bool,
    control: mpsc::UnboundedSender<Control>,
}

#[derive(Debug)]
struct Shared {
    workers: Mutex<BTreeMap<WorkerId, WorkerRecord>>,
    changes: watch::Sender<u64>,
}

/// The test's handle on the fake runtime of every worker it serves. Cheap to
/// clone; clones share the same workers.
#[derive(Debug, Clone)]
pub struct FakeRuntime {
    shared: Arc<Shared>,
}

impl Default for FakeRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeRuntime {
    /// A runtime serving no worker yet.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                workers: Mutex::new(BTreeMap::new()),
                changes: watch::Sender::new(0),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<WorkerId, WorkerRecord>> {
        self.shared
            .workers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn changed(&self) {
        self.shared
            .changes
            .send_modify(|generation| *generation += 1);
    }

    /// Serves `worker` from a new task until it exits; returns its id.
    pub fn serve(&self, worker: WorkerHandle) -> WorkerId {
        let id = worker.worker_id();
        let (control, commands) = mpsc::unbounded_channel();
        self.lock().insert(
            id,
            WorkerRecord {
                cache: HashMap::new(),
                settings: None,
                seen: Vec::new(),
                occupied: false,
                alive: true,
                control,
            },
        );
        self.changed();
        let runtime = self.clone();
        tokio::spawn(async move { runtime.run_worker(worker, commands).await });
        id
    }

    /// Accepts the pool's next spawn and serves the new worker.
    pub async fn accept_next(&self, spawns: &mut SpawnHandle) -> WorkerId {
        let spawn = super::within(super::NO_TIME, "a spawn", spawns.next_spawn())
            .await
            .unwrap_or_else(|| panic!("the pool's spawner is gone"));
        self.serve(spawn.accept())
    }

    /// Every worker ever served, by id.
    pub fn workers(&self) -> Vec<WorkerId> {
        self.lock().keys().copied().collect()
    }

    /// The workers still alive, by id.
    pub fn live_workers(&self) -> Vec<WorkerId> {
        self.lock()
            .iter()
            .filter(|(_, record)| record.alive)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Every request `worker` received, in order.
    pub fn requests(&self, worker: WorkerId) -> Vec<Seen> {
        self.lock()
            .get(&worker)
            .map(|record| record.seen.clone())
            .unwrap_or_default()
    }

    /// The commands `worker` received, in order.
    pub fn commands(&self, worker: WorkerId) -> Vec<String> {
        self.requests(worker)
            .into_iter()
            .map(|seen| seen.command)
            .collect()
    }

    /// The `pypool.run_program` requests `worker` received, in order.
    pub fn program_calls(&self, worker: WorkerId) -> Vec<(ProgramCall, Answer)> {
        self.requests(worker)
            .into_iter()
            .filter_map(|seen| seen.program.map(|program| (program, seen.answer)))
            .collect()
    }

    /// The settings `worker` holds, with their version.
    pub fn settings(&self, worker: WorkerId) -> Option<(u64, Map<String, Value>)> {
        self.lock()
            .get(&worker)
            .and_then(|record| record.settings.clone())
    }

    /// The (id, version) pairs `worker` holds in its program cache, sorted.
    pub fn cached(&self, worker: WorkerId) -> Vec<(String, String)> {
        let mut cached: Vec<_> = self
            .lock()
            .get(&worker)
            .map(|record| record.cache.keys().cloned().collect())
            .unwrap_or_default();
        cached.sort();
        cached
    }

    /// `worker` forgets every cached program (as a worker whose cache
    /// evicted them, or that was restarted under the same id).
    pub fn evict(&self, worker: WorkerId) {
        if let Some(record) = self.lock().get_mut(&worker) {
            record.cache.clear();
        }
        self.changed();
    }

    /// The workers holding an `occupy` request, by id.
    pub fn occupied(&self) -> Vec<WorkerId> {
        self.lock()
            .iter()
            .filter(|(_, record)| record.occupied)
            .map(|(id, _)| *id)
            .collect()
    }

    /// `worker` answers the `occupy` it holds.
    pub fn release(&self, worker: WorkerId) {
        self.control(worker, Control::Release);
    }

    /// Every occupied worker answers its `occupy`.
    pub fn release_all(&self) {
        for worker in self.occupied() {
            self.release(worker);
        }
    }

    /// `worker` dies now with `exit` (while holding its `occupy`, if any).
    pub fn crash(&self, worker: WorkerId, exit: WorkerExit) {
        self.control(worker, Control::Crash(exit));
    }

    fn control(&self, worker: WorkerId, control: Control) {
        let records = self.lock();
        let record = records
            .get(&worker)
            .unwrap_or_else(|| panic!("the fake runtime serves no worker {worker}"));
        assert!(
            record.control.send(control).is_ok(),
            "worker {worker} is no longer served"
        );
    }

    /// Waits until `condition` holds, re-checking after every change the
    /// runtime records. Wrap it in a timeout to bound the wait.
    pub async fn wait_until(&self, mut condition: impl FnMut(&Self) -> bool) {
        let mut changes = self.shared.changes.subscribe();
        loop {
            changes.borrow_and_update();
            if condition(self) {
                return;
            }
            if changes.changed().await.is_err() {
                return;
            }
        }
    }

    /// Waits until at least `count` workers hold an `occupy`; returns them.
    /// Fails the test after [`super::PATIENCE`] of (paused) time.
    pub async fn wait_occupied(&self, count: usize) -> Vec<WorkerId> {
        super::within(
            super::PATIENCE,
            "workers holding an occupy",
            self.wait_until(|runtime| runtime.occupied().len() >= count),
        )
        .await;
        self.occupied()
    }

    /// Records a request on arrival; returns its index in the worker's log.
    fn record(
        &self,
        worker: WorkerId,
        request: &PendingRequest,
        program: Option<ProgramCall>,
    ) -> usize {
        let mut records = self.lock();
        let record = records.get_mut(&worker).unwrap();
        let settings_version = record.settings.as_ref().map_or(0, |(version, _)| *version);
        record.seen.push(Seen {
            request_id: request.id(),
            command: request.command().to_owned(),
            args: request.request().args.clone(),
            program,
            settings_version,
            answer: Answer::Pending,
        });
        record.seen.len() - 1
    }

    /// Records how request `index` of `worker` was answered, before the
    /// answer is sent, so the test sees it by the time its call returns.
    fn answered(&self, worker: WorkerId, index: usize, answer: Answer) {
        if let Some(seen) = self
            .lock()
            .get_mut(&worker)
            .and_then(|record| record.seen.get_mut(index))
        {
            seen.answer = answer;
        }
        self.changed();
    }

    async fn run_worker(
        self,
        mut worker: WorkerHandle,
        mut commands: mpsc::UnboundedReceiver<Control>,
    ) {
        let id = worker.worker_id();
        loop {
            let event = tokio::select! {
                request = worker.next_request() => Ok(request),
                command = commands.recv() => Err(command),
            };
            match event {
                Ok(Some(request)) => self.handle(&worker, &mut commands, request).await,
                Ok(None) | Err(None) => break,
                Err(Some(Control::Crash(exit))) => {
                    worker.crash(exit);
                }
                // Nothing is held: nothing to release.
                Err(Some(Control::Release)) => {}
            }
        }
        if let Some(record) = self.lock().get_mut(&id) {
            record.alive = false;
            record.occupied = false;
        }
        self.changed();
    }

    async fn handle(
        &self,
        worker: &WorkerHandle,
        commands: &mut mpsc::UnboundedReceiver<Control>,
        request: PendingRequest,
    ) {
        let id = worker.worker_id();
        match request.command() {
            RUN_PROGRAM => self.run_program(id, request),
            APPLY_SETTINGS => self.apply_settings(id, request),
            OCCUPY => self.occupy(worker, commands, request).await,
            _ => {
                let index = self.record(id, &request, None);
                let result = json!({
                    "worker_id": id,
                    "command": request.command(),
                    "args": request.request().args,
                });
                self.answered(id, index, Answer::Ok);
                let _ = request.reply(result);
            }
        }
    }

    fn run_program(&self, id: WorkerId, request: PendingRequest) {
        let args = request.request().args.clone();
        let (Some(program_id), Some(version)) = (
            args.get("program_id").and_then(Value::as_str),
            args.get("version").and_then(Value::as_str),
        ) else {
            let index = self.record(id, &request, None);
            self.answered(id, index, Answer::InvalidArguments);
            let _ = request.reply_error(remote(
                RemoteErrorKind::InvalidArguments,
                "program_id and version are required",
            ));
            return;
        };
        let definition = args.get("definition").filter(|value| !value.is_null());
        let call = ProgramCall {
            id: program_id.to_owned(),
            version: version.to_owned(),
            shipped_definition: definition.is_some(),
        };
        let index = self.record(id, &request, Some(call));
        let key = (program_id.to_owned(), version.to_owned());
        let held = {
            let mut records = self.lock();
            let record = records.get_mut(&id).unwrap();
            if let Some(definition) = definition {
                record.cache.insert(key.clone(), definition.clone());
            }
            record.cache.get(&key).cloned()
        };
        let Some(definition) = held else {
            self.answered(id, index, Answer::NotCached);
            let _ = request.reply_error(remote(
                RemoteErrorKind::ProgramNotCached,
                &format!("program `{program_id}` version {version} is not cached on worker {id}"),
            ));
            return;
        };
        let callable = definition["spec"]["callable"].clone();
        if callable == json!(FAILING_CALLABLE) {
            self.answered(id, index, Answer::PythonError);
            let _ = request.python_error("RuntimeError", "the program failed as asked");
            return;
        }
        self.answered(id, index, Answer::Ok);
        let _ = request.reply(json!({
            "worker_id": id,
            "program_id": program_id,
            "version": version,
            "callable": callable,
            "inputs": args.get("inputs").cloned().unwrap_or(Value::Null),
        }));
    }

    fn apply_settings(&self, id: WorkerId, request: PendingRequest) {
        let index = self.record(id, &request, None);
        let args = &request.request().args;
        let (Some(version), Some(Value::Object(settings))) = (
            args.get("version").and_then(Value::as_u64),
            args.get("settings"),
        ) else {
            self.answered(id, index, Answer::InvalidArguments);
            let _ = request.reply_error(remote(
                RemoteErrorKind::InvalidArguments,
                "version (an integer) and settings (an object) are required",
            ));
            return;
        };
        if let Some(record) = self.lock().get_mut(&id) {
            record.settings = Some((version, settings.clone()));
        }
        self.answered(id, index, Answer::Ok);
        let _ = request.reply(json!({ "version": version }));
    }

    async fn occupy(
        &self,
        worker: &WorkerHandle,
        commands: &mut mpsc::UnboundedReceiver<Control>,
        request: PendingRequest,
    ) {
        let id = worker.worker_id();
        let index = self.record(id, &request, None);
        if let Some(record) = self.lock().get_mut(&id) {
            record.occupied = true;
        }
        self.changed();
        let control = tokio::select! {
            control = commands.recv() => control,
            _exit = worker.exited() => None,
        };
        if let Some(record) = self.lock().get_mut(&id) {
            record.occupied = false;
        }
        match control {
            Some(Control::Release) => {
                self.answered(id, index, Answer::Ok);
                let _ = request.reply(json!({ "worker_id": id, "occupied": true }));
            }
            Some(Control::Crash(exit)) => {
                self.answered(id, index, Answer::Crashed);
                request.crash(exit);
            }
            None => self.answered(id, index, Answer::Unanswered),
        }
    }
}

fn remote(kind: RemoteErrorKind, message: &str) -> RemoteError {
    RemoteError {
        kind,
        message: message.to_owned(),
        exception_type: None,
        traceback: None,
    }
}
