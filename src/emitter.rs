//! A small HTTP service for tests and the demo: exports request counts, errors and a latency
//! histogram per version label, and lets a test change each version's error ratio and latency.

/// Arguments of `safedeploy emitter`.
#[derive(Debug, clap::Args)]
pub struct EmitterArgs {}

/// Errors of the emitter.
#[derive(Debug, thiserror::Error)]
pub enum EmitterError {
    /// Could not bind or serve.
    #[error("emitter: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs the emitter until it is stopped.
pub async fn run(_args: EmitterArgs) -> Result<(), EmitterError> {
    Ok(())
}
