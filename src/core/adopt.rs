//! Adoption of a running Deployment (`spec.workloadRef`), decided on plain data: which spec the
//! rest of the pipeline sees (the Deployment's template, the replica count it had), how far the
//! Deployment is scaled down while the SafeDeployment's own pods take over, and the steps that
//! hand it back when the SafeDeployment is deleted. The capacity rule throughout: the
//! Deployment's available pods and the SafeDeployment's together never fall below what the
//! Deployment served before, and the Deployment gives up a pod only for one of the
//! SafeDeployment's that is available.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PodTemplateSpec;

use crate::api::SafeDeploymentSpec;
use crate::api::adoption::{ANNOTATION_ORIGINAL_REPLICAS, LABEL_ADOPTED_BY, ScaleDown};

/// The most replicas an adopted Deployment may have (the bound of `spec.replicas`).
pub const MAX_ADOPTED_REPLICAS: i32 = 10_000;

/// What the operator reads of the referenced Deployment.
#[derive(Debug, Clone, Copy)]
pub struct DeploymentView<'a> {
    /// Its name.
    pub name: &'a str,
    /// `spec.replicas` (the API server defaults it to 1).
    pub replicas: i32,
    /// `status.availableReplicas`.
    pub available: i32,
    /// Whether the Deployment controller has seen its latest spec
    /// (`status.observedGeneration >= metadata.generation`): only then does `available` speak
    /// of the replica count written last.
    pub observed: bool,
    /// Its pod template.
    pub template: &'a PodTemplateSpec,
    /// The value of [`crate::api::adoption::LABEL_ADOPTED_BY`], if set.
    pub adopted_by: Option<&'a str>,
    /// The value of [`crate::api::adoption::ANNOTATION_ORIGINAL_REPLICAS`], if set.
    pub original_replicas: Option<&'a str>,
}

impl<'a> DeploymentView<'a> {
    /// How `deployment` reads (`empty` stands in for a missing template).
    pub fn of(deployment: &'a Deployment, empty: &'a PodTemplateSpec) -> DeploymentView<'a> {
        let spec = deployment.spec.as_ref();
        let status = deployment.status.as_ref();
        let metadata = &deployment.metadata;
        DeploymentView {
            name: metadata.name.as_deref().unwrap_or_default(),
            replicas: spec.and_then(|s| s.replicas).unwrap_or(1),
            available: status.and_then(|s| s.available_replicas).unwrap_or(0),
            observed: status.and_then(|s| s.observed_generation) >= metadata.generation,
            template: spec.map_or(empty, |s| &s.template),
            adopted_by: metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_ADOPTED_BY))
                .map(String::as_str),
            original_replicas: metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANNOTATION_ORIGINAL_REPLICAS))
                .map(String::as_str),
        }
    }
}

/// Why a Deployment cannot be adopted (or handed back) as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Another SafeDeployment adopted it already.
    #[error(
        "Deployment {deployment} is adopted by SafeDeployment {owner} already (label safedeploy.dev/adopted-by); a Deployment has one owner"
    )]
    AdoptedByAnother {
        /// The Deployment.
        deployment: String,
        /// The SafeDeployment that adopted it.
        owner: String,
    },
    /// The Deployment's pod template lacks a label of `spec.selector`.
    #[error(
        "the pod template of Deployment {deployment} does not carry the label {label}={value} of spec.selector.matchLabels; the selector must match the Deployment's pods so a Service spans both during adoption"
    )]
    SelectorMismatch {
        /// The Deployment.
        deployment: String,
        /// The selector's label key.
        label: String,
        /// The selector's value.
        value: String,
    },
    /// The replica count recorded on the Deployment is not a number the operator acts on.
    #[error(
        "Deployment {deployment} has annotation safedeploy.dev/original-replicas={value:?}, which is not a replica count from 0 to {MAX_ADOPTED_REPLICAS}; set it to the count the Deployment should return to"
    )]
    UnreadableOriginal {
        /// The Deployment.
        deployment: String,
        /// The annotation's value.
        value: String,
    },
    /// The Deployment asks for more replicas than a SafeDeployment may run.
    #[error(
        "Deployment {deployment} has {replicas} replicas; a SafeDeployment runs at most {MAX_ADOPTED_REPLICAS}"
    )]
    TooManyReplicas {
        /// The Deployment.
        deployment: String,
        /// Its replica count.
        replicas: i32,
    },
}

