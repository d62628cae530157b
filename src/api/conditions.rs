//! The status vocabulary: condition types and statuses, condition reasons, event reasons, history
//! outcomes and revert reasons, as enums; and the names of the phases (`Phase` itself is part of
//! the status type in `safedeployment.rs`).
//!
//! Why enums over string constants (linkerd's `mod conditions { pub const … }`): a `match` on an
//! enum is checked for completeness, a typo does not compile, and the phase gauge or a test can
//! list every value (`ALL`). The status fields stay `String` (a `Condition`'s `reason`, a history
//! entry's `outcome`), so the CRDs and what clients read do not change: every value's string is
//! its variant's name, serialised as such (`as_str`, `Display`, serde), and compares equal to
//! that string in either direction (`condition.reason == ConditionReason::Healthy`).

use super::Phase;

impl Phase {
    /// Every phase, in declaration order (the phase gauge counts each, zero included).
    pub const ALL: [Phase; 7] = [
        Phase::Pending,
        Phase::Blocked,
        Phase::Progressing,
        Phase::Paused,
        Phase::Inconclusive,
        Phase::Healthy,
        Phase::Degraded,
    ];

    /// The name status shows (`status.phase`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Blocked => "Blocked",
            Phase::Progressing => "Progressing",
            Phase::Paused => "Paused",
            Phase::Inconclusive => "Inconclusive",
            Phase::Healthy => "Healthy",
            Phase::Degraded => "Degraded",
        }
    }
}

/// Declares a vocabulary enum whose string form is each variant's own name.
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        $name:ident { $($(#[$variant_meta:meta])* $variant:ident,)+ }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            PartialOrd,
            Ord,
            Hash,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        pub enum $name {
            $($(#[$variant_meta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The string written to status and events: the variant's name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => stringify!($variant),)+
                }
            }

            /// The value whose string is `text`, if any.
            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|value| value.as_str() == text)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.as_str().to_string()
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.as_str()
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.as_str()
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                self.as_str() == other.as_str()
            }
        }
    };
}

// The attestation's rejection reasons (`rejection.rs`) are declared with the same macro.
pub(crate) use vocabulary;

vocabulary! {
    /// The `type` of each condition of a SafeDeployment's status.
    ConditionType {
        /// The desired revision is stable and every component is Ready at full size.
        Ready,
        /// A rollout is under way (canary steps, a pause, an inconclusive analysis).
        Progressing,
        /// The canary was reverted.
        Degraded,
        /// The attestation check of the desired revision passed (or is not required).
        Attested,
        /// Every object the templates reference exists.
        Preflight,
        /// kstatus' "abnormal-true" twin of `Progressing`.
        Reconciling,
        /// kstatus' "abnormal-true" condition: a person must act (reverted, blocked, failed).
        Stalled,
    }
}

vocabulary! {
    /// The `status` of a condition (Kubernetes' convention).
    ConditionStatus {
        /// The condition holds.
        True,
        /// The condition does not hold.
        False,
    }
}

impl From<bool> for ConditionStatus {
    fn from(holds: bool) -> Self {
        if holds {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        }
    }
}

vocabulary! {
    /// The `reason` of a condition. A rejected attestation's `Attested` reason is the verifier's
    /// own (`Missing`, `BadSignature`, …: [`RejectReason`](super::rejection::RejectReason)), not
    /// one of these.
    ConditionReason {
        /// `Ready`, `Progressing`, `Reconciling`: the desired revision is stable and Ready.
        RolloutComplete,
        /// `Ready`, `Progressing`, `Reconciling`: a rollout is under way.
        RolloutInProgress,
        /// `Ready`, `Stalled`: the desired revision was reverted or rolled back from.
        RevisionRejected,
        /// `Ready`, `Stalled`: the desired revision is blocked by its attestation.
        AttestationFailed,
        /// `Ready`, `Stalled`: the desired revision is blocked by preflight.
        PreflightFailed,
        /// `Progressing`, `Reconciling`: paused (a pause step or a user).
        Paused,
        /// `Progressing`, `Reconciling`: an analysis could not decide.
        AnalysisInconclusive,
        /// `Progressing`, `Reconciling`, `Degraded`: the canary was reverted.
        RolloutReverted,
        /// `Progressing`, `Reconciling`: the new revision may not start.
        RolloutBlocked,
        /// `Degraded=False`.
        Healthy,
        /// `Attested=True`: a valid attestation covers the revision.
        Verified,
        /// `Attested=True`: the namespace's policy does not require attestations.
        NotRequired,
        /// `Preflight=True`.
        Passed,
        /// `Preflight=False`: a referenced object or key is missing (or refused).
        MissingReferences,
        /// `Stalled=False`.
        NotStalled,
        /// `Stalled=True`: the stable revision's ReplicaSets were deleted mid-rollout.
        StableReplicaSetLost,
        /// `Stalled=True`, set by the controller: an API request failed.
        ReconcileFailed,
        /// `Stalled=True`, set by the controller: the reconcile panicked.
        ReconcilePanicked,
        /// `Progressing`, `Reconciling`: a freeze window of the namespace's policy holds the
        /// rollout (no new canary, step or promotion; reverts go on).
        Frozen,
        /// `Ready`, `Stalled`: the revision falls short of the policy's rollout requirements.
        RequirementNotMet,
    }
}

