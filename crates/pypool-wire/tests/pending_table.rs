//! The correlation table matches each reply to exactly one pending request.
#![allow(clippy::unwrap_used, clippy::panic)] // tests: a panic is a failure report

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use proptest::prelude::*;
use pypool_wire::{DuplicateRequestId, PendingTable, UnknownReplyId};

#[test]
fn a_reply_takes_the_waiter_of_its_request() {
    let mut table = PendingTable::new();
    assert!(table.is_empty());
    table.insert(1, "first").unwrap();
    table.insert(2, "second").unwrap();
    assert_eq!(table.len(), 2);
    assert!(table.contains(2));
    assert_eq!(table.take(2), Ok("second"));
    assert_eq!(table.len(), 1);
    assert!(!table.contains(2));
    assert_eq!(table.take(1), Ok("first"));
    assert!(table.is_empty());
}

#[test]
fn duplicate_id_is_refused_and_keeps_the_first_waiter() {
    let mut table = PendingTable::new();
    table.insert(7, "first").unwrap();
    assert_eq!(table.insert(7, "second"), Err(DuplicateRequestId { id: 7 }));
    assert_eq!(table.len(), 1);
    assert_eq!(table.take(7), Ok("first"));
}

#[test]
fn reply_for_an_id_never_sent_is_unknown() {
    let mut table = PendingTable::new();
    table.insert(1, ()).unwrap();
    assert_eq!(table.take(u64::MAX), Err(UnknownReplyId { id: u64::MAX }));
    assert_eq!(
        table.len(),
        1,
        "a stray reply must not disturb the pending ones"
    );
}

#[test]
fn reply_for_an_already_answered_id_is_unknown() {
    let mut table = PendingTable::new();
    table.insert(41, "caller").unwrap();
    assert_eq!(table.take(41), Ok("caller"));
    assert_eq!(table.take(41), Err(UnknownReplyId { id: 41 }));
}

#[test]
fn an_answered_id_may_be_used_again() {
    let mut table = PendingTable::new();
    table.insert(5, 'a').unwrap();
    table.take(5).unwrap();
    table.insert(5, 'b').unwrap();
    assert_eq!(table.take(5), Ok('b'));
}

#[test]
fn drain_yields_every_pending_request_and_empties_the_table() {
    let mut table = PendingTable::default();
    for id in [3, 1, 2] {
        table.insert(id, id * 10).unwrap();
    }
    table.take(2).unwrap();
    let mut drained: Vec<(u64, u64)> = table.drain().collect();
    drained.sort_unstable();
    assert_eq!(drained, vec![(1, 10), (3, 30)]);
    assert!(table.is_empty());
    assert_eq!(table.take(1), Err(UnknownReplyId { id: 1 }));
    assert_eq!(table.drain().count(), 0);
}

#[test]
fn errors_name_the_id() {
    assert_eq!(
        DuplicateRequestId { id: 12 }.to_string(),
        "request id 12 is already waiting for a reply on this connection; use a fresh id per request"
    );
    assert_eq!(
        UnknownReplyId { id: 13 }.to_string(),
        "reply for request id 13, which is not pending (never sent or already answered); the peer broke the protocol"
    );
}

#[derive(Debug, Clone)]
enum Operation {
    Insert(u64, u32),
    Take(u64),
    Drain,
}

fn operation() -> impl Strategy<Value = Operation> {
    // A small id range so duplicates and repeated replies are frequent.
    prop_oneof![
        4 => (0..8u64, any::<u32>()).prop_map(|(id, waiter)| Operation::Insert(id, waiter)),
        4 => (0..8u64).prop_map(Operation::Take),
        1 => Just(Operation::Drain),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn behaves_like_a_map_that_refuses_overwrites(operations in proptest::collection::vec(operation(), 0..64)) {
        let mut table = PendingTable::new();
        let mut model: HashMap<u64, u32> = HashMap::new();
        for operation in operations {
            match operation {
                Operation::Insert(id, waiter) => {
                    let expected = match model.entry(id) {
                        Entry::Occupied(_) => Err(DuplicateRequestId { id }),
                        Entry::Vacant(slot) => {
                            slot.insert(waiter);
                            Ok(())
                        }
                    };
                    prop_assert_eq!(table.insert(id, waiter), expected);
                }
                Operation::Take(id) => {
                    prop_assert_eq!(table.take(id), model.remove(&id).ok_or(UnknownReplyId { id }));
                }
                Operation::Drain => {
                    let mut drained: Vec<(u64, u32)> = table.drain().collect();
                    let mut expected: Vec<(u64, u32)> = model.drain().collect();
                    drained.sort_unstable();
                    expected.sort_unstable();
                    prop_assert_eq!(drained, expected);
                }
            }
            prop_assert_eq!(table.len(), model.len());
            prop_assert_eq!(table.is_empty(), model.is_empty());
        }
    }
}
