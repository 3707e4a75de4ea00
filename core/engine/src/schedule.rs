//! Cron schedules with time zones for scheduled policies: [`CronExpr`] and [`TimeZone`] are
//! parsed once, when the policy file is read, and written back as the text they were read from.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, TimeZone as _, Utc};
use croner::Cron;
use croner::parser::CronParser;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Parses a five-field cron expression (minute hour day-of-month month day-of-week).
pub fn parse_cron(expression: &str) -> Result<Cron, String> {
    if expression.split_whitespace().count() != 5 {
        return Err(format!(
            "invalid cron expression `{expression}`: expected five fields (minute hour day-of-month month day-of-week), e.g. `0 8 * * MON-FRI`"
        ));
    }
    let cron = CronParser::new()
        .parse(expression)
        .map_err(|e| format!("invalid cron expression `{expression}`: {e}"))?;
    // An expression that names no real date (`0 0 31 2 *`, February 31st) would be searched
    // for, to the end of the cron library's calendar, at every evaluation. The Gregorian
    // calendar repeats every 400 years, so a schedule that fires at all fires within 400 years
    // of any date.
    let reference = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single();
    let fires = reference.is_some_and(|from| {
        cron.find_next_occurrence(&from, true)
            .is_ok_and(|next| next < from + chrono::Days::new(146_097))
    });
    if !fires {
        return Err(format!(
            "cron expression `{expression}` never fires: no date matches it (check the day of the month against the month, e.g. February has no 30th)"
        ));
    }
    Ok(cron)
}

/// Whether an occurrence of `cron` in `tz` started in `(now − duration, now]`.
pub fn is_active(
    cron: &Cron,
    tz: chrono_tz::Tz,
    duration: chrono::TimeDelta,
    now: DateTime<Utc>,
) -> bool {
    let local_now = now.with_timezone(&tz);
    let window_start = local_now - duration;
    match cron.find_next_occurrence(&window_start, false) {
        Ok(next) => next <= local_now,
        Err(_) => false,
    }
}

/// A five-field cron expression (minute hour day-of-month month day-of-week), parsed when the
/// policy file is read. In YAML and in the JSON Schema it is the expression's text.
#[derive(Debug, Clone)]
pub struct CronExpr {
    text: String,
    // Shared: a parsed schedule is a few hundred bytes and policies are cloned with their group.
    cron: Arc<Cron>,
}

impl CronExpr {
    /// Parses `text` (see [`parse_cron`]).
    pub fn parse(text: &str) -> Result<CronExpr, String> {
        Ok(CronExpr {
            text: text.to_owned(),
            cron: Arc::new(parse_cron(text)?),
        })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed schedule.
    pub fn cron(&self) -> &Cron {
        &self.cron
    }

    /// Whether an occurrence in `tz` started in `(now − duration, now]`.
    pub fn is_active(&self, tz: TimeZone, duration: chrono::TimeDelta, now: DateTime<Utc>) -> bool {
        is_active(&self.cron, tz.0, duration, now)
    }
}

impl PartialEq for CronExpr {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for CronExpr {}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for CronExpr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CronExpr::parse(s)
    }
}

impl Serialize for CronExpr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for CronExpr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = serde_saphyr::Spanned::<String>::deserialize(deserializer)?;
        match CronExpr::parse(&text.value) {
            Ok(cron) => Ok(cron),
            Err(message) => {
                // Held back while a policy file loads (so its other problems are reported too);
                // the stand-in never leaves the loader.
                let stand_in = CronExpr {
                    text: text.value,
                    cron: Arc::new(parse_cron("* * * * *").map_err(serde::de::Error::custom)?),
                };
                crate::config::deferred::invalid(text.referenced, message, stand_in)
            }
        }
    }
}

impl schemars::JsonSchema for CronExpr {
    fn schema_name() -> Cow<'static, str> {
        "CronExpr".into()
    }

    fn json_schema(_generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A cron expression, five fields: minute hour day-of-month month day-of-week (e.g. `0 8 * * MON-FRI`).",
            "pattern": "^\\s*\\S+(\\s+\\S+){4}\\s*$"
        })
    }
}

