//! `safedeploy config-digest`: the configuration digest of a SafeDeployment manifest, as an
//! attestation binds it (or the canonical document that is hashed, or the pinned images).

use std::path::PathBuf;
use std::process::ExitCode;

use super::{CliError, fail, other, read_config_objects, read_manifest};
use crate::attest::config;

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

/// Runs `config-digest`.
pub fn run(args: ConfigDigestArgs) -> ExitCode {
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
