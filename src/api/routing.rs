//! Traffic routing through the Gateway API (`strategy.canary.trafficRouting`): which HTTPRoutes
//! (and GRPCRoutes) and which rule of each the operator steers, the stable and canary Services
//! it owns, the steps that only make sense with a router (`setCanaryScale`, `setHeaderRoute`,
//! `setMirrorRoute`), and what status shows of each route. Without `trafficRouting` the weight stays a replica
//! ratio.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::rules::DNS_LABEL_PATTERN;

/// The most routes one SafeDeployment steers.
pub const MAX_ROUTES: usize = 8;
/// The most header routes in force at once (and header matches of one header route).
pub const MAX_HEADER_MATCHES: usize = 8;
/// Default port of the stable and canary Services.
pub const DEFAULT_SERVICE_PORT: i32 = 80;
/// The suffix of the default stable Service name (`<name>-stable`).
pub const STABLE_SUFFIX: &str = "-stable";
/// The suffix of the default canary Service name (`<name>-canary`).
pub const CANARY_SUFFIX: &str = "-canary";
/// The prefix of the name of every route rule the operator adds (a header route): rules named
/// `sd-<safedeployment>-...` in a steered route belong to the operator.
pub const OWNED_RULE_PREFIX: &str = "sd-";

/// How traffic reaches the canary: through Gateway API routes whose backend weights the
/// operator sets. The weight of each step is then a share of requests, decoupled from the
/// canary's pod count (see `setCanaryScale`); the stable revision keeps its full size until the
/// promotion, so it always has the pods for the traffic it serves.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrafficRouting {
    /// The Gateway API routes to steer.
    #[serde(rename = "gatewayAPI")]
    pub gateway_api: GatewayApiRouting,
    /// Name of the Service (created and owned by the operator) selecting the stable revision's
    /// pods. Default `<name>-stable`. It must not be the canary Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    #[schemars(extend("x-kubernetes-validations" = service_name_rules("stableService")))]
    pub stable_service: Option<String>,
    /// Name of the Service (created and owned by the operator) selecting the canary revision's
    /// pods (the stable revision's when no canary runs). Default `<name>-canary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    #[schemars(extend("x-kubernetes-validations" = service_name_rules("canaryService")))]
    pub canary_service: Option<String>,
    /// The port both Services expose (1 to 65535). Default 80.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// The container port the Services send to (1 to 65535). Default: `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub target_port: Option<i32>,
}

/// The routes, by kind.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.httpRoutes.size() + self.grpcRoutes.size() >= 1",
     "message": "trafficRouting.gatewayAPI needs at least one entry in httpRoutes or grpcRoutes"},
    {"rule": "self.httpRoutes.size() + self.grpcRoutes.size() <= 8",
     "message": "trafficRouting.gatewayAPI steers at most 8 routes"},
]))]
pub struct GatewayApiRouting {
    /// HTTPRoutes (`gateway.networking.k8s.io/v1`) in this namespace, each with the rule whose
    /// weights the operator sets.
    #[serde(default)]
    #[schemars(length(max = 8))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(r, self.exists_one(s, s.name == r.name))", "message": "httpRoutes names must be unique"},
    ]))]
    pub http_routes: Vec<RouteReference>,
    /// GRPCRoutes (`gateway.networking.k8s.io/v1`) in this namespace, each with its rule.
    #[serde(default)]
    #[schemars(length(max = 8))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(r, self.exists_one(s, s.name == r.name))", "message": "grpcRoutes names must be unique"},
    ]))]
    pub grpc_routes: Vec<RouteReference>,
}

/// One route and the rule of it the operator steers.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteReference {
    /// Name of the route, in the SafeDeployment's namespace.
    #[schemars(length(min = 1, max = 253))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')", "message": "a route name must be a lowercase DNS subdomain"},
    ]))]
    pub name: String,
    /// The rule whose backend weights the operator sets: by `name` (the rule's `name`) or by
    /// `index` (from 0). Default: the first rule. That rule must list a backendRef to each of
    /// the two Services (declare the canary's with weight 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<RuleReference>,
}

/// A rule of a route, by name or by index.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.name) != has(self.index)", "message": "a rule reference sets exactly one of name or index"},
]))]
pub struct RuleReference {
    /// The rule's `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub name: Option<String>,
    /// The rule's position in `spec.rules`, from 0 (a route has at most 16 rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 15))]
    pub index: Option<i32>,
}

