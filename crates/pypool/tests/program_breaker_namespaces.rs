//! Program breakers are per program *and namespace*: a session's failing
//! program never opens the breaker of another session's program that
//! happens to share its id, nor the global one's.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::Duration;

use pypool::{BreakerConfig, PoolError, ProgramSpec};
use serde_json::json;
use support::fake_runtime::FAILING_CALLABLE;
use support::{scripted_builder, start_pool};

#[tokio::test(start_paused = true)]
async fn a_sessions_failing_program_leaves_other_namespaces_programs_of_the_same_id_alone() {
    let (builder, spawns) = scripted_builder(1);
    let builder = builder.command_breaker(BreakerConfig {
        consecutive_failures: 1,
        reset_timeout: Duration::from_secs(60),
        half_open_probes: 1,
        half_open_successes_to_close: 1,
        ..BreakerConfig::default()
    });
    let (pool, _spawns, _runtime) = start_pool(builder, spawns, 1).await;
    let alice = pool.session("alice").unwrap();
    let bob = pool.session("bob").unwrap();
    alice
        .create_program("p", ProgramSpec::python(FAILING_CALLABLE))
        .await
        .unwrap();
    bob.create_program("p", ProgramSpec::python("bob.tools:p"))
        .await
        .unwrap();
    pool.create_program("p", ProgramSpec::python("shared.tools:p"))
        .await
        .unwrap();

    // Alice's program fails once: her breaker for `p` opens.
    let failed = alice.execute_program("p", json!({})).await.unwrap_err();
    assert!(matches!(failed, PoolError::Remote { .. }), "{failed:?}");
    let rejected = alice.execute_program("p", json!({})).await.unwrap_err();
    assert!(
        matches!(rejected, PoolError::CircuitOpen { .. }),
        "{rejected:?}"
    );

    // Bob's `p` and the global `p` are other programs: they still run.
    bob.execute_program("p", json!({})).await.unwrap();
    pool.execute_program("p", json!({})).await.unwrap();
}
