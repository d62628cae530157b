//! The `SafeDeployment` custom resource: its spec (what to run and how to roll it out), its status
//! (where the rollout is, and why) and the CEL rules the API server enforces on it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::analysis::{AnalysisRunStatus, AnalysisTemplate};

/// A small map of the status (a revision's images or configuration digests by name), sorted by
/// key and serialized as a JSON object like a `BTreeMap`, but kept as one vector of pairs: every
/// history entry and revision record of every cached SafeDeployment has one, usually with one
/// or two entries, where a `BTreeMap` allocates a node of about 540 bytes.
pub type StatusMap = litemap::LiteMap<String, String>;
use super::duration::{SpecDuration, bad_duration, duration_or, duration_rules};
use super::rules::{DNS_LABEL_PATTERN, health_rules, label_rules};

/// The API group of every safedeploy resource.
pub const GROUP: &str = "safedeploy.dev";

/// A workload rolled out in canary steps, gated on health signals and a local-validation
/// attestation, and reverted automatically when the canary regresses.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "safedeploy.dev",
    version = "v1alpha1",
    kind = "SafeDeployment",
    namespaced,
    status = "SafeDeploymentStatus",
    shortname = "sd",
    category = "all",
    // `kubectl scale` and a HorizontalPodAutoscaler resize the workload through this; the
    // selector string (pods of this workload, baseline excluded) is what the HPA's metrics read.
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Stable","type":"string","jsonPath":".status.stableRevision"}"#,
    printcolumn = r#"{"name":"Canary","type":"string","jsonPath":".status.canaryRevision"}"#,
    printcolumn = r#"{"name":"Weight","type":"integer","jsonPath":".status.canaryWeight"}"#,
    printcolumn = r#"{"name":"Step","type":"string","jsonPath":".status.stepDisplay"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = kube::core::Rule::new("self.metadata.name.size() <= 63").message(
        "metadata.name must be at most 63 characters: it is the value of the safedeploy.dev/name \
         label of every ReplicaSet and pod, and label values hold at most 63"
    ),
    validation = kube::core::Rule::new(
        "!has(self.spec.strategy.canary) || !has(self.spec.strategy.canary.trafficRouting) || (has(self.spec.strategy.canary.trafficRouting.stableService) ? self.spec.strategy.canary.trafficRouting.stableService : self.metadata.name + '-stable') != (has(self.spec.strategy.canary.trafficRouting.canaryService) ? self.spec.strategy.canary.trafficRouting.canaryService : self.metadata.name + '-canary')"
    ).message("trafficRouting.stableService and canaryService must be different Services (the defaults are <name>-stable and <name>-canary)"),
    validation = kube::core::Rule::new(
        "!has(self.spec.strategy.blueGreen) || (has(self.spec.strategy.blueGreen.activeService) ? self.spec.strategy.blueGreen.activeService : self.metadata.name + '-active') != (has(self.spec.strategy.blueGreen.previewService) ? self.spec.strategy.blueGreen.previewService : self.metadata.name + '-preview')"
    ).message("blueGreen.activeService and previewService must be different Services (the defaults are <name>-active and <name>-preview)")
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = spec_rules()))]
pub struct SafeDeploymentSpec {
    /// Number of pods of the single component (with `template`). With `components`, each
    /// component carries its own count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10000))]
    pub replicas: Option<i32>,

    /// Selects the pods of this workload; it must match the template's labels. The operator adds
    /// its own revision label to the ReplicaSets it owns, so a Service selecting these labels
    /// spans the stable and the canary pods.
    pub selector: LabelSelectorSpec,

    /// The pod template of a single-component workload (shorthand for one component named `main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_pod_template_schema")]
    pub template: Option<PodTemplateSpec>,