vocabulary! {
    /// The `reason` of a Kubernetes Event the operator records.
    EventReason {
        /// A canary (or the initial revision) started.
        RolloutStarted,
        /// A revision became stable.
        RolloutCompleted,
        /// The canary was reverted.
        RolloutReverted,
        /// The desired revision may not start (attestation, preflight).
        RolloutBlocked,
        /// A newer revision, or the stable one, replaced the canary.
        RolloutSuperseded,
        /// A canary step completed.
        StepCompleted,
        /// The canary steps were edited mid-rollout: the canary restarts at step 1.
        StepsChanged,
        /// A user promoted past every remaining step.
        PromotedFull,
        /// A user paused the rollout.
        Paused,
        /// A user resumed the rollout.
        Resumed,
        /// A user asked to try a rejected revision again.
        RetryRequested,
        /// A user's rollback was carried out.
        RolledBack,
        /// A user's rollback could not be carried out.
        RollbackFailed,
        /// The stable revision's ReplicaSets were deleted mid-rollout.
        StableReplicaSetLost,
        /// Status had lost the stable revision or the rejected ones; they were read back from
        /// the cluster (the ReplicaSets serving, the rejection marks on ReplicaSets).
        StatusRecovered,
        /// A reconcile failed on an API request.
        ReconcileFailed,
        /// A reconcile panicked.
        ReconcilePanicked,
        /// A freeze window holds the rollout (a new canary, a step or a promotion waits).
        Frozen,
        /// A break-glass override let the rollout move during a freeze.
        FreezeOverridden,
        /// The revision falls short of the policy's rollout requirements.
        RequirementNotMet,
        /// A notification will not be delivered: its receiver refused it, or did not answer
        /// before it expired.
        NotificationDropped,
        /// The Deployment of `spec.workloadRef` was adopted (marked, its replica count recorded).
        DeploymentAdopted,
        /// The adopted Deployment was scaled (down as the SafeDeployment's pods took over, or
        /// back up).
        DeploymentScaled,
        /// The adopted Deployment was handed back: it serves on its own again.
        DeploymentReleased,
        /// No operator shard serves this SafeDeployment (its `safedeploy.dev/shard` label
        /// matches none of them).
        NotSharded,
        /// The SafeDeployment moved to this shard: its ReplicaSets and pods were relabelled.
        ShardMoved,
    }
}

vocabulary! {
    /// The `outcome` of a history entry.
    HistoryOutcome {
        /// The rollout of this revision is under way (the open entry).
        InProgress,
        /// The revision became stable.
        Promoted,
        /// The canary was reverted.
        Reverted,
        /// The revision may not start (attestation, preflight).
        Blocked,
        /// A rollback stopped the canary.
        Aborted,
        /// A newer revision replaced the canary.
        Superseded,
        /// The canary is the desired revision and stopped because its gates failed mid-way.
        Abandoned,
        /// A user rolled back to this revision.
        RolledBack,
        /// A user asked to try this rejected revision again.
        RetryRequested,
        /// A user promoted past the current step.
        PromoteRequested,
        /// A user promoted past every remaining step.
        PromoteFullRequested,
        /// A user paused the rollout.
        Paused,
        /// A user resumed the rollout.
        Resumed,
        /// A break-glass override let the rollout move during a freeze (who, why, until when).
        FreezeOverridden,
    }
}