/// `setCanaryScale`: how many canary pods run from this step on, whatever the traffic weight
/// (Argo Rollouts' semantics). Exactly one of `weight`, `replicas` or `matchTrafficWeight:
/// true`. While any traffic or header route reaches the canary it keeps at least one pod.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "(has(self.weight) ? 1 : 0) + (has(self.replicas) ? 1 : 0) + ((has(self.matchTrafficWeight) && self.matchTrafficWeight) ? 1 : 0) == 1",
     "message": "setCanaryScale sets exactly one of weight, replicas or matchTrafficWeight: true"},
]))]
pub struct SetCanaryScale {
    /// Canary pods as a percentage of `replicas` (rounded up), 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub weight: Option<i32>,
    /// Canary pods as a count, 0 to 10000 (at most `replicas` run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10000))]
    pub replicas: Option<i32>,
    /// Back to the default: canary pods follow the traffic weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_traffic_weight: Option<bool>,
}

/// `setHeaderRoute`: from this step on, requests that match go to the canary, whatever the
/// weight. The operator adds a rule of its own to each steered route (named
/// `sd-<safedeployment>-<name>`, with the steered rule's matches and filters plus these header
/// matches, so it is more specific) and removes it when the rollout ends (promoted, reverted
/// or aborted). A later `setHeaderRoute` with the same name and no `match` removes it earlier.
/// For a cookie, match the `cookie` header with a `regex`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetHeaderRoute {
    /// Name of this header route: a lowercase DNS label of at most 40 characters.
    #[schemars(length(min = 1, max = 40))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": format!("self.matches('{DNS_LABEL_PATTERN}')"), "message": "a header route name must be a lowercase DNS label (a-z, 0-9 and '-')"},
    ]))]
    pub name: String,
    /// The header matches, all of which a request must carry (at most 8). Empty: remove the
    /// header route of this name.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub matches: Vec<HeaderMatch>,
}

/// `setMirrorRoute`: from this step on, requests that match are answered by the stable revision
/// and a copy of `percentage` of them goes to the canary (its answers are dropped): the canary
/// sees real requests before it answers any. The operator adds a rule of its own to each steered
/// route (`sd-<safedeployment>-<name>.mirror`: the steered rule's matches with these header
/// matches added, its filters, a `RequestMirror` filter to the canary Service, and the stable
/// Service as the only backend) and removes it when the rollout ends. A later `setMirrorRoute`
/// with the same name and no `match` removes it earlier. Only HTTPRoutes, and only where every
/// Gateway's class declares the `HTTPRouteRequestMirror` feature (and
/// `HTTPRouteRequestPercentageMirror` below 100%) in its `status.supportedFeatures`; otherwise
/// the step holds with the reason and the rule is never written (a Gateway that does not
/// implement the filter fails the requests of the rule).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetMirrorRoute {
    /// Name of this mirror route: a lowercase DNS label of at most 40 characters.
    #[schemars(length(min = 1, max = 40))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": format!("self.matches('{DNS_LABEL_PATTERN}')"), "message": "a mirror route name must be a lowercase DNS label (a-z, 0-9 and '-')"},
    ]))]
    pub name: String,
    /// The header matches, all of which a request must carry to be mirrored (at most 8). Empty:
    /// remove the mirror route of this name.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub matches: Vec<HeaderMatch>,
    /// The share of matching requests copied to the canary, 1 to 100 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub percentage: Option<i32>,
}

impl SetMirrorRoute {
    /// The share copied, 1 to 100.
    pub fn percent(&self) -> i32 {
        self.percentage.unwrap_or(100).clamp(1, 100)
    }
}

/// The Gateway API feature a mirror route needs of every Gateway's class.
pub const FEATURE_REQUEST_MIRROR: &str = "HTTPRouteRequestMirror";
/// The feature a mirror route of less than 100% needs too.
pub const FEATURE_PERCENTAGE_MIRROR: &str = "HTTPRouteRequestPercentageMirror";

/// One header a request must carry: exactly one of `value` (exact) or `regex`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.value) != has(self.regex)", "message": "a header match sets exactly one of value or regex"},
]))]
pub struct HeaderMatch {
    /// The header's name (case-insensitive): letters, digits, `-`, `_` and `.`, at most 256.
    #[schemars(length(min = 1, max = 256))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.matches('^[A-Za-z0-9][-A-Za-z0-9_.]*$')", "message": "headerName must be an HTTP header name: letters, digits, '-', '_' and '.', starting with a letter or digit"},
    ]))]
    pub header_name: String,
    /// The exact value (at most 4096 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub value: Option<String>,
    /// A regular expression the value must match (the Gateway's dialect; at most 1024
    /// characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub regex: Option<String>,
}

