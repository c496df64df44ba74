//! Fuzzes the wire codec and the process connection's reader with generated
//! and mutated worker output; run by `cargo xtask fuzz`.
//!
//! ```text
//! cargo run --release -p pypool-process --features fuzzing --example fuzz -- \
//!     [--seed S] [--frames N] [--threads T] [--update-vectors PATH]
//! ```
//!
//! Every case is run through `MessageCodec` (in random chunks) and through a
//! `ProcessConnection` reading an in-memory stdout. A case fails if it
//! panics (anywhere, spawned tasks included: a panic hook counts them), does
//! not finish within its bound, or ends in anything but a reply or a typed
//! error. The run is deterministic by seed. With `--update-vectors`, the first
//! case of each distinct outcome (and every failing case) is appended to the
//! kept regression vectors, which `cargo test -p pypool-process` replays.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::cell::Cell;
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pypool_process::fuzzing::{
    Case, CaseVerdict, case_runtime, case_seed, frame_count, is_typed, parse_vectors, run_case,
};

/// A synchronous case (the codec) making no progress for this long is a hang.
const WATCHDOG: Duration = Duration::from_secs(60);

/// Kept vectors larger than this are not kept unless they failed (deep
/// nesting makes big cases; the file stays reviewable).
const KEEP_MAX_BYTES: usize = 1500;

thread_local! {
    static PANICS_HERE: Cell<u64> = const { Cell::new(0) };
}

struct Options {
    seed: u64,
    frames: u64,
    threads: usize,
    update_vectors: Option<String>,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        seed: 1,
        frames: 10_000_000,
        threads: std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1)
            .min(2),
        update_vectors: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--seed" => options.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--frames" => {
                options.frames = value()?.parse().map_err(|e| format!("--frames: {e}"))?;
            }
            "--threads" => {
                options.threads = value()?
                    .parse::<usize>()
                    .map_err(|e| format!("--threads: {e}"))?
                    .max(1);
            }
            "--update-vectors" => options.update_vectors = Some(value()?),
            other => return Err(format!("unknown flag `{other}`")),
        }
    }
    Ok(options)
}

#[derive(Default)]
struct Totals {
    cases: u64,
    frames: u64,
    bytes: u64,
    panics: u64,
    hangs: u64,
    untyped: u64,
    codec_ends: BTreeMap<&'static str, u64>,
    call_kinds: BTreeMap<&'static str, u64>,
    /// Outcome signature -> (case index, case, expectation), the lowest index.
    interesting: BTreeMap<String, (u64, Case, String)>,
    failures: Vec<String>,
}

impl Totals {
    fn merge(&mut self, other: Self) {
        self.cases += other.cases;
        self.frames += other.frames;
        self.bytes += other.bytes;
        self.panics += other.panics;
        self.hangs += other.hangs;
        self.untyped += other.untyped;
        for (kind, count) in other.codec_ends {
            *self.codec_ends.entry(kind).or_default() += count;
        }
        for (kind, count) in other.call_kinds {
            *self.call_kinds.entry(kind).or_default() += count;
        }
        for (signature, entry) in other.interesting {
            match self.interesting.get(&signature) {
                Some((index, _, _)) if *index <= entry.0 => {}
                _ => {
                    self.interesting.insert(signature, entry);
                }
            }
        }
        self.failures.extend(other.failures);
    }
}

/// What makes an outcome distinct: how the codec ended and which kinds of
/// call results the connection produced (as a set).
fn signature_of(end: &str, calls: &str) -> String {
    let mut kinds: Vec<&str> = calls.split(',').collect();
    kinds.sort_unstable();
    kinds.dedup();
    format!("{end}|{}", kinds.join(","))
}

fn signature(verdict: &CaseVerdict) -> String {
    let calls = verdict
        .reader
        .as_ref()
        .map_or_else(|| "hang".to_owned(), |reader| reader.summary());
    signature_of(verdict.codec.end, &calls)
}

