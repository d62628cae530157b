//! The pipeline-facing subcommands: `keygen`, `attest`, `verify` and `config-digest`.

use std::process::ExitCode;

/// Arguments of `safedeploy keygen`.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {}

/// Arguments of `safedeploy attest`.
#[derive(Debug, clap::Args)]
pub struct AttestArgs {}

/// Arguments of `safedeploy verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {}

/// Arguments of `safedeploy config-digest`.
#[derive(Debug, clap::Args)]
pub struct ConfigDigestArgs {}

/// Runs `keygen`.
pub fn keygen(_args: KeygenArgs) -> ExitCode {
    eprintln!("safedeploy keygen: not implemented yet");
    ExitCode::FAILURE
}

/// Runs `attest`.
pub async fn attest(_args: AttestArgs) -> ExitCode {
    eprintln!("safedeploy attest: not implemented yet");
    ExitCode::FAILURE
}

/// Runs `verify`.
pub fn verify(_args: VerifyArgs) -> ExitCode {
    eprintln!("safedeploy verify: not implemented yet");
    ExitCode::FAILURE
}

/// Runs `config-digest`.
pub fn config_digest(_args: ConfigDigestArgs) -> ExitCode {
    eprintln!("safedeploy config-digest: not implemented yet");
    ExitCode::FAILURE
}
