//! An arena-backed doubly linked list ordered by last use.
//!
//! Each entry carries the instant it was last used; [`RecencyList::touch`]
//! moves an entry to the back in O(1), so the list is always ordered from
//! least to most recently used. With one time-to-live for every entry, that
//! is also the order in which entries expire, so the expired ones are always
//! a prefix of the list.

use std::time::Instant;

/// A position in a [`RecencyList`]; stays valid until the entry is removed.
pub(crate) type Slot = usize;

#[derive(Debug)]
struct Node<T> {
    value: T,
    last_used: Instant,
    prev: Option<Slot>,
    next: Option<Slot>,
}

/// Values ordered from least to most recently used.
#[derive(Debug)]
pub(crate) struct RecencyList<T> {
    nodes: Vec<Option<Node<T>>>,
    free: Vec<Slot>,
    head: Option<Slot>,
    tail: Option<Slot>,
}

impl<T> RecencyList<T> {
    pub(crate) fn new() -> Self {
        Self {
            nodes: Vec::new(),
            free: Vec::new(),
            head: None,
            tail: None,
        }
    }

    /// Never lets time go backwards inside the list: an instant earlier than
    /// the newest entry's is raised to it, so the order stays sorted even
    /// with a clock that misbehaves.
    fn monotonic(&self, now: Instant) -> Instant {
        match self.tail.and_then(|slot| self.node(slot)) {
            Some(newest) => now.max(newest.last_used),
            None => now,
        }
    }

    /// Adds `value` as the most recently used entry.
    pub(crate) fn push_back(&mut self, value: T, now: Instant) -> Slot {
        let node = Node {
            value,
            last_used: self.monotonic(now),
            prev: None,
            next: None,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.nodes[slot] = Some(node);
                slot
            }
            None => {
                self.nodes.push(Some(node));
                self.nodes.len() - 1
            }
        };
        self.link_back(slot);
        slot
    }

    /// Marks the entry at `slot` as used at `now` and moves it to the back.
    pub(crate) fn touch(&mut self, slot: Slot, now: Instant) {
        let now = self.monotonic(now);
        if self.node(slot).is_none() {
            return;
        }
        self.unlink(slot);
        if let Some(node) = self.node_mut(slot) {
            node.last_used = now;
        }
        self.link_back(slot);
    }

    /// When the entry at `slot` was last used.
    pub(crate) fn last_used(&self, slot: Slot) -> Option<Instant> {
        self.node(slot).map(|node| node.last_used)
    }

    /// The least recently used entry.
    pub(crate) fn front(&self) -> Option<(Slot, &T, Instant)> {
        let slot = self.head?;
        self.node(slot)
            .map(|node| (slot, &node.value, node.last_used))
    }

    /// Removes the entry at `slot` and returns its value.
    pub(crate) fn remove(&mut self, slot: Slot) -> Option<T> {
        self.node(slot)?;
        self.unlink(slot);
        let node = self.nodes.get_mut(slot)?.take()?;
        self.free.push(slot);
        Some(node.value)
    }

    fn node(&self, slot: Slot) -> Option<&Node<T>> {
        self.nodes.get(slot)?.as_ref()
    }

    fn node_mut(&mut self, slot: Slot) -> Option<&mut Node<T>> {
        self.nodes.get_mut(slot)?.as_mut()
    }

    fn unlink(&mut self, slot: Slot) {
        let Some(node) = self.node_mut(slot) else {
            return;
        };
        let (prev, next) = (node.prev.take(), node.next.take());
        match prev.and_then(|p| self.node_mut(p)) {
            Some(before) => before.next = next,
            None => self.head = next,
        }
        match next.and_then(|n| self.node_mut(n)) {
            Some(after) => after.prev = prev,
            None => self.tail = prev,
        }
    }

    fn link_back(&mut self, slot: Slot) {
        let old_tail = self.tail;
        if let Some(node) = self.node_mut(slot) {
            node.prev = old_tail;
            node.next = None;
        }
        match old_tail.and_then(|t| self.node_mut(t)) {
            Some(last) => last.next = Some(slot),
            None => self.head = Some(slot),
        }
        self.tail = Some(slot);
    }

    /// The values from least to most recently used (tests only).
    #[cfg(test)]
    pub(crate) fn values_in_order(&self) -> Vec<&T> {
        let mut values = Vec::new();
        let mut cursor = self.head;
        while let Some(node) = cursor.and_then(|slot| self.node(slot)) {
            values.push(&node.value);
            cursor = node.next;
        }
        values
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(base: Instant, seconds: u64) -> Instant {
        base + Duration::from_secs(seconds)
    }

    #[test]
    fn keeps_entries_in_order_of_last_use() {
        let base = Instant::now();
        let mut list = RecencyList::new();
        let a = list.push_back("a", at(base, 1));
        let b = list.push_back("b", at(base, 2));
        let c = list.push_back("c", at(base, 3));
        assert_eq!(list.values_in_order(), [&"a", &"b", &"c"]);

        list.touch(a, at(base, 4));
        assert_eq!(list.values_in_order(), [&"b", &"c", &"a"]);
        list.touch(c, at(base, 5));
        assert_eq!(list.values_in_order(), [&"b", &"a", &"c"]);
        list.touch(c, at(base, 6));
        assert_eq!(list.values_in_order(), [&"b", &"a", &"c"]);

        assert_eq!(list.front(), Some((b, &"b", at(base, 2))));
        assert_eq!(list.last_used(c), Some(at(base, 6)));
    }

    #[test]
    fn removes_from_any_position_and_reuses_slots() {
        let base = Instant::now();
        let mut list = RecencyList::new();
        let a = list.push_back(1, base);
        let b = list.push_back(2, base);
        let c = list.push_back(3, base);
        assert_eq!(list.remove(b), Some(2));
        assert_eq!(list.values_in_order(), [&1, &3]);
        assert_eq!(list.remove(b), None, "a removed slot is gone");
        assert_eq!(list.remove(a), Some(1));
        assert_eq!(list.remove(c), Some(3));
        assert!(list.values_in_order().is_empty());
        assert_eq!(list.front(), None);

        let d = list.push_back(4, base);
        assert!([a, b, c].contains(&d), "freed slots are reused");
        assert_eq!(list.values_in_order(), [&4]);
    }

    #[test]
    fn time_never_goes_backwards_inside_the_list() {
        let base = Instant::now();
        let mut list = RecencyList::new();
        let a = list.push_back('a', at(base, 10));
        let b = list.push_back('b', at(base, 5));
        assert_eq!(list.last_used(b), Some(at(base, 10)));
        list.touch(a, at(base, 1));
        assert_eq!(list.last_used(a), Some(at(base, 10)));
        assert_eq!(list.values_in_order(), [&'b', &'a']);
    }
}