    /// Several coupled components, promoted and reverted as one unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 16))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(c, self.exists_one(d, d.name == c.name))", "message": "component names must be unique"},
    ]))]
    pub components: Option<Vec<Component>>,

    /// A running Deployment to adopt instead of a template: its pod template is this workload's
    /// (each change of it rolls out in canary steps) and the operator scales it down as its own
    /// pods take over. Deleting the SafeDeployment scales it back up first. See
    /// docs/adoption.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_ref: Option<super::adoption::WorkloadRef>,

    /// How the new revision replaces the stable one.
    pub strategy: Strategy,

    /// Thresholds on the Kubernetes signals of the canary pods (restarts, crash states,
    /// readiness, start-up latency against the baseline). Every signal has a default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthGates>,

    /// Analysis templates that steps and background analysis refer to by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(a, self.exists_one(b, b.name == a.name))", "message": "spec.analyses names must be unique"},
    ]))]
    pub analyses: Vec<AnalysisTemplate>,

    /// Where the local-validation attestation of the current template is found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<AttestationSource>,

    /// A step (or a whole rollout phase) that makes no progress for this long fails the rollout
    /// and reverts it. A duration such as `10m`, from 10s to 24h. Default `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = duration_rules("progressDeadline", "90s, 10m or 1h30m", "10s", "24h")))]
    pub progress_deadline: Option<SpecDuration>,

    /// How many old revisions (ReplicaSets scaled to zero) are kept for rollback, 1 to 50.
    /// Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 50))]
    pub revision_history_limit: Option<i32>,

    /// How long a new pod must stay Ready before it counts as available (and before the stable
    /// revision gives up a pod for it). Default 5, so a canary that crashes right after its
    /// first readiness never costs stable capacity. At most 3600, and shorter than
    /// `progressDeadline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub min_ready_seconds: Option<i32>,

    /// Stops the rollout where it is (no step advances, no scaling) until set back to false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
}

/// A label selector restricted to `matchLabels`, which is what ReplicaSets of every revision
/// can share.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorSpec {
    /// Labels every pod of the workload carries (at most 32; not the `safedeploy.dev/` keys, which
    /// the operator sets).
    #[schemars(extend("maxProperties" = 32, "additionalProperties" = {"type": "string", "maxLength": 63}))]
    #[schemars(extend("x-kubernetes-validations" = selector_rules()))]
    pub match_labels: BTreeMap<String, String>,
}

impl LabelSelectorSpec {
    /// The Kubernetes form of this selector.
    pub fn to_label_selector(&self) -> LabelSelector {
        LabelSelector {
            match_labels: Some(self.match_labels.clone()),
            match_expressions: None,
        }
    }
}

/// One of several coupled components of a workload.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    /// Name of the component, used in ReplicaSet names and status.
    #[schemars(length(min = 1, max = 20))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')", "message": "a component name must be a lowercase DNS label (a-z, 0-9 and '-')"},
    ]))]
    pub name: String,
    /// Number of pods of this component.
    #[schemars(range(min = 0, max = 10000))]
    pub replicas: i32,
    /// The pod template of this component; its labels must include the workload's selector.
    #[schemars(schema_with = "pod_template_schema")]
    pub template: PodTemplateSpec,
}

/// The rollout strategy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.canary) != has(self.blueGreen)",
     "message": "strategy sets exactly one of canary or blueGreen"},
]))]
pub struct Strategy {
    /// Canary steps, run in order; after the last step the canary is promoted. Exactly one
    /// of `canary` or `blueGreen`.
    #[serde(default, skip_serializing_if = "CanaryStrategy::is_unset")]
    pub canary: CanaryStrategy,
    /// A blue-green rollout: the new revision at full size behind a preview Service, then a
    /// switch of the active Service (see docs/blue-green.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<super::bluegreen::BlueGreenStrategy>,
}

impl CanaryStrategy {
    /// Whether nothing of the canary strategy is set (a blue-green SafeDeployment's).
    pub fn is_unset(&self) -> bool {
        *self == CanaryStrategy::default()
    }
}

