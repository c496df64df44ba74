//! A model-based test of the synchronous core, driven directly (no runtime,
//! no processes): random interleavings of requests (plain, session-bound,
//! idempotent), replies, worker crashes, deadlines (cancel, then kill after
//! the grace), callers that leave, resizes, recycle limits, spawns that
//! succeed or fail, health checks, workers that drain on their own and
//! shutdown — against a small reference model, with the pool's invariants
//! checked after every step:
//!
//! * every request ends exactly once (a harness carrying out the core's
//!   effects as the shell does records each ending and fails on a second);
//! * no worker is leaked or lent beyond its capacity: each worker's
//!   `in_flight` equals the attempts the harness holds on it, and is at
//!   most its capacity;
//! * no waiter is stranded while capacity is free: a caller waiting for any
//!   worker never waits while a worker has room, nor a session's caller
//!   while its worker has room;
//! * a plain request takes the least-loaded worker with room;
//! * a worker past a recycle limit is never lent;
//! * after everything settles (`Quiesce`), the pool is back at its size and
//!   every request has ended; after shutdown, nothing is left.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};
use pypool_breaker::{BreakerConfig, Permit};
use pypool_clock::ManualClock;
use pypool_lifecycle::{ExitInfo, LifecycleConfig, RecycleLimits, State};
use pypool_recovery::{FailureClass, RecoveryConfig};
use pypool_seam::{SpawnError, WorkerId};

use super::{
    BreakerKey, Checkout, Core, CoreConfig, Effect, Effects, Ending, HealthNext, Refusal,
    Retirement, SpawnGate, WaitFailure, WaiterToken, WorkerHandle,
};
use crate::job::JobKey;

/// Cases of the property (each a sequence of 1 to 79 steps).
const CASES: u32 = 2048;

/// The most settling rounds `Quiesce` takes before it calls the pool stuck.
const QUIESCE_ROUNDS: usize = 200;

#[derive(Debug, Clone)]
struct FakeHandle {
    worker: WorkerId,
    draining: Arc<AtomicBool>,
}

impl WorkerHandle for FakeHandle {
    fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    fn resident_memory_bytes(&self) -> Option<u64> {
        None
    }
}

#[derive(Debug)]
struct FakeToken {
    request: usize,
    gone: Arc<AtomicBool>,
}

impl WaiterToken for FakeToken {
    fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Relaxed)
    }
}

type TestCore = Core<FakeHandle, FakeToken>;
type Fx = Effects<FakeHandle, FakeToken>;

/// What a request runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A command not declared idempotent: never retried once it reached a worker.
    Plain,
    /// An idempotent command: retried after a crash or a deadline.
    Idempotent,
    /// A command of session `n` (bound to the worker that last served it).
    Session(u8),
}

/// How a worker answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    Ok,
    /// The user's exception: the worker is fine.
    UserError,
    /// The runtime misbehaved: the worker is suspect.
    InternalError,
    /// A protocol violation: the worker must go.
    Fatal,
}

/// How a health check ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Healthy,
    Unhealthy,
    /// Timed out, then the ping's late answer came.
    LateAnswer,
    /// Timed out and never answered: the worker is killed.
    Silent,
}

#[derive(Debug, Clone)]
enum Step {
    Submit(Kind),
    Reply {
        pick: usize,
        reply: Reply,
    },
    Crash {
        pick: usize,
    },
    Deadline {
        pick: usize,
    },
    GraceEnds {
        pick: usize,
        answered: bool,
    },
    CallerLeaves {
        pick: usize,
        timed_out: bool,
    },
    Resize(usize),
    SpawnDone {
        pick: usize,
        ok: bool,
        capacity: usize,
    },
    HealthRound,
    HealthAnswer {
        pick: usize,
        verdict: Verdict,
    },
    DrainsOnItsOwn {
        pick: usize,
    },
    ProcessGone {
        pick: usize,
    },
    Advance(Duration),
    Shutdown,
    ForceShutdown,
    Quiesce,
}

/// The pool's configuration for one sequence.
#[derive(Debug, Clone)]
struct Setup {
    size: usize,
    max_overflow: usize,
    queue_bound: usize,
    max_requests: Option<u64>,
    max_age: Option<Duration>,
}

