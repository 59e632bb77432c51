//! Meta's timestamps: seconds in `changes` deliveries, milliseconds in `messaging` ones, as
//! numbers or as strings depending on the sender. Everything inside igflow is milliseconds.

use serde::{Deserialize, Deserializer};

/// Below this a value is taken as seconds: 10^11 ms is March 1973, 10^11 s is year 5138.
const SECONDS_CUTOFF: i64 = 100_000_000_000;

/// A point in time in Unix milliseconds, read from either unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnixMillis(pub i64);

impl UnixMillis {
    /// Interprets a raw number as seconds or milliseconds by its magnitude.
    pub fn from_either(raw: i64) -> Self {
        // `unsigned_abs`: `abs` of `i64::MIN` overflows (a panic in debug builds).
        if raw.unsigned_abs() < SECONDS_CUTOFF.unsigned_abs() {
            Self(raw.saturating_mul(1000))
        } else {
            Self(raw)
        }
    }
}

impl<'de> Deserialize<'de> for UnixMillis {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Float(f64),
            Text(String),
        }
        let raw = match Raw::deserialize(de)? {
            Raw::Int(n) => n,
            // Truncation is intended: sub-millisecond precision carries no meaning here.
            #[allow(clippy::cast_possible_truncation)]
            Raw::Float(f) => f as i64,
            Raw::Text(s) => s.trim().parse::<i64>().map_err(|_| {
                serde::de::Error::custom(format!("timestamp {s:?} is not an integer"))
            })?,
        };
        Ok(Self::from_either(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_millis_as_numbers_or_strings() {
        for (raw, want) in [
            ("1520622968", 1_520_622_968_000),
            ("1569262486134", 1_569_262_486_134),
            ("\"1520622968\"", 1_520_622_968_000),
            ("\"1569262486134\"", 1_569_262_486_134),
        ] {
            let t: UnixMillis = serde_json::from_str(raw).unwrap();
            assert_eq!(t.0, want, "{raw}");
        }
        assert!(serde_json::from_str::<UnixMillis>("\"<TIME>\"").is_err());
    }

    #[test]
    fn extreme_values_do_not_panic() {
        for (raw, want) in [
            (i64::MIN, i64::MIN),
            (i64::MAX, i64::MAX),
            (-1, -1000),
            (-SECONDS_CUTOFF, -SECONDS_CUTOFF),
        ] {
            assert_eq!(UnixMillis::from_either(raw).0, want, "{raw}");
        }
        let t: UnixMillis = serde_json::from_str("\"-9223372036854775808\"").unwrap();
        assert_eq!(t.0, i64::MIN);
    }
}