/// A canary rollout: weights, pauses and analysis gates.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.steps.filter(s, has(s.setWeight)).map(s, s.setWeight).isSorted()",
     "message": "setWeight values must not decrease from one step to the next"},
    {"rule": "self.steps.exists(s, has(s.setWeight) && s.setWeight > 0)",
     "message": "at least one step needs a setWeight above 0: without one no canary pod runs before the promotion to 100%"},
    {"rule": "!has(self.backgroundAnalysis) || !self.steps.exists(s, has(s.analysis) && s.analysis.template == self.backgroundAnalysis)",
     "message": "the backgroundAnalysis template cannot also be a step's analysis (their results would share one gate): declare a copy under another name"},
]))]
pub struct CanaryStrategy {
    /// The steps. Each sets exactly one of `setWeight`, `pause` or `analysis`.
    #[schemars(length(min = 1, max = 32))]
    pub steps: Vec<CanaryStep>,

    /// How many pods below the desired count the workload may have while scaling. Ready capacity
    /// (stable plus canary) never falls below `replicas - maxUnavailable`. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10000))]
    pub max_unavailable: Option<i32>,

    /// Name of an analysis template run in the background from the first step to promotion;
    /// a failure reverts at any step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub background_analysis: Option<String>,

    /// What the canary is compared with (`{{baseline}}` in metric queries, and the start-up
    /// latency gate): `Stable` (the default) compares with the long-running stable pods;
    /// `Fresh` starts a separate baseline ReplicaSet of the stable revision's template, at the
    /// canary's size at every step, so canary and baseline are the same age (Kayenta's lesson:
    /// warm caches and settled heaps make old pods look better). Its pods carry
    /// `safedeploy.dev/revision: <stable hash>-baseline` and `safedeploy.dev/role: baseline`, never
    /// count as capacity, are not health-gated, and are removed when the rollout promotes,
    /// reverts or is aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineMode>,

    /// Steer traffic through Gateway API routes instead of the replica ratio (see
    /// docs/traffic-routing.md). Needs `spec.template` (a single component).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routing: Option<super::routing::TrafficRouting>,
}

/// What the canary is compared with: `Stable` or `Fresh`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum BaselineMode {
    /// The stable revision's pods; `{{baseline}}` is the stable revision hash.
    #[default]
    Stable,
    /// A freshly started ReplicaSet of the stable template at the canary's size;
    /// `{{baseline}}` is `<stable hash>-baseline`, the revision label of its pods only.
    Fresh,
}

/// One canary step.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "(has(self.setWeight) ? 1 : 0) + (has(self.pause) ? 1 : 0) + (has(self.analysis) ? 1 : 0) + (has(self.setCanaryScale) ? 1 : 0) + (has(self.setHeaderRoute) ? 1 : 0) + (has(self.setMirrorRoute) ? 1 : 0) == 1",
     "message": "each step sets exactly one of setWeight, pause, analysis, setCanaryScale, setHeaderRoute or setMirrorRoute"},
]))]
pub struct CanaryStep {
    /// Percentage of the replicas that run the canary revision (0 to 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self >= 0 && self <= 100", "message": "setWeight must be between 0 and 100"},
    ]))]
    pub set_weight: Option<i32>,
    /// Wait: for `duration`, or until promoted when no duration is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<PauseStep>,
    /// Run the named analysis template as a gate; the step passes when the analysis passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisStep>,
    /// With `trafficRouting`: how many canary pods run from this step on, decoupled from the
    /// traffic weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_canary_scale: Option<super::routing::SetCanaryScale>,
    /// With `trafficRouting`: send matching requests to the canary from this step on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_header_route: Option<super::routing::SetHeaderRoute>,
    /// With `trafficRouting` (HTTPRoutes): copy matching requests to the canary from this step
    /// on, answered by the stable revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_mirror_route: Option<super::routing::SetMirrorRoute>,
}

/// A pause step.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PauseStep {
    /// How long to wait, such as `30s` or `5m`, from 1s to 24h. Without it the rollout waits
    /// for `promote`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = duration_rules("pause.duration", "30s, 5m or 1h", "1s", "24h")))]
    pub duration: Option<SpecDuration>,
}

/// An analysis gate step.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisStep {
    /// Name of an entry of `spec.analyses`.
    #[schemars(length(min = 1, max = 63))]
    pub template: String,
}

