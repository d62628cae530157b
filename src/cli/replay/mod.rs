//! `safedeploy replay`: what the operator would have done with a SafeDeployment on recorded
//! metrics. It reads the manifest (and `--set` changes to its analyses), takes the measurements
//! from the providers at each simulated instant (Prometheus evaluates each query at that time)
//! or from a recording, and prints the timeline of the pure [`engine`]: each step, each
//! measurement with its value, thresholds and verdict, and the promotion or revert with when
//! and why.
//!
//! Exit codes: `0` replayed; `2` the replay could not run (unreadable or wrong manifest, bad
//! `--set`, a range refused); `3` replayed, but no measurement reached its provider (the
//! timeline shows the operator holding a rollout whose provider is down, nothing about the
//! canary).

pub mod engine;
pub mod overrides;
pub mod recording;
mod render;
pub mod timeline;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use jiff::Timestamp;

use super::attest::{read_config_objects, read_manifest};
use engine::{ReplayInput, Timeline, replay};
use recording::{
    MAX_RECORDING_BYTES, ProviderSource, RECORDING_KIND, RecordedSource, Recorder, Recording,
};

/// How the timeline is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// For people.
    Text,
    /// The timeline as JSON.
    Json,
}

/// Arguments of `safedeploy replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The SafeDeployment manifest (YAML) whose steps and analyses are replayed.
    #[arg(long)]
    pub manifest: PathBuf,
    /// Send every Prometheus metric's queries to this address instead of the one in the
    /// manifest (for example a port-forward to the cluster's Prometheus).
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,
    /// When the canary starts (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// When the replay stops at the latest (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Replay on a recording (JSON, as `--record` writes it) instead of asking the providers.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["prometheus", "record"])]
    pub recorded: Option<PathBuf>,
    /// Also write what the providers answered to FILE, for replays offline with `--recorded`
    /// (each measured template goes on being measured until `--to`, past the replay's end).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Change a threshold or judge setting before replaying, as
    /// `analyses.<template>.metrics.<metric>.thresholds.critical=0.05` (repeatable; an
    /// unknown path is refused with the list of those that exist).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// The revision label the queries select as the canary (`{{canary}}`); by default the
    /// manifest's revision hash, as the operator computes it.
    #[arg(long, value_name = "LABEL")]
    pub canary_revision: Option<String>,
    /// The revision label the queries select as the stable (`{{stable}}`, `{{baseline}}`); by
    /// default a simulated revision that no series carries.
    #[arg(long, value_name = "LABEL")]
    pub stable_revision: Option<String>,
    /// A ConfigMap or Secret manifest the templates reference: its contents enter the revision
    /// hash, as in the operator (repeatable).
    #[arg(long = "config-object", value_name = "FILE")]
    pub config_objects: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
}

/// Why a replay cannot run (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ReplayCliError {
    /// The manifest, a file or an argument.
    #[error("{0}")]
    Input(String),
    /// The engine refused.
    #[error(transparent)]
    Engine(#[from] engine::ReplayError),
    /// A `--set`.
    #[error(transparent)]
    Override(#[from] overrides::OverrideError),
}

/// Runs `replay`.
pub async fn run(args: ReplayArgs) -> ExitCode {
    match run_replay(&args).await {
        Ok(timeline) => {
            let printed = match args.output {
                OutputFormat::Json => serde_json::to_string_pretty(&timeline)
                    .map(|text| format!("{text}\n"))
                    .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}\n")),
                OutputFormat::Text => render::text(&timeline),
            };
            print!("{printed}");
            let outcome = &timeline.outcome;
            if outcome.measurements > 0 && outcome.provider_errors == measured_instants(&timeline) {
                eprintln!(
                    "safedeploy replay: no measurement reached its provider ({} measurements, each with a provider error): this replay shows the operator holding the rollout, nothing about the canary",
                    outcome.measurements
                );
                return ExitCode::from(3);
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("safedeploy replay: {error}");
            ExitCode::from(2)
        }
    }
}

/// How many distinct (template, instant) measurements the timeline holds.
fn measured_instants(timeline: &Timeline) -> usize {
    let mut seen = std::collections::BTreeSet::new();
    for entry in &timeline.entries {
        if let engine::What::Measurement(m) = &entry.what {
            seen.insert((m.template.clone(), entry.at.clone(), m.step));
        }
    }
    seen.len()
}

fn input_error(message: impl std::fmt::Display) -> ReplayCliError {
    ReplayCliError::Input(message.to_string())
}

fn parse_time(flag: &str, text: &str) -> Result<Timestamp, ReplayCliError> {
    text.parse()
        .map_err(|e| input_error(format!("{flag} {text:?} is not an RFC 3339 time: {e}")))
}

/// The SafeDeployment's name and namespace from its metadata.
fn manifest_identity(path: &Path) -> Result<(String, Option<String>), ReplayCliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| input_error(format!("{}: {e}", path.display())))?;
    let mut name = None;
    for document in serde_yaml::Deserializer::from_str(&text) {
        use serde::Deserialize as _;
        let Ok(value) = serde_yaml::Value::deserialize(document) else {
            continue;
        };
        if value.get("kind").and_then(serde_yaml::Value::as_str) == Some("SafeDeployment") {
            name = value
                .get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(serde_yaml::Value::as_str)
                .map(str::to_owned);
        }
    }
    Ok((name.unwrap_or_else(|| "replay".to_string()), None))
}

