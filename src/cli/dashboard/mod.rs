//! `safedeploy dashboard`: a web dashboard of the rollouts, served on the user's machine with the
//! user's kubeconfig. It reads with the user's credentials, shows actions only where a
//! SelfSubjectAccessReview says the user may patch the SafeDeployment, carries them out as the
//! user (the kubectl plugin's requests), and pushes changes from watches as server-sent events.
//! The front end (`dashboard/` in the repository) is embedded in the binary.
//!
//! Owns: the command's arguments and errors ([`DashboardArgs`], [`DashboardError`]); the view
//! model ([`view`], pure); the HTTP server ([`server`]); the reads from the cluster
//! ([`cluster`]); the embedded files ([`assets`]).

pub mod assets;
pub mod cluster;
pub mod server;
pub mod view;

use std::net::SocketAddr;
use std::process::ExitCode;

use kube::Client;

/// Arguments of `safedeploy dashboard`.
#[derive(Debug, Clone, clap::Args)]
pub struct DashboardArgs {
    /// List the rollouts of this namespace (default: the kubeconfig's).
    #[arg(short = 'n', long, conflicts_with = "all_namespaces")]
    pub namespace: Option<String>,
    /// List the rollouts of every namespace the user may list.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Where to listen. Keep it on loopback: the server acts with your credentials.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Another `Host` header to accept (`dash.example:8080`, behind a proxy); loopback names
    /// of the listening port are always accepted, any other is refused (DNS rebinding).
    #[arg(long = "allowed-host")]
    pub allowed_hosts: Vec<String>,
    /// Offer no action and refuse every action request (the chart's in-cluster dashboard, which
    /// runs with a read-only ServiceAccount and acts for nobody).
    #[arg(long)]
    pub read_only: bool,
}

/// Errors of the dashboard server.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// The kubeconfig could not be used.
    #[error("cannot use the kubeconfig: {0}")]
    Kube(#[from] kube::Error),
    /// The address could not be bound or served.
    #[error("cannot serve on {address}: {source}")]
    Serve {
        /// The address.
        address: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Which rollouts the list shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One namespace's.
    Namespace(String),
    /// Every namespace's.
    All,
}

/// Runs `safedeploy dashboard` until interrupted.
pub async fn run(args: DashboardArgs) -> ExitCode {
    match serve_args(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("safedeploy dashboard: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve_args(args: DashboardArgs) -> Result<(), DashboardError> {
    let client = Client::try_default().await?;
    let scope = match (args.all_namespaces, args.namespace) {
        (true, _) => Scope::All,
        (false, Some(namespace)) => Scope::Namespace(namespace),
        (false, None) => Scope::Namespace(client.default_namespace().to_string()),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| DashboardError::Serve {
            address: args.listen.to_string(),
            source,
        })?;
    let address = listener
        .local_addr()
        .map_err(|source| DashboardError::Serve {
            address: args.listen.to_string(),
            source,
        })?;
    println!("safedeploy dashboard: http://{address}/");
    let dashboard =
        server::Dashboard::new(client, scope, address, args.allowed_hosts, args.read_only);
    axum::serve(listener, server::router(dashboard))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|source| DashboardError::Serve {
            address: address.to_string(),
            source,
        })
}
