//! LM usage per program: replies' `usage` (plain or streamed) add up in the
//! `pypool_lm_*` counters, labelled by program with bounded cardinality
//! (global program ids up to a bound, then `other`; sessions' programs
//! share `session`).
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;

use futures::StreamExt;
use metrics_util::debugging::DebugValue;
use pypool::ProgramSpec;
use pypool::metrics::{USAGE_PROGRAM_LABELS, labels, names};
use serde_json::json;
use support::scripted::scripted_pool;

#[test]
fn usage_adds_up_per_program_with_bounded_labels() {
    let snapshot = support::record_metrics(|| async {
            let (pool, _spawns, mut workers) =
                scripted_pool(1, |builder| builder.name("usage")).await;
            let mut worker = workers.remove(0);
            // Every request is answered with the same usage.
            tokio::spawn(async move {
                while let Some(request) = worker.next_request().await {
                    let usage = json!({"calls": 2, "prompt_tokens": 10, "completion_tokens": 3, "cost": 0.000015});
                    let _ = request.reply_with_usage(json!({"answer": "4"}), usage);
                }
            });
            pool.create_program("qa", ProgramSpec::python("m:f")).await.unwrap();
            // Plain twice, streamed once: three runs of `qa`.
            for _ in 0..2 {
                pool.execute_program("qa", json!({})).await.unwrap();
            }
            let items: Vec<_> = pool.execute_program_stream("qa", json!({})).collect().await;
            assert!(items.last().unwrap().is_ok(), "{items:?}");
            // More global programs than the bound: the rest share `other`.
            for n in 0..USAGE_PROGRAM_LABELS + 5 {
                let id = format!("p{n}");
                pool.create_program(&id, ProgramSpec::python("m:f")).await.unwrap();
                pool.execute_program(&id, json!({})).await.unwrap();
            }
            // Sessions' programs share one label.
            for n in 0..3 {
                let session = pool.session(&format!("s{n}")).unwrap();
                session.create_program("mine", ProgramSpec::python("m:f")).await.unwrap();
                session.execute_program("mine", json!({})).await.unwrap();
            }
    })
    .into_vec();
    let counter = |name: &str, program: &str| -> u64 {
        snapshot
            .iter()
            .find_map(|(key, _, _, value)| {
                let key = key.key();
                let matches = key.name() == name
                    && key
                        .labels()
                        .any(|l| l.key() == "pool" && l.value() == "usage")
                    && key
                        .labels()
                        .any(|l| l.key() == "program" && l.value() == program);
                match (matches, value) {
                    (true, DebugValue::Counter(value)) => Some(*value),
                    _ => None,
                }
            })
            .unwrap_or_else(|| panic!("no {name} for program {program}"))
    };
    assert_eq!(counter(names::LM_RUNS, "qa"), 3);
    assert_eq!(counter(names::LM_CALLS, "qa"), 6);
    assert_eq!(counter(names::LM_PROMPT_TOKENS, "qa"), 30);
    assert_eq!(counter(names::LM_COMPLETION_TOKENS, "qa"), 9);
    assert_eq!(counter(names::LM_COST_MICRO_USD, "qa"), 45);
    assert_eq!(counter(names::LM_RUNS, labels::SESSION), 3);
    // `qa` took one of the bound's labels: 64 - 1 of the p's have their own.
    assert_eq!(counter(names::LM_RUNS, labels::OTHER), 6);

    let programs: BTreeSet<String> = snapshot
        .iter()
        .filter(|(key, _, _, _)| key.key().name() == names::LM_RUNS)
        .filter_map(|(key, _, _, _)| {
            key.key()
                .labels()
                .find(|l| l.key() == "program")
                .map(|l| l.value().to_owned())
        })
        .collect();
    assert_eq!(programs.len(), USAGE_PROGRAM_LABELS + 2, "{programs:?}");
}
