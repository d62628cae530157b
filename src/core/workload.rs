//! Builds the ReplicaSet that runs one component of one revision: names, labels, selector and
//! owner reference, from the SafeDeployment and the normalised revision; its pods mount the
//! revision's configuration copies, and it records the revision's configuration digests. Also
//! the fresh baseline ReplicaSet: a copy of a stable ReplicaSet under the baseline's labels.
//!
//! And the choice of write each of the decision's scale actions needs ([`scale_write`],
//! [`baseline_write`]): scale an existing ReplicaSet, create the desired revision's (in one
//! apply, or at zero replicas first when configuration copies must exist before its pods), or
//! report a ReplicaSet that is gone and cannot be rebuilt. Pure: the controller's apply step
//! only carries the answer out.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::{Resource, ResourceExt};

use crate::api::labels::{
    ANNOTATION_CONFIG_OBJECTS, ANNOTATION_CONFIG_VERSIONS, ANNOTATION_REVISION_NUMBER,
    LABEL_BASELINE_OF, LABEL_COMPONENT, LABEL_NAME, LABEL_REVISION, LABEL_ROLE, ROLE_BASELINE,
};
use crate::api::{SafeDeployment, SafeDeploymentStatus};
use crate::core::revision::{ComponentTemplate, Revision, baseline_selector};
use crate::core::rollout::{ReplicaSetView, ScaleAction};
use crate::core::shard;

/// The labels that identify the pods of one component of one revision.
pub fn revision_labels(
    sd: &SafeDeployment,
    component: &str,
    hash: &str,
) -> BTreeMap<String, String> {
    let mut labels = sd.spec.selector.match_labels.clone();
    labels.insert(LABEL_NAME.to_string(), sd.name_any());
    labels.insert(LABEL_REVISION.to_string(), hash.to_string());
    labels.insert(LABEL_COMPONENT.to_string(), component.to_string());
    labels
}

/// The ReplicaSet for `component` of `revision`, at `replicas`, owned by `sd`. Its template is
/// the component's, rewritten to the revision's configuration copies; the annotation
/// `safedeploy.dev/config-objects` records the configuration digests (when there are any).
pub fn replica_set(
    sd: &SafeDeployment,
    revision: &Revision,
    component: &ComponentTemplate,
    revision_number: i64,
    replicas: i32,
) -> ReplicaSet {
    let labels = revision_labels(sd, &component.name, &revision.hash);
    owned_replica_set(
        sd,
        OwnedReplicaSet {
            name: Revision::replica_set_name(
                &sd.name_any(),
                revision.single,
                &component.name,
                &revision.hash,
            ),
            labels,
            annotations: Some(annotations(revision, revision_number)),
            replicas,
            template: revision.pod_template(component),
            min_ready_seconds: Some(
                sd.spec
                    .min_ready_seconds
                    .unwrap_or(crate::core::rollout::DEFAULT_MIN_READY_SECONDS),
            ),
        },
    )
}

/// What differs between the ReplicaSets the operator writes: a revision's and a baseline's.
struct OwnedReplicaSet {
    name: String,
    labels: BTreeMap<String, String>,
    annotations: Option<BTreeMap<String, String>>,
    replicas: i32,
    template: PodTemplateSpec,
    min_ready_seconds: Option<i32>,
}

/// A ReplicaSet owned by `sd`, whose selector, own labels and pod labels are all `labels` (the
/// pod template keeps its other labels), so the ReplicaSet always selects its own pods.
fn owned_replica_set(sd: &SafeDeployment, owned: OwnedReplicaSet) -> ReplicaSet {
    let OwnedReplicaSet {
        name,
        labels,
        annotations,
        replicas,
        mut template,
        min_ready_seconds,
    } = owned;
    // The SafeDeployment's shard label goes on the ReplicaSet and its pods, never into the
    // selector (immutable): a move to another shard is a relabel (`crate::core::shard`).
    let template_labels = template
        .metadata
        .get_or_insert_with(ObjectMeta::default)
        .labels
        .get_or_insert_with(BTreeMap::new);
    template_labels.extend(labels.clone());
    *template_labels = shard::with_shard_of(sd.labels(), std::mem::take(template_labels));
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: sd.namespace(),
            labels: Some(shard::with_shard_of(sd.labels(), labels.clone())),
            annotations,
            owner_references: sd.controller_owner_ref(&()).map(|owner| vec![owner]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels),
                match_expressions: None,
            },
            template: Some(template),
            min_ready_seconds,
        }),
        status: None,
    }
}

