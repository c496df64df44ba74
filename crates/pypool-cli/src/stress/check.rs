//! Checking results where it is cheap: each demo command's answer is
//! recomputed here (the sieve, the word counts, the summary); a mismatch is
//! a failure of kind `wrong_result`, which would mean a reply reached the
//! wrong request.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::workload::Op;

/// The failure kind of a result that does not match.
pub const WRONG_RESULT: &str = "wrong_result";

/// Whether `result` is the right answer to `op`; `Err` says how it differs.
/// `--command` results are not checked.
pub fn check(op: &Op, result: &Value) -> Result<(), String> {
    match op {
        Op::Digest { rounds, .. } => check_digest(result, *rounds),
        Op::Custom(_) => Ok(()),
        _ => match expected(op) {
            Some(expected) if *result == expected => Ok(()),
            Some(expected) => Err(format!("expected {expected}, got {result}")),
            None => Ok(()),
        },
    }
}

/// The exact answer to `op`, where it is cheap to compute here (not for
/// `demo.digest`, nor for `--command`).
pub fn expected(op: &Op) -> Option<Value> {
    match op {
        Op::SessionProgram {
            text, max_words, ..
        }
        | Op::GlobalProgram {
            text, max_words, ..
        } => Some(summarize(text, *max_words)),
        Op::Primes { limit } => {
            let (count, largest) = primes_below(*limit);
            Some(json!({ "count": count, "largest": largest }))
        }
        Op::WordStats { text, top } => Some(word_stats(text, *top)),
        Op::Digest { .. } | Op::Custom(_) => None,
    }
}

/// What `pypool_worker.demo:summarize(text, max_words)` returns.
fn summarize(text: &str, max_words: u64) -> Value {
    let words: Vec<&str> = text.split_whitespace().collect();
    let kept = usize::try_from(max_words.max(1)).unwrap_or(usize::MAX);
    let summary: Vec<&str> = words.iter().take(kept).copied().collect();
    json!({
        "summary": summary.join(" "),
        "words": words.len(),
        "truncated": words.len() > summary.len(),
    })
}

/// The number of primes below `limit` and the largest, as `demo.primes` counts them.
pub fn primes_below(limit: u64) -> (u64, Option<u64>) {
    let Ok(size) = usize::try_from(limit) else {
        return (0, None);
    };
    if size < 3 {
        return (0, None);
    }
    let mut sieve = vec![true; size];
    sieve[0] = false;
    sieve[1] = false;
    let mut n = 2;
    while n * n < size {
        if sieve[n] {
            let mut multiple = n * n;
            while multiple < size {
                sieve[multiple] = false;
                multiple += n;
            }
        }
        n += 1;
    }
    let count = sieve.iter().filter(|&&prime| prime).count() as u64;
    let largest = sieve
        .iter()
        .rposition(|&prime| prime)
        .map(|index| index as u64);
    (count, largest)
}

/// What `demo.word_stats(text, top)` returns for lowercase words separated by spaces.
fn word_stats(text: &str, top: u64) -> Value {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for word in &words {
        *counts.entry(word).or_default() += 1;
    }
    let mut most: Vec<(&str, u64)> = counts.iter().map(|(word, n)| (*word, *n)).collect();
    most.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    most.truncate(usize::try_from(top).unwrap_or(usize::MAX));
    json!({
        "words": words.len(),
        "unique": counts.len(),
        "top": most.iter().map(|(word, n)| json!([word, n])).collect::<Vec<_>>(),
    })
}

/// `demo.digest`: the right number of rounds and a SHA-256 in hex (the hash
/// itself is not recomputed: that would need a SHA-256 implementation here).
fn check_digest(result: &Value, rounds: u64) -> Result<(), String> {
    let hex = result["sha256"].as_str().unwrap_or_default();
    let well_formed = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    if well_formed && result["rounds"] == json!(rounds) {
        Ok(())
    } else {
        Err(format!(
            "expected a 64-digit sha256 after {rounds} rounds, got {result}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prime_counts_match_known_values() {
        assert_eq!(primes_below(1000), (168, Some(997)));
        assert_eq!(primes_below(100), (25, Some(97)));
        assert_eq!(primes_below(10_000).0, 1229);
        assert_eq!(primes_below(50_000).0, 5133);
        assert_eq!(primes_below(2), (0, None));
        assert_eq!(primes_below(3), (1, Some(2)));
    }

    #[test]
    fn right_answers_pass_and_wrong_ones_say_why() {
        let primes = Op::Primes { limit: 1000 };
        assert_eq!(
            check(&primes, &json!({ "count": 168, "largest": 997 })),
            Ok(())
        );
        let error = check(&primes, &json!({ "count": 167, "largest": 997 })).unwrap_err();
        assert!(error.contains("168"), "{error}");

        let stats = Op::WordStats {
            text: "b a b c a b".into(),
            top: 2,
        };
        assert_eq!(
            check(
                &stats,
                &json!({ "words": 6, "unique": 3, "top": [["b", 3], ["a", 2]] })
            ),
            Ok(())
        );
        // An echo of the arguments (a reply to another request, or the mock) is wrong.
        assert!(check(&stats, &json!({ "echo": { "text": "b a b c a b" } })).is_err());

        let program = Op::SessionProgram {
            session: 0,
            text: "one two three".into(),
            max_words: 2,
        };
        assert_eq!(
            check(
                &program,
                &json!({ "summary": "one two", "words": 3, "truncated": true })
            ),
            Ok(())
        );
        let program = Op::GlobalProgram {
            program: 0,
            text: "one".into(),
            max_words: 5,
        };
        assert_eq!(
            check(
                &program,
                &json!({ "summary": "one", "words": 1, "truncated": false })
            ),
            Ok(())
        );

        let digest = Op::Digest {
            data: "x".into(),
            rounds: 3,
        };
        let hex = "a".repeat(64);
        assert_eq!(
            check(&digest, &json!({ "sha256": hex, "rounds": 3 })),
            Ok(())
        );
        assert!(check(&digest, &json!({ "sha256": "zz", "rounds": 3 })).is_err());
        let custom = Op::Custom(std::sync::Arc::new(crate::options::CustomCommand {
            name: "anything".into(),
            args: serde_json::Map::new(),
        }));
        assert_eq!(check(&custom, &json!(null)), Ok(()));
    }
}
