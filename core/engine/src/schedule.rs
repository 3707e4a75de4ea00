//! Cron schedules with time zones for scheduled policies.

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::CronParser;

/// Parses a five-field cron expression (minute hour day-of-month month day-of-week).
pub fn parse_cron(expression: &str) -> Result<Cron, String> {
    if expression.split_whitespace().count() != 5 {
        return Err(format!(
            "invalid cron expression `{expression}`: expected five fields (minute hour day-of-month month day-of-week), e.g. `0 8 * * MON-FRI`"
        ));
    }
    CronParser::new()
        .parse(expression)
        .map_err(|e| format!("invalid cron expression `{expression}`: {e}"))
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

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
    fn rejects_malformed_expressions() {
        assert!(parse_cron("0 8 * *").unwrap_err().contains("five fields"));
        assert!(parse_cron("61 8 * * *").is_err());
    }
}
