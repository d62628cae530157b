//! The canary with a traffic router (`strategy.canary.trafficRouting`): the weight of a step is
//! a share of requests set on Gateway API routes, no longer a replica ratio. This room decides
//! how many canary pods run (`setCanaryScale`, Argo Rollouts' semantics), when the routes may
//! carry the step's weight and header routes (only once the canary has the Ready pods for
//! them), whether the routes carry them (a step completes only then), and the [`TrafficPlan`]
//! the controller writes: the Services' revisions and the routes' weights. The stable revision
//! keeps its full size until the promotion, so it always has the pods for the traffic it
//! serves; when no canary runs, the canary's weight is 0 and no header route is in force.

use super::{Planner, canary_replicas};
use crate::api::routing::{SetCanaryScale, SetHeaderRoute, SetMirrorRoute, TrafficRoutingStatus};
use crate::api::CanaryStep;

/// What the controller makes of the routes and Services, in this order, before any ReplicaSet
/// is scaled (so a revert's weight 0 is written before a canary pod goes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficPlan {
    /// The revision (hash) the stable Service selects.
    pub stable_revision: String,
    /// The revision (hash) the canary Service selects: the canary's, or the stable's when no
    /// canary runs.
    pub canary_revision: String,
    /// The canary backendRefs' weight (0 to 100; the stable's is the rest).
    pub canary_weight: i32,
    /// The header routes in force.
    pub header_routes: Vec<SetHeaderRoute>,
    /// The mirror routes in force.
    pub mirror_routes: Vec<SetMirrorRoute>,
}

impl TrafficPlan {
    /// Whether anything of the operator's reaches the canary through the routes.
    pub fn steers(&self) -> bool {
        self.canary_weight > 0 || !self.header_routes.is_empty() || !self.mirror_routes.is_empty()
    }
}

/// The mirror routes in force at step `index`: each name's latest `setMirrorRoute` at or before
/// it, unless that one has no match (which removes it).
pub fn mirror_routes_at(steps: &[CanaryStep], index: usize) -> Vec<SetMirrorRoute> {
    routes_at(
        steps,
        index,
        |s| s.set_mirror_route.as_ref(),
        |r| (r.name.as_str(), r.matches.is_empty()),
    )
}

/// The routes of one kind in force at step `index`: each name's latest step of that kind at or
/// before it, unless that one has no match (which removes it).
fn routes_at<R: Clone>(
    steps: &[CanaryStep],
    index: usize,
    of: impl Fn(&CanaryStep) -> Option<&R>,
    name_and_removes: impl Fn(&R) -> (&str, bool),
) -> Vec<R> {
    let mut routes: Vec<R> = Vec::new();
    for route in steps.iter().take(index.saturating_add(1)).filter_map(&of) {
        let (name, removes) = name_and_removes(route);
        routes.retain(|r| name_and_removes(r).0 != name);
        if !removes {
            routes.push(route.clone());
        }
    }
    routes
}

/// The header routes in force at step `index`: each name's latest `setHeaderRoute` at or before
/// it, unless that one has no match (which removes it).
pub fn header_routes_at(steps: &[CanaryStep], index: usize) -> Vec<SetHeaderRoute> {
    routes_at(
        steps,
        index,
        |s| s.set_header_route.as_ref(),
        |r| (r.name.as_str(), r.matches.is_empty()),
    )
}

/// The `setCanaryScale` in force at step `index`.
fn canary_scale_at(steps: &[CanaryStep], index: usize) -> Option<&SetCanaryScale> {
    steps
        .iter()
        .take(index.saturating_add(1))
        .filter_map(|s| s.set_canary_scale.as_ref())
        .next_back()
}

/// Canary pods of `n` at step `index` with traffic weight `weight`: as `setCanaryScale` says
/// (default: the weight's share of `n`, rounded up), never more than `n`, and at least one while
/// any request can reach the canary (a weight above 0, a header or a mirror route).
pub fn routed_canary_pods(n: i32, steps: &[CanaryStep], index: usize, weight: i32) -> i32 {
    let pods = match canary_scale_at(steps, index) {
        Some(SetCanaryScale {
            replicas: Some(replicas),
            ..
        }) => *replicas,
        Some(SetCanaryScale {
            weight: Some(share),
            ..
        }) => canary_replicas(n, *share),
        _ => canary_replicas(n, weight),
    };
    let reachable = weight > 0
        || !header_routes_at(steps, index).is_empty()
        || !mirror_routes_at(steps, index).is_empty();
    let floor = i32::from(reachable && n > 0);
    pods.clamp(0, n.max(0)).max(floor)
}

