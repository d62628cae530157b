//! End-to-end tests of the attestation subcommands, running the built binary:
//! keygen → attest → verify round trips, refusal to sign when a check fails (exit 1), and the
//! interoperability fixtures through `safedeploy verify`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const APP: &str = "6b6d3a8e1f0c2b4a59d7e3f1a2c4b6d8e0f1a3c5b7d9e1f3a5c7e9b1d3f5a7c9";

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_safedeploy"))
}

fn run(args: &[&str], dir: &Path) -> Output {
    bin()
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run safedeploy")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/attestation")
}

fn write_manifest(dir: &Path, args: &str) -> PathBuf {
    let path = dir.join("sd.yaml");
    let yaml = format!(
        r#"apiVersion: safedeploy.dev/v1alpha1
kind: SafeDeployment
metadata: {{name: web, namespace: prod}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: registry.example.com/team/app:1.0@sha256:{APP}
        args: [{args}]
  strategy: {{canary: {{steps: [{{setWeight: 50}}]}}}}
"#
    );
    std::fs::write(&path, yaml).expect("manifest");
    path
}

fn write_policy(dir: &Path, algorithm: &str, public_pem: &Path) -> PathBuf {
    let pem = std::fs::read_to_string(public_pem).expect("public key");
    let indented: String = pem.lines().map(|l| format!("      {l}\n")).collect();
    let yaml = format!(
        r#"apiVersion: safedeploy.dev/v1alpha1
kind: SafeDeploymentPolicy
metadata: {{name: prod}}
spec:
  namespaces: [prod]
  trustedKeys:
  - name: ci
    algorithm: {algorithm}
    publicKeyPem: |
{indented}  requiredChecks: [{{kind: unit}}, {{name: stress}}]
  metricBounds: [{{check: stress, metric: errorRate, max: 0.01}}]
  requiredEnvironment: {{profile: production}}
  maxAge: 24h
"#
    );
    let path = dir.join("policy.yaml");
    std::fs::write(&path, yaml).expect("policy");
    path
}

/// Runs `safedeploy verify` in `d` of `envelope` against `policy.yaml` and `sd.yaml`, with
/// `extra` arguments.
fn verify(d: &Path, envelope: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "verify",
        "--envelope",
        envelope,
        "--policy",
        "policy.yaml",
        "--manifest",
        "sd.yaml",
    ];
    args.extend_from_slice(extra);
    run(&args, d)
}

