//! Replica arithmetic: the weight in force, the canary's size, what each `(revision, component)`
//! is scaled to with ready capacity kept at `replicas - maxUnavailable`, and the fresh baseline.
//! The counterpart of Argo Rollouts' `utils/replicaset/canary.go`.

use std::collections::BTreeMap;

use super::{Planner, ScaleAction};
use crate::api::labels::{LABEL_NAME, LABEL_ROLE, ROLE_BASELINE};
use crate::api::{BaselineMode, BaselineStatus, CanaryStep, LabelSelectorSpec};
use crate::core::revision::baseline_selector;

/// How long, with traffic routing, a revision the routes stopped sending to keeps its pods
/// (Argo Rollouts' `abortScaleDownDelaySeconds` / `scaleDownDelaySeconds` serve the same end,
/// 30 s by default there): long enough for a Gateway to load the new weights.
pub const ROUTED_DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// How long after a rollout finished the routes may take to show what it wrote before its
/// drain is counted from the finish instead.
pub const ROUTE_SETTLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

impl Planner<'_> {
    pub(super) fn max_unavailable(&self) -> i32 {
        self.obs
            .spec
            .strategy
            .canary
            .max_unavailable
            .unwrap_or(0)
            .max(0)
    }

    /// Sets the size of `(revision, component)`. Only the desired revision's ReplicaSets can be
    /// created; a component another revision does not have (one added by the new spec) is
    /// skipped there.
    pub(super) fn target(&mut self, revision: &str, component: &str, replicas: i32) {
        if revision != self.obs.desired.hash && self.replicas_of(revision, component).is_none() {
            return;
        }
        self.targets
            .insert((revision.to_string(), component.to_string()), replicas);
    }

    /// Stable pods a component keeps until promotion. With several coupled components every
    /// component keeps at least one stable pod through the canary steps (a one-replica
    /// component would otherwise be entirely on the new revision at the first step) and through
    /// promotion until every component's new pods are Ready; then all switch in one decision.
    pub(super) fn stable_floor(&self, replicas: i32) -> i32 {
        if self.obs.desired.components.len() > 1 {
            replicas.min(1)
        } else {
            0
        }
    }

    pub(super) fn any_replica_set_of(&self, revision: &str) -> bool {
        self.obs
            .replica_sets
            .iter()
            .any(|rs| rs.revision == revision)
    }

    pub(super) fn replicas_of(&self, revision: &str, component: &str) -> Option<i32> {
        self.obs
            .replica_sets
            .iter()
            .find(|rs| rs.revision == revision && rs.component == component)
            .map(|rs| rs.replicas)
    }

    pub(super) fn ready_of(&self, revision: &str, component: &str) -> i32 {
        self.obs
            .replica_sets
            .iter()
            .find(|rs| rs.revision == revision && rs.component == component)
            .map(|rs| rs.ready.min(rs.replicas))
            .unwrap_or(0)
    }

    pub(super) fn scale_revision_full(&mut self, revision: &str) {
        for component in self.obs.desired.components.clone() {
            self.target(revision, &component.name, component.replicas);
        }
    }

    /// Scales every revision not in `keep` down, but keeps as many of its Ready pods as ready
    /// capacity needs until the kept revisions' own pods are Ready: per component, the kept
    /// revisions' Ready pods plus those kept here never fall below `replicas - maxUnavailable`.
    /// (A revert of a canary whose pods are Ready — a failed analysis, an abort — would
    /// otherwise drop capacity while the stable scales back up.) Unready pods go at once; the
    /// ReplicaSet controller deletes unready pods first when scaling down.
    pub(super) fn scale_others_to_zero(&mut self, keep: &[String]) {
        let max_unavailable = self.max_unavailable();
        let replicas: BTreeMap<String, i32> = self
            .obs
            .desired
            .components
            .iter()
            .map(|c| (c.name.clone(), c.replicas))
            .collect();
        let mut others: Vec<(String, String, i32)> = self
            .obs
            .replica_sets
            .iter()
            .filter(|rs| !keep.contains(&rs.revision))
            .map(|rs| {
                let ready = rs.ready.min(rs.replicas).max(0);
                (rs.revision.clone(), rs.component.clone(), ready)
            })
            .collect();
        // The most Ready first, so the fewest ReplicaSets keep pods.
        others.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        let mut missing: BTreeMap<String, i32> = BTreeMap::new();
        for (component, n) in &replicas {
            let kept_ready: i32 = keep.iter().map(|r| self.ready_of(r, component)).sum();
            let missing_ready = n.saturating_sub(max_unavailable).saturating_sub(kept_ready);
            missing.insert(component.clone(), missing_ready.max(0));
        }
        for (revision, component, ready) in others {
            let still_missing = missing.get(&component).copied().unwrap_or(0);
            let hold = ready.min(still_missing);
            if let Some(m) = missing.get_mut(&component) {
                *m = m.saturating_sub(hold);
            }
            self.target(&revision, &component, hold);
        }
    }

    /// With traffic routing, the revisions the routes no longer send to (a reverted canary, the
    /// stable a promotion replaced, a superseded canary) keep their pods until the drain has
    /// passed: the Gateway's data plane may not have loaded the new weights yet (Traefik took
    /// 0.4-2 s in tests/routed_dataplane.rs), and a pod that went now would fail the requests
    /// still on their way to it. Runs on the decision's final targets, so every path that
    /// scales a revision down is covered.
    pub(super) fn hold_for_drain(&mut self) {
        if !self.routed() {
            return;
        }
        let Some(remaining) = self.drain_remaining() else {
            return;
        };
        let serving: Vec<String> = [
            self.status.stable_revision.clone(),
            self.status.canary_revision.clone(),
        ]
        .into_iter()
        .flatten()
        .collect();
        let mut holding = false;
        for rs in self.obs.replica_sets {
            if serving.contains(&rs.revision) || rs.replicas <= 0 {
                continue;
            }
            holding = true;
            if let Some(target) = self
                .targets
                .get_mut(&(rs.revision.clone(), rs.component.clone()))
            {
                *target = (*target).max(rs.replicas);
            }
        }
        // Woken when the drain has passed (a route change wakes it earlier).
        if holding {
            self.requeue_in(remaining);
        }
    }

    /// How long the drain of the newest finished rollout still runs (None without one, or
    /// once it has passed). The drain is [`ROUTED_DRAIN`] (blue-green: its scale-down delay)
    /// counted from [`Self::drain_started_at`]; while the routes do not yet show what the
    /// rollout wrote it has not started, and the whole drain remains.
    fn drain_remaining(&self) -> Option<std::time::Duration> {
        let drain = match &self.obs.spec.strategy.blue_green {
            Some(blue_green) => blue_green.scale_down_delay(),
            None => ROUTED_DRAIN,
        };
        self.newest_finish()?;
        let Some(started) = self.drain_started_at() else {
            return Some(drain);
        };
        let elapsed = self.obs.now.duration_since(started);
        let remaining = jiff::SignedDuration::try_from(drain)
            .ok()?
            .checked_sub(elapsed)?;
        if remaining.is_positive() {
            std::time::Duration::try_from(remaining).ok()
        } else {
            None
        }
    }

    /// When the newest rollout finished (its history entry's `finishedAt`).
    fn newest_finish(&self) -> Option<jiff::Timestamp> {
        self.status
            .history
            .iter()
            .filter_map(|e| e.finished_at.as_deref())
            .filter_map(|at| at.parse::<jiff::Timestamp>().ok())
            .max()
    }

    /// When the drain of the newest finished rollout started: the first decision that saw
    /// every steered route carry what the routes are to carry now (recorded in
    /// `status.trafficRouting.drainStartedAt`, so a restarted operator holds exactly as long).
    /// None while they do not; the finish itself once [`ROUTE_SETTLE_LIMIT`] has passed
    /// without that (a deleted route, a Gateway that never answers: the pods do not wait for
    /// ever).
    pub(super) fn drain_started_at(&self) -> Option<jiff::Timestamp> {
        let finished = self.newest_finish()?;
        let recorded = self
            .obs
            .status
            .traffic_routing
            .as_ref()
            .and_then(|t| t.drain_started_at.as_deref())
            .and_then(|at| at.parse::<jiff::Timestamp>().ok())
            .filter(|at| *at >= finished);
        if recorded.is_some() {
            return recorded;
        }
        if self.routes_carry_plan() {
            return Some(self.obs.now);
        }
        let limit = jiff::SignedDuration::try_from(ROUTE_SETTLE_LIMIT).ok()?;
        (self.obs.now.duration_since(finished) >= limit).then_some(finished)
    }

    /// Whether every steered route carries the weight, header and mirror routes this decision plans
    /// (none for the canary when no canary runs).
    fn routes_carry_plan(&self) -> bool {
        let (weight, (headers, mirrors)) = if self.status.canary_revision.is_some() {
            (self.route_weight, self.owned_route_names())
        } else {
            (0, (Vec::new(), Vec::new()))
        };
        self.obs
            .routes
            .iter()
            .all(|r| r.carries(self.obs.name, weight, &headers, &mirrors))
    }

    /// Weight is the replica ratio: the canary gets `ceil(n * w / 100)` pods; the stable one
    /// gives up pods only as canary pods become Ready, so ready capacity never drops below
    /// `n - maxUnavailable`.
    pub(super) fn scale_canary(&mut self, desired: &str, stable: &str, weight: i32) {
        let max_unavailable = self.max_unavailable();
        let routed = self.routed();
        let index = usize::try_from(self.status.current_step_index.unwrap_or(0)).unwrap_or(0);
        for component in self.obs.desired.components.clone() {
            let n = component.replicas;
            if routed {
                // With a router the weight is a share of requests: the canary runs the pods
                // `setCanaryScale` asks for, the stable keeps all of its own.
                let canary = self.routed_pods(n, index, weight);
                self.target(desired, &component.name, canary);
                self.target(stable, &component.name, n);
                self.baseline_target(stable, &component.name, canary);
                continue;
            }
            let canary = canary_replicas(n, weight);
            let canary_ready = self.ready_of(desired, &component.name);
            let floor = n
                .saturating_sub(max_unavailable)
                .saturating_sub(canary_ready);
            let stable_target = n
                .saturating_sub(canary)
                .max(floor)
                .max(self.stable_floor(n))
                .clamp(0, n);
            self.target(desired, &component.name, canary);
            self.target(stable, &component.name, stable_target);
            self.baseline_target(stable, &component.name, canary);
        }
        self.scale_others_to_zero(&[desired.to_string(), stable.to_string()]);
    }

    pub(super) fn fresh_baseline(&self) -> bool {
        self.obs.spec.strategy.canary.baseline == Some(BaselineMode::Fresh)
    }

    /// With `baseline: Fresh`, a baseline of the stable template for `component` at `replicas`
    /// (the canary's size). Only for a component the stable revision has.
    pub(super) fn baseline_target(&mut self, stable: &str, component: &str, replicas: i32) {
        if !self.fresh_baseline() || self.replicas_of(stable, component).is_none() {
            return;
        }
        self.baseline_targets
            .insert((stable.to_string(), component.to_string()), replicas);
    }

    /// Whether the canary has its Ready pods for `weight` and the stable gave up its share.
    pub(super) fn canary_scaled(&self, desired: &str, weight: i32) -> bool {
        let stable = self.status.stable_revision.clone().unwrap_or_default();
        let index = usize::try_from(self.status.current_step_index.unwrap_or(0)).unwrap_or(0);
        self.obs.desired.components.iter().all(|component| {
            let n = component.replicas;
            if self.routed() {
                return self.ready_of(desired, &component.name)
                    >= self.routed_pods(n, index, weight);
            }
            let canary = canary_replicas(n, weight);
            let ready = self.ready_of(desired, &component.name);
            let stable_now = self.replicas_of(&stable, &component.name).unwrap_or(0);
            ready >= canary && stable_now <= n.saturating_sub(canary).max(self.stable_floor(n))
        })
    }

    pub(super) fn all_ready(&self, revision: &str) -> bool {
        self.obs.desired.components.iter().all(|component| {
            self.obs.replica_sets.iter().any(|rs| {
                rs.revision == revision
                    && rs.component == component.name
                    && rs.replicas == component.replicas
                    && rs.ready >= component.replicas
            })
        })
    }

    /// The ReplicaSets to create or scale: the targets that differ from what is observed.
    pub(super) fn scale_actions(&self) -> Vec<ScaleAction> {
        let mut scale: Vec<ScaleAction> = self
            .targets
            .iter()
            .filter(|((revision, component), replicas)| {
                self.obs
                    .replica_sets
                    .iter()
                    .find(|rs| &rs.revision == revision && &rs.component == component)
                    // A missing ReplicaSet is created when it gets pods, and the desired
                    // revision's also at zero (`replicas: 0`), so that it exists and is ready.
                    .map_or(**replicas > 0 || revision == &self.obs.desired.hash, |rs| {
                        rs.replicas != **replicas
                    })
            })
            .map(|((revision, component), replicas)| ScaleAction {
                revision: revision.clone(),
                component: component.clone(),
                replicas: *replicas,
            })
            .collect();
        // Scale-ups (and creations) first, in a stable order: whatever fails halfway, no
        // component gives up old pods before every new ReplicaSet was given its size.
        scale.sort_by_key(|action| {
            let current = self
                .obs
                .replica_sets
                .iter()
                .find(|rs| rs.revision == action.revision && rs.component == action.component)
                .map_or(0, |rs| rs.replicas);
            action.replicas <= current
        });
        scale
    }

    /// The baseline ReplicaSets to create or scale, and those to delete.
    pub(super) fn baseline_actions(&self) -> (Vec<ScaleAction>, Vec<String>) {
        let observed = |revision: &str, component: &str| {
            self.obs
                .baseline_replica_sets
                .iter()
                .find(|rs| rs.revision == revision && rs.component == component)
        };
        let scale = self
            .baseline_targets
            .iter()
            .filter(|((revision, component), replicas)| {
                observed(revision, component).map_or(**replicas > 0, |rs| rs.replicas != **replicas)
            })
            .map(|((revision, component), replicas)| ScaleAction {
                revision: revision.clone(),
                component: component.clone(),
                replicas: *replicas,
            })
            .collect();
        let delete = self
            .obs
            .baseline_replica_sets
            .iter()
            .filter(|rs| {
                !self
                    .baseline_targets
                    .contains_key(&(rs.revision.clone(), rs.component.clone()))
            })
            .map(|rs| rs.name.clone())
            .collect();
        (scale, delete)
    }

    /// The scale subresource's view: `status.replicas`, the pods the revisions' ReplicaSets
    /// were observed sized to (as a Deployment's; mid-canary it can exceed `spec.replicas` while
    /// the stable waits for canary pods to become Ready), and `status.selector`, the workload's
    /// pods in string form.
    pub(super) fn scale_status(&self) -> (i32, String) {
        let replicas = self
            .obs
            .replica_sets
            .iter()
            .fold(0i32, |sum, rs| sum.saturating_add(rs.replicas.max(0)));
        (replicas, scale_selector(self.obs.name, &self.obs.spec.selector))
    }

    /// What status says of the fresh baseline: None when none should run.
    pub(super) fn baseline_status(&self) -> Option<BaselineStatus> {
        let revision = self.baseline_targets.keys().next()?.0.clone();
        let selector = baseline_selector(&revision);
        let replicas: i32 = self.baseline_targets.values().sum();
        let ready: i32 = self
            .baseline_targets
            .iter()
            .filter_map(|((r, c), wanted)| {
                self.obs
                    .baseline_replica_sets
                    .iter()
                    .find(|rs| &rs.revision == r && &rs.component == c)
                    .map(|rs| rs.ready.min(rs.replicas).min(*wanted))
            })
            .sum();
        let live = || {
            self.obs
                .baseline_pods
                .iter()
                .filter(|p| p.revision == selector && !p.terminating)
        };
        let restarts: i32 = live().map(|p| p.restarts).sum();
        let failing: i32 = live().map(|p| p.failing_containers).sum();
        let message = if replicas == 0 {
            "the canary has no pod at this step, so neither has the baseline".to_string()
        } else if restarts > 0 || failing > 0 {
            format!(
                "baseline unhealthy ({ready} of {replicas} pods available, {restarts} restarts, \
                 {failing} failing containers): it is not health-gated and not blamed on the \
                 canary; comparisons against {{{{baseline}}}} ({selector}) may have no data, and \
                 each metric's onNoData applies"
            )
        } else if ready < replicas {
            format!("baseline starting: {ready} of {replicas} pods available")
        } else {
            format!("{ready} of {replicas} baseline pods available; {{{{baseline}}}} is {selector}")
        };
        Some(BaselineStatus {
            revision,
            selector,
            replicas,
            ready,
            restarts,
            message,
        })
    }
}

