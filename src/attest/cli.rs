//! The pipeline-facing subcommands: `keygen`, `attest`, `verify` and `config-digest`.
//!
//! Exit codes: `0` success (signed / verified / not required); `1` not ready — a check failed
//! so nothing was signed, or the attestation was rejected; `2` the tool could not do its job
//! (unreadable file, bad key, unpinned image, bad arguments).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Instant;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::config;
use super::keys::{SigningKey, pem_encode};
use super::policy::{parse_duration, resolve_policy};
use super::sign;
use super::statement::{
    Check, DigestSha256, FAILED, LocalValidation, Metric, PASSED, Threshold, VerifierInfo,
};
use super::verify::{Expected, Verdict, evaluate};
use crate::api::SafeDeploymentSpec;
use crate::api::image::ImageRef;
use crate::api::policy::KeyAlgorithm;
use crate::api::policy::{SafeDeploymentPolicy, SafeDeploymentPolicySpec};

/// Default `--verifier-id` of `attest`.
pub const DEFAULT_VERIFIER_ID: &str = "https://safedeploy.dev/verifier/safedeploy-attest";

/// The ConfigMap / Secret key that holds an envelope by default.
pub const ATTESTATION_KEY: &str = "attestation.json";

/// Check kinds recognised when `--check NAME=CMD` gives no explicit kind.
pub const KNOWN_KINDS: [&str; 8] = [
    "unit",
    "integration",
    "e2e",
    "stress",
    "staging",
    "lint",
    "security",
    "smoke",
];

/// Arguments of `safedeploy keygen`.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// `ecdsa-p256` (as cosign) or `ed25519`.
    #[arg(long, default_value = "ecdsa-p256")]
    pub algorithm: String,
    /// Where to write the private key (unencrypted PKCS#8 PEM, mode 0600).
    #[arg(long)]
    pub out_private: PathBuf,
    /// Where to write the public key (SPKI PEM), for `SafeDeploymentPolicy.spec.trustedKeys`.
    #[arg(long)]
    pub out_public: PathBuf,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `safedeploy attest`.
#[derive(Debug, clap::Args)]
pub struct AttestArgs {
    /// Private key (PKCS#8 PEM) to sign with.
    #[arg(long)]
    pub key: PathBuf,
    /// Algorithm of the key (`ecdsa-p256` or `ed25519`); detected from the key when omitted.
    #[arg(long)]
    pub algorithm: Option<String>,
    /// The SafeDeployment manifest (YAML); images and configuration digest come from it.
    #[arg(long)]
    pub manifest: PathBuf,
    /// A ConfigMap or Secret manifest (YAML; several documents allowed) referenced by the
    /// templates, whose contents the configuration digest binds as the operator does
    /// (issue 6); repeatable.
    #[arg(long = "config-object", value_name = "FILE")]
    pub config_objects: Vec<PathBuf>,
    /// A check to run with `sh -c`, as `NAME=COMMAND` or `NAME:KIND=COMMAND`; repeatable, run in
    /// order, stopping at the first failure. Without `:KIND`, the kind is NAME (or NAME's part
    /// before the first `-`) when that is a known kind (unit, integration, e2e, stress, staging,
    /// lint, security, smoke), else `other`.
    #[arg(long = "check", value_name = "NAME[:KIND]=COMMAND", required = true)]
    pub checks: Vec<String>,
    /// JSON metrics, read after the checks ran:
    /// `{"CHECK": {"METRIC": 0.01 | {"value": 0.01, "threshold": {"op": "<=", "value": 0.05}}}}`.
    /// A metric outside its threshold fails its check.
    #[arg(long)]
    pub metrics: Option<PathBuf>,
    /// `predicate.verifier.id`.
    #[arg(long, env = "SAFEDEPLOY_VERIFIER_ID", default_value = DEFAULT_VERIFIER_ID)]
    pub verifier_id: String,
    /// `predicate.environment` entries, as `KEY=VALUE`; repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub environment: Vec<String>,
    /// Sets `expiresAt` this long after `timeVerified` (such as `24h`).
    #[arg(long)]
    pub expires_in: Option<String>,
    /// Where to write the output; standard output when omitted.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write a ConfigMap manifest of this name (envelope under `attestation.json`) instead of
    /// the bare envelope.
    #[arg(long)]
    pub configmap: Option<String>,
    /// Namespace of the ConfigMap manifest.
    #[arg(long, requires = "configmap")]
    pub namespace: Option<String>,
}

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

