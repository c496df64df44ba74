//! The shell of health checks: the core lends idle workers to the checker;
//! the pings run here, and their verdicts go back to the core.

use std::sync::{Arc, Weak};
use std::time::Duration;

use pypool_seam::{Outcome, Request, WorkerId};

use crate::core::HealthNext;
use crate::inner::{Conn, Inner};

/// The command a health check sends; every worker serves it.
const HEALTH_COMMAND: &str = "ping";

/// Checks idle workers every `interval` until the pool is gone or shuts down.
pub(crate) fn start(inner: Weak<Inner>, interval: Duration) {
    crate::periodic::every(inner, interval, |inner| async move {
        inner.check_idle_workers();
    });
}

impl Inner {
    /// Lends every idle worker to a health check and checks them concurrently.
    pub(crate) fn check_idle_workers(self: &Arc<Self>) {
        let checks = self.decide(|books, _| books.core.health_round());
        for (id, connection) in checks {
            let inner = Arc::clone(self);
            tokio::spawn(async move { inner.check_one(id, connection).await });
        }
    }

    async fn check_one(self: Arc<Self>, id: WorkerId, connection: Conn) {
        let request = Request {
            id: self.next_request_id(),
            command: HEALTH_COMMAND.to_owned(),
            args: serde_json::Map::new(),
        };
        let call = connection.call(request);
        tokio::pin!(call);
        let first = tokio::time::timeout(self.config.timeouts.health_check, &mut call).await;
        let healthy = matches!(first, Ok(Ok(Outcome::Ok { .. })));
        let timed_out = first.is_err();
        let next = self.decide(|books, fx| books.core.health_checked(id, healthy, timed_out, fx));
        if next == HealthNext::Done {
            return;
        }
        // The ping is still pending on the worker: wait for it (up to the
        // request deadline) so the worker is never lent with a reply pending.
        let late = tokio::time::timeout(self.config.timeouts.request, &mut call).await;
        self.decide(|books, fx| books.core.health_late(id, late.is_ok(), fx));
    }
}
