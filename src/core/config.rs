//! Configuration versioning, pure: which ConfigMaps and Secrets a pod template references, the
//! content digest of such an object, the name of its immutable per-content copy, and the
//! rewrite of a template so that its pods mount the copies instead of the originals.
//!
//! A revision is its component templates *and* the contents of the objects they reference: the
//! operator copies each referenced object into `<original>-<hash10>` (immutable, labelled), and
//! the revision's ReplicaSets run the rewritten template. A rollback or revert scales an old
//! ReplicaSet back up, whose template still names its own copies, so the configuration goes back
//! together with the code.
//!
//! # Content digest (`sha256:<64 hex>`)
//!
//! SHA-256 of the canonical JSON (`canonical_json::canonical`: keys sorted, no whitespace) of
//! * a ConfigMap: `{"binaryData":{KEY:BASE64},"data":{KEY:VALUE},"kind":"ConfigMap"}`;
//! * a Secret: `{"data":{KEY:BASE64},"kind":"Secret","type":TYPE}`, where the bytes of `data`
//!   are overlaid by `stringData` (as the API server merges them, so a manifest with
//!   `stringData` and the stored object digest the same) and `TYPE` defaults to `Opaque`.
//!
//! Base64 is the standard alphabet with padding. The digest keys of the configuration digest
//! that attestations bind are [`ConfigObjectRef::key`]: `configmap/NAME` and `secret/NAME`.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec, PodTemplateSpec, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Map, Value, json};

use crate::api::labels::{LABEL_CONFIG_COPY, LABEL_NAME, LABEL_ORIGINAL};
use crate::canonical_json::canonical;

/// Hex digits of the content digest in a copy's name.
pub const COPY_HASH_LEN: usize = 10;
/// Longest object name Kubernetes accepts for ConfigMaps and Secrets.
const MAX_NAME_LEN: usize = 253;

/// The kind of a configuration object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigKind {
    /// A ConfigMap.
    ConfigMap,
    /// A Secret.
    Secret,
}

impl ConfigKind {
    /// The Kubernetes kind, as written in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigKind::ConfigMap => "ConfigMap",
            ConfigKind::Secret => "Secret",
        }
    }

    fn key_prefix(self) -> &'static str {
        match self {
            ConfigKind::ConfigMap => "configmap",
            ConfigKind::Secret => "secret",
        }
    }
}

/// A ConfigMap or Secret in the SafeDeployment's namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigObjectRef {
    /// Its kind.
    pub kind: ConfigKind,
    /// Its name.
    pub name: String,
}

impl ConfigObjectRef {
    /// A ConfigMap reference.
    pub fn config_map(name: &str) -> Self {
        Self {
            kind: ConfigKind::ConfigMap,
            name: name.to_string(),
        }
    }

    /// A Secret reference.
    pub fn secret(name: &str) -> Self {
        Self {
            kind: ConfigKind::Secret,
            name: name.to_string(),
        }
    }

    /// The key of this object in the configuration digest and the revision hash:
    /// `configmap/NAME` or `secret/NAME`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.kind.key_prefix(), self.name)
    }

    /// Parses [`ConfigObjectRef::key`].
    pub fn parse_key(key: &str) -> Option<Self> {
        let (prefix, name) = key.split_once('/')?;
        let kind = match prefix {
            "configmap" => ConfigKind::ConfigMap,
            "secret" => ConfigKind::Secret,
            _ => return None,
        };
        (!name.is_empty()).then(|| Self {
            kind,
            name: name.to_string(),
        })
    }
}

impl std::fmt::Display for ConfigObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?}", self.kind.as_str(), self.name)
    }
}

/// One place where a template uses a configuration object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigUse {
    /// The object.
    pub object: ConfigObjectRef,
    /// The key the use needs (an environment variable's key, a volume item), if any.
    pub key: Option<String>,
    /// `optional: true`: a missing object or key is no error.
    pub optional: bool,
    /// Where, for messages: `container "app", env LOG_LEVEL`, `volume "config"`.
    pub site: String,
}

