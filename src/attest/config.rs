//! What an attestation binds besides the images: the configuration digest of a SafeDeployment,
//! and the pinned image digests of every container.
//!
//! Both are computed from the typed [`SafeDeploymentSpec`], so the pipeline (`safedeploy attest`,
//! reading the manifest file) and the controller (reading the object from the API server) hash
//! exactly what the operator will render, and fields the operator does not carry cannot change
//! the digest.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};
use serde_json::{Map, Value, json};

use crate::api::SafeDeploymentSpec;
use crate::api::image::{ImageRef, parse_pinned};
use crate::api::workload::{InvalidWorkload, MAIN_COMPONENT};
use crate::canonical_json::canonical;

/// Version tag inside the hashed document; bumped if the definition ever changes.
pub const CONFIG_DIGEST_VERSION: &str = "safedeploy.dev/config-digest/v1";

/// Annotation key prefix that is dropped from the digest (the operator's own bookkeeping).
pub const DROPPED_ANNOTATION_PREFIX: &str = "safedeploy.dev/";

/// Individual annotation keys dropped from the digest (kubectl bookkeeping without effect on
/// the pods' behaviour).
pub const DROPPED_ANNOTATIONS: [&str; 2] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    "kubectl.kubernetes.io/restartedAt",
];

/// Why the configuration digest could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigDigestError {
    /// The spec does not describe one workload (neither or both forms, or a name twice).
    #[error(transparent)]
    Workload(#[from] InvalidWorkload),
    /// A template could not be turned into JSON.
    #[error("cannot serialise the pod template: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// A container image that is not pinned as `repository@sha256:<64 lowercase hex>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "container {container:?} of component {component:?} uses image {image:?}, which is not pinned by digest (repository@sha256:<64 lowercase hex>)"
)]
pub struct UnpinnedImage {
    /// Component name (`main` for a single template).
    pub component: String,
    /// Container name.
    pub container: String,
    /// The image reference as written (empty if missing).
    pub image: String,
}

/// The components of [`SafeDeploymentSpec::workload`] sorted by name: their order in the list
/// does not change what runs, so it does not change the digest either.
pub fn normalized_components(
    spec: &SafeDeploymentSpec,
) -> Result<Vec<(&str, &PodTemplateSpec)>, ConfigDigestError> {
    let mut components: Vec<(&str, &PodTemplateSpec)> = spec
        .workload()?
        .components
        .into_iter()
        .map(|c| (c.name, c.template))
        .collect();
    components.sort_by(|a, b| a.0.cmp(b.0));
    Ok(components)
}

/// The configuration digest of a SafeDeployment, `sha256:<64 hex>`; the same as
/// [`config_digest_with`] with no config objects.
///
/// # Definition (v1)
///
/// 1. **Components.** A single `spec.template` is the one component `main`; otherwise
///    `spec.components`, sorted by name. Replica counts, the selector, the strategy, health
///    gates, analyses and the attestation source are *not* included: they govern how and how
///    widely the revision is rolled out, not what a pod runs.
/// 2. **Template.** Each component's `PodTemplateSpec` as the typed k8s-openapi structure
///    serialises it (unknown fields are dropped, exactly as the operator would drop them), then:
///    * of `metadata` only `labels` and `annotations` are kept (name, namespace, uid,
///      `creationTimestamp`, managed fields… are environment or server bookkeeping);
///    * annotation keys starting with `safedeploy.dev/`, and
///      `kubectl.kubernetes.io/last-applied-configuration` and `kubectl.kubernetes.io/restartedAt`,
///      are removed;
///    * recursively, `null` values, empty objects and empty arrays are removed (so
///      `resources: {}`, `creationTimestamp: null` or `env: []` equal an absent field).
///
///    Everything else stays: images (also bound by the subjects), commands, environment
///    variables, volumes, probes, security context — and **resource requests and limits**.
///    They are part of what was validated: a stress test passed with 2 GiB proves nothing about
///    256 MiB, and the research premise is a staging run with production-like configuration. A
///    pipeline that deploys different resources per environment attests each variant.
/// 3. **Document.** The JSON object
///    `{"components":[{"name":N,"template":T},…],"version":"safedeploy.dev/config-digest/v1"}`,
///    plus `"configObjects":{KEY: DIGEST,…}` only when config objects are given
///    ([`config_digest_with`]; issue 6 folds in referenced ConfigMap/Secret contents there).
/// 4. **Canonical JSON.** Object keys sorted by UTF-8 bytes at every level, no whitespace,
///    strings and numbers as `serde_json` writes them (see `canonical_json::canonical`, which
///    sorts explicitly and so does not depend on `serde_json`'s `preserve_order` feature).
/// 5. **Hash.** SHA-256 of those UTF-8 bytes, written `sha256:` + lowercase hex.
pub fn config_digest(spec: &SafeDeploymentSpec) -> Result<String, ConfigDigestError> {
    config_digest_with(spec, &BTreeMap::new())
}

