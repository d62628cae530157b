//! Unit tests of configuration versioning: references, digests, copies and rewrites.

use super::*;
use k8s_openapi::ByteString;

fn template(yaml: &str) -> PodTemplateSpec {
    serde_yaml::from_str(yaml).unwrap()
}

const EVERY_KIND: &str = r#"
metadata: {labels: {app: web}}
spec:
  volumes:
  - name: config
    configMap: {name: app-config}
  - name: certs
    secret: {secretName: tls, items: [{key: tls.crt, path: crt}, {key: tls.key, path: key}]}
  - name: bundle
    projected:
      sources:
      - configMap: {name: bundle-cm, optional: true}
      - secret: {name: bundle-secret}
      - serviceAccountToken: {path: token}
  - name: scratch
    emptyDir: {}
  initContainers:
  - name: migrate
    image: migrate:v1
    envFrom: [{secretRef: {name: db}}]
  containers:
  - name: app
    image: app:v1
    env:
    - {name: LOG_LEVEL, valueFrom: {configMapKeyRef: {name: app-config, key: LOG_LEVEL}}}
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: db, key: password, optional: true}}}
    - {name: PLAIN, value: x}
    envFrom: [{configMapRef: {name: common}, prefix: C_}]
"#;

#[test]
fn references_cover_volumes_projections_env_and_env_from() {
    let uses = references(&template(EVERY_KIND));
    let summary: Vec<(String, Option<&str>, bool, &str)> = uses
        .iter()
        .map(|u| {
            (
                u.object.key(),
                u.key.as_deref(),
                u.optional,
                u.site.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "configmap/app-config".into(),
                None,
                false,
                "volume \"config\""
            ),
            (
                "secret/tls".into(),
                Some("tls.crt"),
                false,
                "volume \"certs\""
            ),
            (
                "secret/tls".into(),
                Some("tls.key"),
                false,
                "volume \"certs\""
            ),
            (
                "configmap/bundle-cm".into(),
                None,
                true,
                "volume \"bundle\""
            ),
            (
                "secret/bundle-secret".into(),
                None,
                false,
                "volume \"bundle\""
            ),
            (
                "secret/db".into(),
                None,
                false,
                "init container \"migrate\", envFrom"
            ),
            (
                "configmap/app-config".into(),
                Some("LOG_LEVEL"),
                false,
                "container \"app\", env LOG_LEVEL"
            ),
            (
                "secret/db".into(),
                Some("password"),
                true,
                "container \"app\", env PASSWORD"
            ),
            (
                "configmap/common".into(),
                None,
                false,
                "container \"app\", envFrom"
            ),
        ]
    );
    let objects: Vec<String> = referenced_objects(&template(EVERY_KIND))
        .iter()
        .map(ConfigObjectRef::key)
        .collect();
    assert_eq!(
        objects,
        [
            "configmap/app-config",
            "configmap/bundle-cm",
            "configmap/common",
            "secret/bundle-secret",
            "secret/db",
            "secret/tls"
        ]
    );
}

#[test]
fn a_template_without_configuration_has_no_references() {
    let plain = template("{metadata: {labels: {a: b}}, spec: {containers: [{name: a, image: i}]}}");
    assert!(references(&plain).is_empty());
    assert!(references(&PodTemplateSpec::default()).is_empty());
}

