//! Logging set-up (JSON through tracing) and the operator's own Prometheus metrics.