/// Thresholds for the Kubernetes signals of canary pods. Each value is judged: at or below
/// `target` is on target, at or below `acceptable` may advance, above `acceptable` holds the
/// step, at or above `critical` reverts at once. Every value is at least 0; counts are at most
/// 10^9 and the start-up latency at most 86400 (a day).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = health_rules()))]
pub struct HealthGates {
    /// Container restarts summed over the canary pods. Default target 0, acceptable 0, critical 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts: Option<Thresholds>,
    /// Canary containers in CrashLoopBackOff, OOMKilled, ImagePullBackOff, ErrImagePull or
    /// CreateContainerConfigError. Default 0 / 0 / 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_containers: Option<Thresholds>,
    /// Canary pods still not Ready past the critical start-up latency (over the baseline).
    /// Default 0 / 0 / 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_ready_pods: Option<Thresholds>,
    /// Start-up latency (pod creation to Ready) of the slowest canary pod minus the median of the
    /// baseline's, in seconds; a pod still starting counts with its age. Default 10 / 30 / 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_latency_seconds: Option<Thresholds>,
}

/// Target, acceptable and critical levels of a lower-is-better signal.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.target <= self.acceptable && self.acceptable < self.critical",
     "message": "thresholds must satisfy target <= acceptable < critical"},
]))]
pub struct Thresholds {
    /// The value aimed for.
    pub target: f64,
    /// The highest value with which a step may still advance.
    pub acceptable: f64,
    /// The value at or above which the canary is reverted at once.
    pub critical: f64,
}

/// Where the attestation of the current template is found. Exactly one source.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "(has(self.inline) ? 1 : 0) + (has(self.configMapRef) ? 1 : 0) + (has(self.secretRef) ? 1 : 0) == 1",
     "message": "attestation needs exactly one of inline, configMapRef or secretRef"},
]))]
pub struct AttestationSource {
    /// The DSSE envelope as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 262144))]
    pub inline: Option<String>,
    /// A ConfigMap key in this namespace holding the DSSE envelope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<KeyReference>,
    /// A Secret key in this namespace holding the DSSE envelope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<KeyReference>,
}

/// A key of a ConfigMap or Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyReference {
    /// Object name.
    #[schemars(length(min = 1, max = 253))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')", "message": "a ConfigMap or Secret name must be a lowercase DNS subdomain"},
    ]))]
    pub name: String,
    /// Key inside the object. Default `attestation.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.matches('^[-._a-zA-Z0-9]+$')", "message": "a ConfigMap or Secret key consists of alphanumerics, '-', '_' or '.'"},
    ]))]
    pub key: Option<String>,
}

/// Where the rollout stands; the conditions are the source of truth, this is a summary.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Nothing observed yet.
    #[default]
    Pending,
    /// The new revision may not start (attestation, preflight, or it was rejected before).
    Blocked,
    /// Canary steps are running.
    Progressing,
    /// Waiting at a pause step or paused by a user.
    Paused,
    /// Analysis could not decide (provider unreachable, no data); the rollout waits.
    Inconclusive,
    /// The stable revision runs at full size and nothing is pending.
    Healthy,
    /// The canary was reverted; the stable revision runs at full size.
    Degraded,
}

