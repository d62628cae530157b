//! One reconcile, as a named pipeline: [`dereference`] gathers the observation (caches, the
//! configuration and attestation reads, the analyses as status records them), the pure core's
//! `decide` turns it into a decision (twice when measurements are due: first without them, so
//! a revert never waits for a metric provider), and [`apply::apply`] carries that out in a
//! crash-safe order (status first, with a resourceVersion precondition, then scaling, deletes,
//! events). A reconcile that fails (an API error) or panics (a bug) is contained
//! to its object: it shows as `Stalled` in that object's status and as a Warning event, and is
//! retried with exponential back-off and jitter, while every other object goes on.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use super::cached::{CachedSafeDeployment, OwnedReplicaSet};
use futures::FutureExt;
use jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use tracing::{info, warn};

use super::error::ReconcileError;
use super::{Context, analysis, apply, attestation, config, observe, policy_gates};
use crate::api::health::PodView;
use crate::api::{SafeDeployment, SafeDeploymentStatus};
use crate::core::revision::Revision;
use crate::core::rollout::{
    AttestationGate, Decision, MAX_REQUEUE, Observation, ReplicaSetView, decide,
};

/// The text of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// Reconciles one SafeDeployment (read whole from its cached form).
pub async fn reconcile(
    cached: Arc<CachedSafeDeployment>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    ctx.metrics.reconciles.inc();
    let sd = match cached.expand() {
        Ok(sd) => sd,
        Err(error) => {
            let error = ReconcileError::from(error);
            crate::telemetry::Metrics::count(&ctx.metrics.reconcile_errors, error.category());
            return Err(error);
        }
    };
    // A panic on one tenant's object must not stop the operator for every tenant: it is caught
    // here, recorded on that object, and retried with back-off like an API error.
    let outcome = match AssertUnwindSafe(reconcile_inner(&sd, &ctx))
        .catch_unwind()
        .await
    {
        // Leadership ended mid-reconcile: stop quietly, the new leader looks at everything.
        Ok(Err(ReconcileError::NotLeader(refused))) => {
            info!(rollout = %sd.name_any(), namespace = ?sd.namespace(), %refused, "reconcile stopped before a write");
            Ok(Action::await_change())
        }
        Ok(outcome) => outcome,
        Err(payload) => Err(ReconcileError::Panicked(panic_message(payload.as_ref()))),
    };
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    match &outcome {
        Ok(_) => ctx.failures.forget(&ObjectRef::from_obj(cached.as_ref())),
        Err(error) => {
            crate::telemetry::Metrics::count(&ctx.metrics.reconcile_errors, error.category());
            if !error.is_conflict() {
                apply::report_failure(&sd, &ctx, error).await;
            }
        }
    }
    outcome
}

/// Retries a failed reconcile after exponential back-off with jitter (a conflict at once).
pub fn error_policy(
    sd: Arc<CachedSafeDeployment>,
    error: &ReconcileError,
    ctx: Arc<Context>,
) -> Action {
    if error.is_conflict() {
        return Action::requeue(super::backoff::CONFLICT_RETRY);
    }
    let failures = ctx.failures.record(ObjectRef::from_obj(sd.as_ref()));
    let wait = super::backoff::retry_delay(failures, super::backoff::jitter());
    warn!(rollout = %sd.name_any(), namespace = ?sd.namespace(), %error, failures, retry_in = ?wait, "reconcile failed; retrying");
    Action::requeue(wait)
}