/// The reference model: what the pool was asked to be.
#[derive(Debug, Clone)]
struct Model {
    setup: Setup,
    size: usize,
    shut_down: bool,
    submitted: usize,
}

struct CoreModel;

impl ReferenceStateMachine for CoreModel {
    type State = Model;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Model> {
        (
            1usize..4,
            0usize..3,
            1usize..6,
            prop::option::weighted(0.3, 1u64..6),
            prop::option::weighted(0.2, 5u64..60),
        )
            .prop_map(
                |(size, max_overflow, queue_bound, max_requests, max_age)| Model {
                    setup: Setup {
                        size,
                        max_overflow,
                        queue_bound,
                        max_requests,
                        max_age: max_age.map(Duration::from_secs),
                    },
                    size,
                    shut_down: false,
                    submitted: 0,
                },
            )
            .boxed()
    }

    fn transitions(_state: &Model) -> BoxedStrategy<Step> {
        let pick = 0usize..8;
        let kind = prop_oneof![
            3 => Just(Kind::Plain),
            2 => Just(Kind::Idempotent),
            3 => (0u8..3).prop_map(Kind::Session),
        ];
        let reply = prop_oneof![
            6 => Just(Reply::Ok),
            2 => Just(Reply::UserError),
            1 => Just(Reply::InternalError),
            1 => Just(Reply::Fatal),
        ];
        let verdict = prop_oneof![
            4 => Just(Verdict::Healthy),
            2 => Just(Verdict::Unhealthy),
            1 => Just(Verdict::LateAnswer),
            1 => Just(Verdict::Silent),
        ];
        prop_oneof![
            12 => kind.prop_map(Step::Submit),
            10 => (pick.clone(), reply).prop_map(|(pick, reply)| Step::Reply { pick, reply }),
            2 => pick.clone().prop_map(|pick| Step::Crash { pick }),
            2 => pick.clone().prop_map(|pick| Step::Deadline { pick }),
            3 => (pick.clone(), any::<bool>())
                .prop_map(|(pick, answered)| Step::GraceEnds { pick, answered }),
            2 => (pick.clone(), any::<bool>())
                .prop_map(|(pick, timed_out)| Step::CallerLeaves { pick, timed_out }),
            2 => (1usize..5).prop_map(Step::Resize),
            10 => (pick.clone(), prop::bool::weighted(0.85), 1usize..4)
                .prop_map(|(pick, ok, capacity)| Step::SpawnDone { pick, ok, capacity }),
            1 => Just(Step::HealthRound),
            2 => (pick.clone(), verdict)
                .prop_map(|(pick, verdict)| Step::HealthAnswer { pick, verdict }),
            1 => pick.clone().prop_map(|pick| Step::DrainsOnItsOwn { pick }),
            3 => pick.prop_map(|pick| Step::ProcessGone { pick }),
            1 => (1u64..30).prop_map(|secs| Step::Advance(Duration::from_secs(secs))),
            1 => Just(Step::Shutdown),
            1 => Just(Step::ForceShutdown),
            2 => Just(Step::Quiesce),
        ]
        .boxed()
    }

    fn apply(mut state: Model, step: &Step) -> Model {
        match step {
            Step::Submit(_) => state.submitted += 1,
            Step::Resize(size) if !state.shut_down => state.size = *size,
            Step::Shutdown | Step::ForceShutdown => state.shut_down = true,
            _ => {}
        }
        state
    }
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    Ok,
    Failed,
    Refused(Refusal),
    Left,
    WaitFailed,
}

#[derive(Debug)]
enum Status {
    /// Waiting in the core's queue.
    Queued {
        gone: Arc<AtomicBool>,
        permit: Option<(BreakerKey, Permit)>,
    },
    /// An attempt runs (see `Harness::attempts`).
    Running,
    /// Waiting to retry (the next checkout happens within the same step).
    Retrying,
    Ended(End),
}

#[derive(Debug)]
struct Request {
    kind: Kind,
    key: JobKey,
    command: String,
    attempt: u32,
    wanted: Option<WorkerId>,
    status: Status,
}

/// An attempt holding a slot on a worker.
#[derive(Debug)]
struct Attempt {
    /// The request it serves; `None` once the caller was answered at the deadline.
    request: Option<usize>,
    worker: WorkerId,
    permit: Option<(BreakerKey, Permit)>,
    attempt: u32,
    key: JobKey,
    command: String,
}