/// Observed state of a SafeDeployment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SafeDeploymentStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Summary of the conditions.
    #[serde(default)]
    pub phase: Phase,
    /// Human-readable reason for the phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `Ready`, `Progressing`, `Degraded`, `Attested`, kstatus-compatible.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Pods the workload's ReplicaSets (every revision, not the fresh baseline) were last seen
    /// sized to: the `status.replicas` of the scale subresource. Mid-canary it may exceed
    /// `spec.replicas` while the stable revision waits for canary pods to become Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000000))]
    pub replicas: Option<i32>,
    /// The label selector of the workload's pods (both revisions, not the fresh baseline) in
    /// string form, for the scale subresource: what a HorizontalPodAutoscaler measures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16384))]
    pub selector: Option<String>,
    /// Hash of the revision running as stable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<String>,
    /// Hash of the revision in canary, while one is in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_revision: Option<String>,
    /// Index of the current canary step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_index: Option<i32>,
    /// `current/total` for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_display: Option<String>,
    /// When the current step started (RFC 3339); pause durations and deadlines count from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<String>,
    /// Percentage of replicas on the canary revision.
    #[serde(default)]
    pub canary_weight: i32,
    /// Known revisions, their numbers and ReplicaSets, newest last; bounded by the history limit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revisions: Vec<RevisionRecord>,
    /// Hashes of revisions that failed and are not retried until the template changes or a user
    /// asks for a retry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected_revisions: Vec<String>,
    /// The last health measurement of the canary, one entry per signal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health: Vec<SignalMeasurement>,
    /// Analysis runs of the current rollout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub analysis_runs: Vec<AnalysisRunStatus>,
    /// Outcome of the attestation check for the desired revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<AttestationVerdict>,
    /// Bounded rollout history, newest last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
    /// Tokens of the manual requests (annotations) already carried out, so that each is done once.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub handled_requests: BTreeMap<String, String>,
    /// The fresh baseline (`strategy.canary.baseline: Fresh`) while one runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineStatus>,
    /// Digest of the canary steps (and background analysis) the current canary started with:
    /// an edit of the steps mid-rollout restarts the canary at step 1 instead of letting
    /// `currentStepIndex` point into a different list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps_digest: Option<String>,
    /// The finish time (RFC 3339) of the latest history entry recorded as a
    /// `SafeDeploymentRecord`: entries that finished later are recorded next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub recorded_through: Option<String>,
    /// The freeze of the namespace's policy that holds the rollout now, or else the next one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze: Option<super::freeze::FreezeStatus>,
    /// The traffic routing (`strategy.canary.trafficRouting`): the weight directed to the
    /// canary, the header routes in force, and each route as last read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routing: Option<super::routing::TrafficRoutingStatus>,
}

/// The fresh baseline of a canary: what it runs, how big it is, and whether it can be compared
/// with. Its pods are never health-gated and never blamed on the canary: an unhealthy baseline
/// only leaves the comparisons against it without data (the metrics' `onNoData` applies).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BaselineStatus {
    /// The stable revision (hash) whose template the baseline runs.
    pub revision: String,
    /// The value of `{{baseline}}`: the `safedeploy.dev/revision` label of the baseline pods.
    pub selector: String,
    /// Desired pods over all components (the canary's size at the current step).
    pub replicas: i32,
    /// Available pods.
    pub ready: i32,
    /// Container restarts of the baseline pods.
    pub restarts: i32,
    /// Whether it can be compared with, in words.
    pub message: String,
}

/// A revision the operator knows: its number, hash and images.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionRecord {
    /// Sequence number, starting at 1.
    pub number: i64,
    /// Template hash (the ReplicaSet name suffix).
    pub hash: String,
    /// Container images by `component/container`.
    #[serde(default, skip_serializing_if = "StatusMap::is_empty")]
    #[schemars(with = "BTreeMap<String, String>")]
    pub images: StatusMap,
    /// Content digests (`sha256:<hex>`) of the ConfigMaps and Secrets the revision references,
    /// by `configmap/NAME` / `secret/NAME`: which configuration changed between revisions,
    /// without their contents.
    #[serde(default, skip_serializing_if = "StatusMap::is_empty")]
    #[schemars(with = "BTreeMap<String, String>")]
    pub config: StatusMap,
}

/// One health signal measured on the canary, with its thresholds and verdict.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignalMeasurement {
    /// Signal name.
    pub signal: String,
    /// Measured value.
    pub value: f64,
    /// The baseline's value, where the signal compares against one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    /// The thresholds it was judged by.
    pub thresholds: Thresholds,
    /// `Target`, `Acceptable`, `Marginal` or `Critical`.
    pub verdict: String,
    /// When it was measured (RFC 3339).
    pub measured_at: String,
}

/// The attestation verdict for a revision.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttestationVerdict {
    /// The revision hash it applies to.
    pub revision: String,
    /// Whether it verified.
    pub verified: bool,
    /// `Verified`, `NotRequired`, or the rejection reason.
    pub reason: String,
    /// Details.
    pub message: String,
}