/// The pipeline: **dereference** (everything the decision needs, from the caches and the few
/// reads it takes, with the analyses as status records them) → **decide** (the pure core) →
/// **apply** (the writes, in the crash-safe order of [`apply`]).
///
/// A revert never waits for a metric provider: the first decision uses only what is already
/// known. If it stops the canary (a health gate, a recorded analysis failure, an abort) it is
/// applied at once; otherwise the due measurements are taken and the decision is made again.
/// While they are taken, the pod cache is watched: a canary that breaches a health gate
/// meanwhile is reverted without waiting for the providers.
async fn reconcile_inner(sd: &SafeDeployment, ctx: &Context) -> Result<Action, ReconcileError> {
    if let Some(action) = not_now(sd, ctx) {
        return Ok(action);
    }
    ctx.metrics.record_first_reconcile(ctx.started.elapsed());
    if ctx
        .own_writes
        .cache_is_behind(&ObjectRef::from_obj(sd), sd.resource_version().as_deref())
    {
        // Decided already, on the object before our own last write: the watch delivers that
        // write next, and its event reconciles again (the wait is only a fallback).
        ctx.metrics.reconciles_deferred.inc();
        return Ok(Action::requeue(super::backoff::CONFLICT_RETRY));
    }
    let namespace = sd.namespace().unwrap_or_default();
    if sd.metadata.deletion_timestamp.is_some() {
        // Only a SafeDeployment with an operator finalizer gets here (see `not_now`). One at
        // a time: each removal is a write of the operator's whole finalizer set, so the next
        // one is taken on the object that write produced.
        if super::finalizers::has(sd, crate::api::routing::ROUTES_FINALIZER) {
            super::routes::release_on_deletion(ctx, sd, &namespace).await?;
            return Ok(Action::await_change());
        }
        let wait = super::adoption::release_on_deletion(ctx, sd, &namespace).await?;
        return Ok(wait.map_or_else(Action::await_change, Action::requeue));
    }
    super::fault::panic_if_asked(&sd.name_any());
    // An adopted Deployment's template is the workload: every stage reads the spec it stands
    // for (the SafeDeployment's spec is never written back).
    let adopted = super::adoption::resolve(ctx, sd, &namespace).await?;
    if let Some(adopted) = adopted.as_ref().filter(|a| !a.marked) {
        // The marks first, then the rollout: the label is what wakes this SafeDeployment when
        // the Deployment changes, and the finalizer hands it back on deletion.
        super::adoption::mark(ctx, sd, &namespace, adopted).await?;
        return Ok(Action::await_change());
    }
    let sd = adopted.as_ref().map_or(sd, |a| &a.effective);
    // Blue-green is read as the canary steps it stands for, by every stage (analyses due,
    // Services, decision); only the status is written back, never the spec.
    let effective = effective_object(sd);
    let sd = effective.as_ref();
    // Moved into this shard: its ReplicaSets and pods come along first, and the decision waits
    // for them (a decision on a half-seen rollout would take the stable for lost).
    if ctx.shard.is_some()
        && super::shard::follow(
            ctx,
            sd,
            &namespace,
            &owned_replica_sets(ctx, &namespace, sd),
        )
        .await?
    {
        return Ok(Action::requeue(SHARD_MOVE_RECHECK));
    }
    let mut rollout = dereference(sd, ctx).await?;
    let first = decide(&rollout.observation(sd));
    let decision = if rollout.analyses.due.is_empty()
        || stops_canary_unpromoted(&rollout.status, &first.status)
    {
        first
    } else {
        match measure_unless_stopped(sd, ctx, &mut rollout).await? {
            Some(stopped) => stopped,
            None => decide(&rollout.observation(sd)),
        }
    };
    // The routes finalizer is on before a weight or header rule is written, and off only once
    // the routes are back at rest.
    let steering = super::routes::plan_steers(decision.traffic.as_ref());
    if steering {
        super::routes::keep_finalizer(ctx, sd, &namespace, true).await?;
    }
    apply::apply(ctx, &rollout.applied(sd), &decision).await?;
    if let Some(adopted) = &adopted {
        super::adoption::scale(
            ctx,
            &namespace,
            adopted,
            &decision.status,
            &rollout.replica_sets,
        )
        .await?;
    }
    // After the status is written: what is announced is always what the cluster shows.
    ctx.notifier.offer(sd, &decision.status);
    if !steering {
        super::routes::keep_finalizer(ctx, sd, &namespace, false).await?;
    }
    // Analysis measurements are timed: look again when the next one is due.
    let wake = match (decision.requeue_after, rollout.analyses.wake) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
    .map(|wake| wake.min(MAX_REQUEUE));
    Ok(wake
        .map(Action::requeue)
        .unwrap_or_else(Action::await_change))
}