/// The shell, played by hand: carries out the core's effects.
struct Harness {
    core: TestCore,
    clock: ManualClock,
    setup: Setup,
    requests: Vec<Request>,
    attempts: Vec<Attempt>,
    /// Sessions' bindings (the affinity store).
    bindings: HashMap<u8, WorkerId>,
    /// Workers whose spawn is in progress.
    spawning: Vec<WorkerId>,
    /// Workers lent to a health check.
    checking: Vec<WorkerId>,
    /// Retired workers whose process is being stopped.
    stopping: Vec<WorkerId>,
    /// Every worker's draining flag, by id.
    draining: HashMap<WorkerId, Arc<AtomicBool>>,
    /// Workers stopped (the affinity store forgets them).
    stopped: Vec<WorkerId>,
}

fn exit_info() -> ExitInfo {
    ExitInfo {
        code: Some(1),
        signal: None,
    }
}

fn worker_exited() -> FailureClass {
    FailureClass::WorkerExited {
        code: Some(1),
        signal: None,
    }
}

fn spawn_error(worker_id: WorkerId) -> SpawnError {
    SpawnError::Io {
        worker_id,
        context: "model".to_owned(),
        source: Arc::new(std::io::Error::other("no interpreter")),
    }
}

impl Harness {
    fn new(setup: &Setup) -> Self {
        let clock = ManualClock::new();
        let config = CoreConfig {
            size: setup.size,
            max_overflow: setup.max_overflow,
            eager: true,
            queue_bound: setup.queue_bound,
            lifecycle: LifecycleConfig::default(),
            recycle: RecycleLimits {
                max_requests: setup.max_requests,
                max_age: setup.max_age,
                max_memory_bytes: None,
            },
            recovery: RecoveryConfig::default(),
            spawn_breaker: BreakerConfig::default(),
            command_breaker: BreakerConfig::default(),
            idempotent_commands: vec!["idem".to_owned()],
            seed: 7,
        };
        let mut harness = Self {
            core: Core::new(config, Arc::new(clock.clone())),
            clock,
            setup: setup.clone(),
            requests: Vec::new(),
            attempts: Vec::new(),
            bindings: HashMap::new(),
            spawning: Vec::new(),
            checking: Vec::new(),
            stopping: Vec::new(),
            draining: HashMap::new(),
            stopped: Vec::new(),
        };
        let mut fx = Vec::new();
        harness.core.start(&mut fx);
        harness.carry_out(fx);
        harness
    }

    fn end(&mut self, request: usize, end: End) {
        let status = &mut self.requests[request].status;
        assert!(
            !matches!(status, Status::Ended(_)),
            "request {request} ended twice: {status:?}, then {end:?}"
        );
        *status = Status::Ended(end);
    }