/// Every ConfigMap and Secret use of a template: volumes (`configMap`, `secret`, `projected`
/// sources, one use per item key) and, for every init and app container, `env[].valueFrom`
/// (`configMapKeyRef`, `secretKeyRef`) and `envFrom`. Image pull secrets are not configuration
/// (they are not copied; a missing one does not stop a pod).
pub fn references(template: &PodTemplateSpec) -> Vec<ConfigUse> {
    let mut uses = Vec::new();
    let Some(pod) = &template.spec else {
        return uses;
    };
    for volume in pod.volumes.iter().flatten() {
        let site = format!("volume {:?}", volume.name);
        let mut push = |object: ConfigObjectRef, items: Option<&Vec<_>>, optional: Option<bool>| {
            let items: Vec<&k8s_openapi::api::core::v1::KeyToPath> =
                items.into_iter().flatten().collect();
            let optional = optional.unwrap_or(false);
            if items.is_empty() {
                uses.push(ConfigUse {
                    object,
                    key: None,
                    optional,
                    site: site.clone(),
                });
            } else {
                for item in items {
                    uses.push(ConfigUse {
                        object: object.clone(),
                        key: Some(item.key.clone()),
                        optional,
                        site: site.clone(),
                    });
                }
            }
        };
        if let Some(source) = &volume.config_map {
            push(
                ConfigObjectRef::config_map(&source.name),
                source.items.as_ref(),
                source.optional,
            );
        }
        if let Some(source) = &volume.secret
            && let Some(name) = &source.secret_name
        {
            push(
                ConfigObjectRef::secret(name),
                source.items.as_ref(),
                source.optional,
            );
        }
        if let Some(projected) = &volume.projected {
            for source in projected.sources.iter().flatten() {
                if let Some(cm) = &source.config_map {
                    push(
                        ConfigObjectRef::config_map(&cm.name),
                        cm.items.as_ref(),
                        cm.optional,
                    );
                }
                if let Some(secret) = &source.secret {
                    push(
                        ConfigObjectRef::secret(&secret.name),
                        secret.items.as_ref(),
                        secret.optional,
                    );
                }
            }
        }
    }
    for (label, container) in containers(pod) {
        for env in container.env.iter().flatten() {
            let Some(from) = &env.value_from else {
                continue;
            };
            let site = format!("{label}, env {}", env.name);
            if let Some(selector) = &from.config_map_key_ref {
                uses.push(ConfigUse {
                    object: ConfigObjectRef::config_map(&selector.name),
                    key: Some(selector.key.clone()),
                    optional: selector.optional.unwrap_or(false),
                    site: site.clone(),
                });
            }
            if let Some(selector) = &from.secret_key_ref {
                uses.push(ConfigUse {
                    object: ConfigObjectRef::secret(&selector.name),
                    key: Some(selector.key.clone()),
                    optional: selector.optional.unwrap_or(false),
                    site,
                });
            }
        }
        for source in container.env_from.iter().flatten() {
            let site = format!("{label}, envFrom");
            if let Some(cm) = &source.config_map_ref {
                uses.push(ConfigUse {
                    object: ConfigObjectRef::config_map(&cm.name),
                    key: None,
                    optional: cm.optional.unwrap_or(false),
                    site: site.clone(),
                });
            }
            if let Some(secret) = &source.secret_ref {
                uses.push(ConfigUse {
                    object: ConfigObjectRef::secret(&secret.name),
                    key: None,
                    optional: secret.optional.unwrap_or(false),
                    site,
                });
            }
        }
    }
    uses
}

/// The distinct objects of [`references`].
pub fn referenced_objects(template: &PodTemplateSpec) -> BTreeSet<ConfigObjectRef> {
    references(template).into_iter().map(|u| u.object).collect()
}

/// Init and app containers with a label for messages (`init container "migrate"`,
/// `container "app"`).
pub(crate) fn containers(pod: &PodSpec) -> Vec<(String, &Container)> {
    let init = pod
        .init_containers
        .iter()
        .flatten()
        .map(|c| (format!("init container {:?}", c.name), c));
    let app = pod
        .containers
        .iter()
        .map(|c| (format!("container {:?}", c.name), c));
    init.chain(app).collect()
}

/// The keys a ConfigMap holds (`data` and `binaryData`).
pub fn config_map_keys(cm: &ConfigMap) -> BTreeSet<String> {
    let data = cm.data.iter().flatten().map(|(k, _)| k.clone());
    let binary = cm.binary_data.iter().flatten().map(|(k, _)| k.clone());
    data.chain(binary).collect()
}