/// `sd` with its blue-green strategy filled in as canary steps (`core::rollout::effective_spec`).
/// When a move into this shard was written: the watches bring the relabelled objects in at
/// once; this is the fallback.
const SHARD_MOVE_RECHECK: std::time::Duration = std::time::Duration::from_secs(2);

fn effective_object(sd: &SafeDeployment) -> std::borrow::Cow<'_, SafeDeployment> {
    match crate::core::rollout::effective_spec(&sd.spec, &sd.name_any()) {
        std::borrow::Cow::Borrowed(_) => std::borrow::Cow::Borrowed(sd),
        std::borrow::Cow::Owned(spec) => {
            let mut filled = sd.clone();
            filled.spec = spec;
            std::borrow::Cow::Owned(filled)
        }
    }
}

/// How often the pod cache is looked at while measurements are taken.
const HEALTH_WATCH_PERIOD: std::time::Duration = std::time::Duration::from_millis(250);

/// Whether a decision stops the canary of `before` without promoting it: a revert, an abort
/// or an abandoned canary. No measurement can change such a decision's effect, so it is
/// applied without waiting for one.
fn stops_canary_unpromoted(before: &SafeDeploymentStatus, after: &SafeDeploymentStatus) -> bool {
    before.canary_revision.is_some()
        && after.canary_revision.is_none()
        && after.stable_revision == before.stable_revision
}

/// Takes the due measurements into `rollout` (its status and gates), unless the canary's
/// pods breach a health gate meanwhile: then the measurements are dropped (nothing of them is
/// recorded; they are due again next time) and the decision that stops the canary is returned.
async fn measure_unless_stopped(
    sd: &SafeDeployment,
    ctx: &Context,
    rollout: &mut Dereferenced,
) -> Result<Option<Decision>, ReconcileError> {
    let mut measured = rollout.status.clone();
    let mut waiting_for_jobs = false;
    let outcome = {
        let measuring = analysis::measure(
            sd,
            ctx,
            &mut measured,
            &rollout.analyses.due,
            &rollout.pods,
            &rollout.baseline_pods,
            rollout.now,
        );
        let watching = stopped_by_health(sd, ctx, rollout);
        tokio::select! {
            result = measuring => result.map(|waiting| {
                waiting_for_jobs = waiting;
                None
            }),
            stopped = watching => Ok(Some(stopped)),
        }
    };
    if let Ok(None) = outcome {
        rollout.status = measured;
        // The decision on the measurements is taken now, after the providers answered: its
        // time (a revert's `finishedAt`) must not predate the evidence it acts on.
        rollout.now = Timestamp::now();
        rollout
            .analyses
            .regate(&sd.spec, &rollout.status, rollout.now);
        if waiting_for_jobs {
            // The measurement waiting for its Job is overdue, which would wake at once (and
            // spin): the Job's end wakes this SafeDeployment through the Job watch; look again
            // earlier only for another run, or after the fallback.
            let fallback = super::jobs::JOB_FALLBACK;
            let other = rollout.analyses.wake.filter(|w| *w >= HEALTH_WATCH_PERIOD);
            rollout.analyses.wake = Some(other.map_or(fallback, |w| w.min(fallback)));
        }
    }
    outcome
}