/// The fresh baseline ReplicaSet for the stable ReplicaSet `stable` (as read from the API, with
/// its template), at `replicas`, owned by `sd`. It runs the stable's pod template unchanged —
/// the same image, configuration copies and everything — under the labels of the stable with
/// `safedeploy.dev/revision: <hash>-baseline`, `safedeploy.dev/role: baseline` and
/// `safedeploy.dev/baseline-of: <hash>`, so its selector and the stable's never overlap and a
/// query on the revision label tells the two apart. It carries no revision number: it is not a
/// revision. None when `stable` lacks the operator's labels or a template.
pub fn baseline_replica_set(
    sd: &SafeDeployment,
    stable: &ReplicaSet,
    replicas: i32,
) -> Option<ReplicaSet> {
    let hash = stable.labels().get(LABEL_REVISION)?.clone();
    let component = stable.labels().get(LABEL_COMPONENT)?.clone();
    let stable_spec = stable.spec.as_ref()?;
    let mut labels = revision_labels(sd, &component, &hash);
    labels.insert(LABEL_REVISION.to_string(), baseline_selector(&hash));
    labels.insert(LABEL_ROLE.to_string(), ROLE_BASELINE.to_string());
    labels.insert(LABEL_BASELINE_OF.to_string(), hash);
    let template = stable_spec.template.clone()?;
    let annotations: BTreeMap<String, String> = stable
        .annotations()
        .iter()
        .filter(|(k, _)| k.as_str() == ANNOTATION_CONFIG_OBJECTS)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Some(owned_replica_set(
        sd,
        OwnedReplicaSet {
            name: format!("{}-{ROLE_BASELINE}", stable.name_any()),
            labels,
            annotations: (!annotations.is_empty()).then_some(annotations),
            replicas,
            template,
            min_ready_seconds: stable_spec.min_ready_seconds,
        },
    ))
}

/// A ReplicaSet of an old revision (or the stable ReplicaSet a fresh baseline copies) is gone:
/// its template is unknown, so it cannot be rebuilt. Names the missing ReplicaSet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostReplicaSet(pub String);

/// The write one scale action of the desired revisions needs.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplicaSetWrite {
    /// Set `spec.replicas` of an existing ReplicaSet.
    Scale {
        /// The ReplicaSet's name.
        name: String,
        /// The new size.
        replicas: i32,
        /// Scaled up from zero: its configuration copies must be checked (and re-created) before
        /// its pods start.
        starts: bool,
    },
    /// Create the desired revision's ReplicaSet (the whole object, at its target size).
    Create(Box<ReplicaSet>),
    /// Create the desired revision's ReplicaSet at zero replicas, then its configuration
    /// copies, then scale it to `replicas`, so that no pod starts before its configuration.
    CreateWithCopies {
        /// The ReplicaSet, at zero replicas.
        replica_set: Box<ReplicaSet>,
        /// The size once the copies exist.
        replicas: i32,
    },
    /// Nothing to do: a component the revision no longer has.
    Skip,
}