/// Arguments of `safedeploy config-digest`.
#[derive(Debug, clap::Args)]
pub struct ConfigDigestArgs {
    /// The SafeDeployment manifest.
    #[arg(long)]
    pub manifest: PathBuf,
    /// A ConfigMap or Secret manifest (YAML; several documents allowed) referenced by the
    /// templates, whose contents the configuration digest binds as the operator does
    /// (issue 6); repeatable.
    #[arg(long = "config-object", value_name = "FILE")]
    pub config_objects: Vec<PathBuf>,
    /// Also print the pinned images (`component/container image`), one a line.
    #[arg(long)]
    pub images: bool,
    /// Print the canonical JSON document that is hashed instead of its digest.
    #[arg(long)]
    pub document: bool,
}

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
    fn io(path: &Path, source: std::io::Error) -> Self {
        CliError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

fn other(message: impl std::fmt::Display) -> CliError {
    CliError::Other(message.to_string())
}

fn fail(command: &str, error: CliError) -> ExitCode {
    eprintln!("safedeploy {command}: {error}");
    ExitCode::from(2)
}

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| CliError::io(path, e))
}

fn write(path: &Path, text: &str, private: bool) -> Result<(), CliError> {
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

fn key_value(text: &str, what: &str) -> Result<(String, String), CliError> {
    text.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| other(format!("{what} {text:?} is not KEY=VALUE")))
}

/// The YAML documents of a file, as values (empty documents skipped).
fn yaml_documents(text: &str) -> Result<Vec<serde_yaml::Value>, CliError> {
    use serde::Deserialize as _;
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| {
            serde_yaml::Value::deserialize(doc).map_err(|e| other(format!("invalid YAML: {e}")))
        })
        .filter(|doc| !matches!(doc, Ok(serde_yaml::Value::Null)))
        .collect()
}

fn kind_of(doc: &serde_yaml::Value) -> Option<&str> {
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
    Ok((spec, namespace))
}