/// Decides again on fresh pods from the cache every [`HEALTH_WATCH_PERIOD`], and returns the
/// first decision that stops the canary (it never returns while the canary goes on).
async fn stopped_by_health(sd: &SafeDeployment, ctx: &Context, rollout: &Dereferenced) -> Decision {
    loop {
        tokio::time::sleep(HEALTH_WATCH_PERIOD).await;
        // The ReplicaSets are read again too: a canary ReplicaSet created just before this
        // reconcile may have reached the cache only now, and its pods count from then on.
        let owned = owned_replica_sets(ctx, &rollout.namespace, sd);
        let (pods, baseline_pods) = pods_of(ctx, &rollout.namespace, &rollout.name, &owned);
        let (replica_sets, baseline_replica_sets) = replica_set_views(&owned);
        let mut observation = rollout.observation(sd);
        observation.pods = &pods;
        observation.baseline_pods = &baseline_pods;
        observation.replica_sets = &replica_sets;
        observation.baseline_replica_sets = &baseline_replica_sets;
        observation.now = Timestamp::now();
        let decision = decide(&observation);
        if stops_canary_unpromoted(&rollout.status, &decision.status) {
            return decision;
        }
    }
}

/// The SafeDeployment's revision pods and fresh-baseline pods, from the pod cache: those of
/// its `owned` ReplicaSets.
fn pods_of(
    ctx: &Context,
    namespace: &str,
    name: &str,
    owned: &[Arc<OwnedReplicaSet>],
) -> (Vec<PodView>, Vec<PodView>) {
    let (baseline_pods, pods): (Vec<_>, Vec<_>) = owned
        .iter()
        .filter_map(|rs| rs.uid.clone())
        // Counted by owner, not by label alone (audit finding 21): a pod anyone labels with
        // this rollout's name and revision must not pass or fail its health gates.
        .flat_map(|uid| ctx.pods.controlled_by(&uid))
        .filter(|pod| pod.namespace.as_deref() == Some(namespace))
        .filter(|pod| pod.rollout.as_deref() == Some(name))
        .filter_map(|pod| Some((pod.baseline, pod.view.clone()?)))
        .partition(|(baseline, _)| *baseline);
    (
        pods.into_iter().map(|(_, pod)| pod).collect(),
        baseline_pods.into_iter().map(|(_, pod)| pod).collect(),
    )
}

/// Why this reconcile does nothing now, if it does not: the object is being deleted (owner
/// references let the garbage collector remove its ReplicaSets; only the routes and adoption
/// finalizers still have work to do), the caches are not synced yet,
/// or this replica is a follower (it keeps its caches warm and is told to look at everything
/// when it becomes the leader).
fn not_now(sd: &SafeDeployment, ctx: &Context) -> Option<Action> {
    let releases = super::finalizers::has(sd, crate::api::routing::ROUTES_FINALIZER)
        || super::finalizers::has(sd, crate::api::adoption::ADOPTION_FINALIZER);
    if sd.metadata.deletion_timestamp.is_some() && !releases {
        return Some(Action::await_change());
    }
    if !ctx.readiness.is_ready() {
        return Some(Action::requeue(std::time::Duration::from_millis(200)));
    }
    if ctx.leader.as_ref().is_some_and(|l| !l.is_leader()) {
        return Some(Action::await_change());
    }
    None
}

/// One rollout as the decision sees it: its pods and ReplicaSets from the caches, its analysis
/// runs brought up to date, the desired revision with its preflight, and the attestation gate.
struct Dereferenced {
    namespace: String,
    name: String,
    now: Timestamp,
    /// The status as read (the apply step writes only a changed status).
    original_status: SafeDeploymentStatus,
    /// The status with the analysis runs in line with what is active now (and, once measured,
    /// advanced by the measurements).
    status: SafeDeploymentStatus,
    pods: Vec<PodView>,
    baseline_pods: Vec<PodView>,
    /// The analyses: due measurements, gates and wake-up.
    analyses: analysis::Recorded,
    owned: Vec<Arc<OwnedReplicaSet>>,
    replica_sets: Vec<ReplicaSetView>,
    baseline_replica_sets: Vec<ReplicaSetView>,
    prepared: config::Prepared,
    attestation: AttestationGate,
    /// The policy's freeze windows and rollout requirements.
    policy_gates: policy_gates::PolicyGates,
    /// The steered Gateway API routes as read (empty without traffic routing).
    routes: Vec<crate::core::routing::RouteObservation>,
}

