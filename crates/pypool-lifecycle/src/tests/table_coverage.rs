//! `apply` accepts exactly what [`TRANSITIONS`] lists: every (state, event)
//! pair is checked against the table, and every row is reached by real event
//! sequences.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use pypool_clock::ManualClock;

use super::{Load, SOME_RECYCLE, every_event, every_phase, guard_holds, worker};
use crate::lifecycle::Phase;
use crate::{
    Event, ExitInfo, InvalidTransition, LifecycleConfig, RecycleReason, TRANSITIONS, TableRow,
    WorkerLifecycle,
};

/// Cases of the all-pairs property; each case checks every (phase, event)
/// pair, 120 of them.
const ALL_PAIRS_CASES: u32 = 512;

/// The rows that apply to `event` in `phase` with these counts.
fn matching_rows(
    phase: Phase,
    event: &Event,
    health_failures: u32,
    request_failures: u32,
    load: Load,
    config: &LifecycleConfig,
) -> Vec<&'static TableRow> {
    TRANSITIONS
        .iter()
        .filter(|row| row.from == phase.state() && row.event == event.kind())
        .filter(|row| {
            guard_holds(
                row.guard,
                event,
                phase,
                health_failures,
                request_failures,
                load,
                config,
            )
        })
        .collect()
}

/// Applies `event` and checks the outcome against the table; returns the row
/// that applied, if any.
fn apply_and_check(
    worker: &mut WorkerLifecycle,
    event: Event,
    config: &LifecycleConfig,
) -> Option<&'static TableRow> {
    let (phase, health_failures, request_failures, _, in_flight, capacity) = worker.internals();
    let load = Load {
        in_flight,
        capacity,
    };
    let rows = matching_rows(
        phase,
        &event,
        health_failures,
        request_failures,
        load,
        config,
    );
    assert!(
        rows.len() <= 1,
        "ambiguous table: {rows:?} all apply to {event:?} in {phase:?}"
    );
    let before = worker.internals();
    let history_before = worker.history().count();
    match (worker.apply(event), rows.first()) {
        (Ok(transition), Some(row)) => {
            assert_eq!(transition.from, row.from);
            assert_eq!(
                transition.to, row.to,
                "{event:?} in {phase:?} went elsewhere than {row:?}"
            );
            assert_eq!(worker.state(), row.to);
            Some(row)
        }
        (Ok(transition), None) => {
            panic!("apply accepted {event:?} in {phase:?} ({transition:?}), the table has no row")
        }
        (Err(err), Some(row)) => {
            panic!("apply rejected {event:?} in {phase:?} ({err}), row {row:?}")
        }
        (Err(err), None) => {
            assert_eq!(
                err,
                InvalidTransition {
                    state: phase.state(),
                    event: event.kind()
                }
            );
            assert_eq!(
                worker.internals(),
                before,
                "a rejected event changed the worker"
            );
            assert_eq!(worker.history().count(), history_before);
            None
        }
    }
}

fn arb_config() -> impl Strategy<Value = LifecycleConfig> {
    (0usize..4, 0u32..5, 0u32..5).prop_map(|(history_len, health, request)| LifecycleConfig {
        history_len,
        health_failure_threshold: health,
        request_failure_threshold: request,
    })
}

fn arb_recycle() -> impl Strategy<Value = RecycleReason> {
    prop_oneof![
        (any::<u64>(), any::<u64>())
            .prop_map(|(served, limit)| RecycleReason::MaxRequests { served, limit }),
        (any::<u32>(), any::<u32>()).prop_map(|(age, limit)| RecycleReason::MaxAge {
            age: Duration::from_millis(age.into()),
            limit: Duration::from_millis(limit.into()),
        }),
        (any::<u64>(), any::<u64>())
            .prop_map(|(rss_bytes, limit)| RecycleReason::MaxMemory { rss_bytes, limit }),
    ]
}

fn arb_exit() -> impl Strategy<Value = ExitInfo> {
    (
        proptest::option::of(any::<i32>()),
        proptest::option::of(1i32..65),
    )
        .prop_map(|(code, signal)| ExitInfo { code, signal })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(ALL_PAIRS_CASES))]

    /// Every (state, event) pair, in arbitrary internal configurations (also
    /// ones no event sequence reaches, such as an idle worker past a
    /// threshold): apply accepts it iff exactly one table row applies, and
    /// goes where that row says.
    #[test]
    fn every_state_event_pair_follows_the_table(
        config in arb_config(),
        health_failures in 0u32..6,
        request_failures in 0u32..6,
        health_known in any::<bool>(),
        (in_flight, capacity) in (1u32..4).prop_flat_map(|capacity| (0..=capacity, Just(capacity))),
        recycle in arb_recycle(),
        exit in arb_exit(),
    ) {
        for phase in every_phase(recycle, exit) {
            for event in every_event(recycle, exit) {
                let mut worker = WorkerLifecycle::with_internals(
                    config,
                    Arc::new(ManualClock::new()),
                    phase,
                    health_failures,
                    request_failures,
                    health_known,
                    (in_flight, capacity),
                );
                apply_and_check(&mut worker, event, &config);
            }
        }
    }
}

/// Breadth-first search of every configuration reachable from a new worker:
/// every accepted event is in the table, and every row of the table is
/// accepted somewhere.
#[test]
fn every_row_is_reached_by_events_and_nothing_else_is() {
    let configs =
        [(1, 1), (2, 2), (3, 3), (1, 3), (3, 1)].map(|(health, request)| LifecycleConfig {
            history_len: 4,
            health_failure_threshold: health,
            request_failure_threshold: request,
        });
    let mut reached: HashSet<&'static TableRow> = HashSet::new();
    for (config, capacity) in configs
        .into_iter()
        .flat_map(|config| [1, 2, 3].map(|capacity| (config, capacity)))
    {
        let (mut start, _clock) = worker(config);
        start.set_capacity(capacity);
        let mut seen = HashSet::from([start.internals()]);
        let mut queue = VecDeque::from([start]);
        while let Some(current) = queue.pop_front() {
            for event in every_event(SOME_RECYCLE, ExitInfo::code(0)) {
                let mut next = current.clone();
                if let Some(row) = apply_and_check(&mut next, event, &config) {
                    reached.insert(row);
                    if seen.insert(next.internals()) {
                        queue.push_back(next);
                    }
                }
            }
        }
    }
    let missing: Vec<_> = TRANSITIONS
        .iter()
        .filter(|row| !reached.contains(row))
        .collect();
    assert!(
        missing.is_empty(),
        "rows no event sequence reaches: {missing:?}"
    );
}
