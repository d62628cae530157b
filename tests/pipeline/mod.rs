//! The pipeline side of an attested rollout, shared by the integration tests: a signing key made
//! by `safedeploy keygen`, the namespace policy that trusts it, and `safedeploy attest` writing
//! an attestation ConfigMap that is then applied to the namespace (as a CI job would).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::common::TestNamespace;

const BIN: &str = env!("CARGO_BIN_EXE_safedeploy");

/// A CI pipeline with its own ed25519 key in a temporary directory (removed when dropped).
pub struct Pipeline {
    dir: tempfile::TempDir,
}

impl Pipeline {
    /// Generates the pipeline's key; `label` names its directory (for a reader of /tmp).
    pub fn new(label: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("safedeploy-attest-{label}-"))
            .tempdir()
            .expect("tempdir");
        let status = std::process::Command::new(BIN)
            .args(["keygen", "--algorithm", "ed25519", "--out-private"])
            .arg(dir.path().join("ci.key"))
            .arg("--out-public")
            .arg(dir.path().join("ci.pub"))
            .status()
            .expect("keygen");
        assert!(status.success());
        Pipeline { dir }
    }

    /// Where the key, the manifests and the envelopes are written.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The public key, PEM.
    pub fn public_key(&self) -> String {
        std::fs::read_to_string(self.dir().join("ci.pub")).expect("public key")
    }

    /// The namespace policy that requires attestations by this pipeline's key, no older than an
    /// hour, with a passed `unit` check.
    pub fn trust_policy(&self) -> Value {
        json!({
            "requireAttestation": true,
            "maxAge": "1h",
            "requiredChecks": [{"kind": "unit"}],
            "trustedKeys": [{"name": "ci", "algorithm": "ed25519", "publicKeyPem": self.public_key()}],
        })
    }

    /// Runs `safedeploy attest` (check `unit=true`) for the manifest into the ConfigMap `name`,
    /// with `extra` arguments, and applies the ConfigMap it writes.
    pub async fn sign(&self, ns: &TestNamespace, name: &str, manifest: &Value, extra: &[&str]) {
        self.sign_with_args(
            ns,
            name,
            manifest,
            extra.iter().map(PathBuf::from).collect(),
        )
        .await;
    }

    /// [`Pipeline::sign`], binding the given configuration objects (`--config-object`, the
    /// ConfigMaps and Secrets as the pipeline validated them).
    pub async fn sign_with_config(
        &self,
        ns: &TestNamespace,
        name: &str,
        manifest: &Value,
        config_objects: &[Value],
    ) {
        let mut args = Vec::new();
        for (i, object) in config_objects.iter().enumerate() {
            let path = self.dir().join(format!("{name}-object-{i}.yaml"));
            std::fs::write(&path, serde_yaml::to_string(object).expect("yaml")).expect("write");
            args.push(PathBuf::from("--config-object"));
            args.push(path);
        }
        self.sign_with_args(ns, name, manifest, args).await;
    }

    async fn sign_with_args(
        &self,
        ns: &TestNamespace,
        name: &str,
        manifest: &Value,
        extra: Vec<PathBuf>,
    ) {
        let manifest_path = self.dir().join(format!("{name}.json"));
        std::fs::write(&manifest_path, serde_json::to_vec(manifest).expect("json"))
            .expect("write manifest");
        let out = self.dir().join(format!("{name}-cm.yaml"));
        let output = std::process::Command::new(BIN)
            .args(["attest", "--key"])
            .arg(self.dir().join("ci.key"))
            .arg("--manifest")
            .arg(&manifest_path)
            .args([
                "--check",
                "unit=true",
                "--configmap",
                name,
                "--namespace",
                &ns.name,
                "--out",
            ])
            .arg(&out)
            .args(extra)
            .output()
            .expect("attest");
        assert!(
            output.status.success(),
            "attest failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        apply_config_map(ns, &out).await;
    }
}

/// Applies a ConfigMap manifest file (server-side apply as the pipeline).
pub async fn apply_config_map(ns: &TestNamespace, path: &Path) {
    let text = std::fs::read_to_string(path).expect("configmap manifest");
    let config_map: ConfigMap = serde_yaml::from_str(&text).expect("configmap yaml");
    let name = config_map.metadata.name.clone().unwrap_or_default();
    ns.api::<ConfigMap>()
        .patch(
            &name,
            &PatchParams::apply("pipeline").force(),
            &Patch::Apply(&config_map),
        )
        .await
        .expect("apply configmap");
}
