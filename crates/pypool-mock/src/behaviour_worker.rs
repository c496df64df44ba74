//! Behaviour mode at work: spawning workers and serving their requests as
//! tokio tasks, as a [`Behaviour`] says.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use pypool_seam::{
    Outcome, Request, RequestId, SpawnError, SpawnRequest, WorkerConnection, WorkerExit,
};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::behaviour::Behaviour;
use crate::connection::MockConnection;
use crate::handshake::default_handshake;
use crate::prng::SeededPrng;
use crate::remote_error::{cancelled, python_exception};
use crate::stats::StatsInner;
use crate::worker_core::{Delivery, RequestReceiver, WorkerCore};

/// What one request drew: its number across the spawner and its random draws.
struct Ticket {
    number: u64,
    failure_draw: f64,
    latency_draw: f64,
}

#[derive(Debug)]
struct TicketCounter {
    issued: u64,
    prng: SeededPrng,
}

/// The state every worker of one behaviour-mode spawner shares.
#[derive(Debug)]
pub(crate) struct BehaviourShared {
    behaviour: Behaviour,
    tickets: Mutex<TicketCounter>,
    stats: Arc<StatsInner>,
}

impl BehaviourShared {
    /// `behaviour` must have passed [`Behaviour::validate`].
    pub(crate) fn new(behaviour: Behaviour, stats: Arc<StatsInner>) -> Self {
        let prng = SeededPrng::new(behaviour.seed);
        Self {
            behaviour,
            tickets: Mutex::new(TicketCounter { issued: 0, prng }),
            stats,
        }
    }

    /// Numbers the next request and draws its randomness, under one lock so
    /// request N always gets the Nth draws.
    fn next_ticket(&self) -> Ticket {
        let mut tickets = self.tickets.lock().unwrap_or_else(PoisonError::into_inner);
        tickets.issued += 1;
        Ticket {
            number: tickets.issued,
            failure_draw: tickets.prng.next_unit(),
            latency_draw: tickets.prng.next_unit(),
        }
    }

    /// Starts worker `request.worker_id`; `number` is this spawn's 1-based number.
    pub(crate) async fn spawn(
        self: &Arc<Self>,
        request: SpawnRequest,
        number: u64,
    ) -> Result<Arc<dyn WorkerConnection>, SpawnError> {
        let behaviour = &self.behaviour;
        if behaviour.spawn_latency > request.handshake_timeout {
            tokio::time::sleep(request.handshake_timeout).await;
            return Err(SpawnError::HandshakeTimeout {
                worker_id: request.worker_id,
                timeout: request.handshake_timeout,
                stderr_tail: String::new(),
            });
        }
        if !behaviour.spawn_latency.is_zero() {
            tokio::time::sleep(behaviour.spawn_latency).await;
        }
        if behaviour
            .spawn_failure
            .is_some_and(|failure| failure.fails(number))
        {
            return Err(SpawnError::StartupFailed {
                worker_id: request.worker_id,
                kind: "handler_import".to_owned(),
                message: format!("injected spawn failure (spawn {number} of this mock spawner)"),
                traceback: None,
                stderr_tail: String::new(),
            });
        }
        let mut handshake = default_handshake(request.worker_id, &behaviour.commands);
        handshake.capacity = behaviour.capacity.max(1);
        let (core, requests) = WorkerCore::start(handshake, Arc::clone(&self.stats));
        core.set_resident_memory(Some(behaviour.rss_bytes));
        if behaviour.instant {
            drop(requests);
            return Ok(Arc::new(MockConnection::instant(core, Arc::clone(self))));
        }
        tokio::spawn(serve(Arc::clone(&core), requests, Arc::clone(self)));
        Ok(Arc::new(MockConnection::new(core)))
    }

