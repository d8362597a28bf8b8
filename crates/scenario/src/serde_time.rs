//! Durations in scenario files: the unit is in the key's name (`rtt_ms`, `setup_s`,
//! `duration_s`), the value in the struct is a `Duration`.

use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// A whole number of `unit`, with the words a user needs when the value is anything else
/// (`rtt_ms = "100ms"` gets "takes a number of milliseconds, e.g. 100").
struct Whole {
    unit: &'static str,
    example: u64,
}

impl Whole {
    fn words(&self) -> String {
        format!("a number of {} (the unit is in the key's name), e.g. {}", self.unit, self.example)
    }
}

impl serde::de::Visitor<'_> for Whole {
    type Value = u64;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.words())
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("{v}: takes {}, zero or more", self.words())))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<u64, E> {
        Err(E::custom(format!("{v}: takes whole {} here, e.g. {}", self.unit, self.example)))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<u64, E> {
        Err(E::custom(format!("{v:?} is a string: this key takes {}, without quotes", self.words())))
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<u64, E> {
        Err(E::custom(format!("{v}: this key takes {}", self.words())))
    }
}

const MS: Whole = Whole { unit: "milliseconds", example: 100 };
const S: Whole = Whole { unit: "seconds", example: 30 };

/// Whole milliseconds (`rtt_ms = 60`).
pub fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    Ok(Duration::from_millis(d.deserialize_any(MS)?))
}

/// A list of whole milliseconds (`rtt_sweep_ms = [20, 100]`).
pub fn millis_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
    struct List;
    impl<'de> serde::de::Visitor<'de> for List {
        type Value = Vec<Duration>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "a list of {}", MS.words())
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            struct One(u64);
            impl<'de> Deserialize<'de> for One {
                fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                    d.deserialize_any(MS).map(One)
                }
            }
            let mut out = Vec::new();
            while let Some(One(ms)) = seq.next_element()? {
                out.push(Duration::from_millis(ms));
            }
            Ok(out)
        }
    }
    d.deserialize_seq(List)
}

/// Whole seconds (`setup_s = 30`).
pub fn secs<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    Ok(Duration::from_secs(d.deserialize_any(S)?))
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
    from_f64(f64::deserialize(d).map_err(|_| {
        serde::de::Error::custom("this key takes a number of seconds (the unit is in the key's name), e.g. 1.5")
    })?)
}

/// Optional seconds with a fraction (`duration_s = 2.5`).
pub fn secs_f64_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    Option::<f64>::deserialize(d)?.map(from_f64).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct T {
        #[serde(default, rename = "rtt_ms", deserialize_with = "millis")]
        rtt: Duration,
        #[serde(default, rename = "sweep_ms", deserialize_with = "millis_list")]
        sweep: Vec<Duration>,
        #[serde(default, rename = "setup_s", deserialize_with = "secs")]
        setup: Duration,
    }

    fn err(text: &str) -> String {
        toml::from_str::<T>(text).unwrap_err().message().to_string()
    }

    #[test]
    fn wrong_types_are_explained_in_words() {
        assert!(err("rtt_ms = \"100ms\"").contains("\"100ms\" is a string: this key takes a number of milliseconds"));
        assert!(err("rtt_ms = 1.5").contains("whole milliseconds"));
        assert!(err("rtt_ms = -4").contains("zero or more"));
        assert!(err("setup_s = \"30s\"").contains("a number of seconds (the unit is in the key's name), e.g. 30"));
        assert!(err("sweep_ms = [20, \"80\"]").contains("number of milliseconds"));
    }

    #[test]
    fn numbers_are_read() {
        let t: T = toml::from_str("rtt_ms = 60\nsweep_ms = [20, 100]\nsetup_s = 5").unwrap();
        assert_eq!(t.rtt, Duration::from_millis(60));
        assert_eq!(t.sweep, [Duration::from_millis(20), Duration::from_millis(100)]);
        assert_eq!(t.setup, Duration::from_secs(5));
    }
}
