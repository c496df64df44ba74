//! `pypool stress` against real Python workers (the CLI's run, called as a
//! library so the test controls its size): without chaos every request
//! succeeds; with a worker SIGKILLed every 150 requests every request still
//! ends, with a result or a typed error, and the pool ends at full size.
#![cfg(feature = "real-python")]

use std::time::Duration;

use pypool_cli::options::{DEMO_HANDLERS, PoolSettings, PythonSettings, StressSettings};
use pypool_cli::pool_setup;
use pypool_cli::stress::chaos::{Chaos, KillRandomWorker, NoChaos};
use pypool_cli::stress::report::Report;
use pypool_cli::stress::{self, Plan};
use pypool_integration::python;

const WORKERS: usize = 4;
const REQUESTS: u64 = 600;

fn settings(kill_every: Option<u64>) -> StressSettings {
    StressSettings {
        pool: PoolSettings {
            python: PythonSettings {
                interpreter: python(),
                python_path: Vec::new(),
                env_policy: "inherit".into(),
                pass_env: Vec::new(),
                start_mode: "fork".into(),
                preload: Vec::new(),
            },
            workers: WORKERS,
            handlers: vec![DEMO_HANDLERS.into()],
            request_timeout: Duration::from_secs(10),
            store: None,
        },
        requests: REQUESTS,
        concurrency: 32,
        sessions: 8,
        kill_every,
        seed: Some(11),
        command: None,
        json: true,
        hosts: 1,
        executor_for: None,
    }
}

async fn run(kill_every: Option<u64>, chaos: Box<dyn Chaos>) -> Report {
    let settings = settings(kill_every);
    let plan = Plan {
        builder: pool_setup::builder(stress::POOL_NAME, &settings.pool, "warning").seed(11),
        guard: stress::guard_for(settings.pool.request_timeout),
        settings,
        seed: 11,
        chaos,
        progress: false,
        settle_limit: stress::SETTLE_LIMIT,
    };
    stress::run(plan).await.expect("the stress run starts")
}

fn assert_every_request_ended(report: &Report) {
    let requests = &report.requests;
    assert_eq!(requests.started, REQUESTS, "{report}");
    assert_eq!(requests.ended, REQUESTS, "{report}");
    assert_eq!((requests.hung, requests.lost), (0, 0), "{report}");
    assert_eq!(
        requests.succeeded + requests.failed,
        requests.ended,
        "{report}"
    );
    assert_eq!(report.pool.ready_at_end, WORKERS, "{report}");
    assert!(report.verdict.ok, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_chaos_every_request_succeeds_with_a_correct_result() {
    let report = run(None, Box::new(NoChaos)).await;
    assert_every_request_ended(&report);
    assert_eq!(report.requests.succeeded, REQUESTS, "{report}");
    assert!(report.failures.is_empty(), "{report}");
    assert_eq!(report.pool.replaced, 0, "{report}");
    // All three parts of the mix ran: session programs, global programs, commands.
    assert_eq!(report.mix.len(), 3, "{report}");
    assert!(report.affinity.hits > 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_worker_killed_every_150_requests_every_request_ends_and_the_pool_recovers() {
    let report = run(Some(150), Box::new(KillRandomWorker::new(11))).await;
    assert_every_request_ended(&report);
    assert!(report.chaos.kills >= 2, "{report}");
    assert!(report.pool.replaced >= report.chaos.kills, "{report}");
    for kind in report.failures.keys() {
        assert!(
            ["worker_exited", "connection"].contains(&kind.as_str()),
            "only a killed worker's requests may fail, got {kind}: {report}"
        );
    }
}
