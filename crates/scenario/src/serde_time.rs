//! Durations in scenario files: the unit is in the key's name (`rtt_ms`, `setup_s`,
//! `duration_s`), the value in the struct is a `Duration`.

use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// Whole milliseconds (`rtt_ms = 60`).
pub fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    Ok(Duration::from_millis(u64::deserialize(d)?))
}

/// A list of whole milliseconds (`rtt_sweep_ms = [20, 100]`).
pub fn millis_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
    Ok(Vec::<u64>::deserialize(d)?.into_iter().map(Duration::from_millis).collect())
}

/// Whole seconds (`setup_s = 30`).
pub fn secs<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    Ok(Duration::from_secs(u64::deserialize(d)?))
}

/// A year: more than any plan, hold or workload this tool runs.
const MAX_SECS: f64 = 86_400.0 * 365.0;

/// Seconds with a fraction; negative, infinite or absurd values are refused here rather than
/// panicking in `Duration`.
fn from_f64<E: serde::de::Error>(v: f64) -> Result<Duration, E> {
    if v.is_finite() && (0.0..=MAX_SECS).contains(&v) {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(E::custom(format!("{v}: expected seconds, zero or more")))
    }
}

/// Seconds with a fraction (`hold_s = 1.5`).
pub fn secs_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    from_f64(f64::deserialize(d)?)
}

/// Optional seconds with a fraction (`duration_s = 2.5`).
pub fn secs_f64_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    Option::<f64>::deserialize(d)?.map(from_f64).transpose()
}
