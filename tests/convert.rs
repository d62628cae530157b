//! `safedeploy convert argo-rollout` as users run it: the fixture Rollout (steps, analyses
//! with arguments, Gateway API routing, header routes) becomes YAML on stdout with notes on
//! stderr, and the real API server admits the result through the CRD's schema and CEL rules;
//! a field with no equivalent fails the command (exit 1) with the field named and prints no
//! manifest at all.

mod common;
mod operator;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kube::api::{Api, PostParams};
use safedeploy::api::SafeDeployment;
use serde_json::Value;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/argo/rollout.yaml")
}

fn convert(file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_safedeploy"))
        .args(["convert", "argo-rollout", "-f"])
        .arg(file)
        .output()
        .expect("run safedeploy")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_cli_prints_the_manifest_on_stdout_and_the_notes_on_stderr() {
    let output = convert(&fixture());
    assert!(output.status.success(), "{}", text(&output.stderr));
    let manifest: Value = serde_yaml::from_str(&text(&output.stdout)).expect("YAML");
    assert_eq!(manifest["kind"], "SafeDeployment");
    assert_eq!(manifest["metadata"]["name"], "web");
    let notes = text(&output.stderr);
    assert!(
        notes.lines().all(|l| l.starts_with("note: web: ")),
        "{notes}"
    );
    assert!(notes.contains("maxSurge"), "{notes}");
}

#[test]
fn a_field_without_equivalent_fails_the_command_and_prints_no_manifest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let original = std::fs::read_to_string(fixture()).expect("fixture");
    let blue_green = original.replace(
        "  strategy:\n    canary:\n",
        "  strategy:\n    blueGreen:\n      activeService: web\n    canary:\n",
    );
    assert_ne!(blue_green, original, "the fixture's strategy moved");
    let path = dir.path().join("rollout.yaml");
    std::fs::write(&path, blue_green).expect("write");
    let output = convert(&path);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(output.stdout.is_empty(), "{}", text(&output.stdout));
    assert!(
        text(&output.stderr).contains("error: Rollout web: spec.strategy.blueGreen"),
        "{}",
        text(&output.stderr)
    );
    let missing = convert(&dir.path().join("absent.yaml"));
    assert_eq!(missing.status.code(), Some(2));
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh up)"]
async fn the_converted_manifest_is_admitted_by_the_api_server_as_written() {
    let client = common::client().await;
    operator::install_crds(&client).await;
    let ns = common::TestNamespace::new("convert").await;
    let output = convert(&fixture());
    assert!(output.status.success(), "{}", text(&output.stderr));
    let mut manifest: Value = serde_yaml::from_str(&text(&output.stdout)).expect("YAML");
    manifest["metadata"]["namespace"] = Value::String(ns.name.clone());
    let sd: SafeDeployment = serde_json::from_value(manifest.clone()).expect("typed");
    let api: Api<SafeDeployment> = Api::namespaced(client.clone(), &ns.name);
    let created = api
        .create(&PostParams::default(), &sd)
        .await
        .unwrap_or_else(|error| panic!("the API server refused the converted manifest: {error}"));
    // The API server stored what the converter wrote: no default filled in, nothing pruned.
    assert_eq!(
        serde_json::to_value(&created.spec).expect("spec"),
        serde_json::to_value(&sd.spec).expect("spec")
    );
}
