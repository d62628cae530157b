//! Entry point of the single `safedeploy` binary: parses the command line and hands over to the
//! subcommand. Installed as `kubectl-safedeploy`, the plugin verbs work as `kubectl safedeploy …`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = safedeploy::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("safedeploy: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(safedeploy::cli::run(cli))
}