impl Dereferenced {
    fn observation<'a>(&'a self, sd: &'a SafeDeployment) -> Observation<'a> {
        Observation {
            name: &self.name,
            generation: sd.metadata.generation,
            spec: &sd.spec,
            desired: &self.prepared.revision,
            status: &self.status,
            replica_sets: &self.replica_sets,
            pods: &self.pods,
            baseline_replica_sets: &self.baseline_replica_sets,
            baseline_pods: &self.baseline_pods,
            attestation: self.attestation.clone(),
            preflight: self.prepared.preflight.clone(),
            analyses: self.analyses.gates.clone(),
            requests: observe::requests(sd.annotations()),
            freeze: self.policy_gates.freeze.clone(),
            requirements: self.policy_gates.requirements.clone(),
            routes: &self.routes,
            min_bake_time: self.policy_gates.min_bake_time.clone(),
            now: self.now,
        }
    }

    fn applied<'a>(&'a self, sd: &'a SafeDeployment) -> apply::Applied<'a> {
        apply::Applied {
            sd,
            namespace: &self.namespace,
            status: &self.original_status,
            prepared: &self.prepared,
            owned: &self.owned,
            replica_sets: &self.replica_sets,
            baseline_replica_sets: &self.baseline_replica_sets,
        }
    }
}

/// Gathers what the decision needs. Reads the caches; calls the API server only for the
/// configuration of a revision being rolled out, the preflight's dry run and the attestation.
/// Calls no metric provider: the analyses are taken as status records them (see
/// [`measure_unless_stopped`]).
async fn dereference(sd: &SafeDeployment, ctx: &Context) -> Result<Dereferenced, ReconcileError> {
    let namespace = sd.namespace().ok_or(ReconcileError::NoNamespace)?;
    let name = sd.name_any();
    let original_status = sd.status.clone().unwrap_or_default();
    let now = Timestamp::now();
    let mut status = original_status.clone();
    let owned = owned_replica_sets(ctx, &namespace, sd);
    let (pods, baseline_pods) = pods_of(ctx, &namespace, &name, &owned);
    let analyses = analysis::recorded(&sd.spec, &mut status, now);
    let (replica_sets, baseline_replica_sets) = replica_set_views(&owned);
    // The revision includes the referenced configuration's contents (read only while rolling
    // out), with its preflight.
    let mut prepared = config::prepare(sd, ctx, &original_status, &owned).await?;
    let revision = &prepared.revision;
    let mut refused =
        apply::dry_run_new_replica_sets(sd, ctx, &namespace, revision, &replica_sets).await?;
    // Mirroring matters from a canary on (the first revision has none), checked before it
    // starts.
    if original_status
        .stable_revision
        .as_deref()
        .is_some_and(|stable| stable != revision.hash)
        && original_status.canary_revision.as_deref() != Some(revision.hash.as_str())
    {
        refused.extend(super::routes::mirror_problems(ctx, sd, &namespace).await?);
    }
    if !refused.is_empty() {
        let mut problems = prepared.preflight.clone().err().unwrap_or_default();
        problems.extend(refused);
        prepared.preflight = Err(problems);
    }
    let revision = &prepared.revision;
    let running = replica_sets.iter().any(|rs| rs.revision == revision.hash);
    let attestation = attestation_for(sd, ctx, revision, &status, running).await?;
    let policy_gates = policy_gates::policy_gates(sd, ctx, &namespace, now).await?;
    let routes = super::routes::observe(ctx, sd, &namespace).await?;
    Ok(Dereferenced {
        namespace,
        name,
        now,
        original_status,
        status,
        pods,
        baseline_pods,
        analyses,
        owned,
        replica_sets,
        baseline_replica_sets,
        prepared,
        attestation,
        policy_gates,
        routes,
    })
}