/// Runs `safedeploy keygen` in `d` with `extra` arguments, writing `key.pem` and `key.pub.pem`.
fn keygen(d: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["keygen"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--out-private", "key.pem", "--out-public", "key.pub.pem"]);
    run(&args, d)
}

/// Runs `safedeploy attest` in `d` with `key.pem` on `sd.yaml`, with `extra` arguments.
fn attest(d: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["attest", "--key", "key.pem", "--manifest", "sd.yaml"];
    args.extend_from_slice(extra);
    run(&args, d)
}

/// Asserts `out` succeeded, showing both its streams when it did not.
fn assert_succeeded(out: &Output) {
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Asserts `out` exited with `code` and `stream` (its stdout or stderr) names `needle`.
fn assert_exit_naming(out: &Output, code: i32, stream: &[u8], needle: &str) {
    assert_eq!(out.status.code(), Some(code));
    assert!(text(stream).contains(needle), "{}", text(stream));
}

/// A temporary working directory with a fresh key pair of the default algorithm (`key.pem`,
/// `key.pub.pem`) and the manifest `sd.yaml` (container args `--x`): the start of every
/// signing test.
fn signing_workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let out = keygen(d, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    write_manifest(d, "--x");
    dir
}

#[test]
fn keygen_attest_verify_round_trip_for_both_algorithms() {
    for (flag, policy_alg) in [("ecdsa-p256", "ecdsa-p256-sha256"), ("ed25519", "ed25519")] {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let out = keygen(d, &["--algorithm", flag]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        // Refuses to overwrite.
        let again = keygen(d, &["--algorithm", flag]);
        assert_eq!(again.status.code(), Some(2));

        write_manifest(d, "--port=8080");
        write_policy(d, policy_alg, &d.join("key.pub.pem"));
        std::fs::write(
            d.join("metrics.json"),
            r#"{"stress":{"errorRate":{"value":0.001,"threshold":{"op":"<=","value":0.05}}}}"#,
        )
        .expect("metrics");
        let out = attest(
            d,
            &[
                "--check",
                "unit=echo unit tests pass",
                "--check",
                "stress=echo stressing",
                "--metrics",
                "metrics.json",
                "--env",
                "profile=production",
                "--expires-in",
                "12h",
                "--out",
                "envelope.json",
            ],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).is_empty(),
            "check output must not reach stdout"
        );

        let out = verify(d, "envelope.json", &[]);
        assert_succeeded(&out);
        assert!(
            text(&out.stdout).starts_with("Verified:"),
            "{}",
            text(&out.stdout)
        );

        // Too late: expired.
        let out = verify(d, "envelope.json", &["--now", "2099-01-01T00:00:00Z"]);
        assert_exit_naming(&out, 1, &out.stdout, "Expired");

        // The configuration changed after attesting: drift.
        write_manifest(d, "--port=9090");
        let out = verify(d, "envelope.json", &[]);
        assert_exit_naming(&out, 1, &out.stdout, "ConfigDrift");
    }
}

#[test]
fn a_failing_check_means_no_signature_and_exit_1() {
    let dir = signing_workdir();
    let d = dir.path();
    let out = attest(
        d,
        &[
            "--check",
            "unit=true",
            "--check",
            "e2e=echo failing; exit 3",
            "--check",
            "stress=touch should-not-run",
            "--out",
            "envelope.json",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("\"e2e\"") && stderr.contains("code 3") && stderr.contains("not signing"),
        "{stderr}"
    );
    assert!(!d.join("envelope.json").exists());
    assert!(!d.join("should-not-run").exists());

    // A metric outside its own threshold also refuses.
    std::fs::write(
        d.join("m.json"),
        r#"{"unit":{"errorRate":{"value":0.5,"threshold":{"op":"<","value":0.1}}}}"#,
    )
    .expect("m");
    let out = attest(
        d,
        &[
            "--check",
            "unit=true",
            "--metrics",
            "m.json",
            "--out",
            "e.json",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(!d.join("e.json").exists());
}

#[test]
fn attest_refuses_unpinned_images_before_running_checks() {
    let dir = signing_workdir();
    let d = dir.path();
    let manifest = d.join("sd.yaml");
    let yaml = std::fs::read_to_string(&manifest)
        .expect("read")
        .replace(&format!(":1.0@sha256:{APP}"), ":1.0");
    std::fs::write(&manifest, yaml).expect("write");
    let out = attest(d, &["--check", "unit=touch ran"]);
    assert_exit_naming(&out, 2, &out.stderr, "not pinned");
    assert!(!d.join("ran").exists());
}

#[test]
fn configmap_output_and_tampering() {
    let dir = signing_workdir();
    let d = dir.path();
    write_policy(d, "ecdsa-p256-sha256", &d.join("key.pub.pem"));
    std::fs::write(d.join("m.json"), r#"{"stress":{"errorRate":0.001}}"#).expect("m");
    let out = attest(
        d,
        &[
            "--check",
            "unit=true",
            "--check",
            "stress=true",
            "--metrics",
            "m.json",
            "--env",
            "profile=production",
            "--configmap",
            "web-attestation",
            "--namespace",
            "prod",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cm = text(&out.stdout);
    assert!(
        cm.contains("kind: ConfigMap") && cm.contains("attestation.json"),
        "{cm}"
    );
    std::fs::write(d.join("cm.yaml"), &cm).expect("cm");
    let out = verify(d, "cm.yaml", &[]);
    assert_succeeded(&out);

    // Tamper: replace the payload with another statement signed by nobody.
    let value: serde_yaml::Value = serde_yaml::from_str(&cm).expect("yaml");
    let envelope = value["data"]["attestation.json"]
        .as_str()
        .expect("envelope")
        .to_owned();
    let mut json: serde_json::Value = serde_json::from_str(&envelope).expect("json");
    json["payloadType"] = serde_json::Value::String("application/vnd.in-toto+jsoN".into());
    std::fs::write(d.join("tampered.json"), json.to_string()).expect("write");
    let out = verify(d, "tampered.json", &[]);
    assert_exit_naming(&out, 1, &out.stdout, "BadSignature");

    // No envelope at all (and none inline in the manifest).
    let out = run(
        &["verify", "--policy", "policy.yaml", "--manifest", "sd.yaml"],
        d,
    );
    assert_exit_naming(&out, 1, &out.stdout, "Missing");
}

#[test]
fn interop_fixtures_verify_through_the_cli() {
    let f = fixtures();
    let out = run(&["config-digest", "--manifest", "sd.yaml"], &f);
    assert!(out.status.success());
    let statement: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.join("statement.json")).expect("statement"))
            .expect("json");
    let attested = statement["predicate"]["configDigest"]["sha256"]
        .as_str()
        .expect("digest");
    assert_eq!(text(&out.stdout).trim(), format!("sha256:{attested}"));
    for envelope in [
        "cosign-envelope.json",
        "securesystemslib-ed25519-envelope.json",
        "securesystemslib-ecdsa-envelope.json",
    ] {
        let out = verify(&f, envelope, &["--now", "2026-01-16T10:00:00Z"]);
        assert!(
            out.status.success(),
            "{envelope}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
}

#[test]
fn openssl_reads_the_generated_keys() {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("openssl not installed; skipping");
        return;
    }
    for algorithm in ["ecdsa-p256", "ed25519"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        assert!(
            run(
                &[
                    "keygen",
                    "--algorithm",
                    algorithm,
                    "--out-private",
                    "k.pem",
                    "--out-public",
                    "k.pub.pem"
                ],
                d
            )
            .status
            .success()
        );
        let public = Command::new("openssl")
            .args(["pkey", "-pubin", "-in", "k.pub.pem", "-noout"])
            .current_dir(d)
            .output()
            .expect("openssl");
        assert!(
            public.status.success(),
            "{algorithm}: {}",
            text(&public.stderr)
        );
        let derived = Command::new("openssl")
            .args(["pkey", "-in", "k.pem", "-pubout"])
            .current_dir(d)
            .output()
            .expect("openssl");
        assert!(
            derived.status.success(),
            "{algorithm}: {}",
            text(&derived.stderr)
        );
        assert_eq!(
            text(&derived.stdout),
            std::fs::read_to_string(d.join("k.pub.pem")).expect("pub")
        );
    }
}

#[test]
fn a_spec_that_adopts_a_deployment_is_attested_as_that_deployments_template() {
    let d = tempfile::tempdir().expect("tempdir");
    write_manifest(d.path(), "");
    let direct = run(&["config-digest", "--manifest", "sd.yaml"], d.path());
    assert_succeeded(&direct);
    let adopting = r#"apiVersion: safedeploy.dev/v1alpha1
kind: SafeDeployment
metadata: {name: web, namespace: prod}
spec:
  selector: {matchLabels: {app: web}}
  workloadRef: {kind: Deployment, name: web}
  strategy: {canary: {steps: [{setWeight: 50}]}}
"#;
    let deployment = format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: prod}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: registry.example.com/team/app:1.0@sha256:{APP}
        args: []
"#
    );
    std::fs::write(
        d.path().join("adopt.yaml"),
        format!("{adopting}---\n{deployment}"),
    )
    .expect("write");
    let adopted = run(&["config-digest", "--manifest", "adopt.yaml"], d.path());
    assert_succeeded(&adopted);
    assert_eq!(text(&adopted.stdout), text(&direct.stdout));
    // Without the Deployment's manifest there is nothing to attest: the error says what to add.
    std::fs::write(d.path().join("alone.yaml"), adopting).expect("write");
    let alone = run(&["config-digest", "--manifest", "alone.yaml"], d.path());
    assert!(!alone.status.success());
    assert!(
        text(&alone.stderr).contains("put that Deployment's manifest in the same file"),
        "{}",
        text(&alone.stderr)
    );
}