    /// Carries out `fx` as the shell does, including what follows from it
    /// (callers who left give their worker back, stopped workers' attempts fail).
    fn carry_out(&mut self, fx: Fx) {
        let mut work: std::collections::VecDeque<_> = fx.into();
        while let Some(effect) = work.pop_front() {
            let mut more = Vec::new();
            match effect {
                Effect::Lend { waiter, lent } => {
                    let request = waiter.request;
                    let gone = waiter.is_gone();
                    let status =
                        std::mem::replace(&mut self.requests[request].status, Status::Running);
                    self.assert_not_due(lent.worker);
                    match status {
                        Status::Queued { permit, .. } if !gone => {
                            assert!(
                                self.requests[request]
                                    .wanted
                                    .is_none_or(|wanted| wanted == lent.worker
                                        || !self.takes_new_work(wanted)),
                                "a session's waiter got another worker while its own takes work"
                            );
                            self.attempts.push(Attempt {
                                request: Some(request),
                                worker: lent.worker,
                                permit,
                                attempt: self.requests[request].attempt,
                                key: self.requests[request].key.clone(),
                                command: self.requests[request].command.clone(),
                            });
                        }
                        Status::Ended(End::Left) if gone => {
                            // The caller left: its lease is dropped unused.
                            self.requests[request].status = Status::Ended(End::Left);
                            self.core.release(
                                lent.worker,
                                false,
                                pypool_recovery::WorkerAction::Keep,
                                &mut more,
                            );
                        }
                        other => panic!("lent to request {request} in {other:?}"),
                    }
                }
                Effect::Fail { waiter, reason } => {
                    let request = waiter.request;
                    match std::mem::replace(&mut self.requests[request].status, Status::Retrying) {
                        Status::Queued { permit, .. } => {
                            // The caller's permit goes back when it hears.
                            if let Some((key, permit)) = permit {
                                self.core.release_permit(&key, permit);
                            }
                            assert!(
                                !matches!(reason, WaitFailure::ShuttingDown)
                                    || self.core.is_shutting_down()
                            );
                            self.end(request, End::WaitFailed);
                        }
                        // It left already: nobody hears.
                        Status::Ended(End::Left) => {
                            self.requests[request].status = Status::Ended(End::Left);
                        }
                        other => panic!("failed request {request} while {other:?}"),
                    }
                }
                Effect::Abandon(waiter) => {
                    assert!(waiter.is_gone(), "the core forgot a waiter still waiting");
                }
                Effect::Spawn(worker) => self.spawning.push(worker),
                Effect::Stop {
                    worker,
                    handle,
                    how,
                } => {
                    let on_it = self.attempts.iter().filter(|a| a.worker == worker).count();
                    if how == Retirement::Graceful && !self.core.is_shutting_down() {
                        assert_eq!(
                            on_it, 0,
                            "worker {worker} stopped gracefully with {on_it} requests on it"
                        );
                    }
                    self.stopped.push(worker);
                    self.bindings.retain(|_, bound| *bound != worker);
                    if handle.is_some() && how != Retirement::Abandoned {
                        self.stopping.push(worker);
                    }
                    // Its process ends: every attempt still on it fails.
                    let failed: Vec<Attempt> = {
                        let (failed, kept) = std::mem::take(&mut self.attempts)
                            .into_iter()
                            .partition(|a| a.worker == worker);
                        self.attempts = kept;
                        failed
                    };
                    for attempt in failed {
                        self.settle_attempt(attempt, Some(worker_exited()), false, &mut more);
                    }
                }
                Effect::Kill(handle) => {
                    // The exit watch reports the kill.
                    self.core.exited(handle.worker, exit_info(), &mut more);
                }
                Effect::Note(_) => {}
            }
            work.extend(more);
        }
    }

    /// An attempt ended on its worker: settles it with the core, then ends,
    /// retries or (for an attempt past its deadline) forgets the request.
    fn settle_attempt(
        &mut self,
        attempt: Attempt,
        failure: Option<FailureClass>,
        replied: bool,
        fx: &mut Fx,
    ) {
        let Some(request) = attempt.request else {
            // Past its deadline: the caller has its answer; only the worker settles.
            self.core.finish_after_grace(
                attempt.worker,
                attempt.permit,
                replied,
                &attempt.command,
                fx,
            );
            return;
        };
        let ok = failure.is_none();
        let settled = self.core.finish(
            attempt.worker,
            attempt.permit,
            &attempt.key,
            &attempt.command,
            None,
            Ending {
                failure,
                replied,
                reached_worker: true,
                attempt: attempt.attempt,
                elapsed: Duration::ZERO,
            },
            fx,
        );
        if ok {
            if let Kind::Session(session) = self.requests[request].kind {
                self.bindings.insert(session, attempt.worker);
            }
            self.end(request, End::Ok);
        } else if settled.retry_after.is_some() {
            self.requests[request].status = Status::Retrying;
            self.requests[request].attempt += 1;
        } else {
            self.end(request, End::Failed);
        }
    }

