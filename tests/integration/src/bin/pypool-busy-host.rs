//! A host for the process-ownership tests: starts a pool whose workers all
//! run `busy_with_children` (grandchildren, then a CPU loop or a blocking
//! system call), prints `BUSY` and waits forever. The tests kill it.
//!
//! ```text
//! pypool-busy-host <interpreter> <marker> <workers> [fork|spawn]
//! ```
//! Workers get `PYPOOL_TEST_MARKER=<marker>` in their environment (their
//! children inherit it), so a test can find every one of them in `/proc`.

use std::time::Duration;

use pypool::Timeouts;
use pypool_integration::pool_builder;
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (interpreter, marker, workers, start_method) = match args.as_slice() {
        [_, interpreter, marker, workers] => (interpreter, marker, workers, None),
        [_, interpreter, marker, workers, method] => (
            interpreter,
            marker,
            workers,
            Some(method.parse::<pypool::StartMethod>()?),
        ),
        _ => {
            return Err(
                "usage: pypool-busy-host <interpreter> <marker> <workers> [fork|spawn]".into(),
            );
        }
    };
    let workers: usize = workers.parse()?;
    let pool = pool_builder(&["busy_with_children.py"])
        .interpreter(interpreter.as_str())
        .env("PYPOOL_TEST_MARKER", marker.as_str())
        .env("PYPOOL_WRAPPED_PYTHON", pypool_integration::python())
        .start_method(start_method.unwrap_or_default())
        .size(workers)
        .timeouts(Timeouts {
            request: Duration::from_secs(3600),
            ..Timeouts::default()
        })
        .health_check_interval(None)
        .build()?;
    pool.ready().await?;
    let mut calls = Vec::new();
    for index in 0..workers {
        let pool = pool.clone();
        let mode = if index % 2 == 0 { "cpu" } else { "syscall" };
        calls.push(tokio::spawn(async move {
            pool.execute("busy_with_children", json!({ "mode": mode }))
                .await
        }));
    }
    println!("BUSY");
    for call in calls {
        let _ = call.await;
    }
    Ok(())
}
