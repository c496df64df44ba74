//! Release checks: the documentation builds without warnings.

use std::path::Path;
use std::time::Instant;

use crate::{cargo, run};

/// `cargo doc --workspace --no-deps --all-features` (so feature-gated items
/// such as `pypool`'s tower service are documented too) with every rustdoc
/// warning (broken intra-doc links included) turned into an error.
pub(crate) fn doc(root: &Path) -> Result<(), String> {
    let started = Instant::now();
    let mut command = cargo();
    command
        .current_dir(root)
        .env("RUSTDOCFLAGS", "-D warnings")
        .args(["doc", "--workspace", "--no-deps", "--all-features"]);
    let result = run(&mut command);
    eprintln!("xtask: doc took {:.1?}", started.elapsed());
    result
}
