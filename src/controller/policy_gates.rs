//! What the namespace's SafeDeploymentPolicy asks of a rollout besides trust: its freeze windows
//! (with the SafeDeployment's break-glass request) and its rollout requirements, evaluated by the
//! pure `core::freeze` and `core::requirements` at the reconcile's `now`, and the minimum bake
//! time the decision holds a promotion for.

use kube::ResourceExt;

use super::Context;
use super::attestation::namespace_policy;
use super::error::ReconcileError;
use crate::api::SafeDeployment;
use crate::api::duration::SpecDuration;
use crate::api::freeze::DEFAULT_MAX_BREAK_GLASS;
use crate::api::labels::{REQUEST_BREAK_GLASS, REQUEST_BREAK_GLASS_REASON};
use crate::core::freeze::{FreezeGate, break_glass, evaluate};
use crate::core::requirements::{Violation, check};

/// The freeze gate and the unmet requirements of one rollout.
#[derive(Debug, Clone, Default)]
pub struct PolicyGates {
    /// Freeze windows at `now` and the break-glass request.
    pub freeze: FreezeGate,
    /// Requirements the spec falls short of.
    pub requirements: Vec<Violation>,
    /// The policy's minimum bake time, which holds a promotion (a person's promote too).
    pub min_bake_time: Option<SpecDuration>,
}

/// Evaluates the freeze windows and requirements of the policy that applies to `sd`'s
/// namespace. Reads the namespace's labels only when some policy has windows or requirements.
pub async fn policy_gates(
    sd: &SafeDeployment,
    ctx: &Context,
    namespace: &str,
    now: jiff::Timestamp,
) -> Result<PolicyGates, ReconcileError> {
    let any_policy_asks = ctx
        .policies
        .state()
        .iter()
        .any(|p| p.spec.freeze.is_some() || p.spec.requirements.is_some());
    if !any_policy_asks {
        return Ok(PolicyGates::default());
    }
    let Some(policy) = namespace_policy(ctx, namespace).await? else {
        return Ok(PolicyGates::default());
    };
    let min_bake_time = policy
        .spec
        .requirements
        .as_ref()
        .and_then(|r| r.min_bake_time.clone());
    // A break-glass override lifts a freeze and the bake time's hold on a promotion, so it is
    // read when the policy has either.
    let freeze = if policy.spec.freeze.is_some() || min_bake_time.is_some() {
        let max = policy
            .spec
            .freeze
            .as_ref()
            .and_then(|f| f.max_break_glass.clone())
            .unwrap_or_else(|| SpecDuration::from(DEFAULT_MAX_BREAK_GLASS))
            .parse()
            .unwrap_or(std::time::Duration::from_secs(4 * 3600));
        FreezeGate {
            state: policy
                .spec
                .freeze
                .as_ref()
                .map(|freeze| evaluate(freeze, now))
                .unwrap_or_default(),
            break_glass: break_glass(
                sd.annotations()
                    .get(REQUEST_BREAK_GLASS)
                    .map(String::as_str),
                sd.annotations()
                    .get(REQUEST_BREAK_GLASS_REASON)
                    .map(String::as_str),
                max,
                now,
            ),
        }
    } else {
        FreezeGate::default()
    };
    let requirements = policy
        .spec
        .requirements
        .as_ref()
        .map(|r| check(r, &sd.spec, namespace))
        .unwrap_or_default();
    Ok(PolicyGates {
        freeze,
        requirements,
        min_bake_time,
    })
}
