//! What a revision is: the set of all component templates of a SafeDeployment, identified by a
//! content hash. Also the names and labels of the ReplicaSets that run a revision.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use ring::digest::{SHA256, digest};

use crate::api::SafeDeploymentSpec;

/// Label on every object the operator owns: the SafeDeployment's name.
pub const LABEL_NAME: &str = "safedeploy.dev/name";
/// Label with the revision hash, on ReplicaSets and their pods.
pub const LABEL_REVISION: &str = "safedeploy.dev/revision";
/// Label with the component name, on ReplicaSets and their pods.
pub const LABEL_COMPONENT: &str = "safedeploy.dev/component";
/// Annotation with the revision number, on ReplicaSets.
pub const ANNOTATION_REVISION_NUMBER: &str = "safedeploy.dev/revision-number";
/// The component name used for the single-template shorthand.
pub const MAIN_COMPONENT: &str = "main";

/// One component of a revision, normalised from either spec form.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentTemplate {
    /// Component name (`main` for the shorthand).
    pub name: String,
    /// Desired replicas at full size.
    pub replicas: i32,
    /// The pod template as the user wrote it.
    pub template: PodTemplateSpec,
}

/// A revision: every component template, and the hash that names it.
#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    /// Short content hash of the component templates (10 hex digits).
    pub hash: String,
    /// Components in spec order.
    pub components: Vec<ComponentTemplate>,
    /// Whether the spec used the single-template shorthand (it decides ReplicaSet names).
    pub single: bool,
}

/// The spec holds neither a template nor components (the CRD schema prevents this).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the spec has neither a template nor components")]
pub struct EmptySpec;

impl Revision {
    /// Normalises the spec's components and computes the revision hash.
    pub fn from_spec(spec: &SafeDeploymentSpec) -> Result<Self, EmptySpec> {
        let (components, single) = match (&spec.template, &spec.components) {
            (Some(template), _) => (
                vec![ComponentTemplate {
                    name: MAIN_COMPONENT.to_string(),
                    replicas: spec.replicas.unwrap_or(1),
                    template: template.clone(),
                }],
                true,
            ),
            (None, Some(components)) if !components.is_empty() => (
                components
                    .iter()
                    .map(|component| ComponentTemplate {
                        name: component.name.clone(),
                        replicas: component.replicas,
                        template: component.template.clone(),
                    })
                    .collect(),
                false,
            ),
            _ => return Err(EmptySpec),
        };
        let hash = revision_hash(&components);
        Ok(Revision {
            hash,
            components,
            single,
        })
    }

    /// Name of the ReplicaSet that runs `component` of the revision `hash`.
    pub fn replica_set_name(sd_name: &str, single: bool, component: &str, hash: &str) -> String {
        if single {
            format!("{sd_name}-{hash}")
        } else {
            format!("{sd_name}-{component}-{hash}")
        }
    }

    /// Container images by `component/container` (init containers included).
    pub fn images(&self) -> BTreeMap<String, String> {
        let mut images = BTreeMap::new();
        for component in &self.components {
            let Some(pod) = &component.template.spec else {
                continue;
            };
            let init = pod.init_containers.iter().flatten();
            for container in pod.containers.iter().chain(init) {
                if let Some(image) = &container.image {
                    images.insert(
                        format!("{}/{}", component.name, container.name),
                        image.clone(),
                    );
                }
            }
        }
        images
    }

    /// Total desired replicas over all components.
    pub fn total_replicas(&self) -> i32 {
        self.components.iter().map(|c| c.replicas).sum()
    }
}

/// The hash covers what the pods run (component names and templates), not the replica counts, so
/// scaling never starts a rollout.
fn revision_hash(components: &[ComponentTemplate]) -> String {
    let canonical: Vec<(&str, serde_json::Value)> = components
        .iter()
        .map(|component| {
            let template = serde_json::to_value(&component.template).unwrap_or_default();
            (component.name.as_str(), template)
        })
        .collect();
    let text = serde_json::to_string(&canonical).unwrap_or_default();
    let sum = digest(&SHA256, text.as_bytes());
    hex::encode(&sum.as_ref()[..5])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Component;
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    image: Some(image.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    #[test]
    fn hash_ignores_replicas_and_follows_the_template() {
        let mut spec = SafeDeploymentSpec {
            replicas: Some(3),
            template: Some(template("app:v1")),
            ..Default::default()
        };
        let first = Revision::from_spec(&spec).unwrap();
        spec.replicas = Some(5);
        assert_eq!(Revision::from_spec(&spec).unwrap().hash, first.hash);
        spec.template = Some(template("app:v2"));
        assert_ne!(Revision::from_spec(&spec).unwrap().hash, first.hash);
        assert_eq!(first.hash.len(), 10);
    }

    #[test]
    fn components_are_normalised_and_named() {
        let spec = SafeDeploymentSpec {
            components: Some(vec![
                Component {
                    name: "api".into(),
                    replicas: 2,
                    template: template("api:v1"),
                },
                Component {
                    name: "worker".into(),
                    replicas: 1,
                    template: template("worker:v1"),
                },
            ]),
            ..Default::default()
        };
        let revision = Revision::from_spec(&spec).unwrap();
        assert!(!revision.single);
        assert_eq!(revision.total_replicas(), 3);
        assert_eq!(
            revision.images().get("worker/app").map(String::as_str),
            Some("worker:v1")
        );
        assert_eq!(
            Revision::replica_set_name("web", false, "api", "abc"),
            "web-api-abc"
        );
        assert_eq!(
            Revision::replica_set_name("web", true, "main", "abc"),
            "web-abc"
        );
    }

    #[test]
    fn empty_spec_is_an_error() {
        assert_eq!(
            Revision::from_spec(&SafeDeploymentSpec::default()),
            Err(EmptySpec)
        );
    }
}
