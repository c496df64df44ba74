//! The workload mix: an endless, seeded sequence of operations.
//!
//! | share | operation | runs |
//! |---|---|---|
//! | 40 % (0 without sessions) | [`Op::SessionProgram`] | the session's own `summarize` program, through [`pypool::Session`] |
//! | 30 % (50 % without sessions) | [`Op::GlobalProgram`] | a global `summarize` program created up front ("programs created elsewhere") |
//! | 30 % (50 % without sessions) | a plain command | `demo.primes`, `demo.word_stats` or `demo.digest`, or `--command` |
//!
//! Operations are generated one at a time, so a million-request run holds
//! one operation per request in flight, not the whole list.

use std::sync::Arc;

use serde::Serialize;

use super::rng::Rng;
use crate::options::CustomCommand;

/// The callable every stress program runs.
pub const SUMMARIZE_CALLABLE: &str = "pypool_worker.demo:summarize";
/// The id of each session's own program.
pub const SESSION_PROGRAM: &str = "summarize";
/// How many global programs are created up front.
pub const GLOBAL_PROGRAMS: usize = 4;
/// `demo.primes` limits used (cheap to check).
pub const PRIME_LIMITS: [u64; 4] = [100, 1000, 10_000, 50_000];

/// Words the generated texts are made of (lowercase letters only, so the
/// expected word statistics are easy to compute here).
const VOCABULARY: [&str; 32] = [
    "pool",
    "worker",
    "python",
    "rust",
    "session",
    "program",
    "request",
    "reply",
    "frame",
    "queue",
    "breaker",
    "signal",
    "crash",
    "retry",
    "latency",
    "deadline",
    "stress",
    "affinity",
    "summary",
    "prime",
    "digest",
    "word",
    "process",
    "group",
    "handshake",
    "timeout",
    "health",
    "spawn",
    "recycle",
    "metrics",
    "chaos",
    "report",
];

/// The id of global program number `index`.
pub fn global_program_id(index: usize) -> String {
    format!("stress-summarize-{index}")
}

/// The id of session number `index`.
pub fn session_id(index: usize) -> String {
    format!("stress-session-{index}")
}

/// One request of the workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Session `session` runs its own program.
    SessionProgram {
        /// Index of the session.
        session: usize,
        /// The program's `text` input.
        text: String,
        /// Its `max_words` input.
        max_words: u64,
    },
    /// An anonymous call of global program `program`.
    GlobalProgram {
        /// Index of the program.
        program: usize,
        /// Its `text` input.
        text: String,
        /// Its `max_words` input.
        max_words: u64,
    },
    /// `demo.primes(limit)`.
    Primes {
        /// The sieve limit.
        limit: u64,
    },
    /// `demo.word_stats(text, top)`.
    WordStats {
        /// The text.
        text: String,
        /// How many top words.
        top: u64,
    },
    /// `demo.digest(data, rounds)`.
    Digest {
        /// The data.
        data: String,
        /// Hash rounds.
        rounds: u64,
    },
    /// The `--command` given on the command line, with its arguments.
    Custom(Arc<CustomCommand>),
}

/// Which part of the mix an operation belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// A session's own program.
    SessionProgram,
    /// A global program.
    GlobalProgram,
    /// A plain command.
    Command,
}

impl Op {
    /// The part of the mix this operation belongs to.
    pub fn kind(&self) -> OpKind {
        match self {
            Self::SessionProgram { .. } => OpKind::SessionProgram,
            Self::GlobalProgram { .. } => OpKind::GlobalProgram,
            Self::Primes { .. }
            | Self::WordStats { .. }
            | Self::Digest { .. }
            | Self::Custom(_) => OpKind::Command,
        }
    }
}

impl OpKind {
    /// Its name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SessionProgram => "session_program",
            Self::GlobalProgram => "global_program",
            Self::Command => "command",
        }
    }
}

/// What the workload is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadSpec {
    /// The seed.
    pub seed: u64,
    /// Sessions (0: no session operations).
    pub sessions: usize,
    /// Global programs.
    pub global_programs: usize,
    /// The `--command` that replaces the plain commands, if any.
    pub custom_command: Option<Arc<CustomCommand>>,
}

/// The endless operation sequence for a [`WorkloadSpec`].
#[derive(Debug, Clone)]
pub struct Workload {
    spec: WorkloadSpec,
    rng: Rng,
}

impl Workload {
    /// The sequence for `spec`; the same spec gives the same sequence.
    pub fn new(spec: WorkloadSpec) -> Self {
        let rng = Rng::new(spec.seed);
        Self { spec, rng }
    }

    fn text(&mut self) -> String {
        let words = self.rng.between(1, 40);
        let mut text = String::new();
        for index in 0..words {
            if index > 0 {
                text.push(' ');
            }
            text.push_str(self.rng.pick(&VOCABULARY).copied().unwrap_or("pool"));
        }
        text
    }

