//! `crds/` and the chart's copy of the CRDs are generated from the Rust types and never edited by
//! hand: these tests fail when a checked-in file is stale. `UPDATE_CRDS=1 cargo test --test
//! crds_fresh` rewrites them.

use std::path::Path;

/// Checks that the file at `relative` (to the repository) holds `generated`; with `UPDATE_CRDS`
/// set, writes it first.
fn assert_fresh(relative: &str, generated: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    if std::env::var_os("UPDATE_CRDS").is_some() {
        std::fs::write(&path, generated).unwrap_or_else(|e| panic!("write {relative}: {e}"));
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "{relative} is stale: run `UPDATE_CRDS=1 cargo test --test crds_fresh` and commit it"
    );
}

#[test]
fn checked_in_crds_match_the_rust_types() {
    let generated = safedeploy::api::crds_yaml().expect("CRDs render");
    assert_fresh("crds/safedeploy.yaml", &generated);
}

#[test]
fn checked_in_api_reference_matches_the_crds() {
    let generated = safedeploy::api::api_reference_markdown();
    assert_fresh("crds/API.md", &generated);
    assert!(generated.contains("`spec.strategy.canary.steps[].setWeight`"));
}

#[test]
fn the_chart_carries_the_generated_crds() {
    let generated = safedeploy::api::crds_yaml().expect("CRDs render");
    assert_fresh("charts/safedeploy/files/crds/safedeploy.yaml", &generated);
}