    /// Checks request `request` out (a new request, or a retry).
    fn checkout(&mut self, request: usize) {
        let kind = self.requests[request].kind;
        let wanted = match kind {
            Kind::Session(session) => self
                .bindings
                .get(&session)
                .copied()
                .filter(|worker| self.core.has_worker(*worker)),
            _ => None,
        };
        self.requests[request].wanted = wanted;
        let plain = wanted.is_none();
        let before: Vec<(WorkerId, usize, bool)> = self
            .core
            .workers()
            .map(|w| (w.id, w.in_flight, self.core.has_room(w.id)))
            .collect();
        let any_draining = self.draining.values().any(|d| d.load(Ordering::Relaxed));
        let gone = Arc::new(AtomicBool::new(false));
        let mut fx = Vec::new();
        let key = self.requests[request].key.clone();
        let (checkout, permit) = self.core.checkout(
            Some(&key),
            wanted,
            || FakeToken {
                request,
                gone: Arc::clone(&gone),
            },
            &mut fx,
        );
        match checkout {
            Checkout::Lent(lent) => {
                self.assert_not_due(lent.worker);
                if plain && !any_draining && self.no_limits() {
                    let least = before
                        .iter()
                        .filter(|(_, _, room)| *room)
                        .map(|(_, in_flight, _)| *in_flight)
                        .min();
                    let chosen = before
                        .iter()
                        .find(|(id, _, _)| *id == lent.worker)
                        .map(|(_, in_flight, _)| *in_flight);
                    assert_eq!(chosen, least, "not the least-loaded worker with room");
                }
                if let Some(wanted) = wanted {
                    let had_room = before.iter().any(|(id, _, room)| *id == wanted && *room);
                    if had_room && self.no_limits() && !any_draining {
                        assert_eq!(lent.worker, wanted, "affinity ignored a worker with room");
                    }
                }
                self.requests[request].status = Status::Running;
                self.attempts.push(Attempt {
                    request: Some(request),
                    worker: lent.worker,
                    permit,
                    attempt: self.requests[request].attempt,
                    key,
                    command: self.requests[request].command.clone(),
                });
            }
            Checkout::Queued => {
                self.requests[request].status = Status::Queued { gone, permit };
            }
            Checkout::Refused(refusal) => {
                assert!(permit.is_none());
                self.requests[request].status = Status::Retrying;
                self.end(request, End::Refused(refusal));
            }
        }
        self.carry_out(fx);
    }

    /// A worker past a recycle limit is recycled, never lent (checked
    /// right after the lend: lending changes neither its age nor its count).
    fn assert_not_due(&self, worker: WorkerId) {
        let limits = RecycleLimits {
            max_requests: self.setup.max_requests,
            max_age: self.setup.max_age,
            max_memory_bytes: None,
        };
        let view = self.core.workers().find(|w| w.id == worker).unwrap();
        assert_eq!(
            view.lifecycle.recycle_due(&limits, None),
            None,
            "worker {worker} was lent past its recycle limit"
        );
    }

    /// Whether worker `worker` is in the pool and not on its way out.
    fn takes_new_work(&self, worker: WorkerId) -> bool {
        self.core.workers().any(|w| {
            w.id == worker
                && !matches!(
                    w.lifecycle.state(),
                    State::Draining | State::Terminating | State::Terminated
                )
                && !self.draining[&worker].load(Ordering::Relaxed)
        })
    }

    fn no_limits(&self) -> bool {
        self.setup.max_requests.is_none() && self.setup.max_age.is_none()
    }

    /// Checks out every request waiting to retry (retries happen at once).
    fn run_retries(&mut self) {
        while let Some(request) = self
            .requests
            .iter()
            .position(|r| matches!(r.status, Status::Retrying))
        {
            self.checkout(request);
        }
    }

    fn submit(&mut self, kind: Kind) {
        let command = match kind {
            Kind::Plain => "plain",
            Kind::Idempotent => "idem",
            Kind::Session(_) => "session",
        };
        self.requests.push(Request {
            kind,
            key: JobKey::Command(command.to_owned()),
            command: command.to_owned(),
            attempt: 1,
            wanted: None,
            status: Status::Retrying,
        });
        self.checkout(self.requests.len() - 1);
    }

    /// Live attempts (not past their deadline), in order.
    fn live_attempts(&self) -> Vec<usize> {
        (0..self.attempts.len())
            .filter(|i| self.attempts[*i].request.is_some())
            .collect()
    }

    fn cancelling_attempts(&self) -> Vec<usize> {
        (0..self.attempts.len())
            .filter(|i| self.attempts[*i].request.is_none())
            .collect()
    }

    fn reply(&mut self, index: usize, reply: Reply) {
        let attempt = self.attempts.remove(index);
        let failure = match reply {
            Reply::Ok => None,
            Reply::UserError => Some(FailureClass::PythonException),
            Reply::InternalError => Some(FailureClass::WorkerInternalError),
            Reply::Fatal => Some(FailureClass::ProtocolViolation),
        };
        let replied = !matches!(reply, Reply::Fatal);
        let mut fx = Vec::new();
        self.settle_attempt(attempt, failure, replied, &mut fx);
        self.carry_out(fx);
    }

