//! `crds/` is generated from the Rust types and never edited by hand: this test fails when the
//! checked-in files are stale. `UPDATE_CRDS=1 cargo test --test crds_fresh` rewrites them.

use std::path::Path;

#[test]
fn checked_in_crds_match_the_rust_types() {
    let generated = safedeploy::api::crds_yaml().expect("CRDs render");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds/safedeploy.yaml");
    if std::env::var_os("UPDATE_CRDS").is_some() {
        std::fs::write(&path, &generated).expect("write crds/safedeploy.yaml");
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "crds/safedeploy.yaml is stale: run `UPDATE_CRDS=1 cargo test --test crds_fresh` and commit it"
    );
}

#[test]
fn checked_in_api_reference_matches_the_crds() {
    let generated = safedeploy::api::api_reference_markdown();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds/API.md");
    if std::env::var_os("UPDATE_CRDS").is_some() {
        std::fs::write(&path, &generated).expect("write crds/API.md");
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "crds/API.md is stale: run `UPDATE_CRDS=1 cargo test --test crds_fresh` and commit it"
    );
    assert!(generated.contains("`spec.strategy.canary.steps[].setWeight`"));
}
