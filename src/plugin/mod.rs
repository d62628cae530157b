//! The kubectl plugin verbs (`kubectl safedeploy get|status|promote|abort|retry|rollback|history|
//! pause|resume|break-glass`): thin clients that read status and write request annotations, which the
//! controller carries out exactly once and records in the history. Each request names its
//! requester (`<token>@<username>`, the username the API server reports for these credentials),
//! which the chart's governance policy checks; a denial shows the API server's own message.

mod render;

use std::process::ExitCode;

use futures::StreamExt;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::api::duration::SpecDuration;
use crate::api::labels::{
    ANNOTATION_PAUSED, REQUEST_ABORT, REQUEST_BREAK_GLASS, REQUEST_BREAK_GLASS_REASON,
    REQUEST_PROMOTE, REQUEST_PROMOTE_FULL, REQUEST_RETRY, REQUEST_ROLLBACK, with_requester,
};
use crate::api::{SafeDeployment, SafeDeploymentRecord};
use crate::core::freeze::MAX_BREAK_GLASS_REASON_LENGTH;

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
    /// Let the rollout move during a freeze window, for a while, under your name (needs the
    /// verb create on safedeployments/break-glass; recorded in the history with the reason).
    #[command(name = "break-glass")]
    BreakGlass {
        /// SafeDeployment name.
        name: String,
        /// Why (required; recorded in the history and in an Event).
        #[arg(long)]
        reason: String,
        /// How long the override lasts, such as 1h or 30m (at most the policy's maxBreakGlass).
        #[arg(long = "for", default_value = "1h")]
        duration: String,
        /// Namespace.
        #[command(flatten)]
        target: Target,
    },
}

/// Errors of the plugin verbs.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The API server refused the request (RBAC, an admission policy, a missing object): its
    /// own message says why and, for the governance policies, what to do instead.
    #[error("the API server refused {action}: {message}")]
    Refused {
        /// What was asked, e.g. "promote of SafeDeployment shop/web".
        action: String,
        /// The API server's message.
        message: String,
        /// The API server's HTTP status code (403 for RBAC and admission policies).
        code: u16,
    },
    /// An argument the verb cannot use.
    #[error("{0}")]
    BadArgument(String),
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
    Ok(namespaced(client, target))
}

fn namespaced<K>(client: Client, target: &Target) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as kube::Resource>::DynamicType: Default,
{
    match &target.namespace {
        Some(namespace) => Api::namespaced(client, namespace),
        None => Api::default_namespaced(client),
    }
}

/// The durable records of SafeDeployment `name`, oldest first; None when the user may not list
/// them (or the CRD is not installed).
async fn records(client: Client, target: &Target, name: &str) -> Option<Vec<SafeDeploymentRecord>> {
    let api: Api<SafeDeploymentRecord> = namespaced(client, target);
    let mut records: Vec<SafeDeploymentRecord> = api
        .list(&ListParams::default())
        .await
        .ok()?
        .items
        .into_iter()
        .filter(|r| r.spec.safe_deployment == name)
        .collect();
    records.sort_by(|a, b| a.spec.finished_at.cmp(&b.spec.finished_at));
    Some(records)
}

/// A unique token, so the controller carries out each request once.
fn token() -> String {
    jiff::Timestamp::now().as_nanosecond().to_string()
}

/// The username the API server knows these credentials by (`kubectl auth whoami`); None when
/// the server cannot say (a SelfSubjectReview needs Kubernetes 1.28).
async fn whoami(client: Client) -> Option<String> {
    let reviews: Api<SelfSubjectReview> = Api::all(client);
    let review = SelfSubjectReview::default();
    let created = reviews.create(&PostParams::default(), &review).await.ok()?;
    created.status?.user_info?.username
}

/// Writes request annotation `key` with `payload` naming its requester, or removes it (`None`).
async fn annotate(
    target: &Target,
    name: &str,
    verb: &str,
    key: &str,
    payload: Option<&str>,
) -> Result<(), PluginError> {
    annotate_with(target, name, verb, key, payload, &[]).await
}

