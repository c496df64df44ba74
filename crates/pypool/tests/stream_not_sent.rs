//! Failure mode: a stream that never reached a worker (the connection
//! refused it as not sent, as a draining worker's does). Nothing ran, so it
//! is sent again under the recovery rules — unlike a stream that reached a
//! worker, which never is.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use futures::StreamExt;
use pypool::{Pool, StreamItem, WorkerExit};
use pypool_mock::{ChunkDelivery, Delivery, MockSpawner};
use pypool_seam::{
    CallError, Handshake, Outcome, Replied, ReplyStream, Request, RequestId, SpawnError,
    SpawnRequest, WorkerConnection, WorkerSpawner,
};
use serde_json::json;
use support::scripted::{accept_all, accept_spawn, next_request};
use support::{NO_TIME, within};

/// Mock workers whose connections refuse the next `refusals` streams as
/// never sent.
#[derive(Debug)]
struct Refusing {
    inner: MockSpawner,
    refusals: Arc<AtomicU64>,
}

#[async_trait]
impl WorkerSpawner for Refusing {
    async fn spawn(&self, request: SpawnRequest) -> Result<Arc<dyn WorkerConnection>, SpawnError> {
        let inner = self.inner.spawn(request).await?;
        Ok(Arc::new(RefusingConnection {
            inner,
            refusals: Arc::clone(&self.refusals),
        }))
    }
}

#[derive(Debug)]
struct RefusingConnection {
    inner: Arc<dyn WorkerConnection>,
    refusals: Arc<AtomicU64>,
}

#[async_trait]
impl WorkerConnection for RefusingConnection {
    fn handshake(&self) -> &Handshake {
        self.inner.handshake()
    }
    async fn call(&self, request: Request) -> Result<Outcome, CallError> {
        self.inner.call(request).await
    }
    async fn call_with_usage(&self, request: Request) -> Result<Replied, CallError> {
        self.inner.call_with_usage(request).await
    }
    async fn call_stream(
        &self,
        request: Request,
        window: NonZeroU32,
    ) -> Result<ReplyStream, CallError> {
        let refuse = self
            .refusals
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok();
        if refuse {
            return Err(CallError::NotSent {
                worker_id: self.worker_id(),
                request_id: request.id,
                reason: "the worker is draining".to_owned(),
            });
        }
        self.inner.call_stream(request, window).await
    }
    fn in_flight(&self) -> usize {
        self.inner.in_flight()
    }
    fn capacity(&self) -> usize {
        self.inner.capacity()
    }
    fn cancel(&self, request_id: RequestId) {
        self.inner.cancel(request_id);
    }
    async fn exited(&self) -> WorkerExit {
        self.inner.exited().await
    }
    fn try_exit(&self) -> Option<WorkerExit> {
        self.inner.try_exit()
    }
    fn terminate(&self) {
        self.inner.terminate();
    }
    fn kill(&self) {
        self.inner.kill();
    }
    fn resident_memory_bytes(&self) -> Option<u64> {
        self.inner.resident_memory_bytes()
    }
    fn is_draining(&self) -> bool {
        self.inner.is_draining()
    }
}

#[tokio::test(start_paused = true)]
async fn a_stream_refused_as_not_sent_is_sent_again() {
    let (spawner, mut spawns) = MockSpawner::scripted();
    let refusals = Arc::new(AtomicU64::new(1));
    let pool = Pool::builder()
        .size(1)
        .health_check_interval(None)
        .spawner(Refusing {
            inner: spawner,
            refusals: Arc::clone(&refusals),
        })
        .build()
        .unwrap();
    let workers = accept_all(&pool, &mut spawns, 1).await;
    let reading = tokio::spawn(pool.execute_stream("gen", json!({})).collect::<Vec<_>>());
    // The first attempt never reached the worker (whose connection is
    // then replaced, as for a plain call); the retry reaches the replacement.
    let mut replacement = accept_spawn(&mut spawns).await;
    let request = next_request(&mut replacement).await;
    assert_eq!(
        refusals.load(Ordering::SeqCst),
        0,
        "the first send was refused"
    );
    assert_eq!(
        workers[0].requests_seen(),
        0,
        "nothing reached the first worker"
    );
    assert_eq!(request.send_chunk(json!("a")), ChunkDelivery::Buffered);
    assert_eq!(request.reply(json!("done")), Delivery::Delivered);
    let items = within(NO_TIME, "the stream's end", reading).await.unwrap();
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[0].as_ref().unwrap(), &StreamItem::Chunk(json!("a")));
    assert_eq!(items[1].as_ref().unwrap(), &StreamItem::Done(json!("done")));
    let status = pool.status();
    assert_eq!(status.counters.retries, 1);
    assert_eq!(status.counters.requests_ok, 1);
    assert_eq!(replacement.requests_seen(), 1, "sent once");
}