/// Canary pods for weight `w` of `n`: `ceil(n * w / 100)` (computed wide, so no replica count
/// can overflow it).
pub fn canary_replicas(n: i32, weight: i32) -> i32 {
    let weight = i64::from(weight.clamp(0, 100));
    // At most i32::MAX * 100 + 99: no i64 overflow.
    let pods = i64::from(n.max(0))
        .saturating_mul(weight)
        .saturating_add(99)
        .checked_div(100)
        .unwrap_or(0);
    i32::try_from(pods).unwrap_or(i32::MAX)
}

/// The weight in force at step `index`: the last `setWeight` at or before it.
pub fn weight_at(steps: &[CanaryStep], index: usize) -> i32 {
    steps
        .iter()
        .take(index.saturating_add(1))
        .filter_map(|s| s.set_weight)
        .next_back()
        .unwrap_or(0)
}

/// The label selector of a SafeDeployment's pods for the scale subresource, in the string form
/// the HPA parses: the workload's labels, the operator's name label (so another workload's pods
/// that share `app=...` are not measured) and not the fresh baseline, whose pods run the stable
/// template beside the revisions but are not capacity and are not scaled by `spec.replicas`.
pub fn scale_selector(name: &str, selector: &LabelSelectorSpec) -> String {
    let mut terms: Vec<String> = selector
        .match_labels
        .iter()
        .filter(|(key, _)| key.as_str() != LABEL_NAME)
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    terms.push(format!("{LABEL_NAME}={name}"));
    // `notin`, not `!=`: clients convert the string back to a LabelSelector (kubectl scale
    // does), and that conversion knows no `!=`.
    terms.push(format!("{LABEL_ROLE} notin ({ROLE_BASELINE})"));
    terms.join(",")
}
