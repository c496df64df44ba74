//! The bounded record of a worker's past transitions.

use std::collections::VecDeque;
use std::time::Instant;

use crate::reason::TransitionReason;
use crate::state::State;

/// One past transition, as kept in a worker's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The state before.
    pub from: State,
    /// The state after.
    pub to: State,
    /// Why.
    pub reason: TransitionReason,
    /// When, by the lifecycle's clock.
    pub at: Instant,
}

/// The most recent `bound` entries, oldest first.
#[derive(Debug, Clone)]
pub(crate) struct History {
    entries: VecDeque<HistoryEntry>,
    bound: usize,
}

impl History {
    /// Room allocated up front at most; a larger bound grows on demand, so an
    /// absurd configured bound cannot exhaust memory at construction.
    const PREALLOCATE_MAX: usize = 256;

    /// An empty history keeping at most `bound` entries (none if `bound` is 0).
    pub(crate) fn new(bound: usize) -> Self {
        Self {
            entries: VecDeque::with_capacity(bound.min(Self::PREALLOCATE_MAX)),
            bound,
        }
    }

    /// Appends `entry`, forgetting the oldest one if the history is full.
    pub(crate) fn record(&mut self, entry: HistoryEntry) {
        if self.bound == 0 {
            return;
        }
        if self.entries.len() >= self.bound {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    /// The entries, oldest first.
    pub(crate) fn iter(&self) -> std::collections::vec_deque::Iter<'_, HistoryEntry> {
        self.entries.iter()
    }

    /// The newest entry.
    pub(crate) fn last(&self) -> Option<&HistoryEntry> {
        self.entries.back()
    }
}