    fn command(&mut self) -> Op {
        if let Some(custom) = &self.spec.custom_command {
            return Op::Custom(Arc::clone(custom));
        }
        match self.rng.below(3) {
            0 => Op::Primes {
                limit: self.rng.pick(&PRIME_LIMITS).copied().unwrap_or(1000),
            },
            1 => {
                let text = self.text();
                Op::WordStats {
                    text,
                    top: self.rng.between(1, 5),
                }
            }
            _ => {
                let data = self.text();
                Op::Digest {
                    data,
                    rounds: self.rng.between(1, 200),
                }
            }
        }
    }
}

impl Iterator for Workload {
    type Item = Op;

    fn next(&mut self) -> Option<Op> {
        let with_sessions = self.spec.sessions > 0;
        let with_programs = self.spec.global_programs > 0;
        // Weights: session 40, global 30, command 30 (without sessions: 50/50).
        let session_weight = if with_sessions { 40 } else { 0 };
        let global_weight = if with_programs { 30 } else { 0 };
        let total = session_weight + global_weight + 30;
        let roll = self.rng.below(total);
        let op = if roll < session_weight {
            let session = self.rng.below(self.spec.sessions as u64) as usize;
            let text = self.text();
            Op::SessionProgram {
                session,
                text,
                max_words: self.rng.between(1, 20),
            }
        } else if roll < session_weight + global_weight {
            let program = self.rng.below(self.spec.global_programs as u64) as usize;
            let text = self.text();
            Op::GlobalProgram {
                program,
                text,
                max_words: self.rng.between(1, 20),
            }
        } else {
            self.command()
        };
        Some(op)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn spec(seed: u64) -> WorkloadSpec {
        WorkloadSpec {
            seed,
            sessions: 16,
            global_programs: GLOBAL_PROGRAMS,
            custom_command: None,
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_workload() {
        let first: Vec<Op> = Workload::new(spec(9)).take(500).collect();
        let again: Vec<Op> = Workload::new(spec(9)).take(500).collect();
        let other: Vec<Op> = Workload::new(spec(10)).take(500).collect();
        assert_eq!(first, again);
        assert_ne!(first, other);
    }

    #[test]
    fn the_mix_has_every_part_in_roughly_its_share() {
        let mut counts: BTreeMap<OpKind, u32> = BTreeMap::new();
        let mut commands: BTreeMap<&str, u32> = BTreeMap::new();
        for op in Workload::new(spec(1)).take(10_000) {
            *counts.entry(op.kind()).or_default() += 1;
            let name = match &op {
                Op::Primes { .. } => "primes",
                Op::WordStats { .. } => "word_stats",
                Op::Digest { .. } => "digest",
                _ => continue,
            };
            *commands.entry(name).or_default() += 1;
        }
        let share = |kind| counts.get(&kind).copied().unwrap_or(0);
        assert!(
            (3_700..4_300).contains(&share(OpKind::SessionProgram)),
            "{counts:?}"
        );
        assert!(
            (2_700..3_300).contains(&share(OpKind::GlobalProgram)),
            "{counts:?}"
        );
        assert!(
            (2_700..3_300).contains(&share(OpKind::Command)),
            "{counts:?}"
        );
        assert_eq!(commands.len(), 3, "{commands:?}");
    }

    #[test]
    fn indices_and_inputs_stay_in_range() {
        for op in Workload::new(spec(3)).take(5_000) {
            match op {
                Op::SessionProgram {
                    session,
                    text,
                    max_words,
                } => {
                    assert!(session < 16);
                    assert!(!text.is_empty() && (1..=20).contains(&max_words));
                }
                Op::GlobalProgram { program, .. } => assert!(program < GLOBAL_PROGRAMS),
                Op::Primes { limit } => assert!(PRIME_LIMITS.contains(&limit)),
                Op::WordStats { top, .. } => assert!((1..=5).contains(&top)),
                Op::Digest { rounds, .. } => assert!((1..=200).contains(&rounds)),
                Op::Custom(_) => unreachable!("no custom command configured"),
            }
        }
    }

    #[test]
    fn without_sessions_there_are_no_session_operations_and_custom_replaces_commands() {
        let spec = WorkloadSpec {
            seed: 5,
            sessions: 0,
            global_programs: GLOBAL_PROGRAMS,
            custom_command: Some(Arc::new(CustomCommand {
                name: "ping".into(),
                args: serde_json::Map::new(),
            })),
        };
        for op in Workload::new(spec).take(2_000) {
            assert!(
                matches!(op, Op::GlobalProgram { .. } | Op::Custom(_)),
                "{op:?}"
            );
        }
    }
}