/// The configuration digest with extra content folded in: `config_objects` maps a stable key
/// (for example `configmap/app-config`) to the digest of that object's contents. An empty map
/// gives exactly [`config_digest`].
///
/// The operator passes every ConfigMap and Secret the templates reference that exists, keyed
/// `configmap/NAME` / `secret/NAME`, with the content digests of `core::config`
/// (`safedeploy attest --config-object FILE` computes the same from manifests).
pub fn config_digest_with(
    spec: &SafeDeploymentSpec,
    config_objects: &BTreeMap<String, String>,
) -> Result<String, ConfigDigestError> {
    let document = config_document(spec, config_objects)?;
    let bytes = canonical(&document);
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes.as_bytes());
    Ok(format!("sha256:{}", hex::encode(digest)))
}

/// The document that [`config_digest_with`] hashes (useful to show what is bound).
pub fn config_document(
    spec: &SafeDeploymentSpec,
    config_objects: &BTreeMap<String, String>,
) -> Result<Value, ConfigDigestError> {
    let mut components = Vec::new();
    for (name, template) in normalized_components(spec)? {
        let template = normalize_template(serde_json::to_value(template)?);
        components.push(json!({"name": name, "template": template}));
    }
    let mut document = Map::new();
    document.insert("components".to_owned(), Value::Array(components));
    document.insert(
        "version".to_owned(),
        Value::String(CONFIG_DIGEST_VERSION.to_owned()),
    );
    if !config_objects.is_empty() {
        let objects = config_objects
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        document.insert("configObjects".to_owned(), Value::Object(objects));
    }
    Ok(Value::Object(document))
}

fn normalize_template(mut template: Value) -> Value {
    if let Some(object) = template.as_object_mut()
        && let Some(Value::Object(metadata)) = object.get_mut("metadata")
    {
        metadata.retain(|key, _| key == "labels" || key == "annotations");
        if let Some(Value::Object(annotations)) = metadata.get_mut("annotations") {
            annotations.retain(|key, _| {
                !key.starts_with(DROPPED_ANNOTATION_PREFIX)
                    && !DROPPED_ANNOTATIONS.contains(&key.as_str())
            });
        }
    }
    prune(template).unwrap_or(Value::Object(Map::new()))
}

/// Removes nulls, empty objects and empty arrays, bottom-up; `None` if `value` itself goes.
fn prune(value: Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Object(object) => {
            let kept: Map<String, Value> = object
                .into_iter()
                .filter_map(|(k, v)| prune(v).map(|v| (k, v)))
                .collect();
            (!kept.is_empty()).then_some(Value::Object(kept))
        }
        Value::Array(items) => {
            // Array positions are meaningful, so elements are pruned inside but never dropped
            // (an element that prunes away entirely becomes an empty object).
            let kept: Vec<Value> = items
                .into_iter()
                .map(|v| prune(v).unwrap_or(Value::Object(Map::new())))
                .collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        other => Some(other),
    }
}

/// Every image of every container, init container and ephemeral container, in normalised
/// component order, each required to be pinned `repository@sha256:<64 lowercase hex>` (a tag
/// may precede the digest). The first unpinned image is returned as the error.
pub fn image_digests(spec: &SafeDeploymentSpec) -> Result<Vec<ImageRef>, UnpinnedImage> {
    // Every template present, even in a spec that (wrongly) sets both forms: an image is never
    // skipped because the spec is malformed.
    let mut components: Vec<(&str, &PodTemplateSpec)> = spec
        .template
        .iter()
        .map(|t| (MAIN_COMPONENT, t))
        .chain(
            spec.components
                .iter()
                .flatten()
                .map(|c| (c.name.as_str(), &c.template)),
        )
        .collect();
    components.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::new();
    for (component, template) in components {
        let Some(pod) = &template.spec else { continue };
        for (container, image) in pod_images(pod) {
            let pinned = parse_pinned(image).ok_or_else(|| UnpinnedImage {
                component: component.to_owned(),
                container: container.to_owned(),
                image: image.to_owned(),
            })?;
            out.push(ImageRef {
                component: component.to_owned(),
                container: container.to_owned(),
                image: image.to_owned(),
                repository: pinned.0,
                digest: pinned.1,
            });
        }
    }
    Ok(out)
}

