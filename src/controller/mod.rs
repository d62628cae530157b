//! The I/O layer of the operator: watches, the reconcile loop that applies the core's decisions
//! with server-side apply, events, and the HTTP endpoints.

/// Arguments of `safedeploy controller`.
#[derive(Debug, clap::Args)]
pub struct ControllerArgs {}

/// Errors that stop the controller.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// Could not reach the API server.
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
}

/// Runs the controller until it is stopped.
pub async fn run(_args: ControllerArgs) -> Result<(), ControllerError> {
    Ok(())
}