fn run_thread(
    seed: u64,
    indices: Vec<u64>,
    heartbeat: Arc<AtomicU64>,
    current: Arc<AtomicU64>,
) -> Totals {
    let mut totals = Totals::default();
    let mut runtime = case_runtime().expect("a current-thread runtime");
    for index in indices {
        let case = Case::generate(case_seed(seed, index));
        current.store(case.seed, Ordering::Relaxed);
        let panics_before = PANICS_HERE.with(Cell::get);
        let result = catch_unwind(AssertUnwindSafe(|| run_case(&case, &runtime)));
        let panicked = result.is_err() || PANICS_HERE.with(Cell::get) != panics_before;
        totals.cases += 1;
        totals.frames += case.frames;
        totals.bytes += case.stream.len() as u64;
        let failure = match &result {
            Err(_) => Some("panic".to_owned()),
            Ok(_) if panicked => Some("panic in a spawned task".to_owned()),
            Ok(verdict) if verdict.reader.is_none() => Some("hang".to_owned()),
            Ok(verdict) if !is_typed(verdict) => Some(format!("untyped: {verdict:?}")),
            Ok(_) => None,
        };
        if let Ok(verdict) = &result {
            *totals.codec_ends.entry(verdict.codec.end).or_default() += 1;
            for kind in verdict.reader.iter().flat_map(|reader| &reader.calls) {
                *totals.call_kinds.entry(kind).or_default() += 1;
            }
        }
        match failure.as_deref() {
            Some("hang") => totals.hangs += 1,
            Some(reason) if reason.starts_with("panic") => totals.panics += 1,
            Some(_) => totals.untyped += 1,
            None => {}
        }
        let expectation = result
            .as_ref()
            .map_or_else(|_| "panic".to_owned(), CaseVerdict::expectation);
        let signature = match (&failure, &result) {
            (Some(reason), _) => format!("FAIL {reason} {index}"),
            (None, Ok(verdict)) => signature(verdict),
            (None, Err(_)) => unreachable!("a panic is a failure"),
        };
        if let Some(reason) = &failure {
            totals
                .failures
                .push(format!("seed {:016x}: {reason}", case.seed));
        }
        if (failure.is_some() || case.stream.len() <= KEEP_MAX_BYTES)
            && !totals.interesting.contains_key(&signature)
        {
            totals
                .interesting
                .insert(signature, (index, case.clone(), expectation));
        }
        if panicked {
            // A panic may have left the runtime in any state.
            runtime = case_runtime().expect("a current-thread runtime");
        }
        heartbeat.fetch_add(1, Ordering::Relaxed);
    }
    totals
}

