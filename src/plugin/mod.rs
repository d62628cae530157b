//! The kubectl plugin verbs (`kubectl safedeploy get|status|promote|abort|retry|rollback|history|
//! pause|resume`), thin clients that read status and write request annotations.

use std::process::ExitCode;

/// The plugin verbs.
#[derive(Debug, clap::Subcommand)]
pub enum PluginCommand {
    /// List SafeDeployments.
    Get,
}

/// Runs a plugin verb.
pub async fn run(_command: PluginCommand) -> ExitCode {
    ExitCode::FAILURE
}
