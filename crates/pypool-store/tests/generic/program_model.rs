//! The program store's model test, generic over the backend: one body, run
//! against the in-memory store (`tests/program_model.rs`) and against Redis
//! (`crates/pypool-redis/tests/program_model.rs`). Included with `#[path]`.
//!
//! The model is one `BTreeMap` keyed by (owner, id) holding each program's
//! definition; visibility is computed by scanning it.

use std::collections::BTreeMap;

use proptest::prelude::*;
use pypool_affinity::SessionId;
use pypool_store::{Namespace, ProgramId, ProgramSpec, ProgramStore, StoreError};

/// A store under test.
#[allow(
    async_fn_in_trait,
    reason = "test helper, never used as a trait object"
)]
pub trait Backend {
    /// The store type.
    type Store: ProgramStore;
    /// A new, empty store.
    async fn make(&self) -> Self::Store;
}

pub const MAX_OPS: usize = 60;
const SESSIONS: usize = 3;
const IDS: usize = 4;
/// Callables the definitions are drawn from; the last one is invalid.
const CALLABLES: [&str; 4] = ["m:a", "m:b", "pkg.m:c", "not a callable"];

/// `None` is the global namespace, `Some(i)` session i.
type Owner = Option<usize>;

#[derive(Debug, Clone)]
pub enum Op {
    Create(Owner, usize, usize),
    Put(Owner, usize, usize),
    Get(Owner, usize),
    List(Owner),
    Delete(Owner, usize),
    DeleteSession(usize),
}

fn owner() -> impl Strategy<Value = Owner> {
    prop_oneof![1 => Just(None), 3 => (0..SESSIONS).prop_map(Some)]
}

pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (owner(), 0..IDS, 0..CALLABLES.len()).prop_map(|(o, i, c)| Op::Create(o, i, c)),
        3 => (owner(), 0..IDS, 0..CALLABLES.len()).prop_map(|(o, i, c)| Op::Put(o, i, c)),
        4 => (owner(), 0..IDS).prop_map(|(o, i)| Op::Get(o, i)),
        2 => owner().prop_map(Op::List),
        2 => (owner(), 0..IDS).prop_map(|(o, i)| Op::Delete(o, i)),
        1 => (0..SESSIONS).prop_map(Op::DeleteSession),
    ]
}

/// What the model says a visible program is: (owner, id, callable index).
type Seen = (Owner, usize, usize);

#[derive(Debug, Default)]
struct Model {
    programs: BTreeMap<(Owner, usize), usize>,
}

impl Model {
    fn valid(callable: usize) -> bool {
        callable + 1 < CALLABLES.len()
    }

    fn visible(&self, viewer: Owner, id: usize) -> Option<Seen> {
        let own = viewer.and_then(|s| self.programs.get(&(Some(s), id)).map(|&c| (Some(s), id, c)));
        own.or_else(|| self.programs.get(&(None, id)).map(|&c| (None, id, c)))
    }

    fn list(&self, viewer: Owner) -> Vec<Seen> {
        (0..IDS).filter_map(|id| self.visible(viewer, id)).collect()
    }
}

struct Names {
    sessions: Vec<SessionId>,
    ids: Vec<ProgramId>,
}

impl Names {
    fn new() -> Self {
        Self {
            sessions: (0..SESSIONS)
                .map(|i| SessionId::new(format!("s{i}")).unwrap())
                .collect(),
            ids: (0..IDS)
                .map(|i| ProgramId::new(format!("p{i}")).unwrap())
                .collect(),
        }
    }

    fn namespace(&self, owner: Owner) -> Namespace {
        owner.map_or(Namespace::Global, |s| {
            Namespace::Session(self.sessions[s].clone())
        })
    }

    fn viewer(&self, owner: Owner) -> Option<&SessionId> {
        owner.map(|s| &self.sessions[s])
    }

    fn spec(callable: usize) -> ProgramSpec {
        Self::spec_from(CALLABLES[callable])
    }

    /// The store's record translated into the model's terms.
    fn seen(&self, stored: &pypool_store::StoredProgram) -> Seen {
        let owner = stored
            .owner
            .session()
            .map(|s| self.sessions.iter().position(|x| x == s).unwrap());
        let id = self.ids.iter().position(|x| *x == stored.id).unwrap();
        let callable = CALLABLES
            .iter()
            .position(|c| Self::spec_from(c) == stored.spec)
            .unwrap();
        assert_eq!(
            stored.version,
            stored.spec.version(),
            "the stored version is the definition's"
        );
        (owner, id, callable)
    }

    fn spec_from(callable: &str) -> ProgramSpec {
        ProgramSpec::python(callable)
    }
}

