//! Failure mode: a worker breaks the protocol mid-request (a malformed frame, or a reply to an unknown request id).
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use pypool::PoolError;
use pypool_mock::{MockSpawner, WorkerHandle};
use serde_json::json;
use support::scripted::{accept_next, builder, refill};
use support::{NO_TIME, caller_error, spawn_execute, within, worker_ids};
use tokio::task::JoinHandle;

/// Answers every request `worker` gets with its worker id, until it exits.
fn respond_with_id(mut worker: WorkerHandle) -> JoinHandle<()> {
    tokio::spawn(async move {
        let id = worker.worker_id();
        while let Some(pending) = worker.next_request().await {
            let _ = pending.reply(json!({ "worker": id }));
        }
    })
}

#[derive(Debug, Clone, Copy)]
enum Misbehaviour {
    MalformedFrame,
    ReplyToUnknownId,
}

async fn protocol_violation_mid_request(misbehaviour: Misbehaviour) {
    let (spawner, mut spawns) = MockSpawner::scripted();
    let pool = builder(spawner, 2).build().unwrap();
    let mut offender = accept_next(&pool, &mut spawns).await;
    let survivor = accept_next(&pool, &mut spawns).await;
    assert_eq!((offender.worker_id(), survivor.worker_id()), (1, 2));

    let call = spawn_execute(&pool, "work", json!({ "n": 1 }));
    let pending = within(NO_TIME, "the request", offender.next_request())
        .await
        .unwrap();
    let request_id = pending.id();
    match misbehaviour {
        Misbehaviour::MalformedFrame => assert!(pending.send_garbage()),
        Misbehaviour::ReplyToUnknownId => assert!(pending.reply_unknown_id()),
    }

    let error = caller_error(call).await;
    let PoolError::ProtocolViolation {
        worker_id,
        command,
        request_id: failed,
        detail,
    } = &error
    else {
        panic!("expected ProtocolViolation, got {error:?}");
    };
    assert_eq!(*worker_id, 1);
    assert_eq!(command, "work");
    assert_eq!(*failed, request_id);
    match misbehaviour {
        Misbehaviour::MalformedFrame => assert_eq!(detail, "it sent a malformed frame"),
        Misbehaviour::ReplyToUnknownId => {
            let unknown = detail
                .strip_prefix("it replied to request ")
                .and_then(|rest| rest.strip_suffix(", which is not in flight"))
                .unwrap_or_else(|| panic!("unexpected detail {detail:?}"));
            assert_ne!(unknown, request_id.to_string());
        }
    }
    assert_eq!(error.kind(), "protocol_violation");
    assert!(
        error.to_string().starts_with(&format!(
            "worker 1 broke the protocol while running `work` (request {request_id}): "
        )),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .ends_with("it was killed and is being replaced")
    );

    // Removed: the pool kills it and spawns a replacement.
    within(NO_TIME, "the offender to be killed", offender.killed()).await;
    let (replacement, status) = refill(&pool, &mut spawns, 2).await;
    assert_eq!(replacement.worker_id(), 3);
    assert_eq!(worker_ids(&status), [2, 3]);
    assert_eq!(status.counters.replaced, 1);
    assert_eq!(status.counters.requests_failed, 1);
    assert_eq!(status.counters.retries, 0);

    // Never reused: every later request goes to the other workers.
    let responders = [respond_with_id(survivor), respond_with_id(replacement)];
    let mut served_by = Vec::new();
    for n in 0..6 {
        let result = within(
            NO_TIME,
            "a later request",
            pool.execute("work", json!({ "n": n })),
        )
        .await
        .unwrap();
        served_by.push(result["worker"].as_u64().unwrap());
    }
    assert_eq!(served_by, [2, 3, 2, 3, 2, 3]);
    assert_eq!(offender.requests_seen(), 1);
    assert!(offender.next_request().await.is_none());
    for responder in responders {
        responder.abort();
    }
}

#[tokio::test(start_paused = true)]
async fn a_malformed_frame_mid_request_removes_and_replaces_the_worker() {
    protocol_violation_mid_request(Misbehaviour::MalformedFrame).await;
}

#[tokio::test(start_paused = true)]
async fn a_reply_to_an_unknown_id_removes_and_replaces_the_worker() {
    protocol_violation_mid_request(Misbehaviour::ReplyToUnknownId).await;
}