fn update_vectors(path: &str, totals: &Totals) -> Result<usize, String> {
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let kept = parse_vectors(&existing)?;
    let mut known: Vec<String> = kept
        .iter()
        .map(|(_, expect)| {
            // Signature of a kept vector: codec end and reader summary.
            let mut parts = expect.splitn(3, '/');
            let end = parts.next().unwrap_or_default();
            let _messages = parts.next();
            signature_of(end, parts.next().unwrap_or_default())
        })
        .collect();
    let mut text = existing.clone();
    if text.is_empty() {
        text.push_str(
            "# Fuzz regression vectors, replayed by `cargo test -p pypool-process`\n\
             # (fuzzing::tests) and by python/tests/test_fuzz_vectors.py.\n\
             # One case per line: the first case of each distinct outcome found by\n\
             # `cargo xtask fuzz --update-vectors`, plus any case that ever failed.\n\
             # expect=<codec end>/<messages decoded>/<how each pending call, then a probe, ended>\n",
        );
    }
    let mut added = 0;
    let mut entries: Vec<_> = totals.interesting.iter().collect();
    entries.sort_by_key(|(_, (index, _, _))| *index);
    for (signature, (_, case, expect)) in entries {
        if known.contains(signature) {
            continue;
        }
        known.push(signature.clone());
        text.push_str(&format!("{} expect={expect}\n", case.to_fields()));
        added += 1;
    }
    std::fs::write(path, text).map_err(|e| format!("writing {path}: {e}"))?;
    Ok(added)
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("fuzz: {message}");
            return ExitCode::from(2);
        }
    };
    std::panic::set_hook(Box::new(|info| {
        PANICS_HERE.with(|count| count.set(count.get() + 1));
        eprintln!("fuzz: PANIC: {info}");
    }));

    // Choose the cases up front so the run is the same for a seed whatever
    // the thread count.
    let mut per_thread: Vec<Vec<u64>> = vec![Vec::new(); options.threads];
    let mut planned = 0;
    let mut index = 0;
    while planned < options.frames {
        planned += frame_count(case_seed(options.seed, index));
        per_thread[usize::try_from(index).unwrap_or(0) % options.threads].push(index);
        index += 1;
    }
    println!(
        "fuzz: seed {}, {} cases ({} frames) on {} thread(s)",
        options.seed, index, planned, options.threads
    );

    let started = Instant::now();
    let heartbeats: Vec<_> = (0..options.threads)
        .map(|_| Arc::new(AtomicU64::new(0)))
        .collect();
    let currents: Vec<_> = (0..options.threads)
        .map(|_| Arc::new(AtomicU64::new(0)))
        .collect();
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let heartbeats = heartbeats.clone();
        let currents = currents.clone();
        let done = Arc::clone(&done);
        let total = index;
        std::thread::spawn(move || {
            let mut last: Vec<(u64, Instant)> =
                heartbeats.iter().map(|_| (0, Instant::now())).collect();
            let mut last_report = Instant::now();
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                for (thread, beat) in heartbeats.iter().enumerate() {
                    let now = beat.load(Ordering::Relaxed);
                    if now != last[thread].0 {
                        last[thread] = (now, Instant::now());
                    } else if last[thread].1.elapsed() > WATCHDOG && !done.load(Ordering::Relaxed) {
                        eprintln!(
                            "fuzz: HANG: thread {thread} made no progress for {WATCHDOG:?} on case seed {:016x}",
                            currents[thread].load(Ordering::Relaxed)
                        );
                        std::process::exit(3);
                    }
                }
                if last_report.elapsed() > Duration::from_secs(15) {
                    last_report = Instant::now();
                    let cases: u64 = heartbeats.iter().map(|b| b.load(Ordering::Relaxed)).sum();
                    eprintln!(
                        "fuzz: {cases}/{total} cases after {:.0?}",
                        started.elapsed()
                    );
                }
            }
        })
    };
    let workers: Vec<_> = per_thread
        .into_iter()
        .enumerate()
        .map(|(thread, indices)| {
            let heartbeat = Arc::clone(&heartbeats[thread]);
            let current = Arc::clone(&currents[thread]);
            let seed = options.seed;
            std::thread::spawn(move || run_thread(seed, indices, heartbeat, current))
        })
        .collect();
    let mut totals = Totals::default();
    for worker in workers {
        match worker.join() {
            Ok(part) => totals.merge(part),
            Err(_) => totals.panics += 1,
        }
    }
    done.store(true, Ordering::Relaxed);
    let _ = watchdog.join();
    let elapsed = started.elapsed();

    println!(
        "fuzz: {} cases, {} frames, {} bytes in {:.1} s: {:.0} frames/s ({:.0} cases/s)",
        totals.cases,
        totals.frames,
        totals.bytes,
        elapsed.as_secs_f64(),
        totals.frames as f64 / elapsed.as_secs_f64(),
        totals.cases as f64 / elapsed.as_secs_f64(),
    );
    println!("fuzz: codec, how each case's stream ended:");
    for (kind, count) in &totals.codec_ends {
        println!("  {kind:<18} {count}");
    }
    println!("fuzz: connection, how each call ended (pending calls and one probe per case):");
    for (kind, count) in &totals.call_kinds {
        println!("  {kind:<18} {count}");
    }
    println!(
        "fuzz: {} panics, {} hangs, {} untyped outcomes; {} distinct outcomes",
        totals.panics,
        totals.hangs,
        totals.untyped,
        totals.interesting.len()
    );
    for failure in totals.failures.iter().take(20) {
        println!("  FAILED {failure}");
    }
    if let Some(path) = &options.update_vectors {
        match update_vectors(path, &totals) {
            Ok(added) => println!("fuzz: {added} new vector(s) kept in {path}"),
            Err(message) => {
                eprintln!("fuzz: {message}");
                return ExitCode::FAILURE;
            }
        }
    }
    if totals.panics + totals.hangs + totals.untyped == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
