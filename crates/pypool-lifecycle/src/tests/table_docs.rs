//! The transition table in the crate docs equals [`TRANSITIONS`], both ways,
//! and the table itself is well formed.

use std::collections::HashSet;

use crate::{EventKind, Guard, State, TRANSITIONS, TableRow};

const CRATE_DOCS: &str = include_str!("../lib.rs");
const START_MARKER: &str = "<!-- transition-table:start -->";
const END_MARKER: &str = "<!-- transition-table:end -->";

/// The cells of every data row of the documented table, as written.
fn documented_rows() -> Vec<[String; 4]> {
    let doc_lines: Vec<&str> = CRATE_DOCS
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("//!"))
        .map(str::trim)
        .collect();
    let start = doc_lines
        .iter()
        .position(|line| *line == START_MARKER)
        .expect("the crate docs mark the start of the transition table");
    let end = doc_lines
        .iter()
        .position(|line| *line == END_MARKER)
        .expect("the crate docs mark the end of the transition table");
    assert!(start < end, "table markers are out of order");
    let table = &doc_lines[start + 1..end];
    assert_eq!(table[0], "| From | Event | Condition | To |");
    assert_eq!(table[1], "|---|---|---|---|");
    table[2..]
        .iter()
        .map(|line| {
            let cells: Vec<String> = line
                .trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().trim_matches('`').to_owned())
                .collect();
            cells
                .try_into()
                .unwrap_or_else(|cells| panic!("row `{line}` does not have 4 cells: {cells:?}"))
        })
        .collect()
}

fn parse<T: Copy>(all: &[T], name: impl Fn(T) -> &'static str, cell: &str) -> T {
    all.iter()
        .copied()
        .find(|&item| name(item) == cell)
        .unwrap_or_else(|| panic!("the docs name `{cell}`, which the code does not know"))
}

fn parse_row(cells: &[String; 4]) -> TableRow {
    TableRow {
        from: parse(&State::ALL, State::name, &cells[0]),
        event: parse(&EventKind::ALL, EventKind::name, &cells[1]),
        guard: parse(&Guard::ALL, Guard::name, &cells[2]),
        to: parse(&State::ALL, State::name, &cells[3]),
    }
}

#[test]
fn the_documented_table_equals_the_constant_both_ways() {
    let documented: Vec<TableRow> = documented_rows().iter().map(parse_row).collect();
    for row in &documented {
        assert!(
            TRANSITIONS.contains(row),
            "documented row {row:?} is missing from TRANSITIONS"
        );
    }
    for row in TRANSITIONS {
        assert!(
            documented.contains(row),
            "TRANSITIONS row {row:?} is missing from the crate docs"
        );
    }
    assert_eq!(documented.len(), TRANSITIONS.len(), "a row is listed twice");
}

#[test]
fn the_documented_rows_are_in_the_same_order_as_the_constant() {
    let documented: Vec<TableRow> = documented_rows().iter().map(parse_row).collect();
    assert_eq!(documented, TRANSITIONS);
}

#[test]
fn no_row_is_listed_twice() {
    let distinct: HashSet<&TableRow> = TRANSITIONS.iter().collect();
    assert_eq!(distinct.len(), TRANSITIONS.len());
}

#[test]
fn terminated_has_no_outgoing_row_and_every_other_state_can_die() {
    assert!(TRANSITIONS.iter().all(|row| row.from != State::Terminated));
    for state in State::ALL {
        if state == State::Terminated {
            continue;
        }
        assert!(
            TRANSITIONS.contains(&TableRow {
                from: state,
                event: EventKind::ProcessExited,
                guard: Guard::Always,
                to: State::Terminated,
            }),
            "{state} lacks a process_exited row"
        );
    }
}

#[test]
fn busy_is_entered_only_by_checkout_from_an_idle_state() {
    // Or stays Busy: one more request while it has room, or one of several ending.
    for row in TRANSITIONS.iter().filter(|row| row.to == State::Busy) {
        if row.from == State::Busy {
            continue;
        }
        assert_eq!(row.event, EventKind::Checkout, "{row:?}");
        assert!(row.from.is_idle(), "{row:?}");
    }
}

#[test]
fn names_round_trip_through_the_parser() {
    for state in State::ALL {
        assert_eq!(parse(&State::ALL, State::name, state.name()), state);
        assert_eq!(state.to_string(), state.name());
    }
    for kind in EventKind::ALL {
        assert_eq!(parse(&EventKind::ALL, EventKind::name, kind.name()), kind);
        assert_eq!(kind.to_string(), kind.name());
    }
    for guard in Guard::ALL {
        assert_eq!(parse(&Guard::ALL, Guard::name, guard.name()), guard);
    }
}