/// `--config-object` files (issue 6): the content digest of every ConfigMap and Secret they
/// hold, keyed as the operator keys them (`configmap/NAME`, `secret/NAME`; see `core::config`).
/// Each must be referenced by a template of `spec`; referenced objects not given are named on
/// standard error, since the operator binds the contents of every one that exists.
pub fn read_config_objects(
    spec: &SafeDeploymentSpec,
    paths: &[PathBuf],
) -> Result<BTreeMap<String, String>, CliError> {
    use crate::core::config::{manifest_digest, referenced_objects};
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

// ---------------------------------------------------------------------------------------------
// keygen

/// Runs `keygen`.
pub fn keygen(args: KeygenArgs) -> ExitCode {
    match run_keygen(&args) {
        Ok(key_id) => {
            eprintln!(
                "safedeploy keygen: wrote {} and {} (key id {key_id})",
                args.out_private.display(),
                args.out_public.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail("keygen", e),
    }
}

fn run_keygen(args: &KeygenArgs) -> Result<String, CliError> {
    let algorithm = KeyAlgorithm::parse(&args.algorithm).map_err(other)?;
    for path in [&args.out_private, &args.out_public] {
        if path.exists() && !args.force {
            return Err(other(format!(
                "{} exists; use --force to overwrite",
                path.display()
            )));
        }
    }
    let (key, pkcs8) = SigningKey::generate(algorithm).map_err(other)?;
    write(&args.out_private, &pem_encode(&pkcs8, "PRIVATE KEY"), true)?;
    write(&args.out_public, &key.public_key().to_pem(), false)?;
    Ok(key.public_key().key_id())
}

// ---------------------------------------------------------------------------------------------
// attest

/// A parsed `--check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    /// Check name.
    pub name: String,
    /// Check kind.
    pub kind: String,
    /// Shell command.
    pub command: String,
}

/// Parses `NAME=COMMAND` or `NAME:KIND=COMMAND`.
pub fn parse_check(text: &str) -> Result<CheckSpec, CliError> {
    let (head, command) = text
        .split_once('=')
        .ok_or_else(|| other(format!("--check {text:?} is not NAME[:KIND]=COMMAND")))?;
    let (name, kind) = match head.split_once(':') {
        Some((name, kind)) => (name, kind.to_owned()),
        None => {
            let prefix = head.split('-').next().unwrap_or(head);
            let kind = [head, prefix]
                .into_iter()
                .find(|k| KNOWN_KINDS.contains(k))
                .unwrap_or("other");
            (head, kind.to_owned())
        }
    };
    if name.is_empty() || kind.is_empty() || command.trim().is_empty() {
        return Err(other(format!(
            "--check {text:?} needs a name, a kind and a command"
        )));
    }
    Ok(CheckSpec {
        name: name.to_owned(),
        kind,
        command: command.to_owned(),
    })
}

/// Reads the `--metrics` JSON into metrics per check name.
pub fn parse_metrics(text: &str) -> Result<BTreeMap<String, Vec<Metric>>, CliError> {
    let value =
        super::json::parse_strict(text.as_bytes()).map_err(|e| other(format!("metrics: {e}")))?;
    let Value::Object(checks) = value else {
        return Err(other("metrics: expected an object of check name → metrics"));
    };
    let mut out = BTreeMap::new();
    for (check, metrics) in checks {
        let Value::Object(metrics) = metrics else {
            return Err(other(format!(
                "metrics of {check:?}: expected an object of metric name → value"
            )));
        };
        let mut list = Vec::new();
        for (name, value) in metrics {
            let metric = match value {
                Value::Number(n) => Metric {
                    name,
                    value: n.as_f64().unwrap_or(f64::NAN),
                    threshold: None,
                },
                Value::Object(_) => {
                    #[derive(serde::Deserialize)]
                    struct Full {
                        value: f64,
                        #[serde(default)]
                        threshold: Option<Threshold>,
                    }
                    let full: Full = super::json::from_value_strict(&value)
                        .map_err(|e| other(format!("metric {check}/{name}: {e}")))?;
                    if let Some(t) = &full.threshold
                        && !["<", "<=", ">", ">=", "=="].contains(&t.op.as_str())
                    {
                        return Err(other(format!(
                            "metric {check}/{name}: unknown threshold op {:?}",
                            t.op
                        )));
                    }
                    Metric {
                        name,
                        value: full.value,
                        threshold: full.threshold,
                    }
                }
                _ => {
                    return Err(other(format!(
                        "metric {check}/{name}: expected a number or {{value, threshold}}"
                    )));
                }
            };
            list.push(metric);
        }
        out.insert(check, list);
    }
    Ok(out)
}

/// Runs `attest`.
pub async fn attest(args: AttestArgs) -> ExitCode {
    match run_attest(&args).await {
        Ok(AttestOutcome::Signed(summary)) => {
            eprintln!("safedeploy attest: {summary}");
            ExitCode::SUCCESS
        }
        Ok(AttestOutcome::NotReady(why)) => {
            eprintln!("safedeploy attest: {why}; not signing (exit 1: not ready)");
            ExitCode::from(1)
        }
        Err(e) => fail("attest", e),
    }
}

enum AttestOutcome {
    Signed(String),
    NotReady(String),
}

async fn run_attest(args: &AttestArgs) -> Result<AttestOutcome, CliError> {
    // Everything that can be wrong with the inputs is checked before any check runs.
    let algorithm = args
        .algorithm
        .as_deref()
        .map(KeyAlgorithm::parse)
        .transpose()
        .map_err(other)?;
    let key = SigningKey::from_pem(&read(&args.key)?, algorithm)
        .map_err(|e| other(format!("{}: {e}", args.key.display())))?;
    let (spec, _) = read_manifest(&args.manifest)?;
    let images: Vec<ImageRef> = config::image_digests(&spec).map_err(other)?;
    let config_objects = read_config_objects(&spec, &args.config_objects)?;
    let config_digest = config::config_digest_with(&spec, &config_objects).map_err(other)?;
    let checks: Vec<CheckSpec> = args
        .checks
        .iter()
        .map(|c| parse_check(c))
        .collect::<Result<_, _>>()?;
    let mut names = std::collections::BTreeSet::new();
    if let Some(dup) = checks.iter().find(|c| !names.insert(c.name.clone())) {
        return Err(other(format!("check name {:?} is given twice", dup.name)));
    }
    let environment = args
        .environment
        .iter()
        .map(|e| key_value(e, "--env").map(|(k, v)| (k, Value::String(v))))
        .collect::<Result<BTreeMap<_, _>, _>>()?;
    let expires_in = args
        .expires_in
        .as_deref()
        .map(|d| {
            parse_duration(d)
                .ok_or_else(|| other(format!("--expires-in {d:?} is not a duration such as 24h")))
        })
        .transpose()?;

    // Run the checks, in order, stopping at the first failure.
    let mut results = Vec::new();
    for check in &checks {
        eprintln!(
            "safedeploy attest: running check {:?} ({}): {}",
            check.name, check.kind, check.command
        );
        let started = Instant::now();
        let status = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&check.command)
            .stdin(Stdio::null())
            // Standard output is where the envelope may go: the checks' output goes to stderr.
            .stdout(Stdio::from(std::io::stderr()))
            .status()
            .await
            .map_err(|e| other(format!("cannot run check {:?}: {e}", check.name)))?;
        let duration = started.elapsed().as_secs_f64();
        let exit_code = status.code();
        let passed = status.success();
        results.push(Check {
            name: check.name.clone(),
            kind: check.kind.clone(),
            result: if passed { PASSED } else { FAILED }.to_owned(),
            exit_code: exit_code.map(i64::from),
            duration_seconds: Some((duration * 1000.0).round() / 1000.0),
            metrics: Vec::new(),
        });
        if !passed {
            let how = exit_code.map_or("was killed by a signal".to_owned(), |c| {
                format!("exited with code {c}")
            });
            return Ok(AttestOutcome::NotReady(format!(
                "check {:?} ({}) failed: {how}",
                check.name, check.kind
            )));
        }
    }

    // Metrics, possibly written by the checks.
    if let Some(path) = &args.metrics {
        let metrics = parse_metrics(&read(path)?)?;
        for (check_name, list) in metrics {
            let check = results
                .iter_mut()
                .find(|c| c.name == check_name)
                .ok_or_else(|| {
                    other(format!(
                        "metrics name check {check_name:?}, which was not run"
                    ))
                })?;
            if let Some(bad) = list.iter().find(|m| !m.within_own_threshold()) {
                let t = bad
                    .threshold
                    .as_ref()
                    .map(|t| format!("{} {}", t.op, t.value))
                    .unwrap_or_default();
                return Ok(AttestOutcome::NotReady(format!(
                    "check {check_name:?}: metric {} = {} violates its threshold {t}",
                    bad.name, bad.value
                )));
            }
            check.metrics = list;
        }
    }

    let time_verified = Timestamp::from_second(Timestamp::now().as_second()).map_err(other)?;
    let expires_at = expires_in
        .map(|d| time_verified.checked_add(d).map_err(other))
        .transpose()?;
    let predicate = LocalValidation {
        verifier: VerifierInfo {
            id: args.verifier_id.clone(),
            version: Some(
                [(
                    "safedeploy".to_owned(),
                    env!("CARGO_PKG_VERSION").to_owned(),
                )]
                .into(),
            ),
        },
        time_verified: time_verified.to_string(),
        expires_at: expires_at.map(|t| t.to_string()),
        verification_result: PASSED.to_owned(),
        environment,
        config_digest: DigestSha256 {
            sha256: config_digest.trim_start_matches("sha256:").to_owned(),
        },
        checks: results,
    };
    let statement = sign::statement(&images, &predicate).map_err(other)?;
    let envelope = sign::sign_statement(&statement, &[&key])
        .map_err(other)?
        .to_json();
    let output = match &args.configmap {
        Some(name) => configmap_manifest(name, args.namespace.as_deref(), &envelope)?,
        None => format!("{envelope}\n"),
    };
    match &args.out {
        Some(path) => write(path, &output, false)?,
        None => print!("{output}"),
    }
    Ok(AttestOutcome::Signed(format!(
        "signed {} subject(s), configuration {config_digest}, {} check(s) passed, key id {}",
        statement.subject.len(),
        predicate.checks.len(),
        key.public_key().key_id()
    )))
}

/// A ConfigMap manifest holding `envelope` under `attestation.json`.
pub fn configmap_manifest(
    name: &str,
    namespace: Option<&str>,
    envelope: &str,
) -> Result<String, CliError> {
    let mut metadata =
        json!({"name": name, "labels": {"app.kubernetes.io/managed-by": "safedeploy"}});
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    let manifest = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": {ATTESTATION_KEY: envelope},
    });
    serde_yaml::to_string(&manifest).map_err(other)
}

