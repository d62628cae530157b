//! The outcome of an analysis as the rollout decision reads it ([`AnalysisGate`]): the analysis
//! wing gives it (`analysis::plan::gates`, from the runs in status), the core decides on it
//! (`core::rollout`), and neither imports the other, so it lives on the floor both import.

/// The state of an analysis the rollout depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnalysisGate {
    /// Still measuring, and its latest measurement passed.
    Running,
    /// Still measuring, without passing evidence yet: no measurement, a provider error, a
    /// metric without a value, or a score below the pass threshold. Holds like `Inconclusive`.
    Pending(String),
    /// Passed.
    Passed,
    /// Failed: revert.
    Failed(String),
    /// Could not decide (no data, provider unreachable): wait, and say so.
    Inconclusive(String),
}