/// The ReplicaSets `sd` controls (owner reference with `controller: true`), from the cache.
fn owned_replica_sets(
    ctx: &Context,
    namespace: &str,
    sd: &SafeDeployment,
) -> Vec<Arc<OwnedReplicaSet>> {
    let Some(uid) = sd.uid() else {
        return Vec::new();
    };
    ctx.replica_sets
        .controlled_by(&uid)
        .into_iter()
        .filter(|rs| rs.namespace.as_deref() == Some(namespace))
        .collect()
}

/// The revision ReplicaSets and, kept apart, the fresh-baseline ReplicaSets (found again by
/// their role label after a restart): a baseline is not a revision and never counts as
/// capacity.
fn replica_set_views(owned: &[Arc<OwnedReplicaSet>]) -> (Vec<ReplicaSetView>, Vec<ReplicaSetView>) {
    (
        owned
            .iter()
            .filter_map(|rs| observe::replica_set_view(rs))
            .collect(),
        owned
            .iter()
            .filter_map(|rs| observe::baseline_replica_set_view(rs))
            .collect(),
    )
}

/// At rest the verdict recorded for the stable revision stands; otherwise the attestation is
/// fetched and verified. "At rest" needs the revision's ReplicaSets to exist (`running`): a
/// status that names a revision stable that never ran here is not trusted.
async fn attestation_for(
    sd: &SafeDeployment,
    ctx: &Context,
    revision: &Revision,
    status: &SafeDeploymentStatus,
    running: bool,
) -> Result<AttestationGate, ReconcileError> {
    let at_rest = running
        && status.stable_revision.as_deref() == Some(revision.hash.as_str())
        && status.canary_revision.is_none();
    if at_rest
        && let Some(previous) = status
            .attestation
            .as_ref()
            .filter(|v| v.revision == revision.hash)
            .and_then(AttestationGate::from_verdict)
    {
        return Ok(previous);
    }
    let gate = attestation::gate(sd, ctx, revision).await?;
    let reason = gate.reason();
    crate::telemetry::Metrics::count(&ctx.metrics.attestation_verdicts, reason);
    Ok(gate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(stable: Option<&str>, canary: Option<&str>) -> SafeDeploymentStatus {
        SafeDeploymentStatus {
            stable_revision: stable.map(str::to_string),
            canary_revision: canary.map(str::to_string),
            ..SafeDeploymentStatus::default()
        }
    }

    #[test]
    fn a_revert_or_abort_stops_the_canary_unpromoted() {
        assert!(stops_canary_unpromoted(
            &status(Some("a"), Some("b")),
            &status(Some("a"), None)
        ));
    }

    #[test]
    fn a_promotion_a_canary_going_on_or_no_canary_is_not_a_stop() {
        // Promoted: the canary became the stable revision.
        assert!(!stops_canary_unpromoted(
            &status(Some("a"), Some("b")),
            &status(Some("b"), None)
        ));
        // Goes on, or superseded by a newer revision: the measurements still matter.
        assert!(!stops_canary_unpromoted(
            &status(Some("a"), Some("b")),
            &status(Some("a"), Some("b"))
        ));
        assert!(!stops_canary_unpromoted(
            &status(Some("a"), Some("b")),
            &status(Some("a"), Some("c"))
        ));
        // At rest, or an initial rollout: there is no canary to stop.
        assert!(!stops_canary_unpromoted(
            &status(Some("a"), None),
            &status(Some("a"), None)
        ));
        assert!(!stops_canary_unpromoted(
            &status(None, None),
            &status(Some("a"), None)
        ));
    }
}
