//! The old system's worst bug, on real Python: a program created once must
//! run on every worker, whichever happens to take the call — 100 % of 1,000
//! tries, including after its worker is killed.
#![cfg(feature = "real-python")]

use std::time::Duration;

use pypool::{ProgramSpec, WorkerState};
use pypool_integration::{bounded, program_pool_builder};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_created_once_runs_on_every_worker() {
    let pool = program_pool_builder().size(3).build().expect("pool builds");
    pool.ready().await.expect("workers start");
    pool.create_program("greet", ProgramSpec::python("programs_basic:greet"))
        .await
        .expect("program stored");

    // Occupy two workers: the program must run on the third, which has
    // never seen it.
    let sleepers: Vec<_> = (0..2)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.execute("sleep", json!({ "seconds": 1 })).await })
        })
        .collect();
    bounded(
        "two busy workers",
        pool.wait_until(|status| status.busy == 2),
    )
    .await;
    let greeting = pool
        .execute_program("greet", json!({ "name": "Ada" }))
        .await
        .expect("runs on the free worker");
    assert_eq!(greeting, json!("Hello, Ada!"));
    for sleeper in sleepers {
        sleeper.await.expect("task").expect("sleep ends");
    }

    // 1,000 tries, 3 at a time so every worker takes its share.
    let mut successes = 0;
    for round in 0..334 {
        let calls = (0..3).map(|n| {
            let pool = pool.clone();
            async move {
                pool.execute_program("greet", json!({ "name": format!("n{round}-{n}") }))
                    .await
            }
        });
        for result in futures::future::join_all(calls).await {
            result.expect("every try succeeds");
            successes += 1;
        }
        if successes >= 1000 {
            break;
        }
    }
    assert!(successes >= 1000, "{successes} successes");
    let status = pool.status();
    assert_eq!(status.counters.requests_failed, 0);
    assert!(
        status
            .worker_details
            .iter()
            .all(|worker| worker.requests_served > 100),
        "every worker ran the program: {:?}",
        status
            .worker_details
            .iter()
            .map(|w| w.requests_served)
            .collect::<Vec<_>>()
    );
    pool.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programs_survive_their_worker_being_killed() {
    let pool = program_pool_builder().size(1).build().expect("pool builds");
    pool.ready().await.expect("worker starts");
    pool.create_program("greet", ProgramSpec::python("programs_basic:greet"))
        .await
        .expect("program stored");
    assert_eq!(
        pool.execute_program("greet", json!({ "name": "Ada" }))
            .await
            .expect("runs"),
        json!("Hello, Ada!")
    );
    let pid = pool.status().worker_details[0].pid.expect("pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    tokio::time::timeout(
        Duration::from_secs(60),
        pool.wait_until(|status| {
            status.ready == 1
                && status
                    .worker_details
                    .iter()
                    .all(|w| w.pid != Some(pid) && w.state == WorkerState::Ready)
        }),
    )
    .await
    .expect("replacement");
    assert_eq!(
        pool.execute_program("greet", json!({ "name": "Bob", "punctuation": "?" }))
            .await
            .expect("runs on the replacement"),
        json!("Hello, Bob?")
    );
    pool.shutdown(Duration::from_secs(5)).await;
}
