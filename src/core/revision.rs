//! What a revision is: the set of all component templates of a SafeDeployment plus the contents
//! of the ConfigMaps and Secrets they reference, identified by a content hash. Also the names and
//! labels of the ReplicaSets that run a revision, and the template they run (rewritten to the
//! revision's configuration copies).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use ring::digest::{SHA256, digest};

use super::config::{ConfigObjectRef, copy_names, rewrite_template};
use crate::api::SafeDeploymentSpec;
use crate::api::labels::ROLE_BASELINE;
use crate::api::workload::InvalidWorkload;

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
    /// Content digests (`sha256:<hex>`) of the referenced ConfigMaps and Secrets that exist, by
    /// `configmap/NAME` / `secret/NAME` (see `core::config`); empty when none is referenced.
    pub config_objects: BTreeMap<String, String>,
}

/// The spec describes no workload: neither or both of a template and components, or a component
/// name twice (the CRD schema prevents all three; see [`SafeDeploymentSpec::workload`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EmptySpec(#[from] pub InvalidWorkload);

impl Revision {
    /// Normalises the spec's components and computes the revision hash, for a revision that
    /// references no configuration object (or whose contents are not known).
    pub fn from_spec(spec: &SafeDeploymentSpec) -> Result<Self, EmptySpec> {
        Self::from_spec_with_config(spec, &BTreeMap::new())
    }

    /// As [`Revision::from_spec`], with the content digests of the referenced configuration
    /// objects folded into the hash, so that a change of their contents is a new revision. An
    /// empty map gives exactly the hash of [`Revision::from_spec`].
    pub fn from_spec_with_config(
        spec: &SafeDeploymentSpec,
        config_objects: &BTreeMap<String, String>,
    ) -> Result<Self, EmptySpec> {
        let workload = spec.workload()?;
        let components: Vec<ComponentTemplate> = workload
            .components
            .iter()
            .map(|component| ComponentTemplate {
                name: component.name.to_owned(),
                replicas: component.replicas,
                template: component.template.clone(),
            })
            .collect();
        let single = workload.single;
        let hash = revision_hash(&components, config_objects);
        Ok(Revision {
            hash,
            components,
            single,
            config_objects: config_objects.clone(),
        })
    }

    /// The names of this revision's configuration copies, by original object.
    pub fn config_copies(&self) -> BTreeMap<ConfigObjectRef, String> {
        copy_names(&self.config_objects)
    }

    /// The pod template the ReplicaSet of `component` runs: as written, with every reference to
    /// a copied ConfigMap or Secret pointing at the revision's copy.
    pub fn pod_template(&self, component: &ComponentTemplate) -> PodTemplateSpec {
        rewrite_template(&component.template, &self.config_copies())
    }

    /// Name of the ReplicaSet that runs `component` of the revision `hash`.
    pub fn replica_set_name(sd_name: &str, single: bool, component: &str, hash: &str) -> String {
        if single {
            format!("{sd_name}-{hash}")
        } else {
            format!("{sd_name}-{component}-{hash}")
        }
    }

    /// Name of the fresh baseline ReplicaSet that runs `component` of the revision `hash`.
    pub fn baseline_replica_set_name(
        sd_name: &str,
        single: bool,
        component: &str,
        hash: &str,
    ) -> String {
        format!(
            "{}-{ROLE_BASELINE}",
            Self::replica_set_name(sd_name, single, component, hash)
        )
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

/// The `safedeploy.dev/revision` label of the fresh baseline pods that run the template of the
/// revision `hash`, and the value of `{{baseline}}` with `baseline: Fresh`. It differs from every
/// revision hash, so a query on the revision label selects the baseline pods only.
pub fn baseline_selector(hash: &str) -> String {
    format!("{hash}-{ROLE_BASELINE}")
}

/// The hash covers what the pods run (component names and templates, and the contents of the
/// configuration they reference), not the replica counts, so scaling never starts a rollout.
fn revision_hash(
    components: &[ComponentTemplate],
    config_objects: &BTreeMap<String, String>,
) -> String {
    let canonical: Vec<(&str, serde_json::Value)> = components
        .iter()
        .map(|component| {
            let template = serde_json::to_value(&component.template).unwrap_or_default();
            (component.name.as_str(), template)
        })
        .collect();
    // Without configuration objects the text is what it was before they existed, so revisions
    // recorded by earlier versions keep their hash.
    let text = if config_objects.is_empty() {
        serde_json::to_string(&canonical)
    } else {
        serde_json::to_string(&(&canonical, config_objects))
    }
    .unwrap_or_default();
    let sum = digest(&SHA256, text.as_bytes());
    hex::encode(sum.as_ref().get(..5).unwrap_or_default())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::Component;
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    /// A pod template of one container `app` running `image`, without labels.
    pub(crate) fn template(image: &str) -> PodTemplateSpec {
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
    fn config_contents_change_the_hash_and_none_keeps_it() {
        let spec = SafeDeploymentSpec {
            replicas: Some(1),
            template: Some(template("app:v1")),
            ..Default::default()
        };
        let plain = Revision::from_spec(&spec).unwrap();
        let empty = Revision::from_spec_with_config(&spec, &BTreeMap::new()).unwrap();
        assert_eq!(plain, empty);
        // Pinned: the hash of a revision without configuration never changes.
        assert_eq!(plain.hash, "9d585af3f1");
        let v1 = BTreeMap::from([("configmap/app".to_string(), "sha256:aa".to_string())]);
        let v2 = BTreeMap::from([("configmap/app".to_string(), "sha256:bb".to_string())]);
        let one = Revision::from_spec_with_config(&spec, &v1).unwrap();
        let two = Revision::from_spec_with_config(&spec, &v2).unwrap();
        assert_ne!(one.hash, plain.hash);
        assert_ne!(one.hash, two.hash);
        assert_eq!(
            one.hash,
            Revision::from_spec_with_config(&spec, &v1).unwrap().hash
        );
        assert_eq!(one.config_objects, v1);
    }

    #[test]
    fn replica_sets_run_the_template_rewritten_to_the_copies() {
        let mut t = template("app:v1");
        let pod = t.spec.as_mut().unwrap();
        pod.containers[0].env_from = Some(vec![k8s_openapi::api::core::v1::EnvFromSource {
            config_map_ref: Some(k8s_openapi::api::core::v1::ConfigMapEnvSource {
                name: "app".into(),
                optional: None,
            }),
            ..Default::default()
        }]);
        let spec = SafeDeploymentSpec {
            replicas: Some(1),
            template: Some(t),
            ..Default::default()
        };
        let digests = BTreeMap::from([(
            "configmap/app".to_string(),
            "sha256:0123456789abcdef".to_string(),
        )]);
        let revision = Revision::from_spec_with_config(&spec, &digests).unwrap();
        let rendered = revision.pod_template(&revision.components[0]);
        let name = rendered.spec.unwrap().containers[0]
            .env_from
            .as_ref()
            .unwrap()[0]
            .config_map_ref
            .as_ref()
            .unwrap()
            .name
            .clone();
        assert_eq!(name, "app-0123456789");
        // The user's template is kept as written (it is what the hash covers).
        assert_eq!(
            &revision.components[0].template,
            spec.template.as_ref().unwrap()
        );
    }

    #[test]
    fn empty_spec_is_an_error() {
        assert_eq!(
            Revision::from_spec(&SafeDeploymentSpec::default()),
            Err(EmptySpec(InvalidWorkload::NoSingleWorkloadForm))
        );
    }
}