    /// The answer a healthy worker gives to `request`.
    pub(crate) fn answer(&self, core: &WorkerCore, request: &Request) -> Outcome {
        let handshake = core.handshake();
        let result = match (request.command.as_str(), &self.behaviour.handler) {
            ("ping", _) => Ok(json!({"pong": true, "worker_id": handshake.worker_id})),
            ("info", _) => Ok(json!({
                "worker_id": handshake.worker_id,
                "pid": handshake.pid,
                "python_version": handshake.python_version,
                "commands": handshake.commands.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            })),
            (_, Some(handler)) => handler(request),
            (_, None) => Ok(json!({
                "echo": Value::Object(request.args.clone()),
                "worker_id": handshake.worker_id,
            })),
        };
        match result {
            Ok(result) => Outcome::Ok { result },
            Err(error) => Outcome::Error { error },
        }
    }
}

/// Serves one worker's requests: one at a time, like the single-threaded
/// Python worker, or up to its capacity at once. A cancel is answered
/// `cancelled` at once (as a request not yet started, or an async handler,
/// is); the request's own answer, if it comes later, finds it answered.
async fn serve(core: Arc<WorkerCore>, mut requests: RequestReceiver, shared: Arc<BehaviourShared>) {
    if let Some(cancels) = core.take_cancels() {
        tokio::spawn(answer_cancels(Arc::downgrade(&core), cancels));
    }
    let capacity = core.capacity();
    let answered = Arc::new(AtomicU64::new(0));
    let room = Arc::new(tokio::sync::Semaphore::new(capacity));
    while let Some(request) = requests.recv().await {
        if core.try_exit().is_some() {
            break;
        }
        if !core.is_in_flight(request.id) {
            continue;
        }
        if capacity <= 1 {
            if !handle(&core, request, &shared, &answered).await {
                break;
            }
            continue;
        }
        let Ok(permit) = Arc::clone(&room).acquire_owned().await else {
            break;
        };
        let core = Arc::clone(&core);
        let shared = Arc::clone(&shared);
        let answered = Arc::clone(&answered);
        tokio::spawn(async move {
            handle(&core, request, &shared, &answered).await;
            drop(permit);
        });
    }
}

/// Answers each cancelled request in flight `cancelled`, until the worker is gone.
async fn answer_cancels(core: Weak<WorkerCore>, mut cancels: UnboundedReceiver<RequestId>) {
    while let Some(id) = cancels.recv().await {
        let Some(core) = core.upgrade() else {
            return;
        };
        let _delivery = core.deliver(id, Outcome::Error { error: cancelled() });
    }
}

/// Handles one request after its latency; returns `false` once the worker
/// has exited (or crashed on this request).
async fn handle(
    core: &Arc<WorkerCore>,
    request: Request,
    shared: &Arc<BehaviourShared>,
    answered: &AtomicU64,
) -> bool {
    let behaviour = &shared.behaviour;
    let ticket = shared.next_ticket();
    let latency = behaviour.latency.sample(ticket.number, ticket.latency_draw);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if core.try_exit().is_some() {
        return false;
    }
    if behaviour
        .crash_every
        .is_some_and(|every| every != 0 && ticket.number % every == 0)
    {
        if core.crash(WorkerExit::signal(9)) {
            shared.stats.crash_injected();
        }
        return false;
    }
    if core.stream_window(request.id).is_some() {
        for seq in 0..behaviour.stream_chunks {
            if !core.wait_for_credit(request.id).await {
                return core.try_exit().is_none(); // cancelled and answered, or gone
            }
            let _delivery = core.push_chunk(request.id, json!({ "seq": seq }));
        }
    }
    let injected = ticket.failure_draw < behaviour.failure_rate;
    let outcome = if injected {
        Outcome::Error {
            error: python_exception(
                "RuntimeError",
                &format!(
                    "injected failure (request {} of this mock spawner)",
                    ticket.number
                ),
            ),
        }
    } else {
        shared.answer(core, &request)
    };
    let answered = answered.fetch_add(1, Ordering::Relaxed) + 1;
    let rss = behaviour
        .rss_bytes
        .saturating_add(behaviour.rss_growth_per_request.saturating_mul(answered));
    core.set_resident_memory(Some(rss));
    let delivery = core.deliver(request.id, outcome);
    if injected && delivery != Delivery::NotInFlight {
        shared.stats.python_error_injected();
    }
    true
}
