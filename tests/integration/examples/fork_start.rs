//! Fork versus spawn start mode, DSPy preloaded, in one run: time for 8
//! workers to be ready versus 1, replacement time after a worker is
//! SIGKILLed (until the pool is full again and a ping is answered), and the
//! proportional set size (PSS, `/proc/<pid>/smaps_rollup`) of everything the
//! pool runs (every descendant of this process: workers, guardians and, in
//! fork mode, the template) with 8 workers.
//!
//! ```text
//! PYPOOL_TEST_PYTHON=.venv/bin/python cargo run --release -p pypool-integration --example fork_start
//! ```

use std::time::{Duration, Instant};

use pypool::{Pool, StartMethod};
use pypool_integration::pool_builder;
use serde_json::json;

const ROUNDS: usize = 3;

fn pool(method: StartMethod, size: usize) -> Result<Pool, Box<dyn std::error::Error>> {
    Ok(pool_builder(&[])
        .preload("dspy")
        .start_method(method)
        .size(size)
        .build()?)
}

async fn time_to_ready(
    method: StartMethod,
    size: usize,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let pool = pool(method, size)?;
    pool.ready().await?;
    let took = started.elapsed();
    pool.shutdown(Duration::from_secs(5)).await;
    Ok(took)
}

/// Kills one worker (its Python process, the one that answers) and times
/// until the pool has `size` ready workers again and a ping is answered.
async fn replacement(pool: &Pool, size: usize) -> Result<Duration, Box<dyn std::error::Error>> {
    let status = pool.status();
    let victim = status.worker_details[0].reported_pid.ok_or("no pid")?;
    let before: Vec<u32> = status.worker_details.iter().filter_map(|w| w.pid).collect();
    let started = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(victim)?),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    pool.wait_until(|status| {
        status.ready == size
            && status
                .worker_details
                .iter()
                .filter_map(|w| w.pid)
                .any(|pid| !before.contains(&pid))
    })
    .await;
    pool.execute("ping", json!({})).await?;
    Ok(started.elapsed())
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn pss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("Pss:"))
                .and_then(|line| line.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// PSS of every descendant of this process, and how many there are.
fn descendants_pss() -> (u64, usize) {
    let me = std::process::id();
    let pids: Vec<u32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect();
    let mut total = 0;
    let mut count = 0;
    for &pid in &pids {
        let mut current = pid;
        let mut depth = 0;
        while let Some(parent) = parent_of(current) {
            if parent == me {
                total += pss_kib(pid);
                count += 1;
                break;
            }
            if parent <= 1 || depth > 16 {
                break;
            }
            current = parent;
            depth += 1;
        }
    }
    (total, count)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rows = Vec::new();
    for method in [StartMethod::Spawn, StartMethod::Fork] {
        let mut one = Vec::new();
        let mut eight = Vec::new();
        for _ in 0..ROUNDS {
            one.push(time_to_ready(method, 1).await?);
            eight.push(time_to_ready(method, 8).await?);
        }
        let (one, eight) = (median(one), median(eight));
        let pool = pool(method, 8)?;
        pool.ready().await?;
        for _ in 0..16 {
            pool.execute("ping", json!({})).await?;
        }
        let (pss, processes) = descendants_pss();
        let mut replacements = Vec::new();
        for _ in 0..ROUNDS {
            replacements.push(replacement(&pool, 8).await?);
        }
        let replace = median(replacements);
        pool.shutdown(Duration::from_secs(5)).await;
        println!(
            "{method:>5}: ready 1 worker {one:.1?}, 8 workers {eight:.1?} (ratio {:.2}); \
             replacement after SIGKILL {replace:.1?}; PSS of 8 workers {:.1} MiB over {processes} processes",
            eight.as_secs_f64() / one.as_secs_f64(),
            pss as f64 / 1024.0
        );
        rows.push((eight, replace, pss));
    }
    let (spawn, fork) = (rows[0], rows[1]);
    println!(
        "fork/spawn: 8 workers ready {:.2}, replacement {:.2}, PSS {:.2}",
        fork.0.as_secs_f64() / spawn.0.as_secs_f64(),
        fork.1.as_secs_f64() / spawn.1.as_secs_f64(),
        fork.2 as f64 / spawn.2 as f64
    );
    Ok(())
}
