//! The emitter's fault model: the settings of one simulated version (error ratio, mean latency,
//! request rate) with their ranges, and the seeded simulation that turns them into requests.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::EmitterError;

/// Largest request rate one version may simulate, to keep the emitter cheap.
pub const MAX_RPS: f64 = 10_000.0;
/// Largest configurable mean latency (one minute).
pub const MAX_LATENCY_MS: f64 = 60_000.0;

/// The behaviour of one simulated version.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// Ratio of requests that fail, in [0, 1].
    pub error_ratio: f64,
    /// Mean latency in milliseconds.
    pub latency_ms: f64,
    /// Requests per second.
    pub rps: f64,
}

impl Settings {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), EmitterError> {
        if !(0.0..=1.0).contains(&self.error_ratio) {
            return Err(EmitterError::InvalidSetting(format!(
                "errorRatio must be in [0, 1], got {}",
                self.error_ratio
            )));
        }
        if !(0.0..=MAX_LATENCY_MS).contains(&self.latency_ms) {
            return Err(EmitterError::InvalidSetting(format!(
                "latencyMs must be in [0, {MAX_LATENCY_MS}], got {}",
                self.latency_ms
            )));
        }
        if !(0.0..=MAX_RPS).contains(&self.rps) {
            return Err(EmitterError::InvalidSetting(format!(
                "rps must be in [0, {MAX_RPS}], got {}",
                self.rps
            )));
        }
        Ok(())
    }

    /// These settings with the given changes applied (not validated).
    pub fn with(self, update: &SettingsUpdate) -> Self {
        Self {
            error_ratio: update.error_ratio.unwrap_or(self.error_ratio),
            latency_ms: update.latency_ms.unwrap_or(self.latency_ms),
            rps: update.rps.unwrap_or(self.rps),
        }
    }
}

/// A partial change of [`Settings`], as taken from the query string of `POST /control/{version}`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct SettingsUpdate {
    /// New error ratio.
    #[serde(rename = "errorRatio", alias = "error_ratio")]
    pub error_ratio: Option<f64>,
    /// New mean latency in milliseconds.
    #[serde(rename = "latencyMs", alias = "latency_ms")]
    pub latency_ms: Option<f64>,
    /// New request rate.
    #[serde(rename = "rps")]
    pub rps: Option<f64>,
}

/// Checks that a version name is usable as a label value and a path segment.
pub fn validate_version(name: &str) -> Result<(), EmitterError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(EmitterError::InvalidVersion(name.to_owned()))
    }
}

/// A xorshift64* pseudo-random generator: small, fast, deterministic for a seed.
#[derive(Debug, Clone)]
pub struct XorShift64 {
    state: u64,
}