/// The keys a Secret holds (`data` and `stringData`).
pub fn secret_keys(secret: &Secret) -> BTreeSet<String> {
    let data = secret.data.iter().flatten().map(|(k, _)| k.clone());
    let string = secret.string_data.iter().flatten().map(|(k, _)| k.clone());
    data.chain(string).collect()
}

/// The content digest of a ConfigMap (see the module docs).
pub fn config_map_digest(cm: &ConfigMap) -> String {
    let data: Map<String, Value> = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let binary: Map<String, Value> = cm
        .binary_data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), Value::String(STANDARD.encode(&v.0))))
        .collect();
    sha256(&json!({"kind": "ConfigMap", "data": data, "binaryData": binary}))
}

/// The content digest of a Secret (see the module docs).
pub fn secret_digest(secret: &Secret) -> String {
    let data: Map<String, Value> = secret_bytes(secret)
        .into_iter()
        .map(|(k, v)| (k, Value::String(STANDARD.encode(v))))
        .collect();
    let type_ = secret.type_.clone().unwrap_or_else(|| "Opaque".to_string());
    sha256(&json!({"kind": "Secret", "type": type_, "data": data}))
}

/// A Secret's bytes by key: `data`, overlaid by `stringData`.
fn secret_bytes(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut bytes: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in secret.string_data.iter().flatten() {
        bytes.insert(k.clone(), v.clone().into_bytes());
    }
    bytes
}

fn sha256(document: &Value) -> String {
    let text = canonical(document);
    let sum = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    format!("sha256:{}", hex::encode(sum.as_ref()))
}

/// The name of the copy of `original` with content `digest` (`sha256:<hex>`):
/// `<original>-<first 10 hex digits>`, the original shortened if the result would exceed 253
/// characters.
pub fn copy_name(original: &str, digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let short: String = hex.chars().take(COPY_HASH_LEN).collect();
    let room = MAX_NAME_LEN - COPY_HASH_LEN - 1;
    let mut base: String = original.chars().take(room).collect();
    while base.ends_with(['-', '.']) {
        base.pop();
    }
    format!("{base}-{short}")
}

/// The copy names of a revision's configuration objects, from their digests keyed by
/// [`ConfigObjectRef::key`] (unparseable keys are skipped).
pub fn copy_names(config_objects: &BTreeMap<String, String>) -> BTreeMap<ConfigObjectRef, String> {
    config_objects
        .iter()
        .filter_map(|(key, digest)| {
            let object = ConfigObjectRef::parse_key(key)?;
            let name = copy_name(&object.name, digest);
            Some((object, name))
        })
        .collect()
}

fn copy_metadata(original: &ObjectMeta, copy: &str, sd_name: &str) -> ObjectMeta {
    let original_name = original.name.clone().unwrap_or_default();
    let mut labels = BTreeMap::from([
        (LABEL_NAME.to_string(), sd_name.to_string()),
        (LABEL_CONFIG_COPY.to_string(), "true".to_string()),
    ]);
    // Label values are at most 63 characters; the annotation always holds the full name.
    if original_name.len() <= 63 {
        labels.insert(LABEL_ORIGINAL.to_string(), original_name.clone());
    }
    ObjectMeta {
        name: Some(copy.to_string()),
        namespace: original.namespace.clone(),
        labels: Some(labels),
        annotations: Some(BTreeMap::from([(
            LABEL_ORIGINAL.to_string(),
            original_name,
        )])),
        ..Default::default()
    }
}

/// The immutable, content-named copy of a ConfigMap (no owner references: the I/O layer adds
/// the ReplicaSets that mount it).
pub fn config_map_copy(original: &ConfigMap, sd_name: &str) -> ConfigMap {
    let name = original.metadata.name.clone().unwrap_or_default();
    let copy = copy_name(&name, &config_map_digest(original));
    ConfigMap {
        metadata: copy_metadata(&original.metadata, &copy, sd_name),
        data: original.data.clone(),
        binary_data: original.binary_data.clone(),
        immutable: Some(true),
    }
}

/// The immutable, content-named copy of a Secret (`stringData` folded into `data`).
pub fn secret_copy(original: &Secret, sd_name: &str) -> Secret {
    let name = original.metadata.name.clone().unwrap_or_default();
    let copy = copy_name(&name, &secret_digest(original));
    let data = secret_bytes(original)
        .into_iter()
        .map(|(k, v)| (k, k8s_openapi::ByteString(v)))
        .collect();
    Secret {
        metadata: copy_metadata(&original.metadata, &copy, sd_name),
        data: Some(data),
        string_data: None,
        type_: original.type_.clone(),
        immutable: Some(true),
    }
}

