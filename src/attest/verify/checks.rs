//! Step 7 of the verifier's checklist (see [`super`]): what the attestation says of its checks
//! (`verificationResult`, each check's result, each metric against its own recorded threshold,
//! the required checks' results → `ChecksFailed`) and what the policy requires beyond that
//! (required checks present, metric bounds, verifier ids, environment → `PolicyViolation`).

use serde_json::Value;

use super::{RejectReason, Rejection, reject};
use crate::api::policy::SafeDeploymentPolicySpec;
use crate::attest::statement::{Check, FAILED, LocalValidation, PASSED};

pub(super) fn check_results(
    predicate: &LocalValidation,
    policy: &SafeDeploymentPolicySpec,
) -> Result<(), Rejection> {
    use RejectReason::ChecksFailed;
    if predicate.verification_result != PASSED {
        return reject(
            ChecksFailed,
            format!("verificationResult is {:?}", predicate.verification_result),
        );
    }
    for check in &predicate.checks {
        if check.result == FAILED {
            return reject(
                ChecksFailed,
                format!("check {:?} ({}) FAILED", check.name, check.kind),
            );
        }
        if let Some(metric) = check.metrics.iter().find(|m| !m.within_own_threshold()) {
            let t = metric
                .threshold
                .as_ref()
                .map(|t| format!("{} {}", t.op, t.value))
                .unwrap_or_default();
            return reject(
                ChecksFailed,
                format!(
                    "check {:?}: metric {} = {} violates its threshold {t}",
                    check.name, metric.name, metric.value
                ),
            );
        }
    }
    for required in &policy.required_checks {
        let offending = |c: &&Check| c.result != PASSED;
        let bad = match (&required.name, &required.kind) {
            (Some(name), _) => predicate
                .checks
                .iter()
                .filter(|c| &c.name == name)
                .find(offending),
            (None, Some(kind)) => predicate
                .checks
                .iter()
                .filter(|c| &c.kind == kind)
                .find(offending),
            (None, None) => None,
        };
        if let Some(check) = bad {
            return reject(
                ChecksFailed,
                format!(
                    "required check {:?} ({}) has result {:?}, not PASSED",
                    check.name, check.kind, check.result
                ),
            );
        }
    }
    Ok(())
}

pub(super) fn check_requirements(
    predicate: &LocalValidation,
    policy: &SafeDeploymentPolicySpec,
) -> Result<(), Rejection> {
    use RejectReason::PolicyViolation;
    for required in &policy.required_checks {
        match (&required.name, &required.kind) {
            (Some(name), _) if !predicate.checks.iter().any(|c| &c.name == name) => {
                return reject(
                    PolicyViolation,
                    format!("required check {name:?} is missing"),
                );
            }
            (None, Some(kind)) if !predicate.checks.iter().any(|c| &c.kind == kind) => {
                return reject(
                    PolicyViolation,
                    format!("no check of required kind {kind:?}"),
                );
            }
            (None, None) => {
                return reject(
                    PolicyViolation,
                    "a required check names neither a check nor a kind",
                );
            }
            _ => {}
        }
    }
    for bound in &policy.metric_bounds {
        let scope = bound
            .check
            .as_deref()
            .map_or("any check".to_owned(), |c| format!("check {c:?}"));
        let values: Vec<(&str, f64)> = predicate
            .checks
            .iter()
            .filter(|c| bound.check.as_ref().is_none_or(|name| &c.name == name))
            .flat_map(|c| {
                c.metrics
                    .iter()
                    .filter(|m| m.name == bound.metric)
                    .map(move |m| (c.name.as_str(), m.value))
            })
            .collect();
        if values.is_empty() {
            return reject(
                PolicyViolation,
                format!(
                    "metric {:?} required by the policy is not reported by {scope}",
                    bound.metric
                ),
            );
        }
        for (check, value) in values {
            // Written as negations so that a NaN bound or value is a violation (fail closed).
            #[allow(clippy::neg_cmp_op_on_partial_ord)]
            let below = bound.min.is_some_and(|min| !(value >= min));
            #[allow(clippy::neg_cmp_op_on_partial_ord)]
            let above = bound.max.is_some_and(|max| !(value <= max));
            if below || above {
                return reject(
                    PolicyViolation,
                    format!(
                        "metric {:?} of check {check:?} is {value}, outside the policy bounds [{}, {}]",
                        bound.metric,
                        bound.min.map_or("-inf".to_owned(), |v| v.to_string()),
                        bound.max.map_or("+inf".to_owned(), |v| v.to_string())
                    ),
                );
            }
        }
    }
    if !policy.allowed_verifier_ids.is_empty()
        && !policy.allowed_verifier_ids.contains(&predicate.verifier.id)
    {
        return reject(
            PolicyViolation,
            format!(
                "verifier {:?} is not allowed by the policy",
                predicate.verifier.id
            ),
        );
    }
    for (key, want) in &policy.required_environment {
        match predicate.environment.get(key) {
            Some(Value::String(have)) if have == want => {}
            have => {
                return reject(
                    PolicyViolation,
                    format!(
                        "environment {key:?} is {}, the policy requires {want:?}",
                        have.map_or("absent".to_owned(), |v| v.to_string())
                    ),
                );
            }
        }
    }
    Ok(())
}