impl Planner<'_> {
    /// Whether the rollout steers routes instead of the replica ratio.
    pub(super) fn routed(&self) -> bool {
        self.obs.spec.strategy.canary.traffic_routing.is_some()
    }

    /// Canary pods of a component of `n` at step `index` and `weight` (see
    /// [`routed_canary_pods`]).
    pub(super) fn routed_pods(&self, n: i32, index: usize, weight: i32) -> i32 {
        routed_canary_pods(n, &self.obs.spec.strategy.canary.steps, index, weight)
    }

    fn step_index(&self) -> usize {
        usize::try_from(self.status.current_step_index.unwrap_or(0)).unwrap_or(0)
    }

    /// Whether the canary `desired` has its Ready pods for step `index` at `weight`.
    fn canary_has_pods_for(&self, desired: &str, index: usize, weight: i32) -> bool {
        self.obs.desired.components.iter().all(|component| {
            self.ready_of(desired, &component.name)
                >= self.routed_pods(component.replicas, index, weight)
        })
    }

    /// Points the routes at step `index`'s weight, header and mirror routes once the canary
    /// has the Ready pods for them; until then the routes keep what they carried (never more
    /// than the step's weight).
    pub(super) fn steer(&mut self, desired: &str, index: usize, weight: i32) {
        let steps = &self.obs.spec.strategy.canary.steps;
        let wanted = header_routes_at(steps, index);
        let mirrors = mirror_routes_at(steps, index);
        if self.canary_has_pods_for(desired, index, weight) {
            self.route_weight = weight;
            self.header_routes = wanted;
            self.mirror_routes = mirrors;
        } else {
            self.route_weight = self.route_weight.min(weight);
            let kept: Vec<String> = self.header_routes.iter().map(|h| h.name.clone()).collect();
            self.header_routes = wanted
                .into_iter()
                .filter(|h| kept.contains(&h.name))
                .collect();
            let kept: Vec<String> = self.mirror_routes.iter().map(|m| m.name.clone()).collect();
            self.mirror_routes = mirrors
                .into_iter()
                .filter(|m| kept.contains(&m.name))
                .collect();
        }
        self.status.canary_weight = self.route_weight;
    }

    /// The names of the header and of the mirror routes planned.
    pub(super) fn owned_route_names(&self) -> (Vec<String>, Vec<String>) {
        (
            self.header_routes.iter().map(|h| h.name.clone()).collect(),
            self.mirror_routes.iter().map(|m| m.name.clone()).collect(),
        )
    }

    /// Whether every steered route carries the planned weight, header and mirror routes and no
    /// Gateway refused it (always true without routing). A step completes only then.
    pub(super) fn traffic_in_place(&self) -> bool {
        if !self.routed() {
            return true;
        }
        let (headers, mirrors) = self.owned_route_names();
        self.obs
            .routes
            .iter()
            .all(|r| r.carries(self.obs.name, self.route_weight, &headers, &mirrors))
    }

    /// With routing, a step also waits for the routes: says which one and why.
    pub(super) fn traffic_hold_message(&self) -> Option<String> {
        if self.traffic_in_place() {
            return None;
        }
        let (headers, mirrors) = self.owned_route_names();
        let route = self
            .obs
            .routes
            .iter()
            .find(|r| !r.carries(self.obs.name, self.route_weight, &headers, &mirrors))?;
        let why = route
            .problem
            .clone()
            .or_else(|| (!route.parents_message.is_empty()).then(|| route.parents_message.clone()))
            .unwrap_or_else(|| {
                format!(
                    "waiting for the canary weight {} to be set",
                    self.route_weight
                )
            });
        Some(format!("{} {}: {why}", route.kind.as_str(), route.name))
    }

    /// The weight, header and mirror routes the routes carried before this decision (a canary
    /// in progress keeps them while nothing says otherwise: a freeze, a user's pause, a
    /// restart).
    pub(super) fn carried_traffic(&self) -> (i32, Vec<SetHeaderRoute>, Vec<SetMirrorRoute>) {
        let Some(recorded) = self.obs.status.traffic_routing.as_ref() else {
            return (0, Vec::new(), Vec::new());
        };
        if self.obs.status.canary_revision.is_none() {
            return (0, Vec::new(), Vec::new());
        }
        let index = self.step_index();
        let steps = &self.obs.spec.strategy.canary.steps;
        let headers = header_routes_at(steps, index)
            .into_iter()
            .filter(|h| recorded.header_routes.contains(&h.name))
            .collect();
        let mirrors = mirror_routes_at(steps, index)
            .into_iter()
            .filter(|m| recorded.mirror_routes.contains(&m.name))
            .collect();
        (recorded.canary_weight.clamp(0, 100), headers, mirrors)
    }

    /// The plan for the controller and what status records of the routing (None without
    /// routing). Without a canary nothing reaches the canary Service, which then selects the
    /// stable revision.
    pub(super) fn traffic_plan(&mut self) -> Option<TrafficPlan> {
        if !self.routed() {
            self.status.traffic_routing = None;
            return None;
        }
        if self.status.canary_revision.is_none() {
            self.route_weight = 0;
            self.header_routes.clear();
            self.mirror_routes.clear();
        }
        let stable = self
            .status
            .stable_revision
            .clone()
            .unwrap_or_else(|| self.obs.desired.hash.clone());
        let canary = self
            .status
            .canary_revision
            .clone()
            .unwrap_or_else(|| stable.clone());
        // Blue-green: the stable Service is the active one, and it switches with the weight.
        let stable = if self.obs.spec.strategy.blue_green.is_some() {
            super::active_revision(&stable, &canary, self.route_weight).to_string()
        } else {
            stable
        };
        self.status.traffic_routing = Some(TrafficRoutingStatus {
            canary_weight: self.route_weight,
            header_routes: self.header_routes.iter().map(|h| h.name.clone()).collect(),
            mirror_routes: self.mirror_routes.iter().map(|m| m.name.clone()).collect(),
            routes: self.obs.routes.iter().map(|r| r.to_status()).collect(),
            drain_started_at: self.drain_started_at().map(|at| at.to_string()),
        });
        Some(TrafficPlan {
            stable_revision: stable,
            canary_revision: canary,
            canary_weight: self.route_weight,
            header_routes: self.header_routes.clone(),
            mirror_routes: self.mirror_routes.clone(),
        })
    }
}