vocabulary! {
    /// Why a canary was reverted: the first word of the `Reverted` history entry's reason and
    /// of the `Degraded` status message.
    RevertReason {
        /// A health gate measured a critical value.
        HealthGateBreached,
        /// An analysis failed.
        AnalysisFailed,
        /// A user aborted the canary.
        Aborted,
        /// A step (or the promotion) was held beyond the progress deadline.
        ProgressDeadlineExceeded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings<T: Copy + Into<String>>(all: &[T]) -> Vec<String> {
        all.iter().map(|value| (*value).into()).collect()
    }

    /// The strings are API: status, events and history show them, and clients match on them.
    #[test]
    fn every_string_is_pinned() {
        assert_eq!(
            strings(ConditionType::ALL),
            [
                "Ready",
                "Progressing",
                "Degraded",
                "Attested",
                "Preflight",
                "Reconciling",
                "Stalled"
            ]
        );
        assert_eq!(strings(ConditionStatus::ALL), ["True", "False"]);
        assert_eq!(
            strings(ConditionReason::ALL),
            [
                "RolloutComplete",
                "RolloutInProgress",
                "RevisionRejected",
                "AttestationFailed",
                "PreflightFailed",
                "Paused",
                "AnalysisInconclusive",
                "RolloutReverted",
                "RolloutBlocked",
                "Healthy",
                "Verified",
                "NotRequired",
                "Passed",
                "MissingReferences",
                "NotStalled",
                "StableReplicaSetLost",
                "ReconcileFailed",
                "ReconcilePanicked",
                "Frozen",
                "RequirementNotMet"
            ]
        );
        assert_eq!(
            strings(EventReason::ALL),
            [
                "RolloutStarted",
                "RolloutCompleted",
                "RolloutReverted",
                "RolloutBlocked",
                "RolloutSuperseded",
                "StepCompleted",
                "StepsChanged",
                "PromotedFull",
                "Paused",
                "Resumed",
                "RetryRequested",
                "RolledBack",
                "RollbackFailed",
                "StableReplicaSetLost",
                "StatusRecovered",
                "ReconcileFailed",
                "ReconcilePanicked",
                "Frozen",
                "FreezeOverridden",
                "RequirementNotMet",
                "NotificationDropped",
                "DeploymentAdopted",
                "DeploymentScaled",
                "DeploymentReleased",
                "NotSharded",
                "ShardMoved"
            ]
        );
        assert_eq!(
            strings(HistoryOutcome::ALL),
            [
                "InProgress",
                "Promoted",
                "Reverted",
                "Blocked",
                "Aborted",
                "Superseded",
                "Abandoned",
                "RolledBack",
                "RetryRequested",
                "PromoteRequested",
                "PromoteFullRequested",
                "Paused",
                "Resumed",
                "FreezeOverridden"
            ]
        );
        assert_eq!(
            strings(RevertReason::ALL),
            [
                "HealthGateBreached",
                "AnalysisFailed",
                "Aborted",
                "ProgressDeadlineExceeded"
            ]
        );
    }

    #[test]
    fn serde_display_parse_and_comparison_agree_with_the_string() {
        for reason in ConditionReason::ALL {
            let text = reason.as_str();
            assert_eq!(
                serde_json::to_string(reason).unwrap(),
                format!("\"{text}\"")
            );
            assert_eq!(
                serde_json::from_str::<ConditionReason>(&format!("\"{text}\"")).unwrap(),
                *reason
            );
            assert_eq!(reason.to_string(), text);
            assert_eq!(ConditionReason::parse(text), Some(*reason));
            let owned = String::from(text);
            assert_eq!(*reason, text);
            assert_eq!(text, *reason);
            assert_eq!(owned, *reason);
        }
        assert_eq!(ConditionReason::parse("Missing"), None);
        for phase in Phase::ALL {
            assert_eq!(
                serde_json::to_string(&phase).unwrap(),
                format!("\"{}\"", phase.as_str())
            );
        }
        assert_eq!(
            Phase::ALL.map(Phase::as_str),
            [
                "Pending",
                "Blocked",
                "Progressing",
                "Paused",
                "Inconclusive",
                "Healthy",
                "Degraded"
            ]
        );
        assert_eq!(ConditionStatus::from(true), ConditionStatus::True);
        assert_eq!(ConditionStatus::from(false), "False");
    }
}
