//! `safedeploy attest`: runs the local validation checks (`sh -c`, in order, stopping at the
//! first failure), reads their metrics, and only if everything passed signs a local-validation
//! attestation of the manifest's images and configuration digest.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::Instant;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::{
    ATTESTATION_KEY, CliError, fail, key_value, other, read, read_config_objects, read_manifest,
    write,
};
use crate::api::duration::SpecDuration;
use crate::api::image::ImageRef;
use crate::api::policy::KeyAlgorithm;
use crate::attest::config;
use crate::attest::json::{from_value_strict, parse_strict};
use crate::attest::keys::SigningKey;
use crate::attest::sign;
use crate::attest::statement::{
    Check, DigestSha256, FAILED, LocalValidation, Metric, PASSED, Threshold, VerifierInfo,
};

/// Default `--verifier-id` of `attest`.
pub const DEFAULT_VERIFIER_ID: &str = "https://safedeploy.dev/verifier/safedeploy-attest";

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
    let value = parse_strict(text.as_bytes()).map_err(|e| other(format!("metrics: {e}")))?;
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
                    let full: Full = from_value_strict(&value)
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
pub async fn run(args: AttestArgs) -> ExitCode {
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
            SpecDuration::from(d)
                .parse_signed()
                .map_err(|_| other(format!("--expires-in {d:?} is not a duration such as 24h")))
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
