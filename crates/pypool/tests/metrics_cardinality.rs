//! Failure mode: metric label cardinality. Session programs and command
//! names no worker registered must not create a series each: the `command`
//! label takes its values from a bounded set (registered commands,
//! `program`, `other`).
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use pypool::ProgramSpec;
use pypool::metrics::{labels, names};
use serde_json::json;
use support::fake_pool;

#[test]
fn programs_and_unknown_commands_do_not_add_a_series_each() {
    let snapshot = support::record_metrics(|| async {
        let (pool, _spawns, _runtime) = fake_pool(2).await;
        // Twenty sessions, each with its own program: one label value.
        for n in 0..20 {
            let session = pool.session(&format!("s{n}")).unwrap();
            session
                .create_program(&format!("p{n}"), ProgramSpec::python("mod:func"))
                .await
                .unwrap();
            session
                .execute_program(&format!("p{n}"), json!({}))
                .await
                .unwrap();
        }
        // Twenty names no worker registered (this fake runtime answers
        // them all): one label value.
        for n in 0..20 {
            pool.execute(&format!("no.such.command.{n}"), json!({}))
                .await
                .unwrap();
        }
        // A registered command keeps its name.
        pool.execute("echo", json!({})).await.unwrap();
        pool.shutdown(Duration::from_secs(5)).await;
    })
    .into_vec();
    let commands_of = |metric: &str| -> BTreeSet<String> {
        snapshot
            .iter()
            .filter(|(key, _, _, _)| key.key().name() == metric)
            .flat_map(|(key, _, _, _)| {
                key.key()
                    .labels()
                    .filter(|label| label.key() == "command")
                    .map(|label| label.value().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let durations = commands_of(names::REQUEST_DURATION);
    let breakers: BTreeSet<String> = snapshot
        .iter()
        .filter(|(key, _, _, _)| key.key().name() == names::BREAKER_STATE)
        .flat_map(|(key, _, _, _)| {
            key.key()
                .labels()
                .filter(|label| label.key() == "breaker")
                .map(|label| label.value().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    let expected: BTreeSet<String> = [labels::PROGRAM, labels::OTHER, "echo"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(durations, expected, "request duration series by command");
    let mut allowed_breakers = expected.clone();
    allowed_breakers.insert("spawn".to_owned());
    assert!(
        breakers.is_subset(&allowed_breakers),
        "breaker series: {breakers:?}"
    );
}
