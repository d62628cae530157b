//! The kubectl plugin verbs (`kubectl safedeploy get|status|promote|abort|retry|rollback|history|
//! pause|resume`): thin clients that read status and write request annotations, which the
//! controller carries out exactly once and records in the history.

mod render;

use std::process::ExitCode;

use futures::StreamExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::api::SafeDeployment;
use crate::api::labels::{
    ANNOTATION_PAUSED, REQUEST_ABORT, REQUEST_PROMOTE, REQUEST_PROMOTE_FULL, REQUEST_RETRY,
    REQUEST_ROLLBACK,
};

/// The field manager of the plugin's writes.
pub const PLUGIN_FIELD_MANAGER: &str = "kubectl-safedeploy";

/// Options every verb takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// Namespace (default: the kubeconfig's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

/// The plugin verbs.
#[derive(Debug, clap::Subcommand)]
pub enum PluginCommand {
    /// List SafeDeployments with phase, revisions, weight and step.
    Get {
        /// Only this one.
        name: Option<String>,
        /// Namespace.
        #[command(flatten)]
        target: Target,
    },
    /// Show a rollout: steps, weights, each signal against its thresholds, attestation.
    Status {
        /// SafeDeployment name.
        name: String,
        /// Keep showing it as it changes.
        #[arg(short, long)]
        watch: bool,
        /// Namespace.
        #[command(flatten)]
        target: Target,
    },
    /// Show the rollout history.
    History {
        /// SafeDeployment name.
        name: String,
        /// Namespace.
        #[command(flatten)]
        target: Target,
    },
    /// Promote past the current pause or analysis step (`--full`: past every step).
    Promote {
        /// SafeDeployment name.
        name: String,
        /// Skip every remaining step.
        #[arg(long)]
        full: bool,
        /// Namespace.
        #[command(flatten)]
        target: Target,
    },
    /// Revert the canary now.
    Abort {
        /// SafeDeployment name.
        name: String,
        /// Namespace.
        #[command(flatten)]
        target: Target,
    },
    /// Let a rejected revision roll out again.
    Retry {
        /// SafeDeployment name.
        name: String,
        /// Namespace.
        #[command(flatten)]
        target: Target,
    },
    /// Scale a recorded revision back up and make it stable.
    Rollback {
        /// SafeDeployment name.
        name: String,
        /// Revision number (see `history`).
        #[arg(long = "to-revision")]
        to_revision: i64,
        /// Namespace.
        #[command(flatten)]
        target: Target,
    },
    /// Hold the rollout at its current step.
    Pause {
        /// SafeDeployment name.
        name: String,
        /// Namespace.
        #[command(flatten)]
        target: Target,
    },
    /// Let a paused rollout go on.
    Resume {
        /// SafeDeployment name.
        name: String,
        /// Namespace.
        #[command(flatten)]
        target: Target,
    },
}

/// Errors of the plugin verbs.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// An API call failed.
    #[error("{0}")]
    Kube(#[from] kube::Error),
    /// The watch ended with an error.
    #[error("watch failed: {0}")]
    Watch(#[from] watcher::Error),
}

/// Runs a plugin verb.
pub async fn run(command: PluginCommand) -> ExitCode {
    match execute(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kubectl-safedeploy: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn api(target: &Target) -> Result<Api<SafeDeployment>, PluginError> {
    let client = Client::try_default().await?;
    Ok(match &target.namespace {
        Some(namespace) => Api::namespaced(client, namespace),
        None => Api::default_namespaced(client),
    })
}

/// A unique token, so the controller carries out each request once.
fn token() -> String {
    jiff::Timestamp::now().as_nanosecond().to_string()
}

async fn annotate(
    target: &Target,
    name: &str,
    key: &str,
    value: Option<String>,
) -> Result<(), PluginError> {
    let api = api(target).await?;
    let patch = json!({"metadata": {"annotations": {key: value}}});
    let params = PatchParams {
        field_manager: Some(PLUGIN_FIELD_MANAGER.into()),
        ..Default::default()
    };
    api.patch(name, &params, &Patch::Merge(&patch)).await?;
    Ok(())
}

async fn execute(command: PluginCommand) -> Result<(), PluginError> {
    match command {
        PluginCommand::Get { name, target } => {
            let api = api(&target).await?;
            let items = match name {
                Some(name) => vec![api.get(&name).await?],
                None => api.list(&ListParams::default()).await?.items,
            };
            print!("{}", render::table(&items));
        }
        PluginCommand::Status {
            name,
            watch,
            target,
        } => {
            let api = api(&target).await?;
            if !watch {
                print!("{}", render::status(&api.get(&name).await?));
                return Ok(());
            }
            let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
            let mut stream = watcher(api, config)
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(sd) = stream.next().await {
                // Clear the screen and redraw: a live view in any terminal.
                print!("\x1b[2J\x1b[H{}", render::status(&sd?));
            }
        }
        PluginCommand::History { name, target } => {
            let api = api(&target).await?;
            print!("{}", render::history(&api.get(&name).await?));
        }
        PluginCommand::Promote { name, full, target } => {
            let key = if full {
                REQUEST_PROMOTE_FULL
            } else {
                REQUEST_PROMOTE
            };
            annotate(&target, &name, key, Some(token())).await?;
            println!("safedeployment {name}: promotion requested");
        }
        PluginCommand::Abort { name, target } => {
            annotate(&target, &name, REQUEST_ABORT, Some(token())).await?;
            println!("safedeployment {name}: abort requested");
        }
        PluginCommand::Retry { name, target } => {
            annotate(&target, &name, REQUEST_RETRY, Some(token())).await?;
            println!("safedeployment {name}: retry requested");
        }
        PluginCommand::Rollback {
            name,
            to_revision,
            target,
        } => {
            let value = format!("{to_revision}/{}", token());
            annotate(&target, &name, REQUEST_ROLLBACK, Some(value)).await?;
            println!("safedeployment {name}: rollback to revision {to_revision} requested");
        }
        PluginCommand::Pause { name, target } => {
            annotate(&target, &name, ANNOTATION_PAUSED, Some("true".into())).await?;
            println!("safedeployment {name}: paused");
        }
        PluginCommand::Resume { name, target } => {
            annotate(&target, &name, ANNOTATION_PAUSED, None).await?;
            println!("safedeployment {name}: resumed");
        }
    }
    Ok(())
}

/// The object name, for messages.
pub fn display_name(sd: &SafeDeployment) -> String {
    format!("{}/{}", sd.namespace().unwrap_or_default(), sd.name_any())
}