/// What status shows of the traffic routing.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrafficRoutingStatus {
    /// The canary's share of requests (0 to 100) the operator directs the routes to now.
    pub canary_weight: i32,
    /// The names of the header routes in force (their rules are in every steered route).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub header_routes: Vec<String>,
    /// The names of the mirror routes in force (their rules are in every steered route).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirror_routes: Vec<String>,
    /// Each steered route as last read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteStatus>,
    /// When the operator first saw the routes carry what the newest finished rollout (a
    /// promotion, a revert, an abort) wrote to them (RFC 3339). The revisions they stopped
    /// sending to keep their pods for the drain counted from then, not from the decision, so a
    /// slow or interrupted route write never shortens it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_started_at: Option<String>,
}

/// One steered route as the operator last read it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteStatus {
    /// `HTTPRoute` or `GRPCRoute`.
    pub kind: String,
    /// The route's name.
    pub name: String,
    /// The weight of the canary backendRef on the steered rule (None: not found).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_weight: Option<i32>,
    /// The weight of the stable backendRef on the steered rule (None: not found).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_weight: Option<i32>,
    /// Whether every parent (Gateway) accepted this generation of the route: `True`, `False`,
    /// or `Unknown` (no parent reported on it yet).
    pub accepted: String,
    /// Whether every parent resolved the route's backendRefs: `True`, `False` or `Unknown`.
    pub resolved_refs: String,
    /// What is wrong, or what the parents said.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// The rules of a Service name field: a DNS label (Service names are).
fn service_name_rules(field: &str) -> serde_json::Value {
    serde_json::json!([
        {"rule": format!("self.matches('{DNS_LABEL_PATTERN}')"),
         "message": format!("trafficRouting.{field} must be a lowercase DNS label (a-z, 0-9 and '-'), as Service names are")},
    ])
}

impl TrafficRouting {
    /// The stable Service's name for the SafeDeployment `name`.
    pub fn stable_service_name(&self, name: &str) -> String {
        self.stable_service
            .clone()
            .unwrap_or_else(|| format!("{name}{STABLE_SUFFIX}"))
    }

    /// The canary Service's name for the SafeDeployment `name`.
    pub fn canary_service_name(&self, name: &str) -> String {
        self.canary_service
            .clone()
            .unwrap_or_else(|| format!("{name}{CANARY_SUFFIX}"))
    }

    /// The Services' port.
    pub fn service_port(&self) -> i32 {
        self.port.unwrap_or(DEFAULT_SERVICE_PORT)
    }

    /// The pods' port the Services send to.
    pub fn pod_port(&self) -> i32 {
        self.target_port.unwrap_or_else(|| self.service_port())
    }

    /// Every steered route: `(kind, reference)`.
    pub fn routes(&self) -> impl Iterator<Item = (RouteKind, &RouteReference)> {
        self.gateway_api
            .http_routes
            .iter()
            .map(|r| (RouteKind::Http, r))
            .chain(
                self.gateway_api
                    .grpc_routes
                    .iter()
                    .map(|r| (RouteKind::Grpc, r)),
            )
    }
}

/// The kinds of route the operator steers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RouteKind {
    /// `HTTPRoute`.
    Http,
    /// `GRPCRoute`.
    Grpc,
}

impl RouteKind {
    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Http => "HTTPRoute",
            RouteKind::Grpc => "GRPCRoute",
        }
    }

    /// The plural resource name.
    pub fn plural(self) -> &'static str {
        match self {
            RouteKind::Http => "httproutes",
            RouteKind::Grpc => "grpcroutes",
        }
    }
}

/// The finalizer the operator keeps on a SafeDeployment that steers routes: before the object
/// goes, the operator returns each route's steered rule to the weights at rest (stable 100,
/// canary 0) and removes its header rules, so no route keeps sending to the Services that go
/// with the SafeDeployment.
pub const ROUTES_FINALIZER: &str = "safedeploy.dev/routes";

/// The API group of the Gateway API.
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";
/// The version of the Gateway API routes the operator reads and writes.
pub const GATEWAY_VERSION: &str = "v1";