impl XorShift64 {
    /// A generator for a seed (a zero seed is replaced, since zero is a fixed point).
    pub fn new(seed: u64) -> Self {
        Self {
            state: if seed == 0 {
                0x9E37_79B9_7F4A_7C15
            } else {
                seed
            },
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A uniform sample in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        // The top 53 bits make an exactly representable fraction.
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The seed of one version's generator: the global seed mixed with an FNV-1a hash of the name.
pub fn version_seed(seed: u64, version: &str) -> u64 {
    let hash = version.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    seed ^ hash
}

/// One simulated request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Whether the request failed.
    pub error: bool,
    /// Its latency in seconds.
    pub latency_seconds: f64,
}

/// The simulation state of one version.
#[derive(Debug, Clone)]
pub struct VersionSim {
    /// The version's current settings (changed in place by the emitter's `configure`).
    pub(super) settings: Settings,
    rng: XorShift64,
    /// Fractional requests carried over between steps, so the long-run rate is exact.
    owed: f64,
    /// Requests simulated so far.
    pub(super) requests: u64,
    /// Failed requests simulated so far.
    pub(super) errors: u64,
}

impl VersionSim {
    /// A version with validated settings and its own generator.
    pub fn new(settings: Settings, seed: u64) -> Self {
        Self {
            settings,
            rng: XorShift64::new(seed),
            owed: 0.0,
            requests: 0,
            errors: 0,
        }
    }

    /// The current settings.
    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// Simulates the requests due in `elapsed` at the configured rate.
    pub fn step(&mut self, elapsed: Duration) -> Vec<Sample> {
        // At most one second's worth per step at the maximum rate: a stalled timer cannot
        // produce an unbounded burst.
        self.owed = (self.owed + self.settings.rps * elapsed.as_secs_f64()).min(MAX_RPS);
        let due = self.owed.floor();
        self.owed -= due;
        // `due` is a whole number in [0, MAX_RPS], so the conversion is exact.
        let due = due as usize;
        (0..due).map(|_| self.draw()).collect()
    }

    /// One request (simulated, or a real one the pod server answers), counted in the totals.
    pub fn draw(&mut self) -> Sample {
        let error = self.rng.next_f64() < self.settings.error_ratio;
        let factor = 0.5 + self.rng.next_f64();
        let latency_seconds = self.settings.latency_ms * factor / 1000.0;
        if error {
            self.errors += 1;
        }
        self.requests += 1;
        Sample {
            error,
            latency_seconds,
        }
    }
}

/// Settings from their three values (a shorthand of the emitter's unit tests).
#[cfg(test)]
pub(crate) fn settings(error_ratio: f64, latency_ms: f64, rps: f64) -> Settings {
    Settings {
        error_ratio,
        latency_ms,
        rps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_out_of_range_are_rejected() {
        assert!(settings(0.0, 0.0, 0.0).validate().is_ok());
        assert!(settings(1.0, MAX_LATENCY_MS, MAX_RPS).validate().is_ok());
        for bad in [
            settings(-0.01, 50.0, 10.0),
            settings(1.01, 50.0, 10.0),
            settings(f64::NAN, 50.0, 10.0),
            settings(0.1, -1.0, 10.0),
            settings(0.1, f64::INFINITY, 10.0),
            settings(0.1, 50.0, -1.0),
            settings(0.1, 50.0, MAX_RPS + 1.0),
        ] {
            assert!(
                matches!(bad.validate(), Err(EmitterError::InvalidSetting(_))),
                "{bad:?} should be invalid"
            );
        }
    }

    #[test]
    fn version_names_are_checked() {
        for good in [
            "stable",
            "canary",
            "v1.2.3",
            "my_app-canary",
            &"a".repeat(63),
        ] {
            assert!(validate_version(good).is_ok(), "{good}");
        }
        for bad in ["", "a/b", "with space", "ünï", "x\"y", &"a".repeat(64)] {
            assert!(validate_version(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn xorshift_is_deterministic_and_roughly_uniform() {
        let mut a = XorShift64::new(42);
        let mut b = XorShift64::new(42);
        let xs: Vec<f64> = (0..10_000).map(|_| a.next_f64()).collect();
        let ys: Vec<f64> = (0..10_000).map(|_| b.next_f64()).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
        let mut zero = XorShift64::new(0);
        assert_ne!(zero.next_u64(), 0);
        assert_ne!(version_seed(1, "stable"), version_seed(1, "canary"));
    }

    #[test]
    fn step_follows_the_rate_and_carries_fractions() {
        let mut sim = VersionSim::new(settings(0.0, 100.0, 25.0), 7);
        // 40 steps of 100 ms at 25 rps: 2.5 requests per step, 100 in all.
        let total: usize = (0..40)
            .map(|_| sim.step(Duration::from_millis(100)).len())
            .sum();
        assert_eq!(total, 100);
        let mut idle = VersionSim::new(settings(0.5, 100.0, 0.0), 7);
        assert!(idle.step(Duration::from_secs(10)).is_empty());
    }

    #[test]
    fn step_bounds_a_burst_after_a_stall() {
        let mut sim = VersionSim::new(settings(0.0, 1.0, MAX_RPS), 7);
        let samples = sim.step(Duration::from_secs(3600));
        assert!(samples.len() <= MAX_RPS as usize);
    }

    #[test]
    fn errors_and_latency_follow_the_settings() {
        let mut sim = VersionSim::new(settings(0.2, 120.0, 1000.0), 3);
        let samples = sim.step(Duration::from_secs(10));
        assert_eq!(samples.len(), 10_000);
        let errors = samples.iter().filter(|s| s.error).count() as f64;
        let ratio = errors / samples.len() as f64;
        assert!((ratio - 0.2).abs() < 0.02, "error ratio {ratio}");
        let mean = samples.iter().map(|s| s.latency_seconds).sum::<f64>() / samples.len() as f64;
        assert!((mean - 0.120).abs() < 0.005, "mean latency {mean}");
        assert!(
            samples
                .iter()
                .all(|s| (0.060..=0.180).contains(&s.latency_seconds))
        );
        assert_eq!(sim.requests, 10_000);
        assert_eq!(sim.errors as f64, errors);
    }
}
