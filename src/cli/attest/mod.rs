//! The pipeline-facing subcommands, one file each: [`keygen`], `attest` ([`sign`]: run the
//! checks, then sign), [`verify`] and [`config_digest`]; this module holds what they share:
//! reading manifests and `--config-object` files, and writing files.
//!
//! Exit codes: `0` success (signed / verified / not required); `1` not ready — a check failed
//! so nothing was signed, or the attestation was rejected; `2` the tool could not do its job
//! (unreadable file, bad key, unpinned image, bad arguments).
//!
//! This is the CLI layer: it reads files and runs `sh`, and calls the pure `attest` wing (the
//! digests, signing and the verifier) and `core::config` (content digests of configuration
//! objects), which never touch the filesystem themselves.

pub mod config_digest;
pub mod keygen;
pub mod sign;
pub mod verify;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::api::SafeDeploymentSpec;
use crate::attest::config;
use crate::core::config::{manifest_digest, referenced_objects};

/// The ConfigMap / Secret key that holds an envelope by default.
pub const ATTESTATION_KEY: &str = "attestation.json";

/// A failure of the tool itself (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Anything else, with a message.
    #[error("{0}")]
    Other(String),
}

impl CliError {
    pub(super) fn io(path: &Path, source: std::io::Error) -> Self {
        CliError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

pub(super) fn other(message: impl std::fmt::Display) -> CliError {
    CliError::Other(message.to_string())
}

pub(super) fn fail(command: &str, error: CliError) -> ExitCode {
    eprintln!("safedeploy {command}: {error}");
    ExitCode::from(2)
}

pub(super) fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| CliError::io(path, e))
}

pub(super) fn write(path: &Path, text: &str, private: bool) -> Result<(), CliError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let _ = private;
    let mut file = options.open(path).map_err(|e| CliError::io(path, e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| CliError::io(path, e))
}

pub(super) fn key_value(text: &str, what: &str) -> Result<(String, String), CliError> {
    text.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| other(format!("{what} {text:?} is not KEY=VALUE")))
}

/// The YAML documents of a file, as values (empty documents skipped).
pub(super) fn yaml_documents(text: &str) -> Result<Vec<serde_yaml::Value>, CliError> {
    use serde::Deserialize as _;
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| {
            serde_yaml::Value::deserialize(doc).map_err(|e| other(format!("invalid YAML: {e}")))
        })
        .filter(|doc| !matches!(doc, Ok(serde_yaml::Value::Null)))
        .collect()
}

pub(super) fn kind_of(doc: &serde_yaml::Value) -> Option<&str> {
    doc.get("kind").and_then(serde_yaml::Value::as_str)
}

/// A SafeDeployment manifest: the spec, and the namespace from metadata if any.
pub fn read_manifest(path: &Path) -> Result<(SafeDeploymentSpec, Option<String>), CliError> {
    let docs = yaml_documents(&read(path)?)?;
    let mut found: Vec<&serde_yaml::Value> = docs
        .iter()
        .filter(|d| kind_of(d) == Some("SafeDeployment"))
        .collect();
    if found.is_empty() && docs.len() == 1 && kind_of(&docs[0]).is_none() {
        // A bare spec.
        let spec = serde_yaml::from_value(docs[0].clone())
            .map_err(|e| other(format!("{}: {e}", path.display())))?;
        return Ok((spec, None));
    }
    let doc = match found.len() {
        1 => found.remove(0),
        0 => {
            return Err(other(format!(
                "{}: no SafeDeployment document",
                path.display()
            )));
        }
        n => {
            return Err(other(format!(
                "{}: {n} SafeDeployment documents; give one",
                path.display()
            )));
        }
    };
    let spec = doc.get("spec").cloned().ok_or_else(|| {
        other(format!(
            "{}: the SafeDeployment has no spec",
            path.display()
        ))
    })?;
    let spec = serde_yaml::from_value(spec).map_err(|e| {
        other(format!(
            "{}: invalid SafeDeployment spec: {e}",
            path.display()
        ))
    })?;
    let namespace = doc
        .get("metadata")
        .and_then(|m| m.get("namespace"))
        .and_then(serde_yaml::Value::as_str)
        .map(str::to_owned);
    let name = doc
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(serde_yaml::Value::as_str)
        .unwrap_or_default();
    let spec = with_adopted_template(spec, name, &docs, path)?;
    Ok((spec, namespace))
}

/// A spec that adopts a Deployment (`spec.workloadRef`) stands for that Deployment's template,
/// exactly as the operator resolves it (`core::adopt::resolve`): the Deployment's manifest must
/// be in the same file, so what is attested is what the operator will roll out.
fn with_adopted_template(
    spec: SafeDeploymentSpec,
    name: &str,
    docs: &[serde_yaml::Value],
    path: &Path,
) -> Result<SafeDeploymentSpec, CliError> {
    let Some(reference) = spec
        .workload_ref
        .as_ref()
        .filter(|_| spec.template.is_none())
    else {
        return Ok(spec);
    };
    let deployment = docs
        .iter()
        .filter(|d| kind_of(d) == Some("Deployment"))
        .find(|d| {
            d.get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(serde_yaml::Value::as_str)
                == Some(reference.name.as_str())
        })
        .ok_or_else(|| {
            other(format!(
                "{}: spec.workloadRef adopts Deployment {}, whose template is the revision: put that Deployment's manifest in the same file (as another YAML document)",
                path.display(),
                reference.name
            ))
        })?;
    let deployment: k8s_openapi::api::apps::v1::Deployment =
        serde_yaml::from_value(deployment.clone()).map_err(|e| {
            other(format!(
                "{}: invalid Deployment {}: {e}",
                path.display(),
                reference.name
            ))
        })?;
    let empty = k8s_openapi::api::core::v1::PodTemplateSpec::default();
    let view = crate::core::adopt::DeploymentView::of(&deployment, &empty);
    crate::core::adopt::resolve(&spec, name, &view)
        .map(|resolved| resolved.spec)
        .map_err(|refusal| other(format!("{}: {refusal}", path.display())))
}

/// `--config-object` files (issue 6): the content digest of every ConfigMap and Secret they
/// hold, keyed as the operator keys them (`configmap/NAME`, `secret/NAME`; see `core::config`).
/// Each must be referenced by a template of `spec`; referenced objects not given are named on
/// standard error, since the operator binds the contents of every one that exists.
pub fn read_config_objects(
    spec: &SafeDeploymentSpec,
    paths: &[PathBuf],
) -> Result<BTreeMap<String, String>, CliError> {
    let referenced: std::collections::BTreeSet<String> = config::normalized_components(spec)
        .map_err(other)?
        .into_iter()
        .flat_map(|(_, template)| referenced_objects(template))
        .map(|object| object.key())
        .collect();
    let mut objects = BTreeMap::new();
    for path in paths {
        let at = |e: &dyn std::fmt::Display| other(format!("{}: {e}", path.display()));
        for document in yaml_documents(&read(path)?)? {
            let value = serde_json::to_value(&document).map_err(|e| at(&e))?;
            let (key, digest) = manifest_digest(value).map_err(|e| at(&e))?;
            if !referenced.contains(&key) {
                return Err(at(&format!(
                    "{key} is not referenced by any template of the manifest"
                )));
            }
            objects.insert(key, digest);
        }
    }
    let missing: Vec<&str> = referenced
        .iter()
        .filter(|key| !objects.contains_key(*key))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "safedeploy: note: the templates reference {} without --config-object; the operator binds the contents of each that exists, so the digests will differ unless it does not exist",
            missing.join(", ")
        );
    }
    Ok(objects)
}