fn read_recording(path: &Path) -> Result<Recording, ReplayCliError> {
    let size = std::fs::metadata(path)
        .map_err(|e| input_error(format!("{}: {e}", path.display())))?
        .len();
    if size > MAX_RECORDING_BYTES {
        return Err(input_error(format!(
            "{}: {size} bytes; a recording may hold at most {MAX_RECORDING_BYTES}",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| input_error(format!("{}: {e}", path.display())))?;
    let recording: Recording = serde_json::from_str(&text)
        .map_err(|e| input_error(format!("{}: not a recording: {e}", path.display())))?;
    if recording.kind != RECORDING_KIND {
        return Err(input_error(format!(
            "{}: kind {:?}, not {RECORDING_KIND}",
            path.display(),
            recording.kind
        )));
    }
    Ok(recording)
}

async fn run_replay(args: &ReplayArgs) -> Result<Timeline, ReplayCliError> {
    let (spec, namespace) = read_manifest(&args.manifest).map_err(input_error)?;
    let (name, _) = manifest_identity(&args.manifest)?;
    let spec = overrides::apply(&spec, &args.set)?;
    let config_objects = read_config_objects(&spec, &args.config_objects).map_err(input_error)?;
    let recording = args.recorded.as_deref().map(read_recording).transpose()?;
    let time = |flag: &str, given: &Option<String>, recorded: Option<&str>| match (
        given.as_deref(),
        recorded,
    ) {
        (Some(text), _) | (None, Some(text)) => parse_time(flag, text),
        (None, None) => Err(input_error(format!(
            "{flag} is needed (RFC 3339, for example 2026-12-02T10:00:00Z) unless --recorded gives it"
        ))),
    };
    let from = time(
        "--from",
        &args.from,
        recording.as_ref().map(|r| r.from.as_str()),
    )?;
    let to = time("--to", &args.to, recording.as_ref().map(|r| r.to.as_str()))?;
    let input = ReplayInput {
        name,
        namespace: namespace.unwrap_or_else(|| "default".to_string()),
        spec,
        config_objects,
        canary_label: args.canary_revision.clone().or_else(|| {
            recording
                .as_ref()
                .map(|r| r.canary_revision.clone())
                .filter(|l| !l.is_empty())
        }),
        stable_label: args.stable_revision.clone().or_else(|| {
            recording
                .as_ref()
                .map(|r| r.stable_revision.clone())
                .filter(|l| !l.is_empty())
        }),
        from,
        to,
    };
    // Refused before any query: a range of years never sends its first request.
    engine::check_range(&input)?;
    if let Some(recording) = &recording {
        let mut source = RecordedSource::new(recording).map_err(input_error)?;
        return Ok(replay(&input, &mut source).await?);
    }
    let providers = ProviderSource::new(args.prometheus.clone())
        .map_err(|e| input_error(format!("the provider client: {e}")))?;
    let Some(path) = &args.record else {
        let mut source = providers;
        return Ok(replay(&input, &mut source).await?);
    };
    let mut recorder = Recorder::new(providers);
    let timeline = replay(&input, &mut recorder).await?;
    let fresh = input.spec.strategy.canary.baseline == Some(crate::api::BaselineMode::Fresh);
    let vars = crate::analysis::vars::QueryVars {
        canary: timeline.canary_revision.clone(),
        baseline: if fresh {
            crate::core::revision::baseline_selector(&timeline.stable_revision)
        } else {
            timeline.stable_revision.clone()
        },
        stable: timeline.stable_revision.clone(),
        namespace: input.namespace.clone(),
        name: input.name.clone(),
        ..Default::default()
    };
    recording::extend_to(&mut recorder, &input.spec.analyses, &vars, input.to).await;
    let recording = Recording {
        kind: RECORDING_KIND.to_string(),
        canary_revision: timeline.canary_revision.clone(),
        // Only a label the user gave: a simulated stable stays simulated when replayed.
        stable_revision: input.stable_label.clone().unwrap_or_default(),
        from: input.from.to_string(),
        to: input.to.to_string(),
        measurements: recorder.measurements,
    };
    let text = serde_json::to_string_pretty(&recording)
        .map_err(|e| input_error(format!("the recording: {e}")))?;
    std::fs::write(path, format!("{text}\n"))
        .map_err(|e| input_error(format!("{}: {e}", path.display())))?;
    Ok(timeline)
}