    fn grace_ends(&mut self, index: usize, answered: bool) {
        let attempt = self.attempts.remove(index);
        let mut fx = Vec::new();
        self.settle_attempt(attempt, None, answered, &mut fx);
        self.carry_out(fx);
    }

    fn live_workers(&self) -> Vec<WorkerId> {
        self.core
            .workers()
            .filter(|w| w.handle.is_some())
            .map(|w| w.id)
            .collect()
    }

    fn spawn_done(&mut self, index: usize, ok: bool, capacity: usize) {
        let worker = self.spawning[index];
        let mut fx = Vec::new();
        match self.core.spawn_gate(worker, &mut fx) {
            SpawnGate::Abandon => {
                self.spawning.remove(index);
            }
            SpawnGate::Wait(retry_after) => self.clock.advance(retry_after),
            SpawnGate::Go(permit) if ok => {
                self.spawning.remove(index);
                let draining = Arc::new(AtomicBool::new(false));
                self.draining.insert(worker, Arc::clone(&draining));
                let handle = FakeHandle { worker, draining };
                let commands = [("idem", true), ("plain", false), ("session", false)];
                self.core
                    .spawned(worker, permit, handle, commands, capacity, &mut fx);
            }
            SpawnGate::Go(permit) => {
                let error = spawn_error(worker);
                self.core.spawn_failed(worker, permit, 1, &error, &mut fx);
            }
        }
        self.carry_out(fx);
    }

    fn step(&mut self, step: &Step) {
        match step {
            Step::Submit(kind) => self.submit(*kind),
            Step::Reply { pick, reply } => {
                let live = self.live_attempts();
                if !live.is_empty() {
                    self.reply(live[pick % live.len()], *reply);
                }
            }
            Step::Crash { pick } => {
                let live = self.live_workers();
                if !live.is_empty() {
                    let mut fx = Vec::new();
                    self.core
                        .exited(live[pick % live.len()], exit_info(), &mut fx);
                    self.carry_out(fx);
                }
            }
            Step::Deadline { pick } => {
                let live = self.live_attempts();
                if !live.is_empty() {
                    let index = live[pick % live.len()];
                    let attempt = &mut self.attempts[index];
                    let request = attempt.request.take().unwrap();
                    let (retry_after, _label) = self.core.deadline(
                        &attempt.key,
                        &attempt.command,
                        attempt.attempt,
                        Duration::ZERO,
                    );
                    if retry_after.is_some() {
                        self.requests[request].status = Status::Retrying;
                        self.requests[request].attempt += 1;
                    } else {
                        self.end(request, End::Failed);
                    }
                }
            }
            Step::GraceEnds { pick, answered } => {
                let cancelling = self.cancelling_attempts();
                if !cancelling.is_empty() {
                    self.grace_ends(cancelling[pick % cancelling.len()], *answered);
                }
            }
            Step::CallerLeaves { pick, timed_out } => {
                let queued: Vec<usize> = (0..self.requests.len())
                    .filter(|r| matches!(self.requests[*r].status, Status::Queued { .. }))
                    .collect();
                if !queued.is_empty() {
                    let request = queued[pick % queued.len()];
                    let Status::Queued { gone, permit } = std::mem::replace(
                        &mut self.requests[request].status,
                        Status::Ended(End::Left),
                    ) else {
                        unreachable!()
                    };
                    gone.store(true, Ordering::Relaxed);
                    let mut fx = Vec::new();
                    if *timed_out {
                        self.core.waiter_left(permit, &mut fx);
                    } else if let Some((key, permit)) = permit {
                        // The dropped caller's permit goes back (a task, in the shell).
                        self.core.release_permit(&key, permit);
                    }
                    self.carry_out(fx);
                }
            }
            Step::Resize(size) => {
                let mut fx = Vec::new();
                self.core.resize(*size, &mut fx);
                self.carry_out(fx);
            }
            Step::SpawnDone { pick, ok, capacity } => {
                if !self.spawning.is_empty() {
                    self.spawn_done(pick % self.spawning.len(), *ok, *capacity);
                }
            }
            Step::HealthRound => {
                let checks = self.core.health_round();
                self.checking.extend(checks.into_iter().map(|(id, _)| id));
            }
            Step::HealthAnswer { pick, verdict } => {
                if !self.checking.is_empty() {
                    let worker = self.checking.remove(pick % self.checking.len());
                    self.health_answer(worker, *verdict);
                }
            }
            Step::DrainsOnItsOwn { pick } => {
                let live = self.live_workers();
                if !live.is_empty() {
                    let worker = live[pick % live.len()];
                    self.draining[&worker].store(true, Ordering::Relaxed);
                }
            }
            Step::ProcessGone { pick } => {
                if !self.stopping.is_empty() {
                    self.stopping.remove(pick % self.stopping.len());
                    self.core.stopped();
                }
            }
            Step::Advance(by) => self.clock.advance(*by),
            Step::Shutdown => {
                let mut fx = Vec::new();
                self.core.begin_shutdown(&mut fx);
                self.carry_out(fx);
            }
            Step::ForceShutdown => {
                let mut fx = Vec::new();
                self.core.begin_shutdown(&mut fx);
                self.core.force_shutdown(&mut fx);
                self.carry_out(fx);
            }
            Step::Quiesce => self.quiesce(),
        }
        self.run_retries();
    }

