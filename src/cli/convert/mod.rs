//! `safedeploy convert`: manifests of other rollout tools as SafeDeployments. Today one source,
//! Argo Rollouts (`convert argo-rollout`): the Rollout's steps, analyses (its AnalysisTemplates,
//! given in the same input), traffic routing through the Gateway API plugin, and its pod
//! template. The result is printed as YAML; what changed meaning on the way is printed as notes
//! on stderr, and what has no equivalent makes the command fail with every such field named.
//!
//! Exit codes: `0` converted (notes may follow); `1` something does not convert (nothing is
//! printed on stdout); `2` the input could not be read.

pub mod argo;
pub mod condition;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Deserialize;
use serde_json::Value;

/// The largest input read (bytes).
const MAX_INPUT_BYTES: u64 = 4 * 1024 * 1024;

/// Arguments of `safedeploy convert`.
#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// What to convert from.
    #[command(subcommand)]
    pub source: ConvertSource,
}

/// The tools `convert` reads.
#[derive(Debug, clap::Subcommand)]
pub enum ConvertSource {
    /// An Argo Rollouts Rollout and the AnalysisTemplates it uses (one YAML stream).
    ArgoRollout {
        /// The YAML file (`-` for stdin): the Rollout and its AnalysisTemplates.
        #[arg(long, short = 'f', value_name = "FILE")]
        file: PathBuf,
    },
}

/// Runs `safedeploy convert`.
pub fn run(args: ConvertArgs) -> ExitCode {
    let ConvertSource::ArgoRollout { file } = args.source;
    let documents = match read_documents(&file) {
        Ok(documents) => documents,
        Err(error) => {
            eprintln!("safedeploy convert: {error}");
            return ExitCode::from(2);
        }
    };
    match argo::convert(&documents) {
        Ok(converted) => {
            let mut text = String::new();
            for c in &converted {
                match serde_yaml::to_string(&c.manifest) {
                    Ok(yaml) => {
                        text.push_str("---\n");
                        text.push_str(&yaml);
                    }
                    Err(error) => {
                        eprintln!("safedeploy convert: {error}");
                        return ExitCode::from(2);
                    }
                }
                let name = c.manifest["metadata"]["name"].as_str().unwrap_or("?");
                for note in &c.notes {
                    eprintln!("note: {name}: {note}");
                }
            }
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for error in errors {
                eprintln!("error: {error}");
            }
            eprintln!("safedeploy convert: nothing was converted");
            ExitCode::FAILURE
        }
    }
}

fn read_documents(file: &PathBuf) -> Result<Vec<Value>, String> {
    let mut text = String::new();
    let read = if file.as_os_str() == "-" {
        std::io::stdin()
            .take(MAX_INPUT_BYTES + 1)
            .read_to_string(&mut text)
    } else {
        std::fs::File::open(file)
            .and_then(|f| f.take(MAX_INPUT_BYTES + 1).read_to_string(&mut text))
    };
    read.map_err(|error| format!("cannot read {}: {error}", file.display()))?;
    if text.len() as u64 > MAX_INPUT_BYTES {
        return Err(format!(
            "{} is larger than {MAX_INPUT_BYTES} bytes",
            file.display()
        ));
    }
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value = Value::deserialize(document)
            .map_err(|error| format!("{} is not YAML: {error}", file.display()))?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}
