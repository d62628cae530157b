//! The custom resources of safedeploy (types, schemas, CEL rules) and the generation of `crds/`.

pub mod analysis;
pub mod policy;
pub mod safedeployment;

use kube::CustomResourceExt;

pub use policy::{SafeDeploymentPolicy, SafeDeploymentPolicySpec};
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
    for crd in [SafeDeployment::crd(), SafeDeploymentPolicy::crd()] {
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
