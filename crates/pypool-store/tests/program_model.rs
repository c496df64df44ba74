//! The in-memory program store against a plain reference model, over random
//! sequences of create, put, get, list, delete and delete_session (the body
//! is shared with the Redis store: `generic/program_model.rs`).

#![allow(clippy::unwrap_used, clippy::panic)] // tests: a panic is a failure report

use futures::executor::block_on;
use proptest::prelude::*;
use pypool_store::InMemoryProgramStore;

#[path = "generic/program_model.rs"]
mod generic;

use generic::{MAX_OPS, op};

const CASES: u32 = 1_000;

struct Memory;

impl generic::Backend for Memory {
    type Store = InMemoryProgramStore;

    async fn make(&self) -> Self::Store {
        InMemoryProgramStore::new()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn store_agrees_with_the_model(ops in prop::collection::vec(op(), 1..MAX_OPS)) {
        block_on(generic::run(&Memory, &ops))?;
    }
}