/// [`annotate`], writing the annotations `also` in the same patch (so admission sees them
/// together with the request).
async fn annotate_with(
    target: &Target,
    name: &str,
    verb: &str,
    key: &str,
    payload: Option<&str>,
    also: &[(&str, &str)],
) -> Result<(), PluginError> {
    let api = api(target).await?;
    write_request(&api, name, verb, key, payload, also).await
}

/// An action a user asks the controller for, as the verbs (and the dashboard) write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionRequest {
    /// Promote past the current pause or analysis step (`full`: past every step).
    Promote {
        /// Skip every remaining step.
        full: bool,
    },
    /// Revert the canary now.
    Abort,
    /// Let a rejected revision roll out again.
    Retry,
    /// Make a recorded revision stable again.
    Rollback {
        /// The revision number (see `history`).
        to_revision: i64,
    },
}

impl ActionRequest {
    /// The verb's name, for messages.
    pub fn verb(&self) -> &'static str {
        match self {
            ActionRequest::Promote { full: false } => "promote",
            ActionRequest::Promote { full: true } => "promote --full",
            ActionRequest::Abort => "abort",
            ActionRequest::Retry => "retry",
            ActionRequest::Rollback { .. } => "rollback",
        }
    }
}

/// Writes the request annotation of `request` on SafeDeployment `name` with the credentials of
/// `api`'s client, naming its requester: what `kubectl safedeploy promote|abort|retry|rollback`
/// does, for any caller that holds the user's client (the dashboard).
pub async fn send_request(
    api: &Api<SafeDeployment>,
    name: &str,
    request: ActionRequest,
) -> Result<(), PluginError> {
    let (key, payload) = match request {
        ActionRequest::Promote { full: false } => (REQUEST_PROMOTE, token()),
        ActionRequest::Promote { full: true } => (REQUEST_PROMOTE_FULL, token()),
        ActionRequest::Abort => (REQUEST_ABORT, token()),
        ActionRequest::Retry => (REQUEST_RETRY, token()),
        ActionRequest::Rollback { to_revision } => {
            (REQUEST_ROLLBACK, format!("{to_revision}/{}", token()))
        }
    };
    write_request(api, name, request.verb(), key, Some(&payload), &[]).await
}

async fn write_request(
    api: &Api<SafeDeployment>,
    name: &str,
    verb: &str,
    key: &str,
    payload: Option<&str>,
    also: &[(&str, &str)],
) -> Result<(), PluginError> {
    let value = match payload {
        Some(payload) => match whoami(api.clone().into_client()).await {
            Some(user) => Some(with_requester(payload, &user)),
            None => Some(payload.to_string()),
        },
        None => None,
    };
    let mut annotations = serde_json::Map::new();
    annotations.insert(key.to_string(), json!(value));
    for (key, value) in also {
        annotations.insert((*key).to_string(), json!(value));
    }
    let patch = json!({"metadata": {"annotations": annotations}});
    let params = PatchParams {
        field_manager: Some(PLUGIN_FIELD_MANAGER.into()),
        ..Default::default()
    };
    match api.patch(name, &params, &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => Err(PluginError::Refused {
            action: format!(
                "{verb} of SafeDeployment {}/{name}",
                api.namespace().unwrap_or("(default)")
            ),
            message: status.message.clone(),
            code: status.code,
        }),
        Err(error) => Err(error.into()),
    }
}

