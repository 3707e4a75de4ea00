//! Human-readable durations in configuration: `"90s"`, `"5m"`, `"1h30m"`, `"7d"`, `"250ms"`.
//!
//! [`HumanDuration`] (de)serialises as such a string and documents itself in the JSON Schema as
//! a string with a pattern, so editors can check it.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest duration Hoist accepts anywhere, 36,500 days (100 years): long enough for any
/// cooldown, window, schedule or run, short enough that every date computed from it fits.
pub const MAX_DURATION: Duration = Duration::from_secs(36_500 * 86_400);

/// Parses `"1h30m"`-style durations: one or more `<integer><unit>` parts with units `ms`, `s`,
/// `m`, `h`, `d`, `w`. A bare `0` is zero. Durations longer than [`MAX_DURATION`] are refused.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err("empty duration; write e.g. \"90s\", \"5m\", \"1h30m\"".to_owned());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "invalid duration \"{text}\": expected a number at \"{rest}\"; write e.g. \"90s\", \"5m\", \"1h30m\""
            ));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration \"{text}\": number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.saturating_mul(60)),
            "h" => Duration::from_secs(number.saturating_mul(3_600)),
            "d" => Duration::from_secs(number.saturating_mul(86_400)),
            "w" => Duration::from_secs(number.saturating_mul(604_800)),
            "" => {
                return Err(format!(
                    "invalid duration \"{text}\": missing unit after {number} (use ms, s, m, h, d or w)"
                ));
            }
            other => {
                return Err(format!(
                    "invalid duration \"{text}\": unknown unit \"{other}\" (use ms, s, m, h, d or w)"
                ));
            }
        };
        total = total.saturating_add(part);
        if total > MAX_DURATION {
            return Err(format!(
                "duration \"{text}\" is longer than 36500d (100 years), the longest Hoist accepts"
            ));
        }
    }
    Ok(total)
}

/// Formats a duration in the shortest `1h30m` form [`parse_duration`] reads back.
pub fn format_duration(duration: Duration) -> String {
    let mut out = String::new();
    let _ = write_duration(&mut out, duration);
    out
}

/// Writes `duration` as [`format_duration`] does, without allocating (durations are written
/// into decision reasons at every evaluation).
fn write_duration(out: &mut impl fmt::Write, duration: Duration) -> fmt::Result {
    if duration.is_zero() {
        return out.write_str("0s");
    }
    let mut secs = duration.as_secs();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            write!(out, "{}{unit}", secs / size)?;
            secs %= size;
        }
    }
    let millis = duration.subsec_millis();
    if millis > 0 {
        write!(out, "{millis}ms")?;
    }
    Ok(())
}

/// A [`Duration`] written as a human string in configuration files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        HumanDuration(Duration::from_secs(secs))
    }

    /// The duration.
    pub const fn get(self) -> Duration {
        self.0
    }

    /// As a chrono delta, for arithmetic with timestamps.
    pub fn as_delta(self) -> chrono::TimeDelta {
        chrono::TimeDelta::from_std(self.0).unwrap_or(chrono::TimeDelta::MAX)
    }
}

impl From<Duration> for HumanDuration {
    fn from(value: Duration) -> Self {
        HumanDuration(value)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_duration(f, self.0)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<str>::deserialize(deserializer)?;
        parse_duration(&text)
            .map(HumanDuration)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "schemars")]
impl schemars::JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^(0|([0-9]+(ms|s|m|h|d|w))+)$",
            "description": "A duration such as \"90s\", \"5m\", \"1h30m\", \"7d\".",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_beyond_a_century_are_refused_with_the_limit() {
        assert_eq!(parse_duration("36500d").unwrap(), MAX_DURATION);
        let e = parse_duration("9999999999999d").unwrap_err();
        assert!(e.contains("longer than 36500d (100 years)"), "{e}");
        assert!(parse_duration("36500d1s").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
    }

    #[test]
    fn parses_compound_durations() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5_400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_bad_durations_with_a_hint() {
        assert!(parse_duration("5").unwrap_err().contains("missing unit"));
        assert!(parse_duration("5x").unwrap_err().contains("unknown unit"));
        assert!(
            parse_duration("m5")
                .unwrap_err()
                .contains("expected a number")
        );
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn format_round_trips() {
        for text in ["90s", "1h30m", "7d", "250ms", "1d2h3m4s"] {
            let d = parse_duration(text).unwrap();
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
    }
}
