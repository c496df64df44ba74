//! The verdict of a stress run, which decides the exit status: typed
//! errors (a killed worker's request, …) are fine; a hung, lost or wrong
//! request, or a pool that did not get back to full size, is not.

use serde::Serialize;

use super::report::{PoolSummary, RequestCounts};

/// Whether the run passed, and if not, why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// No request hung or was lost, none got a wrong result, and the pool
    /// ended at full size.
    pub ok: bool,
    /// What went wrong, one line each.
    pub problems: Vec<String>,
}

impl Verdict {
    /// Judges a run. Typed errors (a killed worker's request, …) are fine;
    /// hung, lost or wrong requests and a shrunken pool are not.
    pub fn judge(requests: &RequestCounts, wrong_results: u64, pool: &PoolSummary) -> Self {
        let mut problems = Vec::new();
        if requests.hung > 0 {
            problems.push(format!(
                "{} request(s) hung: no outcome within their guard",
                requests.hung
            ));
        }
        if requests.lost > 0 {
            problems.push(format!(
                "{} request(s) lost: started but never accounted for",
                requests.lost
            ));
        }
        if wrong_results > 0 {
            problems.push(format!("{wrong_results} request(s) got a wrong result"));
        }
        if pool.ready_at_end < pool.configured_size {
            problems.push(format!(
                "the pool ended with {} of {} workers ready",
                pool.ready_at_end, pool.configured_size
            ));
        }
        Self {
            ok: problems.is_empty(),
            problems,
        }
    }

    /// The process exit status: 0 when the run passed, 1 otherwise.
    pub fn exit_status(&self) -> u8 {
        u8::from(!self.ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_pool() -> PoolSummary {
        PoolSummary {
            configured_size: 8,
            ready_at_end: 8,
            workers_at_end: 8,
            ..PoolSummary::default()
        }
    }

    #[test]
    fn the_verdict_fails_on_hung_lost_wrong_or_a_short_pool() {
        let ok = RequestCounts {
            started: 10,
            ended: 10,
            succeeded: 7,
            failed: 3,
            ..RequestCounts::default()
        };
        let pool = full_pool();
        let verdict = Verdict::judge(&ok, 0, &pool);
        assert!(verdict.ok, "{verdict:?}");
        assert_eq!(verdict.exit_status(), 0);

        let hung = RequestCounts { hung: 1, ..ok };
        let verdict = Verdict::judge(&hung, 0, &pool);
        assert_eq!(verdict.exit_status(), 1);
        assert!(verdict.problems[0].contains("hung"));

        let lost = RequestCounts { lost: 2, ..ok };
        assert!(Verdict::judge(&lost, 0, &pool).problems[0].contains("2 request(s) lost"));

        assert!(Verdict::judge(&ok, 1, &pool).problems[0].contains("wrong result"));

        let short = PoolSummary {
            ready_at_end: 7,
            ..pool
        };
        let verdict = Verdict::judge(&ok, 0, &short);
        assert_eq!(verdict.exit_status(), 1);
        assert_eq!(
            verdict.problems,
            ["the pool ended with 7 of 8 workers ready"]
        );
    }
}