/// One rollout in the history.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// Revision number.
    pub revision: i64,
    /// Revision hash.
    pub hash: String,
    /// Images by `component/container`.
    #[serde(default, skip_serializing_if = "StatusMap::is_empty")]
    #[schemars(with = "BTreeMap<String, String>")]
    pub images: StatusMap,
    /// `Promoted`, `Reverted`, `Aborted`, `RolledBack`, `Blocked`, `InProgress`.
    pub outcome: String,
    /// What triggered it or why it ended.
    #[serde(default)]
    pub reason: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Who asked for it, for a manual action (promote, abort, retry, rollback, pause, resume):
    /// the username the request annotation names, which the chart's governance policies check
    /// against the writer's own (see docs/governance.md). Absent for what the operator decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub actor: Option<String>,
    /// The canary steps this rollout completed, in order, with the weight each ended at: the
    /// durable record of the weight over time (Events expire after an hour).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepMark>,
}

/// A canary step a rollout completed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepMark {
    /// The step's index in the spec (0-based).
    pub step: i32,
    /// The canary weight (percent) when it completed.
    pub weight: i32,
    /// When it completed (RFC 3339).
    pub at: String,
}

/// A compact schema for pod templates: the structure the operator relies on (labels, containers
/// with name and image) is validated here, the rest is validated by the API server when the
/// ReplicaSet is created. The full generated schema would make the CRD over 1 MB.
fn pod_template_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "description": "A pod template (core/v1 PodTemplateSpec).",
        "x-kubernetes-preserve-unknown-fields": true,
        "required": ["metadata", "spec"],
        "properties": {
            "metadata": {
                "type": "object",
                "required": ["labels"],
                "properties": {
                    "labels": {
                        "type": "object", "maxProperties": 64,
                        "additionalProperties": {"type": "string", "maxLength": 63},
                        "x-kubernetes-validations": label_rules("template label"),
                    },
                    "annotations": {
                        "type": "object", "maxProperties": 128,
                        "additionalProperties": {"type": "string", "maxLength": 262144},
                        "x-kubernetes-validations": [
                            {"rule": "self.all(k, k.size() <= 317)", "message": "template annotation keys must be at most 317 characters (a 253-character prefix, '/', a 63-character name)"},
                            {"rule": "self.map(k, k.size() + self[k].size()).sum() <= 262144", "message": "template annotations must total at most 256 KiB (keys and values), as Kubernetes allows"},
                        ],
                    }
                }
            },
            "spec": pod_spec_schema()
        }
    })
}

/// The pod spec part of a compact pod template schema, shared by every pod template the CRDs
/// carry (a SafeDeployment's and a job provider's): containers with a name and an image are
/// checked here, the rest by the API server when the ReplicaSet or Job is created.
pub(crate) fn pod_spec_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "required": ["containers"],
        "properties": {
            "containers": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_CONTAINERS,
                "items": container_schema(true)
            },
            "initContainers": {
                "type": "array",
                "maxItems": MAX_INIT_CONTAINERS,
                "items": container_schema(false)
            }
        }
    })
}

/// Containers per pod template.
pub const MAX_CONTAINERS: usize = 32;
/// Init containers per pod template.
pub const MAX_INIT_CONTAINERS: usize = 16;
/// Characters of an image reference (`registry/path:tag@sha256:<64 hex>` fits easily).
pub const MAX_IMAGE_LENGTH: usize = 512;

/// The part of a container the operator relies on: a DNS-label name and a bounded image.
/// `required` says whether `image` must be set (init containers may inherit nothing either, but
/// the API server checks them when the ReplicaSet is created).
pub(crate) fn container_schema(required: bool) -> serde_json::Value {
    let mut schema = serde_json::json!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "required": ["name"],
        "properties": {
            "name": {
                "type": "string", "minLength": 1, "maxLength": 63,
                "x-kubernetes-validations": [
                    {"rule": format!("self.matches('{DNS_LABEL_PATTERN}')"), "message": "a container name must be a lowercase DNS label (a-z, 0-9 and '-')"},
                ],
            },
            "image": {"type": "string", "minLength": 1, "maxLength": MAX_IMAGE_LENGTH}
        }
    });
    if required {
        schema["required"] = serde_json::json!(["name", "image"]);
    }
    schema
}

