//! The Helm chart as the tests use it: a helm binary (installed once from the Go module proxy if
//! missing) and `helm template charts/safedeploy` of chosen templates with chosen values.
//! Each test binary uses a subset of this module, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

const HELM_VERSION: &str = "v3.22.0";

/// A helm binary: `$HELM`, `helm` on PATH, or `$(go env GOPATH)/bin/helm` (installed once from
/// the Go module proxy if missing).
pub fn helm() -> PathBuf {
    static HELM: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    HELM.get_or_init(|| {
        if let Some(path) = std::env::var_os("HELM") {
            return PathBuf::from(path);
        }
        let on_path = std::process::Command::new("helm")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
        if on_path {
            return PathBuf::from("helm");
        }
        let gopath = std::process::Command::new("go")
            .args(["env", "GOPATH"])
            .output()
            .expect("go (to find or install helm)");
        let bin = PathBuf::from(String::from_utf8_lossy(&gopath.stdout).trim()).join("bin/helm");
        if !bin.exists() {
            let status = std::process::Command::new("go")
                .args([
                    "install",
                    &format!("helm.sh/helm/v3/cmd/helm@{HELM_VERSION}"),
                ])
                .env("GOTOOLCHAIN", "local")
                .status()
                .expect("go install helm");
            assert!(status.success(), "go install helm failed");
        }
        bin
    })
    .clone()
}

/// `helm template <release> charts/safedeploy --namespace <namespace>` of the templates
/// `templates` (file names under `templates/`) with `values` (`key=value`, as `--set` takes
/// them), as YAML.
pub fn render(release: &str, namespace: &str, templates: &[&str], values: &[&str]) -> String {
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/safedeploy");
    let output = std::process::Command::new(helm())
        .arg("template")
        .arg(release)
        .arg(&chart)
        .args(["--namespace", namespace, "--kube-version", "1.36.0"])
        .args(
            templates
                .iter()
                .flat_map(|t| ["--show-only".to_string(), format!("templates/{t}")]),
        )
        .args(values.iter().flat_map(|v| ["--set", v]))
        .output()
        .expect("run helm template");
    assert!(
        output.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

/// The YAML documents of a rendering, as JSON values.
pub fn documents(yaml: &str) -> Vec<serde_json::Value> {
    yaml.split("\n---")
        .filter_map(|d| serde_yaml::from_str::<serde_json::Value>(d).ok())
        .filter(serde_json::Value::is_object)
        .collect()
}