/// An IANA time zone (`Europe/Berlin`, `UTC`), parsed when the policy file is read. In YAML and
/// in the JSON Schema it is the zone's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeZone(pub chrono_tz::Tz);

impl TimeZone {
    /// UTC.
    pub const UTC: TimeZone = TimeZone(chrono_tz::Tz::UTC);

    /// Parses an IANA name.
    pub fn parse(name: &str) -> Result<TimeZone, String> {
        name.parse::<chrono_tz::Tz>().map(TimeZone).map_err(|_| {
            format!("unknown time zone `{name}`; use an IANA name such as `Europe/Berlin` or `UTC`")
        })
    }

    /// The zone's IANA name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl Default for TimeZone {
    fn default() -> Self {
        TimeZone::UTC
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for TimeZone {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TimeZone::parse(s)
    }
}

impl Serialize for TimeZone {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = serde_saphyr::Spanned::<String>::deserialize(deserializer)?;
        match TimeZone::parse(&name.value) {
            Ok(tz) => Ok(tz),
            Err(message) => {
                crate::config::deferred::invalid(name.referenced, message, TimeZone::UTC)
            }
        }
    }
}

impl schemars::JsonSchema for TimeZone {
    fn schema_name() -> Cow<'static, str> {
        "TimeZone".into()
    }

    fn json_schema(_generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "An IANA time zone name, e.g. `Europe/Berlin` or `UTC`."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_that_can_never_fire_is_refused_when_parsed() {
        for never in ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *"] {
            let e = parse_cron(never).unwrap_err();
            assert!(e.contains("never fires"), "{never}: {e}");
        }
        // Rare is not never: the 29th of February comes every four years.
        for rare in ["0 0 29 2 *", "0 8 * * MON-FRI", "*/5 * * * *"] {
            parse_cron(rare).unwrap_or_else(|e| panic!("{rare}: {e}"));
        }
    }

    #[test]
    fn weekday_mornings_in_berlin() {
        let cron = parse_cron("0 8 * * MON-FRI").unwrap();
        let tz: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
        let ten_hours = chrono::TimeDelta::hours(10);
        // Monday 2026-01-05 07:30 UTC is 08:30 in Berlin (CET, UTC+1): active.
        let monday = Utc.with_ymd_and_hms(2026, 1, 5, 7, 30, 0).unwrap();
        assert!(is_active(&cron, tz, ten_hours, monday));
        // 06:30 UTC is 07:30 Berlin: not yet.
        let early = Utc.with_ymd_and_hms(2026, 1, 5, 6, 30, 0).unwrap();
        assert!(!is_active(&cron, tz, ten_hours, early));
        // Saturday: never.
        let saturday = Utc.with_ymd_and_hms(2026, 1, 10, 9, 0, 0).unwrap();
        assert!(!is_active(&cron, tz, ten_hours, saturday));
    }

    #[test]
    fn typed_values_parse_once_and_write_back_as_text() {
        let cron: CronExpr = "0 8 * * MON-FRI".parse().unwrap();
        let tz: TimeZone = "Europe/Berlin".parse().unwrap();
        let monday = Utc.with_ymd_and_hms(2026, 1, 5, 7, 30, 0).unwrap();
        assert!(cron.is_active(tz, chrono::TimeDelta::hours(10), monday));
        assert_eq!(serde_json::to_value(&cron).unwrap(), "0 8 * * MON-FRI");
        assert_eq!(serde_json::to_value(tz).unwrap(), "Europe/Berlin");
        let back: CronExpr = serde_json::from_value("0 8 * * MON-FRI".into()).unwrap();
        assert_eq!(back, cron);
        // Outside a policy file's loader an invalid value is a plain deserialization error.
        let err = serde_json::from_value::<CronExpr>("0 25 * * *".into()).unwrap_err();
        assert!(err.to_string().contains("invalid cron expression"), "{err}");
        let err = serde_json::from_value::<TimeZone>("Mars/Olympus".into()).unwrap_err();
        assert!(err.to_string().contains("unknown time zone"), "{err}");
    }

    #[test]
    fn rejects_malformed_expressions() {
        assert!(parse_cron("0 8 * *").unwrap_err().contains("five fields"));
        assert!(parse_cron("61 8 * * *").is_err());
    }
}