    fn health_answer(&mut self, worker: WorkerId, verdict: Verdict) {
        let mut fx = Vec::new();
        let (healthy, timed_out) = match verdict {
            Verdict::Healthy => (true, false),
            Verdict::Unhealthy => (false, false),
            Verdict::LateAnswer | Verdict::Silent => (false, true),
        };
        if self
            .core
            .health_checked(worker, healthy, timed_out, &mut fx)
            == HealthNext::AwaitLate
        {
            self.core
                .health_late(worker, verdict == Verdict::LateAnswer, &mut fx);
        }
        self.carry_out(fx);
    }

    /// Lets everything in progress finish well: replies, graces answered,
    /// spawns succeed, health checks pass, stopped processes go.
    fn quiesce(&mut self) {
        for round in 0..QUIESCE_ROUNDS {
            let busy = !self.attempts.is_empty()
                || !self.spawning.is_empty()
                || !self.checking.is_empty()
                || !self.stopping.is_empty();
            if !busy {
                break;
            }
            if let Some(index) = self.live_attempts().first().copied() {
                self.reply(index, Reply::Ok);
            } else if let Some(index) = self.cancelling_attempts().first().copied() {
                self.grace_ends(index, true);
            } else if !self.checking.is_empty() {
                let worker = self.checking.remove(0);
                self.health_answer(worker, Verdict::Healthy);
            } else if !self.spawning.is_empty() {
                // After a tripped spawn breaker, a half-open probe's worker
                // must prove itself (a health check) before the next spawn.
                if round % 4 == 3 {
                    let checks = self.core.health_round();
                    self.checking.extend(checks.into_iter().map(|(id, _)| id));
                }
                self.spawn_done(0, true, 2);
            } else if !self.stopping.is_empty() {
                self.stopping.remove(0);
                self.core.stopped();
            }
            self.run_retries();
        }
        assert!(
            self.attempts.is_empty() && self.spawning.is_empty(),
            "the pool did not settle: {} attempts, {} spawns",
            self.attempts.len(),
            self.spawning.len()
        );
        for (index, request) in self.requests.iter().enumerate() {
            assert!(
                matches!(request.status, Status::Ended(_)),
                "request {index} never ended: {request:?}"
            );
        }
        let (_, remaining) = self.core.readiness();
        if self.core.is_shutting_down() {
            assert_eq!(remaining, 0, "workers left after shutdown");
        } else {
            let regular = self
                .core
                .workers()
                .filter(|w| !w.overflow && w.handle.is_some())
                .count();
            assert_eq!(
                regular,
                self.core.target_size(),
                "the pool is not back at its size"
            );
            assert!(
                self.core.workers().count() <= self.core.target_size() + self.setup.max_overflow
            );
            assert!(
                self.core
                    .workers()
                    .all(|w| w.in_flight == 0 && w.lifecycle.state().is_idle()),
                "a settled pool has only idle workers"
            );
            assert_eq!(self.core.retiring(), 0);
        }
    }