#[test]
fn rewrite_points_every_reference_at_its_copy_and_leaves_others() {
    let copies = BTreeMap::from([
        (
            ConfigObjectRef::config_map("app-config"),
            "app-config-1111111111".to_string(),
        ),
        (ConfigObjectRef::secret("db"), "db-2222222222".to_string()),
        (ConfigObjectRef::secret("tls"), "tls-3333333333".to_string()),
        (
            ConfigObjectRef::secret("bundle-secret"),
            "bundle-secret-4444444444".to_string(),
        ),
        (
            ConfigObjectRef::config_map("common"),
            "common-5555555555".to_string(),
        ),
        // Same name, other kind: must not touch the ConfigMap reference "tls" (none here)
        // nor the Secret references of kind ConfigMap.
        (ConfigObjectRef::config_map("db"), "wrong".to_string()),
    ]);
    let original = template(EVERY_KIND);
    let rewritten = rewrite_template(&original, &copies);
    let names: Vec<String> = references(&rewritten)
        .iter()
        .map(|u| u.object.key())
        .collect();
    assert_eq!(
        names,
        [
            "configmap/app-config-1111111111",
            "secret/tls-3333333333",
            "secret/tls-3333333333",
            // Not copied (optional and absent): unchanged.
            "configmap/bundle-cm",
            "secret/bundle-secret-4444444444",
            "secret/db-2222222222",
            "configmap/app-config-1111111111",
            "secret/db-2222222222",
            "configmap/common-5555555555",
        ]
    );
    // Only names changed: mapping the copies back gives the original template exactly
    // (keys, items, prefixes, the token projection and everything else kept).
    let back: BTreeMap<ConfigObjectRef, String> = copies
        .iter()
        .filter(|(_, copy)| copy.as_str() != "wrong")
        .map(|(object, copy)| {
            let copy_ref = ConfigObjectRef {
                kind: object.kind,
                name: copy.clone(),
            };
            (copy_ref, object.name.clone())
        })
        .collect();
    assert_ne!(rewritten, original);
    assert_eq!(rewrite_template(&rewritten, &back), original);
    assert_eq!(rewrite_template(&original, &BTreeMap::new()), original);
}

