//! `pypool stress` end to end on mock workers (no Python): the mock answers
//! the demo commands and the summarize program as the real ones would, so
//! the run checks results, accounts for every request and judges the pool.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pypool::{Pool, PoolBuilder, Timeouts};
use pypool_cli::options::{
    CustomCommand, DEMO_HANDLERS, PoolSettings, PythonSettings, StressSettings,
};
use pypool_cli::stress::chaos::{Chaos, NoChaos, Strike};
use pypool_cli::stress::check::expected;
use pypool_cli::stress::report::Report;
use pypool_cli::stress::workload::Op;
use pypool_cli::stress::{self, Plan};
use pypool_mock::{Behaviour, LatencyDistribution, MockSpawner, python_exception};
use serde_json::{Map, Value, json};

const WORKERS: usize = 8;

fn text_arg(args: &Map<String, Value>, key: &str) -> String {
    args.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn number_arg(args: &Map<String, Value>, key: &str) -> u64 {
    args.get(key).and_then(Value::as_u64).unwrap_or_default()
}

/// Answers like `pypool_worker.demo` and `pypool.run_program` running `summarize`.
fn demo_behaviour() -> Behaviour {
    Behaviour::default()
        .latency(LatencyDistribution::Uniform {
            min: Duration::from_millis(1),
            max: Duration::from_millis(5),
        })
        .command("demo.primes", true)
        .command("demo.word_stats", true)
        .command("demo.digest", true)
        .handler(|request| {
            let args = &request.args;
            let op = match request.command.as_str() {
                "demo.primes" => Op::Primes {
                    limit: number_arg(args, "limit"),
                },
                "demo.word_stats" => Op::WordStats {
                    text: text_arg(args, "text"),
                    top: number_arg(args, "top"),
                },
                "demo.digest" => {
                    return Ok(json!({ "sha256": "ab".repeat(32), "rounds": args["rounds"] }));
                }
                "pypool.run_program" => {
                    let inputs = args["inputs"].as_object().cloned().unwrap_or_default();
                    Op::GlobalProgram {
                        program: 0,
                        text: text_arg(&inputs, "text"),
                        max_words: number_arg(&inputs, "max_words"),
                    }
                }
                "pypool.apply_settings" => return Ok(json!({ "version": args["version"] })),
                other => {
                    return Err(python_exception(
                        "KeyError",
                        &format!("no such command {other}"),
                    ));
                }
            };
            expected(&op).ok_or_else(|| python_exception("RuntimeError", "no expectation"))
        })
}

fn settings(requests: u64, kill_every: Option<u64>) -> StressSettings {
    StressSettings {
        pool: PoolSettings {
            python: PythonSettings {
                interpreter: "python3".into(),
                python_path: Vec::new(),
                env_policy: "inherit".into(),
                pass_env: Vec::new(),
                start_mode: "spawn".into(),
                preload: Vec::new(),
            },
            workers: WORKERS,
            handlers: vec![DEMO_HANDLERS.into()],
            request_timeout: Duration::from_secs(10),
            store: None,
        },
        requests,
        concurrency: 64,
        sessions: 16,
        kill_every,
        seed: Some(7),
        command: None,
        json: false,
        hosts: 1,
        executor_for: None,
    }
}

fn builder(behaviour: Behaviour) -> PoolBuilder {
    let spawner = MockSpawner::with_behaviour(behaviour).unwrap();
    Pool::builder()
        .name(stress::POOL_NAME)
        .size(WORKERS)
        .spawner(spawner)
        .timeouts(Timeouts {
            request: Duration::from_secs(10),
            ..Timeouts::default()
        })
}

fn plan(builder: PoolBuilder, settings: StressSettings, chaos: Box<dyn Chaos>) -> Plan {
    Plan {
        builder,
        guard: stress::guard_for(settings.pool.request_timeout),
        settings,
        seed: 7,
        chaos,
        progress: false,
        settle_limit: stress::SETTLE_LIMIT,
    }
}

fn assert_every_request_accounted(report: &Report) {
    let r = &report.requests;
    assert_eq!(r.started, report.settings.requests, "{report}");
    assert_eq!(r.ended + r.hung, r.started, "{report}");
    assert_eq!(r.succeeded + r.failed, r.ended, "{report}");
    assert_eq!(r.lost, 0, "{report}");
}

#[tokio::test(start_paused = true)]
async fn a_clean_run_succeeds_entirely_and_passes() {
    let report = stress::run(plan(
        builder(demo_behaviour()),
        settings(2000, None),
        Box::new(NoChaos),
    ))
    .await
    .unwrap();
    assert_every_request_accounted(&report);
    assert_eq!(report.requests.succeeded, 2000, "{report}");
    assert!(report.failures.is_empty(), "{report}");
    assert_eq!(report.mix.len(), 3, "{report}");
    assert_eq!(report.pool.ready_at_end, WORKERS);
    assert_eq!(report.pool.replaced, 0);
    assert!(report.verdict.ok, "{report}");
    assert_eq!(report.exit_status(), 0);
    assert_eq!(report.latency_us.count, 2000);
    let affinity = &report.affinity;
    assert_eq!(
        affinity.hits + affinity.misses + affinity.spills,
        report.mix["session_program"],
        "{report}"
    );
    assert!(affinity.hits > 0, "{report}");
    assert!(report.latency_us.p50 >= 1000, "{report}");
}

#[tokio::test(start_paused = true)]
async fn crashing_workers_give_typed_errors_and_the_pool_ends_at_full_size() {
    let behaviour = demo_behaviour().crash_every(97);
    let report = stress::run(plan(
        builder(behaviour),
        settings(3000, None),
        Box::new(NoChaos),
    ))
    .await
    .unwrap();
    eprintln!("{report}");
    assert_every_request_accounted(&report);
    assert_eq!(report.requests.hung, 0, "{report}");
    assert!(report.pool.replaced > 0, "{report}");
    assert_eq!(report.pool.ready_at_end, WORKERS, "{report}");
    assert!(!report.failures.contains_key("wrong_result"), "{report}");
    assert!(report.verdict.ok, "{report}");
    assert_eq!(report.exit_status(), 0);
}

/// Counts strikes without hurting anyone.
struct CountingChaos(Arc<AtomicU64>);

impl Chaos for CountingChaos {
    fn strike(&mut self, _pool: &Pool) -> Strike {
        self.0.fetch_add(1, Ordering::Relaxed);
        Strike::NoTarget
    }
}

#[tokio::test(start_paused = true)]
async fn chaos_strikes_after_every_n_completed_requests() {
    let strikes = Arc::new(AtomicU64::new(0));
    let report = stress::run(plan(
        builder(demo_behaviour()),
        settings(100, Some(10)),
        Box::new(CountingChaos(Arc::clone(&strikes))),
    ))
    .await
    .unwrap();
    // After requests 10, 20, …, 90: not after the last one.
    assert_eq!(strikes.load(Ordering::Relaxed), 9);
    assert_eq!(report.chaos.no_target, 9);
    assert_eq!(report.chaos.kills, 0);
    assert!(report.verdict.ok, "{report}");
}

#[tokio::test(start_paused = true)]
async fn requests_past_their_guard_are_hung_and_fail_the_run() {
    // Workers take 30 s; the pool would wait 60 s; the guard is 1 s.
    let behaviour = demo_behaviour().fixed_latency(Duration::from_secs(30));
    let mut settings = settings(20, None);
    settings.concurrency = 4;
    settings.sessions = 2;
    let builder = Pool::builder()
        .name(stress::POOL_NAME)
        .size(WORKERS)
        .spawner(MockSpawner::with_behaviour(behaviour).unwrap());
    let mut plan = plan(builder, settings, Box::new(NoChaos));
    plan.guard = Duration::from_secs(1);
    let report = stress::run(plan).await.unwrap();
    assert_every_request_accounted(&report);
    assert_eq!(report.requests.hung, 20, "{report}");
    assert!(!report.verdict.ok);
    assert_eq!(report.exit_status(), 1);
    assert!(
        report.verdict.problems[0].contains("20 request(s) hung"),
        "{report}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_custom_command_replaces_the_plain_commands_unchecked() {
    let mut settings = settings(300, None);
    settings.command = Some(CustomCommand {
        name: "echo".into(),
        args: Map::from_iter([("x".to_owned(), json!(1))]),
    });
    let behaviour = demo_behaviour().handler(|request| match request.command.as_str() {
        "echo" => Ok(json!({ "echo": request.args })),
        "pypool.run_program" => {
            let inputs = request.args["inputs"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let op = Op::GlobalProgram {
                program: 0,
                text: text_arg(&inputs, "text"),
                max_words: number_arg(&inputs, "max_words"),
            };
            Ok(expected(&op).unwrap_or_default())
        }
        other => Err(python_exception("KeyError", other)),
    });
    let report = stress::run(plan(builder(behaviour), settings, Box::new(NoChaos)))
        .await
        .unwrap();
    assert_every_request_accounted(&report);
    assert_eq!(report.requests.succeeded, 300, "{report}");
    assert_eq!(report.settings.command.as_deref(), Some("echo"));
}

#[tokio::test(start_paused = true)]
async fn a_pool_that_cannot_start_is_an_error_not_a_report() {
    let behaviour = demo_behaviour().spawn_failure(pypool_mock::SpawnFailure::EveryNth(1));
    let error = stress::run(plan(
        builder(behaviour),
        settings(10, None),
        Box::new(NoChaos),
    ))
    .await
    .unwrap_err();
    assert!(format!("{error:#}").contains("did not start"), "{error:#}");
}
