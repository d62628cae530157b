//! The errors of a reconcile, in one place below every step that can fail (dereference,
//! analysis, attestation, configuration, apply), so that the steps import the error type and
//! not each other: `reconcile` calls them, they do not call back into `reconcile`.

use crate::core::failure::FailureKind;
use crate::core::revision::EmptySpec;

/// Why a reconcile failed; each is retried with a back-off.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// An API call failed.
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    /// The spec has no template (the schema prevents this).
    #[error("{0}")]
    EmptySpec(#[from] EmptySpec),
    /// The object has no namespace.
    #[error("SafeDeployment without a namespace")]
    NoNamespace,
    /// A ReplicaSet of an old revision is gone and cannot be rebuilt.
    #[error("the ReplicaSet for {0} is gone and its template is unknown")]
    LostReplicaSet(String),
    /// A Service the traffic routing names exists and is not controlled by this SafeDeployment.
    #[error(
        "Service {0} exists and is not owned by this SafeDeployment: the operator does not take over another's Service; name other Services in trafficRouting (stableService, canaryService) or blueGreen (activeService, previewService), or delete it"
    )]
    ServiceTaken(String),
    /// A configuration copy cannot be made or trusted.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// A write the decision asked for was refused or failed.
    #[error("{what}: {}", describe_kube_error(source))]
    Write {
        /// What was being written, e.g. `create ReplicaSet web-5d8f`.
        what: String,
        /// The API error.
        source: kube::Error,
    },
    /// The Deployment `spec.workloadRef` names cannot be adopted as it is.
    #[error("workloadRef: {0}")]
    Adoption(#[from] crate::core::adopt::Refusal),
    /// The Deployment `spec.workloadRef` names does not exist.
    #[error(
        "workloadRef: Deployment {0} not found in this namespace; the SafeDeployment's pods keep running as they are until it exists"
    )]
    AdoptedDeploymentMissing(String),
    /// The cached object could not be read back (a bug: the cache holds what serde wrote).
    #[error(
        "the cached SafeDeployment could not be read (a bug in safedeploy, please report it): {0}"
    )]
    Cache(#[from] super::cached::CacheReadError),
    /// The reconcile panicked (a bug); contained to this object.
    #[error("the reconcile panicked (a bug in safedeploy, please report it): {0}")]
    Panicked(String),
    /// This replica stopped being the leader (or is shutting down) before a write: the reconcile
    /// stops without it (not an error; see [`reconcile`]).
    #[error("{0}")]
    NotLeader(#[from] super::leader::NotLeader),
}

/// The API server's own words for an API error; the error's text otherwise.
pub fn describe_kube_error(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            format!("{} ({} {})", status.message, status.code, status.reason)
        }
        other => other.to_string(),
    }
}

/// Adds what was being written to an API error.
pub(super) fn writing(what: impl Into<String>) -> impl FnOnce(kube::Error) -> ReconcileError {
    let what = what.into();
    move |source| ReconcileError::Write { what, source }
}

impl ReconcileError {
    /// The metric label of this error.
    pub(super) fn category(&self) -> &'static str {
        match self {
            _ if self.is_conflict() => "conflict",
            ReconcileError::Kube(_) | ReconcileError::Write { .. } => "kubernetes",
            ReconcileError::EmptySpec(_) | ReconcileError::NoNamespace => "invalid_spec",
            ReconcileError::LostReplicaSet(_) => "lost_replica_set",
            ReconcileError::ServiceTaken(_) => "routing",
            ReconcileError::Adoption(_) | ReconcileError::AdoptedDeploymentMissing(_) => "adoption",
            ReconcileError::Config(_) => "config",
            ReconcileError::Panicked(_) => "panic",
            ReconcileError::Cache(_) => "cache",
            ReconcileError::NotLeader(_) => "not_leader",
        }
    }

    /// A write conflict: the decision was taken on a stale object. Not a failure: the watch is
    /// about to deliver the newer one.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            ReconcileError::Kube(kube::Error::Api(status))
                | ReconcileError::Write { source: kube::Error::Api(status), .. }
                if status.code == 409
        )
    }

    /// How the failure is recorded in status.
    pub(super) fn failure_kind(&self) -> FailureKind {
        match self {
            ReconcileError::Panicked(_) => FailureKind::Panic,
            _ => FailureKind::ApiError,
        }
    }
}

/// A configuration copy that cannot be made or trusted.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An object with the copy's name exists with other content.
    #[error(
        "{kind} {copy:?} exists but its content digest is {found}, not the {expected} its name stands for; delete it"
    )]
    CopyConflict {
        /// Kind of the copy.
        kind: &'static str,
        /// The copy's name.
        copy: String,
        /// The digest the revision needs.
        expected: String,
        /// The digest found.
        found: String,
    },
    /// A copy is gone and the original no longer has the revision's content.
    #[error(
        "the copy {copy:?} of {object} is gone and the original no longer holds that content (needed {expected}); revision {revision} cannot be scaled up"
    )]
    ContentGone {
        /// The original object.
        object: String,
        /// The copy's name.
        copy: String,
        /// The digest the revision needs.
        expected: String,
        /// The revision hash.
        revision: String,
    },
}