/// What `action` needs written, given the owned ReplicaSets as they are (`existing`: name →
/// `spec.replicas`), the decided status (for the revision number) and the configuration versions
/// read for the desired revision (the value of [`ANNOTATION_CONFIG_VERSIONS`], when any were
/// read). A ReplicaSet that exists is scaled; a missing one is created only for the desired
/// revision; a missing one of another revision is lost.
pub fn scale_write(
    sd: &SafeDeployment,
    desired: &Revision,
    existing: &BTreeMap<String, i32>,
    status: &SafeDeploymentStatus,
    config_versions: Option<&str>,
    action: &ScaleAction,
) -> Result<ReplicaSetWrite, LostReplicaSet> {
    let name = Revision::replica_set_name(
        &sd.name_any(),
        desired.single,
        &action.component,
        &action.revision,
    );
    if let Some(&current) = existing.get(&name) {
        return Ok(ReplicaSetWrite::Scale {
            name,
            replicas: action.replicas,
            starts: action.replicas > 0 && current == 0,
        });
    }
    if action.revision != desired.hash {
        return Err(LostReplicaSet(name));
    }
    let Some(component) = desired
        .components
        .iter()
        .find(|c| c.name == action.component)
    else {
        return Ok(ReplicaSetWrite::Skip);
    };
    let number = status
        .revisions
        .iter()
        .find(|r| r.hash == desired.hash)
        .map_or(0, |r| r.number);
    let mut rs = replica_set(sd, desired, component, number, action.replicas);
    if let Some(versions) = config_versions {
        rs.metadata
            .annotations
            .get_or_insert_default()
            .insert(ANNOTATION_CONFIG_VERSIONS.to_string(), versions.to_string());
    }
    if desired.config_objects.is_empty() {
        return Ok(ReplicaSetWrite::Create(Box::new(rs)));
    }
    if let Some(spec) = rs.spec.as_mut() {
        spec.replicas = Some(0);
    }
    Ok(ReplicaSetWrite::CreateWithCopies {
        replica_set: Box::new(rs),
        replicas: action.replicas,
    })
}

/// The write one fresh-baseline scale action needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaselineWrite {
    /// Set `spec.replicas` of the existing baseline ReplicaSet `name`.
    Scale {
        /// The baseline ReplicaSet's name.
        name: String,
        /// The new size.
        replicas: i32,
    },
    /// Create the baseline from the stable ReplicaSet `stable` (read for its template, which
    /// the caches do not keep), at `replicas`.
    CopyStable {
        /// The stable ReplicaSet's name.
        stable: String,
        /// The size.
        replicas: i32,
    },
}

/// What the baseline `action` needs written: scale its baseline ReplicaSet if one exists, else
/// copy the stable ReplicaSet it compares with (lost when that is gone too).
pub fn baseline_write(
    baselines: &[ReplicaSetView],
    replica_sets: &[ReplicaSetView],
    action: &ScaleAction,
) -> Result<BaselineWrite, LostReplicaSet> {
    let of =
        |rs: &&ReplicaSetView| rs.component == action.component && rs.revision == action.revision;
    if let Some(baseline) = baselines.iter().find(of) {
        return Ok(BaselineWrite::Scale {
            name: baseline.name.clone(),
            replicas: action.replicas,
        });
    }
    replica_sets
        .iter()
        .find(of)
        .map(|stable| BaselineWrite::CopyStable {
            stable: stable.name.clone(),
            replicas: action.replicas,
        })
        .ok_or_else(|| LostReplicaSet(action.revision.clone()))
}

fn annotations(revision: &Revision, revision_number: i64) -> BTreeMap<String, String> {
    let mut annotations = BTreeMap::from([(
        ANNOTATION_REVISION_NUMBER.to_string(),
        revision_number.to_string(),
    )]);
    if !revision.config_objects.is_empty() {
        let digests: serde_json::Map<String, serde_json::Value> = revision
            .config_objects
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        annotations.insert(
            ANNOTATION_CONFIG_OBJECTS.to_string(),
            crate::canonical_json::canonical(&serde_json::Value::Object(digests)),
        );
    }
    annotations
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::SafeDeploymentSpec;
    use crate::api::labels::LABEL_SHARD;
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};

    /// The pod template of the configuration tests: one container reading the ConfigMap
    /// `app-config`.
    pub(crate) const APP_CONFIG_TEMPLATE: &str = r#"
metadata: {labels: {app: web}}
spec:
  containers: [{name: app, image: "app:v1", envFrom: [{configMapRef: {name: app-config}}]}]
