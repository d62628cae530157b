//! `safedeploy keygen`: a signing key pair (P-256 or Ed25519) in PEM.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{CliError, fail, other, write};
use crate::api::policy::KeyAlgorithm;
use crate::attest::keys::{SigningKey, pem_encode};

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

/// Runs `keygen`.
pub fn run(args: KeygenArgs) -> ExitCode {
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