/// The break-glass annotations' payload and reason: when the override ends (`duration` from
/// `now`, whole seconds, RFC 3339) and the trimmed reason, or why the arguments are unusable.
fn break_glass_request(
    reason: &str,
    duration: &str,
    now: jiff::Timestamp,
) -> Result<(String, String), PluginError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(PluginError::BadArgument(
            "--reason must say why the freeze is broken".into(),
        ));
    }
    if reason.len() > MAX_BREAK_GLASS_REASON_LENGTH {
        return Err(PluginError::BadArgument(format!(
            "--reason is {} bytes long; at most {MAX_BREAK_GLASS_REASON_LENGTH} are recorded",
            reason.len()
        )));
    }
    let length = SpecDuration::from(duration)
        .parse()
        .ok()
        .filter(|d| d.as_secs() > 0)
        .ok_or_else(|| {
            PluginError::BadArgument(format!(
                "--for {duration:?} is not a duration such as 1h or 30m"
            ))
        })?;
    let seconds = i64::try_from(length.as_secs()).unwrap_or(i64::MAX);
    let expires = jiff::Timestamp::from_second(now.as_second().saturating_add(seconds))
        .map_err(|_| PluginError::BadArgument(format!("--for {duration:?} is too long")))?;
    Ok((expires.to_string(), reason.to_string()))
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
            // The records outlive the SafeDeployment: show them even when it is gone.
            let sd = api.get_opt(&name).await?;
            let records = records(api.clone().into_client(), &target, &name).await;
            if sd.is_none() && records.as_ref().is_none_or(Vec::is_empty) {
                // Neither: the API server's "not found".
                api.get(&name).await?;
            }
            if let Some(sd) = &sd {
                print!("{}", render::history(sd));
            }
            match &records {
                Some(records) => print!("{}", render::records(records)),
                None => println!(
                    "\n(durable records: not shown; listing safedeploymentrecords is not allowed here)"
                ),
            }
        }
        PluginCommand::Promote { name, full, target } => {
            send_request(&api(&target).await?, &name, ActionRequest::Promote { full }).await?;
            println!("safedeployment {name}: promotion requested");
        }
        PluginCommand::Abort { name, target } => {
            send_request(&api(&target).await?, &name, ActionRequest::Abort).await?;
            println!("safedeployment {name}: abort requested");
        }
        PluginCommand::Retry { name, target } => {
            send_request(&api(&target).await?, &name, ActionRequest::Retry).await?;
            println!("safedeployment {name}: retry requested");
        }
        PluginCommand::Rollback {
            name,
            to_revision,
            target,
        } => {
            let request = ActionRequest::Rollback { to_revision };
            send_request(&api(&target).await?, &name, request).await?;
            println!("safedeployment {name}: rollback to revision {to_revision} requested");
        }
        PluginCommand::Pause { name, target } => {
            annotate(&target, &name, "pause", ANNOTATION_PAUSED, Some("true")).await?;
            println!("safedeployment {name}: paused");
        }
        PluginCommand::Resume { name, target } => {
            // "false@<requester>", not a removal: the resume names who asked for it.
            annotate(&target, &name, "resume", ANNOTATION_PAUSED, Some("false")).await?;
            println!("safedeployment {name}: resumed");
        }
        PluginCommand::BreakGlass {
            name,
            reason,
            duration,
            target,
        } => {
            let (expires, reason) =
                break_glass_request(&reason, &duration, jiff::Timestamp::now())?;
            annotate_with(
                &target,
                &name,
                "break-glass",
                REQUEST_BREAK_GLASS,
                Some(&expires),
                &[(REQUEST_BREAK_GLASS_REASON, &reason)],
            )
            .await?;
            println!(
                "safedeployment {name}: break-glass until {expires} requested (the operator honours it during a freeze if the policy's maxBreakGlass allows)"
            );
        }
    }
    Ok(())
}

/// The object name, for messages.
pub fn display_name(sd: &SafeDeployment) -> String {
    format!("{}/{}", sd.namespace().unwrap_or_default(), sd.name_any())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_break_glass_lasts_whole_seconds_and_needs_a_bounded_reason() {
        let now: jiff::Timestamp = "2026-06-10T12:00:00.5Z".parse().unwrap();
        let (expires, reason) = break_glass_request(" hotfix ", "90m", now).unwrap();
        assert_eq!(expires, "2026-06-10T13:30:00Z");
        assert_eq!(reason, "hotfix");
        assert!(break_glass_request("  ", "1h", now).is_err());
        let long = "x".repeat(MAX_BREAK_GLASS_REASON_LENGTH + 1);
        assert!(break_glass_request(&long, "1h", now).is_err());
        assert!(break_glass_request("hotfix", "soon", now).is_err());
        assert!(break_glass_request("hotfix", "0s", now).is_err());
    }
}
