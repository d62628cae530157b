//! Canary analysis: the pure judge (thresholds, relative comparison, Mann–Whitney U, scoring)
//! and the metric providers (Prometheus, web) that feed it.