fn cm(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            resource_version: Some("17".into()),
            uid: Some("u".into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

#[test]
fn config_map_digest_follows_content_only() {
    let a = cm("app-config", &[("LOG_LEVEL", "info"), ("MODE", "prod")]);
    let d = config_map_digest(&a);
    assert!(d.starts_with("sha256:") && d.len() == 71, "{d}");
    // Metadata does not count; the name is not part of the content either.
    let mut b = cm("other", &[("MODE", "prod"), ("LOG_LEVEL", "info")]);
    b.metadata.resource_version = Some("99".into());
    b.metadata.labels = Some(BTreeMap::from([("x".into(), "y".into())]));
    assert_eq!(config_map_digest(&b), d);
    // A value, a key or binary data changes it.
    assert_ne!(
        config_map_digest(&cm("a", &[("LOG_LEVEL", "debug"), ("MODE", "prod")])),
        d
    );
    assert_ne!(config_map_digest(&cm("a", &[("LOG_LEVEL", "info")])), d);
    let mut c = a.clone();
    c.binary_data = Some(BTreeMap::from([("blob".into(), ByteString(vec![0, 1]))]));
    assert_ne!(config_map_digest(&c), d);
    // The definition, by hand.
    let doc = r#"{"binaryData":{},"data":{"LOG_LEVEL":"info","MODE":"prod"},"kind":"ConfigMap"}"#;
    let by_hand = hex::encode(ring::digest::digest(&ring::digest::SHA256, doc.as_bytes()));
    assert_eq!(d, format!("sha256:{by_hand}"));
}

#[test]
fn secret_digest_merges_string_data_and_counts_the_type() {
    let stored = Secret {
        metadata: ObjectMeta {
            name: Some("db".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "password".into(),
            ByteString(b"hunter2".to_vec()),
        )])),
        ..Default::default()
    };
    let manifest = Secret {
        metadata: ObjectMeta {
            name: Some("db".into()),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([("password".into(), "hunter2".into())])),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    assert_eq!(secret_digest(&stored), secret_digest(&manifest));
    let mut tls = stored.clone();
    tls.type_ = Some("kubernetes.io/tls".into());
    assert_ne!(secret_digest(&tls), secret_digest(&stored));
    // A ConfigMap with the same text content is another object.
    assert_ne!(
        config_map_digest(&cm("db", &[("password", "hunter2")])),
        secret_digest(&stored)
    );
    let copy = secret_copy(&manifest, "web");
    assert_eq!(copy.string_data, None);
    assert_eq!(
        copy.data.unwrap().get("password").map(|b| b.0.clone()),
        Some(b"hunter2".to_vec())
    );
    assert_eq!(copy.immutable, Some(true));
}

#[test]
fn copies_are_immutable_labelled_and_named_by_content() {
    let original = cm("app-config", &[("LOG_LEVEL", "info")]);
    let digest = config_map_digest(&original);
    let copy = config_map_copy(&original, "web");
    let name = copy.metadata.name.clone().unwrap();
    assert_eq!(name, format!("app-config-{}", &digest[7..17]));
    assert_eq!(copy.immutable, Some(true));
    assert_eq!(copy.data, original.data);
    assert_eq!(copy.metadata.namespace.as_deref(), Some("ns"));
    assert_eq!(copy.metadata.uid, None);
    assert_eq!(copy.metadata.resource_version, None);
    let labels = copy.metadata.labels.unwrap();
    assert_eq!(labels.get(LABEL_NAME).map(String::as_str), Some("web"));
    assert_eq!(
        labels.get(LABEL_CONFIG_COPY).map(String::as_str),
        Some("true")
    );
    assert_eq!(
        labels.get(LABEL_ORIGINAL).map(String::as_str),
        Some("app-config")
    );
    // The copy's content digest is the original's: a copy can be checked against its name.
    let mut as_original = config_map_copy(&original, "web");
    as_original.metadata.labels = None;
    assert_eq!(config_map_digest(&as_original), digest);
    assert_eq!(
        copy_names(&BTreeMap::from([(
            "configmap/app-config".to_string(),
            digest
        )])),
        BTreeMap::from([(ConfigObjectRef::config_map("app-config"), name)])
    );
}

#[test]
fn copy_names_stay_valid_for_long_names() {
    let long = format!("{}-x", "a".repeat(260));
    let name = copy_name(&long, "sha256:0123456789abcdef");
    assert_eq!(name.len(), 253);
    assert!(name.ends_with("-0123456789"));
    let dashed = format!("{}-{}", "a".repeat(241), "b".repeat(20));
    assert!(!copy_name(&dashed, "sha256:0123456789").contains("--"));
}

#[test]
fn keys_round_trip_and_reject_garbage() {
    for object in [
        ConfigObjectRef::config_map("a"),
        ConfigObjectRef::secret("b.c"),
    ] {
        assert_eq!(ConfigObjectRef::parse_key(&object.key()), Some(object));
    }
    for bad in ["pod/x", "configmap/", "configmap", ""] {
        assert_eq!(ConfigObjectRef::parse_key(bad), None, "{bad}");
    }
    assert_eq!(
        ConfigObjectRef::config_map("a").to_string(),
        "ConfigMap \"a\""
    );
}

#[test]
fn manifests_digest_like_the_stored_objects() {
    let manifest = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "app-config"}, "data": {"LOG_LEVEL": "info"}});
    let (key, digest) = manifest_digest(manifest).unwrap();
    assert_eq!(key, "configmap/app-config");
    assert_eq!(
        digest,
        config_map_digest(&cm("x", &[("LOG_LEVEL", "info")]))
    );
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
            "data": {"password": "aHVudGVyMg=="}});
    assert_eq!(manifest_digest(secret).unwrap().0, "secret/db");
    assert!(matches!(
        manifest_digest(json!({"kind": "Pod", "metadata": {"name": "p"}})),
        Err(ManifestError::NotConfig(k)) if k == "Pod"
    ));
    assert!(matches!(
        manifest_digest(json!({"kind": "ConfigMap", "metadata": {}})),
        Err(ManifestError::NoName("ConfigMap"))
    ));
}