"#;

    /// The SafeDeployment `web` in namespace `ns` at `replicas`, running `template_yaml`.
    pub(crate) fn web(replicas: i32, template_yaml: &str) -> SafeDeployment {
        let template: PodTemplateSpec = serde_yaml::from_str(template_yaml).unwrap();
        let mut sd = SafeDeployment::new(
            "web",
            SafeDeploymentSpec {
                replicas: Some(replicas),
                template: Some(template),
                ..Default::default()
            },
        );
        sd.metadata.namespace = Some("ns".into());
        sd
    }

    #[test]
    fn the_shard_label_goes_on_the_replica_set_and_its_pods_but_never_into_the_selector() {
        let mut sd = web(2, "metadata: {labels: {app: web, safedeploy.dev/shard: stale}}\nspec: {containers: [{name: app, image: app:v1}]}");
        sd.metadata.labels = Some(BTreeMap::from([(LABEL_SHARD.into(), "b".into())]));
        let revision = Revision::from_spec(&sd.spec).unwrap();
        let rs = replica_set(&sd, &revision, &revision.components[0], 1, 2);
        let shard_of = |labels: Option<&BTreeMap<String, String>>| {
            labels.and_then(|l| l.get(LABEL_SHARD)).cloned()
        };
        assert_eq!(shard_of(rs.metadata.labels.as_ref()), Some("b".into()));
        let spec = rs.spec.unwrap();
        assert_eq!(shard_of(spec.selector.match_labels.as_ref()), None);
        let template = spec.template.unwrap().metadata.unwrap();
        assert_eq!(shard_of(template.labels.as_ref()), Some("b".into()));
        // Unlabelled: no shard label anywhere, whatever the template carried.
        sd.metadata.labels = None;
        let rs = replica_set(&sd, &revision, &revision.components[0], 1, 2);
        assert_eq!(shard_of(rs.metadata.labels.as_ref()), None);
        let template = rs.spec.unwrap().template.unwrap().metadata.unwrap();
        assert_eq!(shard_of(template.labels.as_ref()), None);
    }

    #[test]
    fn replica_set_selects_only_its_revision_and_is_owned() {
        let mut sd = SafeDeployment::new(
            "web",
            SafeDeploymentSpec {
                replicas: Some(3),
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "app".into(),
                            image: Some("app:v1".into()),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            },
        );
        sd.spec.selector.match_labels = BTreeMap::from([("app".into(), "web".into())]);
        sd.metadata.namespace = Some("ns".into());
        sd.metadata.uid = Some("uid-1".into());
        let revision = Revision::from_spec(&sd.spec).unwrap();
        let rs = replica_set(&sd, &revision, &revision.components[0], 2, 3);
        let spec = rs.spec.unwrap();
        let selector = spec.selector.match_labels.unwrap();
        assert_eq!(selector.get(LABEL_REVISION), Some(&revision.hash));
        assert_eq!(selector.get("app").map(String::as_str), Some("web"));
        let pod_labels = spec.template.unwrap().metadata.unwrap().labels.unwrap();
        assert!(selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));
        let owner = &rs.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.uid.as_str(), owner.controller),
            ("uid-1", Some(true))
        );
        assert_eq!(rs.metadata.name.unwrap(), format!("web-{}", revision.hash));
        assert!(
            !rs.metadata
                .annotations
                .unwrap()
                .contains_key(ANNOTATION_CONFIG_OBJECTS)
        );
    }

    #[test]
    fn the_baseline_copies_the_stable_template_under_labels_that_never_overlap() {
        let mut sd = web(4, APP_CONFIG_TEMPLATE);
        sd.spec.selector.match_labels = BTreeMap::from([("app".into(), "web".into())]);
        sd.metadata.uid = Some("uid-1".into());
        let digests = BTreeMap::from([(
            "configmap/app-config".to_string(),
            "sha256:aaaaaaaaaaaaaaaa".to_string(),
        )]);
        let revision = Revision::from_spec_with_config(&sd.spec, &digests).unwrap();
        let stable = replica_set(&sd, &revision, &revision.components[0], 3, 4);
        let baseline = baseline_replica_set(&sd, &stable, 1).unwrap();
        assert_eq!(
            baseline.metadata.name.as_deref(),
            Some(Revision::baseline_replica_set_name("web", true, "main", &revision.hash).as_str())
        );
        let spec = baseline.spec.clone().unwrap();
        assert_eq!(spec.replicas, Some(1));
        let selector = spec.selector.match_labels.clone().unwrap();
        let want = baseline_selector(&revision.hash);
        assert_eq!(selector.get(LABEL_REVISION), Some(&want));
        assert_eq!(
            selector.get(LABEL_ROLE).map(String::as_str),
            Some(ROLE_BASELINE)
        );
        assert_eq!(selector.get(LABEL_BASELINE_OF), Some(&revision.hash));
        assert_eq!(selector.get(LABEL_NAME).map(String::as_str), Some("web"));
        // The stable's selector does not select the baseline's pods, nor the other way round.
        let pod_labels = spec
            .template
            .clone()
            .unwrap()
            .metadata
            .unwrap()
            .labels
            .unwrap();
        let stable_spec = stable.spec.clone().unwrap();
        let stable_selector = stable_spec.selector.match_labels.unwrap();
        let stable_pod_labels = stable_spec
            .template
            .unwrap()
            .metadata
            .unwrap()
            .labels
            .unwrap();
        let selects = |sel: &BTreeMap<String, String>, labels: &BTreeMap<String, String>| {
            sel.iter().all(|(k, v)| labels.get(k) == Some(v))
        };
        assert!(selects(&selector, &pod_labels));
        assert!(!selects(&stable_selector, &pod_labels));
        assert!(!selects(&selector, &stable_pod_labels));
        // Same pod spec as the stable (same configuration copy), same digests, no revision number.
        let pod = spec.template.unwrap().spec.unwrap();
        assert_eq!(
            pod.containers[0].env_from.clone().unwrap()[0]
                .config_map_ref
                .as_ref()
                .unwrap()
                .name,
            "app-config-aaaaaaaaaa"
        );
        let annotations = baseline.metadata.annotations.unwrap();
        assert!(annotations.contains_key(ANNOTATION_CONFIG_OBJECTS));
        assert!(!annotations.contains_key(ANNOTATION_REVISION_NUMBER));
        let owner = &baseline.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.uid.as_str(), owner.controller),
            ("uid-1", Some(true))
        );
        // Without the operator's labels there is nothing to copy.
        let mut foreign = stable.clone();
        foreign.metadata.labels = None;
        assert!(baseline_replica_set(&sd, &foreign, 1).is_none());
    }

    #[test]
    fn replica_set_mounts_the_copies_and_records_the_digests() {
        let sd = web(
            1,
            &format!("{APP_CONFIG_TEMPLATE}  volumes: [{{name: s, secret: {{secretName: db}}}}]\n"),
        );
        let digests = BTreeMap::from([
            (
                "configmap/app-config".to_string(),
                "sha256:aaaaaaaaaaaaaaaa".to_string(),
            ),
            (
                "secret/db".to_string(),
                "sha256:bbbbbbbbbbbbbbbb".to_string(),
            ),
        ]);
        let revision = Revision::from_spec_with_config(&sd.spec, &digests).unwrap();
        let rs = replica_set(&sd, &revision, &revision.components[0], 1, 0);
        let recorded = rs.metadata.annotations.clone().unwrap();
        let recorded: BTreeMap<String, String> =
            serde_json::from_str(&recorded[ANNOTATION_CONFIG_OBJECTS]).unwrap();
        assert_eq!(recorded, digests);
        let pod = rs.spec.unwrap().template.unwrap().spec.unwrap();
        let env_from = pod.containers[0].env_from.clone().unwrap();
        assert_eq!(
            env_from[0].config_map_ref.as_ref().unwrap().name,
            "app-config-aaaaaaaaaa"
        );
        let volumes = pod.volumes.unwrap();
        assert_eq!(
            volumes[0].secret.as_ref().unwrap().secret_name.as_deref(),
            Some("db-bbbbbbbbbb")
        );
    }

    fn action(revision: &str, replicas: i32) -> ScaleAction {
        ScaleAction {
            revision: revision.into(),
            component: "main".into(),
            replicas,
        }
    }

    #[test]
    fn an_existing_replica_set_is_scaled_and_one_scaled_up_from_zero_starts() {
        let sd = web(2, "spec: {containers: [{name: app, image: 'app:v1'}]}");
        let revision = Revision::from_spec(&sd.spec).unwrap();
        let name = Revision::replica_set_name("web", revision.single, "main", &revision.hash);
        let status = SafeDeploymentStatus::default();
        // The write for scaling the ReplicaSet from `current` to `replicas` pods.
        let scale_from = |current: i32, replicas: i32| {
            let existing = BTreeMap::from([(name.clone(), current)]);
            scale_write(
                &sd,
                &revision,
                &existing,
                &status,
                None,
                &action(&revision.hash, replicas),
            )
        };
        for (current, replicas, starts) in [(0, 3, true), (2, 0, false)] {
            assert_eq!(
                scale_from(current, replicas),
                Ok(ReplicaSetWrite::Scale {
                    name: name.clone(),
                    replicas,
                    starts
                })
            );
        }
    }

    #[test]
    fn a_missing_replica_set_is_created_for_the_desired_revision_only() {
        let sd = web(2, "spec: {containers: [{name: app, image: 'app:v1'}]}");
        let revision = Revision::from_spec(&sd.spec).unwrap();
        let status = SafeDeploymentStatus {
            revisions: vec![crate::api::RevisionRecord {
                number: 4,
                hash: revision.hash.clone(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let none = BTreeMap::new();
        let Ok(ReplicaSetWrite::Create(rs)) = scale_write(
            &sd,
            &revision,
            &none,
            &status,
            Some("{}"),
            &action(&revision.hash, 2),
        ) else {
            panic!("a create");
        };
        let annotations = rs.metadata.annotations.clone().unwrap();
        assert_eq!(annotations[ANNOTATION_REVISION_NUMBER], "4");
        assert_eq!(annotations[ANNOTATION_CONFIG_VERSIONS], "{}");
        assert_eq!(rs.spec.unwrap().replicas, Some(2));
        // An old revision's ReplicaSet cannot be rebuilt: its template is unknown.
        let lost = scale_write(&sd, &revision, &none, &status, None, &action("0ld", 2));
        let expected = Revision::replica_set_name("web", revision.single, "main", "0ld");
        assert_eq!(lost, Err(LostReplicaSet(expected)));
        // A component the revision does not have: nothing to write.
        let mut other = action(&revision.hash, 2);
        other.component = "gone".into();
        assert_eq!(
            scale_write(&sd, &revision, &none, &status, None, &other),
            Ok(ReplicaSetWrite::Skip)
        );
    }

    #[test]
    fn a_revision_with_configuration_copies_is_created_at_zero_first() {
        let sd = web(
            2,
            "spec: {containers: [{name: app, image: 'app:v1', envFrom: [{configMapRef: {name: cfg}}]}]}",
        );
        let digests = BTreeMap::from([(
            "configmap/cfg".to_string(),
            "sha256:0123456789abcdef".to_string(),
        )]);
        let revision = Revision::from_spec_with_config(&sd.spec, &digests).unwrap();
        let write = scale_write(
            &sd,
            &revision,
            &BTreeMap::new(),
            &SafeDeploymentStatus::default(),
            None,
            &action(&revision.hash, 3),
        );
        let Ok(ReplicaSetWrite::CreateWithCopies {
            replica_set,
            replicas,
        }) = write
        else {
            panic!("a create at zero: {write:?}");
        };
        assert_eq!(replicas, 3);
        assert_eq!(replica_set.spec.unwrap().replicas, Some(0));
    }

    #[test]
    fn a_baseline_is_scaled_if_it_exists_else_copied_from_its_stable() {
        let view = |name: &str, revision: &str| ReplicaSetView {
            name: name.into(),
            revision: revision.into(),
            component: "main".into(),
            replicas: 1,
            ready: 1,
            rejected: false,
        };
        let stable = [view("web-aaa", "aaa")];
        let baselines = [view("web-aaa-baseline", "aaa")];
        assert_eq!(
            baseline_write(&baselines, &stable, &action("aaa", 2)),
            Ok(BaselineWrite::Scale {
                name: "web-aaa-baseline".into(),
                replicas: 2
            })
        );
        assert_eq!(
            baseline_write(&[], &stable, &action("aaa", 2)),
            Ok(BaselineWrite::CopyStable {
                stable: "web-aaa".into(),
                replicas: 2
            })
        );
        assert_eq!(
            baseline_write(&[], &[], &action("aaa", 2)),
            Err(LostReplicaSet("aaa".into()))
        );
    }
}