    fn check_invariants(&self, model: &Model) {
        assert_eq!(self.requests.len(), model.submitted);
        assert_eq!(self.core.is_shutting_down(), model.shut_down);
        if !model.shut_down {
            assert_eq!(self.core.target_size(), model.size);
        }
        // No worker lent beyond its capacity, none leaked.
        for worker in self.core.workers() {
            let held = self
                .attempts
                .iter()
                .filter(|a| a.worker == worker.id)
                .count();
            assert_eq!(
                worker.in_flight, held,
                "worker {} counts {} in flight, callers hold {held}",
                worker.id, worker.in_flight
            );
            assert!(
                worker.in_flight <= worker.capacity,
                "worker {} lent {} beyond its capacity {}",
                worker.id,
                worker.in_flight,
                worker.capacity
            );
            if worker.in_flight > 0 {
                assert!(
                    matches!(worker.lifecycle.state(), State::Busy | State::Draining),
                    "worker {} holds requests in state {}",
                    worker.id,
                    worker.lifecycle.state()
                );
            }
        }
        for attempt in &self.attempts {
            assert!(
                self.core.has_worker(attempt.worker),
                "an attempt runs on worker {} the pool forgot",
                attempt.worker
            );
        }
        // Every request is in exactly one place.
        for (index, request) in self.requests.iter().enumerate() {
            let running = self
                .attempts
                .iter()
                .filter(|a| a.request == Some(index))
                .count();
            match request.status {
                Status::Running => assert_eq!(running, 1, "request {index} runs {running} times"),
                _ => assert_eq!(
                    running, 0,
                    "request {index} runs while {:?}",
                    request.status
                ),
            }
            assert!(!matches!(request.status, Status::Retrying));
        }
        let queued = self
            .requests
            .iter()
            .filter(|r| matches!(&r.status, Status::Queued { gone, .. } if !gone.load(Ordering::Relaxed)))
            .count();
        assert_eq!(
            self.core.live_waiters(),
            queued,
            "the core's queue and the callers disagree"
        );
        assert!(queued <= self.setup.queue_bound);
        // No waiter stranded while capacity is free.
        for wants in self.core.waiter_wants() {
            match wants {
                None => {
                    let free: Vec<WorkerId> = self
                        .core
                        .workers()
                        .filter(|w| self.core.has_room(w.id))
                        .map(|w| w.id)
                        .collect();
                    assert!(
                        free.is_empty(),
                        "a caller waits while workers {free:?} have room"
                    );
                }
                Some(worker) => assert!(
                    !self.core.has_room(worker),
                    "a session's caller waits while its worker {worker} has room"
                ),
            }
        }
        if model.shut_down {
            assert_eq!(self.core.live_waiters(), 0, "a caller waits after shutdown");
        }
    }
}

struct CoreTest;

impl StateMachineTest for CoreTest {
    type SystemUnderTest = Harness;
    type Reference = CoreModel;

    fn init_test(model: &Model) -> Harness {
        Harness::new(&model.setup)
    }

    /// `model` is the reference after this step.
    fn apply(mut harness: Harness, model: &Model, step: Step) -> Harness {
        let shut_down_before = harness.core.is_shutting_down();
        harness.step(&step);
        if let (Step::Submit(_), true) = (&step, shut_down_before) {
            let last = harness.requests.last().unwrap();
            assert!(
                // The breaker speaks first on every path.
                matches!(
                    last.status,
                    Status::Ended(End::Refused(
                        Refusal::ShuttingDown | Refusal::CircuitOpen { .. }
                    ))
                ),
                "a request after shutdown was not refused: {:?}",
                last.status
            );
        }
        let _ = model;
        harness
    }

    fn check_invariants(harness: &Harness, model: &Model) {
        harness.check_invariants(model);
    }

    fn teardown(mut harness: Harness, model: Model) {
        // Whatever happened, everything settles, and a shutdown ends it all.
        harness.step(&Step::Quiesce);
        harness.check_invariants(&model);
        harness.step(&Step::Shutdown);
        harness.step(&Step::Quiesce);
        assert!(
            harness.core.workers().next().is_none(),
            "workers left after shutdown"
        );
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig {
        cases: CASES,
        ..ProptestConfig::default()
    })]

    /// Random interleavings keep every invariant of the pool.
    #[test]
    fn random_interleavings_keep_the_pools_invariants(sequential 1..80 => CoreTest);
}