/// The spec the pipeline rolls out, and what adoption keeps of the Deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The SafeDeployment's spec with the Deployment's template, and `replicas` defaulted to
    /// the Deployment's original count.
    pub spec: SafeDeploymentSpec,
    /// The Deployment's replica count before the operator scaled it.
    pub original_replicas: i32,
    /// Whether the Deployment carries the adoption marks already (label and original count).
    pub marked: bool,
}

/// The replica count the Deployment had before the operator scaled it: the recorded one, or
/// (not adopted yet) its current one.
pub fn original_replicas(deployment: &DeploymentView<'_>) -> Result<i32, Refusal> {
    match deployment.original_replicas {
        Some(value) => value
            .trim()
            .parse::<i32>()
            .ok()
            .filter(|n| (0..=MAX_ADOPTED_REPLICAS).contains(n))
            .ok_or_else(|| Refusal::UnreadableOriginal {
                deployment: deployment.name.to_string(),
                value: value.chars().take(64).collect(),
            }),
        None if deployment.replicas > MAX_ADOPTED_REPLICAS => Err(Refusal::TooManyReplicas {
            deployment: deployment.name.to_string(),
            replicas: deployment.replicas,
        }),
        None => Ok(deployment.replicas.max(0)),
    }
}

/// The spec that `sd_name`'s `spec` stands for with `deployment` adopted.
pub fn resolve(
    spec: &SafeDeploymentSpec,
    sd_name: &str,
    deployment: &DeploymentView<'_>,
) -> Result<Resolved, Refusal> {
    if let Some(owner) = deployment.adopted_by.filter(|owner| *owner != sd_name) {
        return Err(Refusal::AdoptedByAnother {
            deployment: deployment.name.to_string(),
            owner: owner.to_string(),
        });
    }
    let original = original_replicas(deployment)?;
    let empty = BTreeMap::new();
    let template_labels = deployment
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref())
        .unwrap_or(&empty);
    if let Some((label, value)) = spec
        .selector
        .match_labels
        .iter()
        .find(|(k, v)| template_labels.get(*k) != Some(*v))
    {
        return Err(Refusal::SelectorMismatch {
            deployment: deployment.name.to_string(),
            label: label.clone(),
            value: value.clone(),
        });
    }
    let mut resolved = spec.clone();
    resolved.template = Some(deployment.template.clone());
    resolved.replicas = Some(spec.replicas.unwrap_or(original));
    Ok(Resolved {
        spec: resolved,
        original_replicas: original,
        marked: deployment.adopted_by.is_some() && deployment.original_replicas.is_some(),
    })
}

/// How the SafeDeployment stands, as far as scaling the Deployment down goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TakeOver {
    /// The SafeDeployment's desired replica count.
    pub replicas: i32,
    /// Its pods that are available, every revision together (baseline excluded).
    pub available: i32,
    /// Whether a stable revision exists and no canary is under way.
    pub at_rest: bool,
}

/// The Deployment's replica count now, or `None` to leave it as it is (`Never`).
///
/// `Progressively`, until the SafeDeployment is at rest and available in full, the Deployment
/// keeps one pod for every pod the SafeDeployment still lacks of the smaller of both counts
/// (so it scales back up if the SafeDeployment's pods stop being available); from then on,
/// zero. `OnSuccess`: the original count until then, zero after.
pub fn deployment_replicas(scale_down: ScaleDown, original: i32, now: TakeOver) -> Option<i32> {
    let target = original.min(now.replicas.max(0));
    let in_full = now.at_rest && now.available >= target;
    match scale_down {
        ScaleDown::Never => None,
        ScaleDown::OnSuccess => Some(if in_full { 0 } else { original }),
        ScaleDown::Progressively if in_full => Some(0),
        ScaleDown::Progressively => {
            Some(original.saturating_sub(now.available.max(0)).clamp(0, original))
        }
    }
}

/// The next step of handing an adopted Deployment back when its SafeDeployment is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseStep {
    /// Write the Deployment's replica count back to this.
    ScaleBack(i32),
    /// Wait: the Deployment has `available` of the `wanted` pods (or has not seen the count
    /// yet); the SafeDeployment's pods serve meanwhile.
    Wait {
        /// Its available pods.
        available: i32,
        /// The count it is scaled back to.
        wanted: i32,
    },
    /// The Deployment serves on its own: remove the marks and the finalizer.
    Done,
}