/// The labels of `spec.selector.matchLabels`: at least one, valid keys and values, and none of
/// the `safedeploy.dev/` keys the operator sets on every ReplicaSet and pod (a selector on them
/// would be overwritten and then select nothing).
fn selector_rules() -> serde_json::Value {
    let mut rules = vec![
        serde_json::json!({"rule": "size(self) > 0", "message": "selector.matchLabels needs at least one label"}),
        serde_json::json!({"rule": "self.all(k, !k.startsWith('safedeploy.dev/'))",
             "message": "selector.matchLabels must not use the safedeploy.dev/ keys: the operator sets them"}),
    ];
    if let serde_json::Value::Array(labels) = label_rules("selector.matchLabels") {
        rules.extend(labels);
    }
    serde_json::Value::Array(rules)
}

/// The rules on the whole spec: the shape (template or components), selectors, references to
/// analysis templates, and the relations between fields (durations against the progress
/// deadline, replicas against template changes).
fn spec_rules() -> serde_json::Value {
    let deadline = duration_or("self", "progressDeadline", "10m");
    let bad_deadline = bad_duration("self", "progressDeadline");
    let interval = duration_or("a", "interval", super::analysis::DEFAULT_INTERVAL);
    let bad_template = format!(
        "{} || {} || {}",
        bad_duration("a", "interval"),
        bad_duration("a", "initialDelay"),
        bad_duration("a", "duration")
    );
    let count = super::analysis::DEFAULT_COUNT;
    serde_json::json!([
        {"rule": "(has(self.template) ? 1 : 0) + (has(self.components) ? 1 : 0) + (has(self.workloadRef) ? 1 : 0) == 1",
         "message": "set exactly one of spec.template (a single component), spec.components (several coupled components) or spec.workloadRef (adopt a running Deployment)"},
        {"rule": "has(self.workloadRef) == has(oldSelf.workloadRef)",
         "message": "spec.workloadRef cannot be added to or removed from an existing SafeDeployment: delete it (an adopted Deployment is scaled back up) and create another"},
        {"rule": "!has(self.template) || has(self.replicas)",
         "message": "spec.replicas is required with spec.template"},
        {"rule": "!has(self.components) || !has(self.replicas)",
         "message": "spec.replicas is for spec.template; with spec.components each component has its own replicas (so the scale subresource, kubectl scale and an HPA work with spec.template only)"},
        {"rule": "!has(self.template) || self.selector.matchLabels.all(k, has(self.template.metadata) && has(self.template.metadata.labels) && k in self.template.metadata.labels && self.template.metadata.labels[k] == self.selector.matchLabels[k])",
         "message": "spec.selector.matchLabels must match the labels of spec.template.metadata.labels"},
        {"rule": "!has(self.components) || self.components.all(c, self.selector.matchLabels.all(k, has(c.template.metadata) && has(c.template.metadata.labels) && k in c.template.metadata.labels && c.template.metadata.labels[k] == self.selector.matchLabels[k]))",
         "message": "every component's template labels must include spec.selector.matchLabels"},
        {"rule": "!has(self.strategy.canary) || self.strategy.canary.steps.all(s, !has(s.analysis) || (has(self.analyses) && self.analyses.exists(a, a.name == s.analysis.template)))",
         "message": "an analysis step names a template that is not in spec.analyses"},
        {"rule": "!has(self.strategy.canary) || !has(self.strategy.canary.backgroundAnalysis) || (has(self.analyses) && self.analyses.exists(a, a.name == self.strategy.canary.backgroundAnalysis))",
         "message": "strategy.canary.backgroundAnalysis names a template that is not in spec.analyses"},
        // Milliseconds, not `duration(string(...))`: the cost estimator cannot bound the size of
        // `string(int)` and rejects the rule as far too expensive.
        {"rule": format!("!has(self.minReadySeconds) || {bad_deadline} || self.minReadySeconds * 1000 < {deadline}.getMilliseconds()"),
         "message": "spec.minReadySeconds must be shorter than spec.progressDeadline (default 10m): otherwise no pod becomes available in time and every rollout reverts"},
        {"rule": format!("{bad_deadline} || !has(self.analyses) || !has(self.strategy.canary) || self.strategy.canary.steps.all(s, !has(s.analysis) || self.analyses.all(a, a.name != s.analysis.template || {bad_template} || (has(a.initialDelay) ? duration(a.initialDelay).getMilliseconds() : 0) + (has(a.duration) ? duration(a.duration).getMilliseconds() : ((has(a.count) ? a.count : {count}) - 1) * {interval}.getMilliseconds()) < {deadline}.getMilliseconds()))"),
         "message": "an analysis step must be able to finish before spec.progressDeadline (default 10m): its template's initialDelay + (count - 1) x interval, or initialDelay + duration, reaches the deadline, so the step would always revert"},
        {"rule": "!has(self.analyses) || self.analyses.all(a, a.metrics.all(m, !has(m.provider.kubernetes) || !has(m.provider.kubernetes.component) || (has(self.components) ? self.components.exists(c, c.name == m.provider.kubernetes.component) : m.provider.kubernetes.component == 'main')))",
         "message": "provider.kubernetes.component must name an entry of spec.components (with spec.template the only component is main)"},
        {"rule": "!has(self.strategy.canary) || !has(self.strategy.canary.trafficRouting) || has(self.template) || has(self.workloadRef)",
         "message": "strategy.canary.trafficRouting needs spec.template or spec.workloadRef: the stable and canary Services select the pods of one component"},
        {"rule": "!has(self.strategy.canary) || has(self.strategy.canary.trafficRouting) || self.strategy.canary.steps.all(s, !has(s.setCanaryScale) && !has(s.setHeaderRoute) && !has(s.setMirrorRoute))",
         "message": "setCanaryScale, setHeaderRoute and setMirrorRoute steps need strategy.canary.trafficRouting: without a router the weight is the replica ratio"},
        {"rule": "!has(self.strategy.canary) || !has(self.strategy.canary.trafficRouting) || self.strategy.canary.trafficRouting.gatewayAPI.grpcRoutes.size() == 0 || self.strategy.canary.steps.all(s, !has(s.setMirrorRoute))",
         "message": "setMirrorRoute steps mirror HTTPRoutes only: remove the grpcRoutes or the setMirrorRoute steps"},
        {"rule": "!has(self.strategy.blueGreen) || has(self.template) || has(self.workloadRef)",
         "message": "strategy.blueGreen needs spec.template or spec.workloadRef: the active and preview Services select the pods of one component"},
        {"rule": "!has(self.strategy.blueGreen) || ((!has(self.strategy.blueGreen.prePromotionAnalysis) || self.strategy.blueGreen.prePromotionAnalysis.all(t, has(self.analyses) && self.analyses.exists(a, a.name == t))) && (!has(self.strategy.blueGreen.postPromotionAnalysis) || self.strategy.blueGreen.postPromotionAnalysis.all(t, has(self.analyses) && self.analyses.exists(a, a.name == t))))",
         "message": "blueGreen.prePromotionAnalysis and postPromotionAnalysis name templates of spec.analyses"},
        {"rule": "!has(self.template) || !has(oldSelf.template) || !has(self.replicas) || self.replicas > 0 || self.template == oldSelf.template",
         "message": "spec.template cannot change while spec.replicas is 0: without canary pods nothing can be judged and the revision would be reverted at the progress deadline; change it together with replicas above 0"},
        {"rule": "!has(self.components) || !has(oldSelf.components) || self.components.exists(c, c.replicas > 0) || (self.components.size() == oldSelf.components.size() && self.components.all(c, oldSelf.components.exists(o, o.name == c.name && o.template == c.template)))",
         "message": "spec.components templates cannot change while every component has 0 replicas: without canary pods nothing can be judged and the revision would be reverted at the progress deadline; change them together with replicas above 0"},
    ])
}

fn optional_pod_template_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    pod_template_schema(generator)
}

#[cfg(test)]
#[path = "tests/safedeployment.rs"]
mod tests;
