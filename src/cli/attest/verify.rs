//! `safedeploy verify`: an attestation checked offline against a policy file, on the
//! controller's code path (the same policy resolution and the same verifier).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use jiff::Timestamp;

use super::{
    ATTESTATION_KEY, CliError, fail, key_value, kind_of, other, read, read_config_objects,
    read_manifest, yaml_documents,
};
use crate::api::policy::{SafeDeploymentPolicy, SafeDeploymentPolicySpec};
use crate::attest::policy::resolve_policy;
use crate::attest::verify::{Expected, Verdict, evaluate};

/// Arguments of `safedeploy verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The envelope: DSSE JSON, or a ConfigMap/Secret manifest holding it. Without it,
    /// `spec.attestation.inline` of the manifest is used.
    #[arg(long)]
    pub envelope: Option<PathBuf>,
    /// Key inside a ConfigMap/Secret manifest.
    #[arg(long, default_value = ATTESTATION_KEY)]
    pub key: String,
    /// The policy: a `SafeDeploymentPolicy` manifest (several documents allowed; the one that
    /// applies to the namespace is chosen as the controller would) or a bare spec.
    #[arg(long)]
    pub policy: PathBuf,
    /// The SafeDeployment manifest the attestation must match.
    #[arg(long)]
    pub manifest: PathBuf,
    /// A ConfigMap or Secret manifest (YAML; several documents allowed) referenced by the
    /// templates, whose contents the configuration digest binds as the operator does
    /// (issue 6); repeatable.
    #[arg(long = "config-object", value_name = "FILE")]
    pub config_objects: Vec<PathBuf>,
    /// Namespace for policy selection; default the manifest's, else `default`.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Labels of that namespace for `namespaceSelector`, as `KEY=VALUE`; repeatable.
    #[arg(long = "namespace-label", value_name = "KEY=VALUE")]
    pub namespace_labels: Vec<String>,
    /// Verify as of this instant (RFC 3339) instead of now.
    #[arg(long)]
    pub now: Option<String>,
}

/// Runs `verify`.
pub fn run(args: VerifyArgs) -> ExitCode {
    match run_verify(&args) {
        Ok(verdict) => {
            if verdict.allows_rollout() {
                println!("{}: {}", verdict.reason(), verdict.message());
                ExitCode::SUCCESS
            } else {
                println!("Rejected: {}: {}", verdict.reason(), verdict.message());
                ExitCode::from(1)
            }
        }
        Err(e) => fail("verify", e),
    }
}

fn run_verify(args: &VerifyArgs) -> Result<Verdict, CliError> {
    let (spec, manifest_namespace) = read_manifest(&args.manifest)?;
    let now = match &args.now {
        Some(t) => t
            .parse::<Timestamp>()
            .map_err(|e| other(format!("--now {t:?}: {e}")))?,
        None => Timestamp::now(),
    };
    let policies = read_policies(&args.policy)?;
    let namespace = args
        .namespace
        .clone()
        .or(manifest_namespace)
        .unwrap_or_else(|| "default".to_owned());
    let labels = args
        .namespace_labels
        .iter()
        .map(|l| key_value(l, "--namespace-label"))
        .collect::<Result<BTreeMap<_, _>, _>>()?;
    let policy = match &policies {
        Policies::Bare(spec) => Some(spec.as_ref()),
        Policies::Objects(list) => resolve_policy(&namespace, &labels, list).map(|p| &p.spec),
    };
    let envelope: Option<Vec<u8>> = match &args.envelope {
        Some(path) => Some(read_envelope(path, &args.key)?),
        None => spec
            .attestation
            .as_ref()
            .and_then(|a| a.inline.clone())
            .map(String::into_bytes),
    };
    let config_objects = read_config_objects(&spec, &args.config_objects)?;
    let expected = match Expected::for_spec_with(&spec, &config_objects) {
        Ok(e) => e,
        Err(rejection) => return Ok(Verdict::Rejected(rejection)),
    };
    Ok(evaluate(envelope.as_deref(), &expected, policy, now))
}

enum Policies {
    Bare(Box<SafeDeploymentPolicySpec>),
    Objects(Vec<SafeDeploymentPolicy>),
}

fn read_policies(path: &Path) -> Result<Policies, CliError> {
    let docs = yaml_documents(&read(path)?)?;
    let objects: Vec<SafeDeploymentPolicy> = docs
        .iter()
        .filter(|d| kind_of(d) == Some("SafeDeploymentPolicy"))
        .map(|d| {
            serde_yaml::from_value(d.clone()).map_err(|e| {
                other(format!(
                    "{}: invalid SafeDeploymentPolicy: {e}",
                    path.display()
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    if !objects.is_empty() {
        return Ok(Policies::Objects(objects));
    }
    match docs.as_slice() {
        [doc] if kind_of(doc).is_none() => serde_yaml::from_value(doc.clone())
            .map(|spec| Policies::Bare(Box::new(spec)))
            .map_err(|e| other(format!("{}: invalid policy spec: {e}", path.display()))),
        _ => Err(other(format!(
            "{}: no SafeDeploymentPolicy document",
            path.display()
        ))),
    }
}

/// The envelope bytes of a file: DSSE JSON as is, or the `key` entry of a ConfigMap (`data`) or
/// Secret (`data`, base64, or `stringData`) manifest.
fn read_envelope(path: &Path, key: &str) -> Result<Vec<u8>, CliError> {
    let bytes = std::fs::read(path).map_err(|e| CliError::io(path, e))?;
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_none() || first == Some(&b'{') {
        return Ok(bytes);
    }
    let text =
        String::from_utf8(bytes).map_err(|_| other(format!("{}: not UTF-8", path.display())))?;
    let docs = yaml_documents(&text)?;
    let doc = docs
        .iter()
        .find(|d| matches!(kind_of(d), Some("ConfigMap" | "Secret")))
        .ok_or_else(|| {
            other(format!(
                "{}: neither a DSSE envelope nor a ConfigMap/Secret manifest",
                path.display()
            ))
        })?;
    let field = |section: &str| {
        doc.get(section)
            .and_then(|d| d.get(key))
            .and_then(serde_yaml::Value::as_str)
    };
    if kind_of(doc) == Some("Secret") {
        if let Some(encoded) = field("data") {
            return crate::attest::dsse::decode_base64(encoded)
                .ok_or_else(|| other(format!("{}: data.{key} is not base64", path.display())));
        }
        if let Some(text) = field("stringData") {
            return Ok(text.as_bytes().to_vec());
        }
    } else if let Some(text) = field("data") {
        return Ok(text.as_bytes().to_vec());
    }
    // A missing key is a missing attestation, not a tool failure.
    Ok(Vec::new())
}
