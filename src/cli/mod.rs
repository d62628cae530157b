//! The command line of the `safedeploy` binary: one subcommand per job (controller, CRD output,
//! attestation tools, replay, conversion from other tools, kubectl plugin verbs, the test metrics
//! emitter) and the dispatch to each.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod attest;
pub mod convert;
pub mod dashboard;
pub mod replay;

/// `safedeploy`: attested, health-gated canary rollouts for Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "safedeploy", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Every job of the binary.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator (the controller).
    Controller(crate::controller::ControllerArgs),
    /// Print the CustomResourceDefinitions generated from the Rust types, as YAML.
    Crds,
    /// Make a signing key pair (P-256 or Ed25519) in PEM.
    Keygen(attest::keygen::KeygenArgs),
    /// Run local validation checks and, only if all pass, sign a local-validation attestation.
    Attest(attest::sign::AttestArgs),
    /// Verify an attestation offline against a policy file, on the controller's code path.
    Verify(attest::verify::VerifyArgs),
    /// Print the configuration digest of a SafeDeployment manifest, as the attestation binds it.
    ConfigDigest(attest::config_digest::ConfigDigestArgs),
    /// Replay a SafeDeployment's analyses and rollout decisions on recorded metrics (a
    /// Prometheus time range or a recording), and print what would have happened.
    Replay(replay::ReplayArgs),
    /// Convert another tool's rollout manifest (an Argo Rollouts Rollout) to a SafeDeployment.
    Convert(convert::ConvertArgs),
    /// Serve a web dashboard of the rollouts on this machine, acting with your kubeconfig's
    /// credentials: timelines, metric plots, revisions, and the actions your RBAC allows.
    Dashboard(dashboard::DashboardArgs),
    /// kubectl plugin verbs (get, status, promote, abort, retry, rollback, history, pause, resume,
    /// break-glass).
    #[command(flatten)]
    Plugin(crate::plugin::PluginCommand),
    /// A small HTTP service exporting per-version request metrics whose error ratio and latency
    /// can be changed at run time (for tests and the demo).
    #[command(hide = true)]
    Emitter(crate::emitter::EmitterArgs),
}

/// Runs the chosen subcommand and turns its outcome into the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Controller(args) => report(crate::controller::run(args).await),
        Command::Crds => report(crate::api::print_crds()),
        Command::Keygen(args) => attest::keygen::run(args),
        Command::Attest(args) => attest::sign::run(args).await,
        Command::Verify(args) => attest::verify::run(args),
        Command::ConfigDigest(args) => attest::config_digest::run(args),
        Command::Replay(args) => replay::run(args).await,
        Command::Convert(args) => convert::run(args),
        Command::Dashboard(args) => dashboard::run(args).await,
        Command::Plugin(command) => crate::plugin::run(command).await,
        Command::Emitter(args) => report(crate::emitter::run(args).await),
    }
}

fn report<E: std::fmt::Display>(outcome: Result<(), E>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("safedeploy: {error}");
            ExitCode::FAILURE
        }
    }
}
