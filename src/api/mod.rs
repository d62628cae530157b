//! The custom resources of safedeploy (types, schemas, CEL rules) and the generation of `crds/`.

pub mod adoption;
pub mod analysis;
pub mod bluegreen;
pub mod conditions;
pub mod freeze;
pub mod gates;
panic_free! {
    pub mod duration;
    pub mod health;
}
pub mod image;
pub mod job;
pub mod labels;
pub mod notifications;
pub mod policy;
pub mod record;
pub mod rejection;
pub mod requirements;
pub mod routing;
pub mod rules;
pub mod safedeployment;
pub mod traffic;
pub mod workload;

use kube::CustomResourceExt;

pub use policy::{SafeDeploymentPolicy, SafeDeploymentPolicySpec};
pub use record::{SafeDeploymentRecord, SafeDeploymentRecordSpec};
pub use safedeployment::*;

/// Errors while rendering the CRDs.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    /// The CRD could not be serialised to YAML.
    #[error("cannot render CRD as YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
}

/// The CRDs as one multi-document YAML text, in a fixed order; `crds/` holds exactly this.
pub fn crds_yaml() -> Result<String, CrdError> {
    let mut out = String::new();
    for crd in [
        SafeDeployment::crd(),
        SafeDeploymentPolicy::crd(),
        SafeDeploymentRecord::crd(),
    ] {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}

/// Prints the CRDs to standard output.
pub fn print_crds() -> Result<(), CrdError> {
    print!("{}", crds_yaml()?);
    Ok(())
}

/// A Markdown API reference generated from the CRD schemas: one table per kind, one row per field
/// (path, type, description, validation rules). `crds/API.md` holds exactly this.
pub fn api_reference_markdown() -> String {
    let mut out = String::from(
        "# API reference\n\nGenerated from the CRD schemas (`safedeploy crds`); do not edit.\n",
    );
    for crd in [
        SafeDeployment::crd(),
        SafeDeploymentPolicy::crd(),
        SafeDeploymentRecord::crd(),
    ] {
        let kind = &crd.spec.names.kind;
        for version in &crd.spec.versions {
            out.push_str(&format!(
                "\n## {kind} ({}/{})\n\n| Field | Type | Description |\n|---|---|---|\n",
                crd.spec.group, version.name
            ));
            let schema = version
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .and_then(|s| serde_json::to_value(s).ok())
                .unwrap_or_default();
            for section in ["spec", "status"] {
                if let Some(node) = schema.get("properties").and_then(|p| p.get(section)) {
                    describe_fields(section, node, 0, &mut out);
                }
            }
        }
    }
    out
}

fn describe_fields(path: &str, node: &serde_json::Value, depth: usize, out: &mut String) {
    if depth > 8 {
        return;
    }
    let kind = node
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or("object");
    let text = |value: Option<&serde_json::Value>| {
        value
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .replace('\n', " ")
            .replace('|', "\\|")
    };
    let mut description = text(node.get("description"));
    if let Some(rules) = node
        .get("x-kubernetes-validations")
        .and_then(|v| v.as_array())
    {
        for rule in rules {
            description.push_str(&format!(" *Rule:* {}.", text(rule.get("message"))));
        }
    }
    out.push_str(&format!("| `{path}` | {kind} | {description} |\n"));
    let (properties, prefix) = match kind {
        "array" => (
            node.get("items").and_then(|i| i.get("properties")),
            format!("{path}[]"),
        ),
        _ => (node.get("properties"), path.to_string()),
    };
    if let Some(properties) = properties.and_then(|p| p.as_object()) {
        for (name, child) in properties {
            describe_fields(&format!("{prefix}.{name}"), child, depth + 1, out);
        }
    }
}