fn pod_images(pod: &PodSpec) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    for c in pod
        .init_containers
        .iter()
        .flatten()
        .chain(pod.containers.iter())
    {
        out.push((c.name.as_str(), c.image.as_deref().unwrap_or("")));
    }
    for c in pod.ephemeral_containers.iter().flatten() {
        out.push((c.name.as_str(), c.image.as_deref().unwrap_or("")));
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use crate::api::{Component, SafeDeploymentSpec};

    pub(crate) const DIGEST_A: &str =
        "6b6d3a8e1f0c2b4a59d7e3f1a2c4b6d8e0f1a3c5b7d9e1f3a5c7e9b1d3f5a7c9";
    pub(crate) const DIGEST_B: &str =
        "1111111111111111111111111111111111111111111111111111111111111111";

    pub(crate) fn template(yaml: &str) -> PodTemplateSpec {
        serde_yaml::from_str(yaml).expect("template yaml")
    }

    pub(crate) fn single_spec() -> SafeDeploymentSpec {
        SafeDeploymentSpec {
            replicas: Some(3),
            template: Some(template(&format!(
                r#"
metadata:
  labels: {{app: web}}
  annotations:
    safedeploy.dev/revision: "7"
    team: payments
spec:
  initContainers:
  - name: migrate
    image: registry.example.com/team/migrate:1.0@sha256:{DIGEST_B}
  containers:
  - name: web
    image: registry.example.com/team/app@sha256:{DIGEST_A}
    env: [{{name: MODE, value: prod}}]
    resources: {{limits: {{memory: 256Mi}}}}
"#
            ))),
            ..Default::default()
        }
    }

    /// The first container of a template's pod, for a test to edit.
    pub(crate) fn container_of(
        t: &mut PodTemplateSpec,
    ) -> &mut k8s_openapi::api::core::v1::Container {
        &mut t.spec.as_mut().expect("pod").containers[0]
    }

    /// The first container of the spec's pod template, for a test to edit.
    pub(crate) fn first_container(
        spec: &mut SafeDeploymentSpec,
    ) -> &mut k8s_openapi::api::core::v1::Container {
        container_of(spec.template.as_mut().expect("template"))
    }

    #[test]
    fn digest_is_stable_and_has_the_documented_form() {
        let spec = single_spec();
        let d = config_digest(&spec).expect("digest");
        assert!(d.starts_with("sha256:") && d.len() == 71, "{d}");
        assert_eq!(d, config_digest(&spec.clone()).expect("digest"));
        // The exact document, by hand: pins the definition.
        let expected_doc = format!(
            concat!(
                r#"{{"components":[{{"name":"main","template":{{"metadata":{{"annotations":{{"team":"payments"}},"labels":{{"app":"web"}}}},"#,
                r#""spec":{{"containers":[{{"env":[{{"name":"MODE","value":"prod"}}],"image":"registry.example.com/team/app@sha256:{a}","name":"web","resources":{{"limits":{{"memory":"256Mi"}}}}}}],"#,
                r#""initContainers":[{{"image":"registry.example.com/team/migrate:1.0@sha256:{b}","name":"migrate"}}]}}}}}}],"version":"safedeploy.dev/config-digest/v1"}}"#
            ),
            a = DIGEST_A,
            b = DIGEST_B
        );
        let doc = canonical(&config_document(&spec, &BTreeMap::new()).expect("doc"));
        assert_eq!(doc, expected_doc);
        let by_hand = format!(
            "sha256:{}",
            hex::encode(ring::digest::digest(
                &ring::digest::SHA256,
                expected_doc.as_bytes()
            ))
        );
        assert_eq!(d, by_hand);
    }

    #[test]
    fn environment_bookkeeping_does_not_change_the_digest() {
        let base = config_digest(&single_spec()).expect("digest");
        let mut spec = single_spec();
        spec.replicas = Some(10);
        let t = spec.template.as_mut().expect("template");
        let meta = t.metadata.get_or_insert_with(Default::default);
        meta.namespace = Some("prod".into());
        meta.name = Some("x".into());
        let ann = meta.annotations.get_or_insert_with(Default::default);
        ann.insert("safedeploy.dev/anything".into(), "1".into());
        ann.insert(
            "kubectl.kubernetes.io/last-applied-configuration".into(),
            "{}".into(),
        );
        // An empty object / array is the same as absent.
        t.spec.as_mut().expect("pod").volumes = Some(vec![]);
        assert_eq!(config_digest(&spec).expect("digest"), base);
    }

    #[test]
    fn behaviour_changes_change_the_digest() {
        let base = config_digest(&single_spec()).expect("digest");
        let change = |f: &dyn Fn(&mut PodTemplateSpec)| {
            let mut spec = single_spec();
            f(spec.template.as_mut().expect("template"));
            config_digest(&spec).expect("digest")
        };
        fn meta(t: &mut PodTemplateSpec) -> &mut ObjectMeta {
            t.metadata.as_mut().expect("meta")
        }
        assert_ne!(change(&|t| container_of(t).env = None), base);
        assert_ne!(
            change(&|t| container_of(t).image =
                Some(format!("registry.example.com/team/app@sha256:{DIGEST_B}"))),
            base
        );
        assert_ne!(change(&|t| container_of(t).resources = None), base);
        assert_ne!(
            change(&|t| container_of(t).args = Some(vec!["--debug".into()])),
            base
        );
        assert_ne!(
            change(&|t| {
                let labels = meta(t).labels.as_mut().expect("labels");
                labels.insert("tier".into(), "x".into());
            }),
            base
        );
        assert_ne!(
            change(&|t| {
                let annotations = meta(t).annotations.as_mut().expect("annotations");
                annotations.insert("team".into(), "other".into());
            }),
            base
        );
    }

    #[test]
    fn config_objects_fold_in_only_when_present() {
        let spec = single_spec();
        let base = config_digest(&spec).expect("digest");
        assert_eq!(
            config_digest_with(&spec, &BTreeMap::new()).expect("digest"),
            base
        );
        let mut objects = BTreeMap::new();
        objects.insert("configmap/app".to_owned(), "sha256:00".to_owned());
        let with = config_digest_with(&spec, &objects).expect("digest");
        assert_ne!(with, base);
        objects.insert("configmap/app".to_owned(), "sha256:01".to_owned());
        assert_ne!(config_digest_with(&spec, &objects).expect("digest"), with);
    }

    #[test]
    fn single_template_equals_one_component_named_main_and_components_are_sorted() {
        let single = single_spec();
        let t = single.template.clone().expect("template");
        let as_component = SafeDeploymentSpec {
            components: Some(vec![Component {
                name: "main".into(),
                replicas: 1,
                template: t.clone(),
            }]),
            ..Default::default()
        };
        assert_eq!(
            config_digest(&single).expect("a"),
            config_digest(&as_component).expect("b")
        );

        let two = |order: [&str; 2]| SafeDeploymentSpec {
            components: Some(
                order
                    .iter()
                    .map(|n| Component {
                        name: (*n).into(),
                        replicas: 1,
                        template: t.clone(),
                    })
                    .collect(),
            ),
            ..Default::default()
        };
        assert_eq!(
            config_digest(&two(["a", "b"])).expect("a"),
            config_digest(&two(["b", "a"])).expect("b")
        );
        assert!(matches!(
            config_digest(&two(["a", "a"])),
            Err(ConfigDigestError::Workload(
                InvalidWorkload::DuplicateComponent(_)
            ))
        ));
        assert!(matches!(
            config_digest(&SafeDeploymentSpec::default()),
            Err(ConfigDigestError::Workload(
                InvalidWorkload::NoSingleWorkloadForm
            ))
        ));
    }

    #[test]
    fn image_digests_lists_every_container_and_requires_pinning() {
        let images = image_digests(&single_spec()).expect("pinned");
        assert_eq!(images.len(), 2);
        assert_eq!(images[0].container, "migrate");
        assert_eq!(images[0].repository, "registry.example.com/team/migrate");
        assert_eq!(images[0].digest, DIGEST_B);
        assert_eq!(images[1].repository, "registry.example.com/team/app");
        assert_eq!(images[1].digest, DIGEST_A);

        let mut spec = single_spec();
        first_container(&mut spec).image = Some("registry.example.com/team/app:1.2".into());
        let err = image_digests(&spec).expect_err("unpinned");
        assert_eq!(err.container, "web");
    }
}
