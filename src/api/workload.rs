//! The one reading of a spec's workload: which components it has, in which order, with which
//! templates. The revision hash (`core::revision`) and the configuration digest an attestation
//! binds (`attest::config`) both start from it, so the operator and `safedeploy attest` can never
//! disagree on what a spec runs.
//!
//! A spec sets exactly one of `template` (the shorthand for one component named
//! [`MAIN_COMPONENT`]) and `components`, and no component name twice. The CRD schema admits only
//! such specs; a spec read from a file (`safedeploy attest`) or built by hand is checked here
//! again, and one that breaks the rule describes no workload at all rather than whichever form
//! a reader happened to look at first.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::PodTemplateSpec;

use super::SafeDeploymentSpec;

/// The component name of the single-template shorthand (`spec.template`).
pub const MAIN_COMPONENT: &str = "main";

/// One component of a workload, borrowed from the spec.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkloadComponent<'a> {
    /// Component name ([`MAIN_COMPONENT`] for the shorthand).
    pub name: &'a str,
    /// Desired replicas at full size (`spec.replicas`, default 1, for the shorthand).
    pub replicas: i32,
    /// The pod template as the user wrote it.
    pub template: &'a PodTemplateSpec,
}

/// The workload a spec describes.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload<'a> {
    /// Whether the spec used the single-template shorthand.
    pub single: bool,
    /// The components in spec order (the order decides the revision hash, so it is kept).
    pub components: Vec<WorkloadComponent<'a>>,
}

/// Why a spec describes no workload (the CRD schema prevents both).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidWorkload {
    /// The spec sets neither or both of `template` and `components`, or an empty list.
    #[error("the SafeDeployment must set exactly one of spec.template or spec.components")]
    NoSingleWorkloadForm,
    /// The spec adopts a Deployment: its template is the Deployment's, which the spec alone
    /// does not hold (`core::adopt::resolve` fills it in).
    #[error(
        "the workload is the template of the Deployment {0:?} (spec.workloadRef); read it with that Deployment"
    )]
    AdoptedDeployment(String),
    /// Two components share a name.
    #[error("component name {0:?} is used twice")]
    DuplicateComponent(String),
}

impl SafeDeploymentSpec {
    /// The spec's components: `template` as the one component [`MAIN_COMPONENT`], or
    /// `components` in spec order.
    pub fn workload(&self) -> Result<Workload<'_>, InvalidWorkload> {
        let workload = match (&self.template, &self.components) {
            (Some(template), None) => Workload {
                single: true,
                components: vec![WorkloadComponent {
                    name: MAIN_COMPONENT,
                    replicas: self.replicas.unwrap_or(1),
                    template,
                }],
            },
            (None, Some(list)) if !list.is_empty() => Workload {
                single: false,
                components: list
                    .iter()
                    .map(|component| WorkloadComponent {
                        name: &component.name,
                        replicas: component.replicas,
                        template: &component.template,
                    })
                    .collect(),
            },
            _ => {
                return Err(
                    match (&self.template, &self.components, &self.workload_ref) {
                        (None, None, Some(adopted)) => {
                            InvalidWorkload::AdoptedDeployment(adopted.name.clone())
                        }
                        _ => InvalidWorkload::NoSingleWorkloadForm,
                    },
                );
            }
        };
        let mut seen = BTreeSet::new();
        if let Some(twice) = workload.components.iter().find(|c| !seen.insert(c.name)) {
            return Err(InvalidWorkload::DuplicateComponent(twice.name.to_owned()));
        }
        Ok(workload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Component;

    fn component(name: &str, replicas: i32) -> Component {
        Component {
            name: name.into(),
            replicas,
            template: PodTemplateSpec::default(),
        }
    }

    #[test]
    fn the_shorthand_is_one_component_named_main() {
        let spec = SafeDeploymentSpec {
            replicas: Some(3),
            template: Some(PodTemplateSpec::default()),
            ..Default::default()
        };
        let workload = spec.workload().expect("workload");
        assert!(workload.single);
        let names: Vec<_> = workload
            .components
            .iter()
            .map(|c| (c.name, c.replicas))
            .collect();
        assert_eq!(names, [(MAIN_COMPONENT, 3)]);
    }

    #[test]
    fn components_keep_their_spec_order() {
        let spec = SafeDeploymentSpec {
            components: Some(vec![component("worker", 1), component("api", 2)]),
            ..Default::default()
        };
        let workload = spec.workload().expect("workload");
        assert!(!workload.single);
        let names: Vec<_> = workload
            .components
            .iter()
            .map(|c| (c.name, c.replicas))
            .collect();
        assert_eq!(names, [("worker", 1), ("api", 2)]);
    }

    #[test]
    fn a_spec_with_neither_both_or_a_repeated_name_describes_no_workload() {
        let neither = SafeDeploymentSpec::default();
        let empty_list = SafeDeploymentSpec {
            components: Some(vec![]),
            ..Default::default()
        };
        let both = SafeDeploymentSpec {
            template: Some(PodTemplateSpec::default()),
            components: Some(vec![component("api", 1)]),
            ..Default::default()
        };
        for spec in [neither, empty_list, both] {
            assert_eq!(spec.workload(), Err(InvalidWorkload::NoSingleWorkloadForm));
        }
        let twice = SafeDeploymentSpec {
            components: Some(vec![
                component("api", 1),
                component("db", 1),
                component("api", 2),
            ]),
            ..Default::default()
        };
        assert_eq!(
            twice.workload(),
            Err(InvalidWorkload::DuplicateComponent("api".into()))
        );
    }
}
