//! What was delivered, kept in the cluster: one ConfigMap per SafeDeployment,
//! `<name>.safedeploy-notifications`, owned by it (deleted with it), whose `delivered` key lists
//! `<sink>|<notification key>` lines. Read once per SafeDeployment after a start, written after
//! each delivery, so a restart neither loses nor repeats one (a delivery whose record write was
//! cut short by a kill is sent again, with the same idempotency key).
//!
//! The list is bounded: a write keeps only the keys still derivable from the status (and the
//! newest [`MAX_KEYS`]), since a key that is no longer derived is never sent again.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};

use super::NotifyError;
use crate::api::SafeDeployment;
use crate::controller::FIELD_MANAGER;

/// The data key of the list.
const DATA_KEY: &str = "delivered";
/// The most keys one record holds.
const MAX_KEYS: usize = 512;

/// The key of one sink's delivery of one notification.
pub fn delivery_key(sink: &str, key: &str) -> String {
    format!("{sink}|{key}")
}

/// The name of `sd`'s record.
pub fn record_name(sd_name: &str) -> String {
    format!("{sd_name}.safedeploy-notifications")
}

/// The delivered keys of one SafeDeployment.
pub struct Record {
    keys: BTreeSet<String>,
    /// Insertion order, oldest first, for the bound.
    order: Vec<String>,
}

impl Record {
    /// Reads the record from the cluster unless `known` (this process's copy) is given.
    pub async fn load(
        client: &Client,
        sd: &SafeDeployment,
        namespace: &str,
        known: Option<BTreeSet<String>>,
    ) -> Result<Record, NotifyError> {
        if let Some(keys) = known {
            return Ok(Record {
                order: keys.iter().cloned().collect(),
                keys,
            });
        }
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        let name = record_name(&sd.name_any());
        let order: Vec<String> = match api.get_opt(&name).await? {
            None => Vec::new(),
            Some(cm) => {
                if !owned_by(&cm, sd) {
                    return Err(NotifyError::StateTaken(name));
                }
                cm.data
                    .and_then(|d| d.get(DATA_KEY).cloned())
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect()
            }
        };
        Ok(Record {
            keys: order.iter().cloned().collect(),
            order,
        })
    }

    /// Whether `key` was delivered.
    pub fn contains(&self, key: &str) -> bool {
        self.keys.contains(key)
    }

    /// Every delivered key.
    pub fn keys(&self) -> &BTreeSet<String> {
        &self.keys
    }

    /// Marks `key` delivered (in memory; [`Record::save`] writes it).
    pub fn insert(&mut self, key: String) {
        if self.keys.insert(key.clone()) {
            self.order.push(key);
        }
    }

    /// Writes the record (server-side apply, one field manager), keeping the keys of `wanted`
    /// (what the status still implies) and at most [`MAX_KEYS`].
    pub async fn save(
        &mut self,
        client: &Client,
        sd: &SafeDeployment,
        wanted: &BTreeSet<String>,
    ) -> Result<(), NotifyError> {
        self.order.retain(|k| wanted.contains(k));
        let excess = self.order.len().saturating_sub(MAX_KEYS);
        self.order.drain(..excess);
        self.keys = self.order.iter().cloned().collect();
        let namespace = sd.namespace().unwrap_or_default();
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
        let name = record_name(&sd.name_any());
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/managed-by".to_string(),
                    "safedeploy".to_string(),
                )])),
                owner_references: owner(sd).map(|o| vec![o]),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(
                DATA_KEY.to_string(),
                self.order.join("\n"),
            )])),
            ..ConfigMap::default()
        };
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Apply(&cm),
        )
        .await?;
        Ok(())
    }
}

fn owner(sd: &SafeDeployment) -> Option<OwnerReference> {
    sd.controller_owner_ref(&()).map(|mut o| {
        // Not the controller: the SafeDeployment's config copies and ReplicaSets are found by
        // controller reference; this record is only garbage-collected with it.
        o.controller = None;
        o.block_owner_deletion = None;
        o
    })
}

fn owned_by(cm: &ConfigMap, sd: &SafeDeployment) -> bool {
    let uid = sd.meta().uid.as_deref();
    cm.owner_references()
        .iter()
        .any(|o| Some(o.uid.as_str()) == uid)
}
