//! Record retention: a periodic sweep that deletes the `SafeDeploymentRecord`s older than the
//! `audit.recordRetention` of the policy governing their namespace (the decision is
//! `crate::core::record::retention` / `expired`; this module only does the I/O).
//!
//! Cheap at any number of SafeDeployments: it runs every `--record-sweep-interval-seconds`
//! (10 minutes), not per reconcile; it makes no call at all while no policy in the cache sets a
//! retention; otherwise one metadata list of the Namespaces in scope, and one paged metadata
//! list (500 a page, no spec bodies) of the records of each namespace whose policy sets one.
//! A namespace without a policy, or whose policy sets none, is never listed, so its records are
//! never deleted. Records are not owned by their SafeDeployment, so the records of a deleted one
//! are swept like any other, once they are older than the retention.
//!
//! Each deletion is checked against leadership right before it is sent and carries the record's
//! `uid` as a precondition (a record deleted and recreated under the same name in between is not
//! touched).

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Preconditions};
use tracing::{info, warn};

use super::Context;
use super::leader::NotLeader;
use crate::api::{SafeDeploymentPolicy, SafeDeploymentRecord};
use crate::attest::policy::resolve_policy;
use crate::core::record;

/// The default time between two sweeps.
pub const DEFAULT_SWEEP_INTERVAL_SECONDS: u64 = 600;

/// Records (or Namespaces) read per list request.
const PAGE: u32 = 500;

/// Why a sweep stopped early (the next one starts over).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// An API request failed.
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    /// This replica is not the leader (any more).
    #[error(transparent)]
    NotLeader(#[from] NotLeader),
}

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Namespaces whose policy sets a retention.
    pub namespaces: usize,
    /// Records looked at in them.
    pub examined: usize,
    /// Records deleted.
    pub deleted: usize,
}

/// Starts the sweep: once the caches have synced, then every `interval`, while this replica
/// leads (`scope`: the one namespace of `--namespace`, or every namespace).
pub fn spawn(ctx: Arc<Context>, scope: Option<String>, interval: Duration) {
    let ahead = super::fault::clock_ahead();
    tokio::spawn(async move {
        while !ctx.readiness.is_ready() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if ctx.ensure_leader().is_err() {
                continue;
            }
            let now = Timestamp::now()
                .checked_add(ahead)
                .unwrap_or_else(|_| Timestamp::now());
            match sweep(&ctx, scope.as_deref(), now).await {
                Ok(swept) => info!(
                    namespaces = swept.namespaces,
                    examined = swept.examined,
                    deleted = swept.deleted,
                    "record retention sweep"
                ),
                Err(error) => warn!(%error, "record retention sweep stopped; the next one retries"),
            }
        }
    });
}

/// One sweep at `now`.
async fn sweep(ctx: &Context, scope: Option<&str>, now: Timestamp) -> Result<Swept, SweepError> {
    let mut swept = Swept::default();
    let policies: Vec<Arc<SafeDeploymentPolicy>> = ctx.policies.state();
    if !policies
        .iter()
        .any(|p| record::retention(Some(p.as_ref())).is_some())
    {
        return Ok(swept);
    }
    for (namespace, labels) in namespaces_in_scope(ctx, scope).await? {
        let policy = resolve_policy(&namespace, &labels, policies.iter().map(|p| p.as_ref()));
        let Some(keep) = record::retention(policy) else {
            continue;
        };
        swept.namespaces += 1;
        let (examined, deleted) = sweep_namespace(ctx, &namespace, now, keep).await?;
        swept.examined += examined;
        swept.deleted += deleted;
    }
    Ok(swept)
}

/// The namespaces in scope with their labels (which select the policy).
async fn namespaces_in_scope(
    ctx: &Context,
    scope: Option<&str>,
) -> Result<Vec<(String, std::collections::BTreeMap<String, String>)>, kube::Error> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    if let Some(namespace) = scope {
        let labels = api
            .get_metadata_opt(namespace)
            .await?
            .map(|ns| ns.labels().clone())
            .unwrap_or_default();
        return Ok(vec![(namespace.to_string(), labels)]);
    }
    let mut found = Vec::new();
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = api.list_metadata(&params).await?;
        found.extend(
            page.items
                .iter()
                .map(|ns| (ns.name_any(), ns.labels().clone())),
        );
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(found),
        }
    }
}

/// Deletes the records of `namespace` older than `keep`: (examined, deleted).
async fn sweep_namespace(
    ctx: &Context,
    namespace: &str,
    now: Timestamp,
    keep: Duration,
) -> Result<(usize, usize), SweepError> {
    let api: Api<SafeDeploymentRecord> = Api::namespaced(ctx.client.clone(), namespace);
    let (mut examined, mut deleted) = (0, 0);
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = api.list_metadata(&params).await?;
        for meta in &page.items {
            examined += 1;
            let created = meta.metadata.creation_timestamp.as_ref().map(|t| t.0);
            if meta.metadata.deletion_timestamp.is_some() || !record::expired(created, now, keep) {
                continue;
            }
            let name = meta.name_any();
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: meta.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            ctx.ensure_leader()?;
            match api.delete(&name, &params).await {
                Ok(_) => {
                    deleted += 1;
                    info!(%namespace, record = %name, retention = ?keep, "record past its retention deleted");
                }
                // Gone already, or replaced by a newer record of the same name.
                Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
                Err(error) => return Err(error.into()),
            }
        }
        match page.metadata.continue_.clone().filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok((examined, deleted)),
        }
    }
}