// ---------------------------------------------------------------------------------------------
// verify

/// Runs `verify`.
pub fn verify(args: VerifyArgs) -> ExitCode {
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
            return super::dsse::decode_base64(encoded)
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

// ---------------------------------------------------------------------------------------------
// config-digest

/// Runs `config-digest`.
pub fn config_digest(args: ConfigDigestArgs) -> ExitCode {
    match run_config_digest(&args) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => fail("config-digest", e),
    }
}

fn run_config_digest(args: &ConfigDigestArgs) -> Result<String, CliError> {
    let (spec, _) = read_manifest(&args.manifest)?;
    let config_objects = read_config_objects(&spec, &args.config_objects)?;
    let mut out = if args.document {
        let document = config::config_document(&spec, &config_objects).map_err(other)?;
        format!("{}\n", crate::canonical_json::canonical(&document))
    } else {
        format!(
            "{}\n",
            config::config_digest_with(&spec, &config_objects).map_err(other)?
        )
    };
    if args.images {
        for image in config::image_digests(&spec).map_err(other)? {
            out.push_str(&format!(
                "{}/{} {}\n",
                image.component, image.container, image.image
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_specs() {
        let c = parse_check("unit=cargo test --lib").expect("check");
        assert_eq!(
            (c.name.as_str(), c.kind.as_str(), c.command.as_str()),
            ("unit", "unit", "cargo test --lib")
        );
        let c = parse_check("stress-10m=./stress.sh a=b").expect("check");
        assert_eq!(
            (c.name.as_str(), c.kind.as_str(), c.command.as_str()),
            ("stress-10m", "stress", "./stress.sh a=b")
        );
        let c = parse_check("soak:staging=./soak.sh").expect("check");
        assert_eq!((c.name.as_str(), c.kind.as_str()), ("soak", "staging"));
        assert_eq!(parse_check("fuzz=x").expect("check").kind, "other");
        assert!(parse_check("unit").is_err());
        assert!(parse_check("=x").is_err());
        assert!(parse_check("unit= ").is_err());
    }

    #[test]
    fn metrics_file() {
        let m = parse_metrics(r#"{"stress":{"errorRate":{"value":0.001,"threshold":{"op":"<=","value":0.01}},"p99":212}}"#)
            .expect("metrics");
        let stress = &m["stress"];
        assert_eq!(stress.len(), 2);
        assert!(stress.iter().all(Metric::within_own_threshold));
        assert!(
            parse_metrics(r#"{"stress":{"x":{"value":1,"threshold":{"op":"~","value":1}}}}"#)
                .is_err()
        );
        assert!(parse_metrics(r#"{"stress":{"x":1,"x":2}}"#).is_err());
        assert!(parse_metrics(r#"[1]"#).is_err());
        assert!(parse_metrics(r#"{"stress":{"x":"1"}}"#).is_err());
        // A threshold written as the array of its field values is not a threshold.
        assert!(parse_metrics(r#"{"stress":{"x":{"value":1,"threshold":["<=",2]}}}"#).is_err());
    }

    #[test]
    fn configmap_manifest_round_trips() {
        let yaml = configmap_manifest("app-attestation", Some("prod"), r#"{"payload":"e30"}"#)
            .expect("yaml");
        let v: serde_yaml::Value = serde_yaml::from_str(&yaml).expect("parse");
        assert_eq!(v["kind"].as_str(), Some("ConfigMap"));
        assert_eq!(v["metadata"]["namespace"].as_str(), Some("prod"));
        assert_eq!(
            v["data"][ATTESTATION_KEY].as_str(),
            Some(r#"{"payload":"e30"}"#)
        );
    }
}