/// The next release step for `deployment` (its marks read as [`original_replicas`]).
/// `scale_down` `Never` has nothing to scale back.
pub fn release(scale_down: ScaleDown, deployment: &DeploymentView<'_>) -> ReleaseStep {
    if scale_down == ScaleDown::Never || deployment.original_replicas.is_none() {
        return ReleaseStep::Done;
    }
    // An unreadable mark must not hang the deletion, nor scale the Deployment to an arbitrary
    // count: keep what it has now, at least one pod.
    let wanted = original_replicas(deployment).unwrap_or(deployment.replicas.max(1));
    if deployment.replicas != wanted {
        ReleaseStep::ScaleBack(wanted)
    } else if !deployment.observed || deployment.available < wanted {
        ReleaseStep::Wait {
            available: deployment.available,
            wanted,
        }
    } else {
        ReleaseStep::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::LabelSelectorSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn template(labels: &[(&str, &str)]) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                        .collect(),
                ),
                ..Default::default()
            }),
            spec: None,
        }
    }

    fn view<'a>(template: &'a PodTemplateSpec, replicas: i32) -> DeploymentView<'a> {
        DeploymentView {
            name: "web",
            replicas,
            available: replicas,
            observed: true,
            template,
            adopted_by: None,
            original_replicas: None,
        }
    }

    fn spec(replicas: Option<i32>) -> SafeDeploymentSpec {
        SafeDeploymentSpec {
            replicas,
            selector: LabelSelectorSpec {
                match_labels: [("app".to_string(), "web".to_string())].into(),
            },
            workload_ref: Some(crate::api::adoption::WorkloadRef {
                kind: "Deployment".into(),
                name: "web".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_first_revision_is_the_deployments_template_at_its_replica_count() {
        let t = template(&[("app", "web"), ("tier", "front")]);
        let resolved = resolve(&spec(None), "web", &view(&t, 3)).expect("resolves");
        assert_eq!(resolved.spec.template.as_ref(), Some(&t));
        assert_eq!(resolved.spec.replicas, Some(3));
        assert_eq!(resolved.original_replicas, 3);
        assert!(!resolved.marked);
        let workload = resolved.spec.workload().expect("a workload");
        assert_eq!(workload.components.len(), 1);
        // The spec's own count (an HPA's, say) wins over the Deployment's.
        let sized = resolve(&spec(Some(5)), "web", &view(&t, 3)).expect("resolves");
        assert_eq!(sized.spec.replicas, Some(5));
    }

    #[test]
    fn once_marked_the_recorded_count_is_the_original_whatever_the_deployment_has_now() {
        let t = template(&[("app", "web")]);
        let mut scaled_down = view(&t, 0);
        scaled_down.adopted_by = Some("web");
        scaled_down.original_replicas = Some("4");
        let resolved = resolve(&spec(None), "web", &scaled_down).expect("resolves");
        assert_eq!(
            (resolved.original_replicas, resolved.spec.replicas),
            (4, Some(4))
        );
        assert!(resolved.marked);
    }

    #[test]
    fn a_hostile_or_foreign_deployment_is_refused_with_its_reason() {
        let t = template(&[("app", "web")]);
        let mut taken = view(&t, 3);
        taken.adopted_by = Some("other");
        assert!(matches!(
            resolve(&spec(None), "web", &taken),
            Err(Refusal::AdoptedByAnother { owner, .. }) if owner == "other"
        ));
        for bad in ["1e9", "-1", "10001", "three", ""] {
            let mut marked = view(&t, 3);
            marked.adopted_by = Some("web");
            marked.original_replicas = Some(bad);
            assert!(
                matches!(
                    resolve(&spec(None), "web", &marked),
                    Err(Refusal::UnreadableOriginal { .. })
                ),
                "{bad:?} is refused"
            );
        }
        assert!(matches!(
            resolve(&spec(None), "web", &view(&t, i32::MAX)),
            Err(Refusal::TooManyReplicas { .. })
        ));
        let other_labels = template(&[("app", "api")]);
        let refused = resolve(&spec(None), "web", &view(&other_labels, 3));
        assert!(matches!(refused, Err(Refusal::SelectorMismatch { ref label, .. }) if label == "app"));
        assert!(
            refused
                .err()
                .map(|e| e.to_string())
                .is_some_and(|m| m.contains("app=web"))
        );
    }

    fn take_over(replicas: i32, available: i32, at_rest: bool) -> TakeOver {
        TakeOver {
            replicas,
            available,
            at_rest,
        }
    }

    #[test]
    fn progressively_the_deployment_gives_up_one_pod_per_available_pod_of_ours() {
        let original = 3;
        let mut previous = original;
        for available in 0..=3 {
            let replicas = deployment_replicas(
                ScaleDown::Progressively,
                original,
                take_over(3, available, false),
            )
            .expect("scaled");
            // Capacity: the Deployment's pods plus ours never drop below the original.
            assert!(replicas + available >= original, "{available}: {replicas}");
            assert!(replicas <= previous);
            previous = replicas;
        }
        assert_eq!(previous, 0);
        // Our pods stop being available before we are at rest: the Deployment takes them back.
        assert_eq!(
            deployment_replicas(ScaleDown::Progressively, 3, take_over(3, 1, false)),
            Some(2)
        );
        // At rest and in full: zero, and it stays zero through a later canary's churn.
        assert_eq!(
            deployment_replicas(ScaleDown::Progressively, 3, take_over(3, 3, true)),
            Some(0)
        );
        // Fewer replicas asked of us than the Deployment had: the user's choice is the target.
        assert_eq!(
            deployment_replicas(ScaleDown::Progressively, 3, take_over(1, 1, true)),
            Some(0)
        );
        assert_eq!(
            deployment_replicas(ScaleDown::Progressively, 3, take_over(1, 1, false)),
            Some(2)
        );
        // Hostile numbers do not overflow or go negative.
        assert_eq!(
            deployment_replicas(
                ScaleDown::Progressively,
                3,
                take_over(i32::MAX, i32::MAX, false)
            ),
            Some(0)
        );
        assert_eq!(
            deployment_replicas(ScaleDown::Progressively, 3, take_over(-5, -5, false)),
            Some(3)
        );
    }

    #[test]
    fn on_success_waits_for_the_whole_first_revision_and_never_leaves_it_alone() {
        assert_eq!(
            deployment_replicas(ScaleDown::OnSuccess, 3, take_over(3, 2, true)),
            Some(3)
        );
        assert_eq!(
            deployment_replicas(ScaleDown::OnSuccess, 3, take_over(3, 3, false)),
            Some(3)
        );
        assert_eq!(
            deployment_replicas(ScaleDown::OnSuccess, 3, take_over(3, 3, true)),
            Some(0)
        );
        assert_eq!(
            deployment_replicas(ScaleDown::Never, 3, take_over(3, 3, true)),
            None
        );
    }

    #[test]
    fn release_scales_back_then_waits_for_the_deployments_pods_before_letting_go() {
        let t = template(&[("app", "web")]);
        let mut d = view(&t, 0);
        d.adopted_by = Some("web");
        d.original_replicas = Some("3");
        d.available = 0;
        assert_eq!(
            release(ScaleDown::Progressively, &d),
            ReleaseStep::ScaleBack(3)
        );
        d.replicas = 3;
        d.observed = false;
        d.available = 0;
        assert_eq!(
            release(ScaleDown::Progressively, &d),
            ReleaseStep::Wait {
                available: 0,
                wanted: 3
            }
        );
        d.observed = true;
        d.available = 2;
        assert!(matches!(
            release(ScaleDown::Progressively, &d),
            ReleaseStep::Wait { .. }
        ));
        d.available = 3;
        assert_eq!(release(ScaleDown::Progressively, &d), ReleaseStep::Done);
        // Never scaled: nothing to wait for.
        assert_eq!(release(ScaleDown::Never, &view(&t, 3)), ReleaseStep::Done);
        // A mark a tenant spoiled neither hangs the deletion nor scales to its number.
        d.original_replicas = Some("1e9");
        d.replicas = 0;
        assert_eq!(
            release(ScaleDown::Progressively, &d),
            ReleaseStep::ScaleBack(1)
        );
    }
}