/// The template with every reference to an object of `copies` pointing at its copy instead.
/// References to other objects (an optional one that does not exist) are left as they are.
pub fn rewrite_template(
    template: &PodTemplateSpec,
    copies: &BTreeMap<ConfigObjectRef, String>,
) -> PodTemplateSpec {
    let mut template = template.clone();
    if copies.is_empty() {
        return template;
    }
    let Some(pod) = template.spec.as_mut() else {
        return template;
    };
    let swap = |kind: ConfigKind, name: &mut String| {
        let object = ConfigObjectRef {
            kind,
            name: name.clone(),
        };
        if let Some(copy) = copies.get(&object) {
            *name = copy.clone();
        }
    };
    for volume in pod.volumes.iter_mut().flatten() {
        if let Some(source) = volume.config_map.as_mut() {
            swap(ConfigKind::ConfigMap, &mut source.name);
        }
        if let Some(name) = volume.secret.as_mut().and_then(|s| s.secret_name.as_mut()) {
            swap(ConfigKind::Secret, name);
        }
        if let Some(projected) = volume.projected.as_mut() {
            for source in projected.sources.iter_mut().flatten() {
                if let Some(cm) = source.config_map.as_mut() {
                    swap(ConfigKind::ConfigMap, &mut cm.name);
                }
                if let Some(secret) = source.secret.as_mut() {
                    swap(ConfigKind::Secret, &mut secret.name);
                }
            }
        }
    }
    let init = pod.init_containers.iter_mut().flatten();
    for container in pod.containers.iter_mut().chain(init) {
        for env in container.env.iter_mut().flatten() {
            if let Some(from) = env.value_from.as_mut() {
                if let Some(selector) = from.config_map_key_ref.as_mut() {
                    swap(ConfigKind::ConfigMap, &mut selector.name);
                }
                if let Some(selector) = from.secret_key_ref.as_mut() {
                    swap(ConfigKind::Secret, &mut selector.name);
                }
            }
        }
        for source in container.env_from.iter_mut().flatten() {
            if let Some(cm) = source.config_map_ref.as_mut() {
                swap(ConfigKind::ConfigMap, &mut cm.name);
            }
            if let Some(secret) = source.secret_ref.as_mut() {
                swap(ConfigKind::Secret, &mut secret.name);
            }
        }
    }
    template
}

/// Why a manifest could not be read as a configuration object.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The document is neither a ConfigMap nor a Secret.
    #[error("expected a ConfigMap or Secret manifest, found kind {0:?}")]
    NotConfig(String),
    /// The document has no `metadata.name`.
    #[error("the {0} manifest has no metadata.name")]
    NoName(&'static str),
    /// The document does not parse as its kind.
    #[error("invalid {kind} manifest: {source}")]
    Invalid {
        /// The kind.
        kind: &'static str,
        /// The parse error.
        source: serde_json::Error,
    },
}

/// The digest key and content digest of a ConfigMap or Secret manifest (as JSON), for a
/// pipeline that binds the same contents the operator will (`safedeploy attest --config-object`).
pub fn manifest_digest(manifest: Value) -> Result<(String, String), ManifestError> {
    let kind = manifest
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    match kind.as_str() {
        "ConfigMap" => {
            let cm: ConfigMap =
                serde_json::from_value(manifest).map_err(|source| ManifestError::Invalid {
                    kind: "ConfigMap",
                    source,
                })?;
            let name = cm
                .metadata
                .name
                .clone()
                .ok_or(ManifestError::NoName("ConfigMap"))?;
            Ok((
                ConfigObjectRef::config_map(&name).key(),
                config_map_digest(&cm),
            ))
        }
        "Secret" => {
            let secret: Secret =
                serde_json::from_value(manifest).map_err(|source| ManifestError::Invalid {
                    kind: "Secret",
                    source,
                })?;
            let name = secret
                .metadata
                .name
                .clone()
                .ok_or(ManifestError::NoName("Secret"))?;
            Ok((ConfigObjectRef::secret(&name).key(), secret_digest(&secret)))
        }
        _ => Err(ManifestError::NotConfig(kind)),
    }
}

#[cfg(test)]
mod tests;