/// Runs `ops` on a fresh store of `backend` and on the model, comparing every answer.
pub async fn run<B: Backend>(backend: &B, ops: &[Op]) -> Result<(), TestCaseError> {
    let store = backend.make().await;
    let names = Names::new();
    let mut model = Model::default();
    {
        for (step, op) in ops.iter().enumerate() {
            match *op {
                Op::Create(owner, id, callable) => {
                    let result = store
                        .create(
                            names.namespace(owner),
                            names.ids[id].clone(),
                            Names::spec(callable),
                        )
                        .await;
                    match result {
                        Ok(stored) => {
                            prop_assert!(Model::valid(callable), "step {}", step);
                            prop_assert!(
                                !model.programs.contains_key(&(owner, id)),
                                "step {}",
                                step
                            );
                            prop_assert_eq!(names.seen(&stored), (owner, id, callable));
                            model.programs.insert((owner, id), callable);
                        }
                        Err(StoreError::InvalidSpec { .. }) => {
                            prop_assert!(!Model::valid(callable), "step {}", step)
                        }
                        Err(StoreError::ProgramExists { .. }) => {
                            prop_assert!(Model::valid(callable), "validation first, step {}", step);
                            prop_assert!(
                                model.programs.contains_key(&(owner, id)),
                                "step {}",
                                step
                            );
                        }
                        Err(other) => prop_assert!(false, "step {}: unexpected {:?}", step, other),
                    }
                }
                Op::Put(owner, id, callable) => {
                    let before = store.get(names.viewer(owner), &names.ids[id]).await.ok();
                    let result = store
                        .put(
                            names.namespace(owner),
                            names.ids[id].clone(),
                            Names::spec(callable),
                        )
                        .await;
                    match result {
                        Ok(stored) => {
                            prop_assert!(Model::valid(callable), "step {}", step);
                            prop_assert_eq!(names.seen(&stored), (owner, id, callable));
                            let previous = model.programs.insert((owner, id), callable);
                            // Same namespace: the version changes iff the definition did.
                            if let (Some(previous), Some(before)) =
                                (previous, before.filter(|b| b.owner == stored.owner))
                            {
                                prop_assert_eq!(
                                    previous == callable,
                                    before.version == stored.version,
                                    "step {}",
                                    step
                                );
                            }
                        }
                        Err(StoreError::InvalidSpec { .. }) => {
                            prop_assert!(!Model::valid(callable), "step {}", step)
                        }
                        Err(other) => prop_assert!(false, "step {}: unexpected {:?}", step, other),
                    }
                }
                Op::Get(viewer, id) => {
                    let got = store.get(names.viewer(viewer), &names.ids[id]).await;
                    match (got, model.visible(viewer, id)) {
                        (Ok(stored), Some(expected)) => {
                            prop_assert_eq!(names.seen(&stored), expected, "step {}", step)
                        }
                        (
                            Err(StoreError::ProgramNotFound {
                                id: missing,
                                session,
                            }),
                            None,
                        ) => {
                            prop_assert_eq!(&missing, &names.ids[id]);
                            prop_assert_eq!(session.as_ref(), names.viewer(viewer));
                        }
                        (got, expected) => prop_assert!(
                            false,
                            "step {}: store {:?}, model {:?}",
                            step,
                            got,
                            expected
                        ),
                    }
                }
                Op::List(viewer) => {
                    let listed: Vec<Seen> = store
                        .list(names.viewer(viewer))
                        .await
                        .unwrap()
                        .iter()
                        .map(|p| names.seen(p))
                        .collect();
                    prop_assert_eq!(listed, model.list(viewer), "step {}", step);
                }
                Op::Delete(owner, id) => {
                    let deleted = store.delete(&names.namespace(owner), &names.ids[id]).await;
                    let existed = model.programs.remove(&(owner, id)).is_some();
                    prop_assert_eq!(deleted.is_ok(), existed, "step {}", step);
                    if let Err(error) = deleted {
                        prop_assert!(
                            matches!(error, StoreError::ProgramNotFound { .. }),
                            "step {}",
                            step
                        );
                    }
                }
                Op::DeleteSession(session) => {
                    let expected = model
                        .programs
                        .keys()
                        .filter(|(owner, _)| *owner == Some(session))
                        .count();
                    model
                        .programs
                        .retain(|(owner, _), _| *owner != Some(session));
                    prop_assert_eq!(
                        store
                            .delete_session(&names.sessions[session])
                            .await
                            .unwrap(),
                        expected,
                        "step {}",
                        step
                    );
                }
            }
        }
        for viewer in std::iter::once(None).chain((0..SESSIONS).map(Some)) {
            let listed: Vec<Seen> = store
                .list(names.viewer(viewer))
                .await
                .unwrap()
                .iter()
                .map(|p| names.seen(p))
                .collect();
            prop_assert_eq!(listed, model.list(viewer));
        }
        Ok(())
    }
}
