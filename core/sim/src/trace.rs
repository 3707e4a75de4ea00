//! Demand traces: loading `timestamp,value` CSV files (plain or gzip) onto a regular time grid.
//!
//! A trace is a series of non-negative measurements on a grid `start + i * step`. The file has
//! the header `timestamp,value`, timestamps (RFC 3339, or whole Unix seconds) in increasing
//! order and one row per step; a missing step is simply an absent row, and it stays a gap
//! ([`None`]) here, never a zero: "no data" is not "no demand". The step is the most common
//! difference between consecutive timestamps, and every timestamp must sit on the grid it
//! defines.
//!
//! ```
//! use hoist_sim::trace::parse_trace;
//!
//! let trace = parse_trace(
//!     "demo",
//!     "timestamp,value\n\
//!      2024-01-01T00:00:00Z,10\n\
//!      2024-01-01T00:01:00Z,12\n\
//!      2024-01-01T00:03:00Z,8\n",
//! )?;
//! assert_eq!(trace.step, chrono::TimeDelta::minutes(1));
//! assert_eq!(trace.values, vec![Some(10.0), Some(12.0), None, Some(8.0)]);
//! assert_eq!(trace.max(), Some(12.0));
//! # Ok::<(), hoist_sim::trace::TraceError>(())
//! ```

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};

/// The most grid slots a trace may span (gaps included): a guard against a typo in a timestamp
/// turning a small file into gigabytes of gaps.
pub const MAX_TRACE_STEPS: usize = 20_000_000;

/// The most bytes of text a trace file may hold (after gzip inflation): 512 MiB, room for
/// [`MAX_TRACE_STEPS`] rows.
pub const MAX_TRACE_BYTES: u64 = 512 << 20;

/// The latest time a trace may give in whole Unix seconds (the year 5000): a larger number is
/// most likely milliseconds.
pub const MAX_UNIX_SECONDS: i64 = 95_617_584_000;

/// The longest line of a trace file, bytes; a row is about 40.
pub const MAX_TRACE_LINE_BYTES: usize = 4096;

/// The header every trace file starts with.
pub const TRACE_HEADER: &str = "timestamp,value";

/// A demand trace on a regular grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// The trace's name (the file name without `.csv` / `.csv.gz`, or what the caller gave).
    pub name: String,
    /// The grid step.
    pub step: TimeDelta,
    /// The time of the first value.
    pub start: DateTime<Utc>,
    /// One value per grid step, `values[i]` at `start + i * step`; `None` is a gap (no data).
    pub values: Vec<Option<f64>>,
}

impl Trace {
    /// The time of grid step `i` (`start + i * step`).
    pub fn at(&self, i: usize) -> DateTime<Utc> {
        let step_ns = self.step.num_nanoseconds().unwrap_or(i64::MAX);
        self.start + TimeDelta::nanoseconds(step_ns.saturating_mul(i as i64))
    }

    /// Grid steps in the trace, gaps included.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the trace has no grid steps.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The end of the trace: the time just after its last step (`start + len * step`).
    pub fn end(&self) -> DateTime<Utc> {
        self.at(self.len())
    }

    /// The index of the grid step whose interval `[at(i), at(i + 1))` holds `t`, if inside the
    /// trace.
    pub fn index_of(&self, t: DateTime<Utc>) -> Option<usize> {
        let step_ns = self.step.num_nanoseconds()?;
        let offset_ns = (t - self.start).num_nanoseconds()?;
        if offset_ns < 0 || step_ns <= 0 {
            return None;
        }
        let i = (offset_ns / step_ns) as usize;
        (i < self.len()).then_some(i)
    }

    /// The value at `t` (the step holding `t`), `None` outside the trace or in a gap.
    pub fn value_at(&self, t: DateTime<Utc>) -> Option<f64> {
        self.index_of(t).and_then(|i| self.values[i])
    }

    /// The part of the trace with grid times in `[from, until)`; an open bound keeps that end.
    pub fn window(&self, from: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> Trace {
        let step_ns = self.step.num_nanoseconds().unwrap_or(1).max(1);
        // First index with at(i) >= from.
        let first = match from {
            None => 0,
            Some(from) => {
                let off = (from - self.start)
                    .num_nanoseconds()
                    .unwrap_or(if from > self.start {
                        i64::MAX
                    } else {
                        i64::MIN
                    });
                if off <= 0 {
                    0
                } else {
                    let i = off / step_ns + i64::from(off % step_ns != 0);
                    (i as u64).min(self.len() as u64) as usize
                }
            }
        };
        // First index with at(i) >= until (exclusive end).
        let last = match until {
            None => self.len(),
            Some(until) => {
                let off = (until - self.start)
                    .num_nanoseconds()
                    .unwrap_or(if until > self.start {
                        i64::MAX
                    } else {
                        i64::MIN
                    });
                if off <= 0 {
                    0
                } else {
                    let i = off / step_ns + i64::from(off % step_ns != 0);
                    (i as u64).min(self.len() as u64) as usize
                }
            }
        };
        let last = last.max(first);
        Trace {
            name: self.name.clone(),
            step: self.step,
            start: self.at(first),
            values: self.values[first..last].to_vec(),
        }
    }

    /// The largest value, `None` when there is no data.
    pub fn max(&self) -> Option<f64> {
        self.values.iter().flatten().copied().reduce(f64::max)
    }

    /// The mean of the values present (gaps are skipped), `None` when there is no data.
    pub fn mean(&self) -> Option<f64> {
        let (sum, n) = self
            .values
            .iter()
            .flatten()
            .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
        (n > 0).then(|| sum / n as f64)
    }

    /// Grid steps that are gaps.
    pub fn gaps(&self) -> usize {
        self.values.iter().filter(|v| v.is_none()).count()
    }
}

/// What is wrong with a trace file. Every variant names the file (or the name given to
/// [`parse_trace`]) and, where it applies, the 1-based line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// The file could not be read or decompressed.
    #[error("{file}: cannot read trace: {source}")]
    Io {
        /// The file.
        file: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is too large, has a line too long, or is not UTF-8 text.
    #[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Read {
        /// The file.
        file: String,
        /// The line, when the problem is on one.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// The file has no header or no rows.
    #[error("{file}: empty trace: {what}")]
    Empty {
        /// The file.
        file: String,
        /// What is missing.
        what: &'static str,
    },
    /// The first line is not `timestamp,value`.
    #[error("{file}:{line}: wrong header {found:?}, expected \"timestamp,value\"")]
    Header {
        /// The file.
        file: String,
        /// The line.
        line: usize,
        /// The header found.
        found: String,
    },
    /// A row does not have exactly two fields.
    #[error("{file}:{line}: expected 2 fields `timestamp,value`, found {found}")]
    Fields {
        /// The file.
        file: String,
        /// The line.
        line: usize,
        /// Fields found.
        found: usize,
    },
    /// A timestamp is neither RFC 3339 nor whole Unix seconds.
    #[error(
        "{file}:{line}: bad timestamp {text:?}: {reason} (expected RFC 3339, e.g. 2024-01-01T00:00:00Z, or whole Unix seconds)"
    )]
    Timestamp {
        /// The file.
        file: String,
        /// The line.
        line: usize,
        /// The text found.
        text: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A value is not a number.
    #[error("{file}:{line}: bad number {text:?} in column `value`")]
    Number {
        /// The file.
        file: String,
        /// The line.
        line: usize,
        /// The text found.
        text: String,
    },
    /// A value is negative, infinite, NaN or larger than [`hoist_api::input::MAX_AMOUNT`].
    #[error(
        "{file}:{line}: value {} is {what}; demand must be a finite number in [0, 1e15]",
        hoist_api::input::number(*value)
    )]
    Value {
        /// The file.
        file: String,
        /// The line.
        line: usize,
        /// The value.
        value: f64,
        /// `negative`, `not finite` or too large.
        what: &'static str,
    },
    /// A timestamp is not after the one on the previous row.
    #[error(
        "{file}:{line}: timestamp {at} is not after the previous row's {previous}; rows must be in increasing time order"
    )]
    NotIncreasing {
        /// The file.
        file: String,
        /// The line.
        line: usize,
        /// This row's time.
        at: DateTime<Utc>,
        /// The previous row's time.
        previous: DateTime<Utc>,
    },
    /// A timestamp is not on the grid `start + i * step`.
    #[error(
        "{file}:{line}: timestamp {at} is off the grid of step {step_seconds} s starting at {start}"
    )]
    OffGrid {
        /// The file.
        file: String,
        /// The line.
        line: usize,
        /// This row's time.
        at: DateTime<Utc>,
        /// The trace's step, seconds.
        step_seconds: f64,
        /// The trace's start.
        start: DateTime<Utc>,
    },
    /// The trace has fewer than two rows, so its step is unknown.
    #[error("{file}: a trace needs at least two rows to know its step, found {rows}")]
    TooShort {
        /// The file.
        file: String,
        /// Rows found.
        rows: usize,
    },
    /// The trace spans more than [`MAX_TRACE_STEPS`] grid steps.
    #[error(
        "{file}:{line}: timestamp {at} makes the trace span {steps} steps of {step_seconds} s; a trace spans at most {MAX_TRACE_STEPS} steps and 292 years"
    )]
    TooLong {
        /// The file.
        file: String,
        /// The line.
        line: usize,
        /// This row's time.
        at: DateTime<Utc>,
        /// Steps the trace would span.
        steps: u64,
        /// The trace's step, seconds.
        step_seconds: f64,
    },
}

impl TraceError {
    /// The file (or name) the error is about.
    pub fn file(&self) -> &str {
        match self {
            TraceError::Io { file, .. }
            | TraceError::Read { file, .. }
            | TraceError::Empty { file, .. }
            | TraceError::Header { file, .. }
            | TraceError::Fields { file, .. }
            | TraceError::Timestamp { file, .. }
            | TraceError::Number { file, .. }
            | TraceError::Value { file, .. }
            | TraceError::NotIncreasing { file, .. }
            | TraceError::OffGrid { file, .. }
            | TraceError::TooShort { file, .. }
            | TraceError::TooLong { file, .. } => file,
        }
    }

    /// The 1-based line, when the error is about one.
    pub fn line(&self) -> Option<usize> {
        match self {
            TraceError::Header { line, .. }
            | TraceError::Fields { line, .. }
            | TraceError::Timestamp { line, .. }
            | TraceError::Number { line, .. }
            | TraceError::Value { line, .. }
            | TraceError::NotIncreasing { line, .. }
            | TraceError::OffGrid { line, .. }
            | TraceError::TooLong { line, .. } => Some(*line),
            TraceError::Read { line, .. } => *line,
            TraceError::Io { .. } | TraceError::Empty { .. } | TraceError::TooShort { .. } => None,
        }
    }
}

/// Loads a trace from a `.csv` or `.csv.gz` file (gzip is recognised by the `.gz` suffix or the
/// gzip magic bytes). The trace is named after the file without its extensions.
pub fn load_trace(path: &Path) -> Result<Trace, TraceError> {
    let file = path.display().to_string();
    let io = |source| TraceError::Io {
        file: file.clone(),
        source,
    };
    let limits = hoist_api::input::ReadLimits {
        max_bytes: MAX_TRACE_BYTES,
        max_line_bytes: MAX_TRACE_LINE_BYTES,
        gzip: true,
    };
    let text = hoist_api::input::read_file(path, limits).map_err(|e| match e {
        hoist_api::input::ReadError::Io { source, .. } => io(source),
        e => TraceError::Read {
            file: file.clone(),
            line: e.line(),
            message: e.message(),
        },
    })?;
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.clone());
    let name = base
        .strip_suffix(".gz")
        .unwrap_or(&base)
        .strip_suffix(".csv")
        .unwrap_or(base.strip_suffix(".gz").unwrap_or(&base))
        .to_owned();
    parse(name, &file, &text)
}

/// Parses trace text (`timestamp,value` CSV); `name` names the trace and the errors.
pub fn parse_trace(name: &str, text: &str) -> Result<Trace, TraceError> {
    parse(name.to_owned(), name, text)
}

fn parse(name: String, file: &str, text: &str) -> Result<Trace, TraceError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    // The header: the first non-blank line.
    let (header_line, header) = loop {
        match lines.next() {
            None => {
                return Err(TraceError::Empty {
                    file: file.to_owned(),
                    what: "no header",
                });
            }
            Some((_, l)) if l.trim().is_empty() => continue,
            Some((n, l)) => break (n, l.trim()),
        }
    };
    let header_ok = {
        let mut f = header.split(',').map(str::trim);
        f.next() == Some("timestamp") && f.next() == Some("value") && f.next().is_none()
    };
    if !header_ok {
        return Err(TraceError::Header {
            file: file.to_owned(),
            line: header_line,
            found: header.to_owned(),
        });
    }

    // Rows as (line, time in ns since the first row, value).
    let mut rows: Vec<(usize, i64, f64)> = Vec::with_capacity(text.len() / 24);
    let mut first: Option<DateTime<Utc>> = None;
    let mut previous: Option<DateTime<Utc>> = None;
    for (line, raw) in lines {
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let Some((ts, val)) = raw.split_once(',') else {
            return Err(TraceError::Fields {
                file: file.to_owned(),
                line,
                found: 1,
            });
        };
        if val.contains(',') {
            return Err(TraceError::Fields {
                file: file.to_owned(),
                line,
                found: 2 + val.matches(',').count(),
            });
        }
        let (ts, val) = (ts.trim(), val.trim());
        let unix = parse_unix_seconds(ts).map(|t| {
            t.map_err(|reason| TraceError::Timestamp {
                file: file.to_owned(),
                line,
                text: ts.to_owned(),
                reason,
            })
        });
        let at = match unix.transpose()?.or_else(|| parse_plain_utc(ts)) {
            Some(at) => at,
            None => DateTime::parse_from_rfc3339(ts)
                .map_err(|e| TraceError::Timestamp {
                    file: file.to_owned(),
                    line,
                    text: ts.to_owned(),
                    reason: e.to_string(),
                })?
                .with_timezone(&Utc),
        };
        // chrono reads a leap second (`00:00:60`) as the second before the next minute, at the
        // same offset; a trace is on a grid of whole time, so it is refused.
        if at.timestamp_subsec_nanos() >= 1_000_000_000 {
            return Err(TraceError::Timestamp {
                file: file.to_owned(),
                line,
                text: ts.to_owned(),
                reason: "a leap second (second 60) is not on any grid; write the minute after"
                    .to_owned(),
            });
        }
        let value: f64 = val.parse().map_err(|_| TraceError::Number {
            file: file.to_owned(),
            line,
            text: val.to_owned(),
        })?;
        if !value.is_finite() {
            return Err(TraceError::Value {
                file: file.to_owned(),
                line,
                value,
                what: "not finite",
            });
        }
        if value < 0.0 {
            return Err(TraceError::Value {
                file: file.to_owned(),
                line,
                value,
                what: "negative",
            });
        }
        if value > hoist_api::input::MAX_AMOUNT {
            return Err(TraceError::Value {
                file: file.to_owned(),
                line,
                value,
                what: "above the largest amount Hoist computes with (1e15)",
            });
        }
        if let Some(previous) = previous
            && at <= previous
        {
            return Err(TraceError::NotIncreasing {
                file: file.to_owned(),
                line,
                at,
                previous,
            });
        }
        previous = Some(at);
        let start = *first.get_or_insert(at);
        let offset_ns = (at - start).num_nanoseconds().ok_or(TraceError::TooLong {
            file: file.to_owned(),
            line,
            at,
            steps: u64::MAX,
            step_seconds: f64::NAN,
        })?;
        rows.push((line, offset_ns, value));
    }
    let Some(start) = first else {
        return Err(TraceError::Empty {
            file: file.to_owned(),
            what: "no rows after the header",
        });
    };
    if rows.len() < 2 {
        return Err(TraceError::TooShort {
            file: file.to_owned(),
            rows: rows.len(),
        });
    }

    // The step: the most common difference between consecutive rows (the smallest on a tie).
    let mut counts: HashMap<i64, usize> = HashMap::new();
    for w in rows.windows(2) {
        *counts.entry(w[1].1 - w[0].1).or_default() += 1;
    }
    let step_ns = counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|(d, _)| d)
        .expect("at least one difference");
    let step = TimeDelta::nanoseconds(step_ns);
    let step_seconds = step_ns as f64 / 1e9;

    let (last_line, last_ns, _) = rows[rows.len() - 1];
    let steps = (last_ns / step_ns) as u64 + 1;
    // The end of the trace (`start + steps * step`) must be a time that can be computed.
    let end_fits = step_ns
        .checked_mul(steps as i64)
        .and_then(|span| start.checked_add_signed(TimeDelta::nanoseconds(span)))
        .is_some();
    if steps > MAX_TRACE_STEPS as u64 || !end_fits {
        return Err(TraceError::TooLong {
            file: file.to_owned(),
            line: last_line,
            at: start + TimeDelta::nanoseconds(last_ns),
            steps,
            step_seconds,
        });
    }
    let mut values = vec![None; steps as usize];
    for &(line, offset_ns, value) in &rows {
        if offset_ns % step_ns != 0 {
            return Err(TraceError::OffGrid {
                file: file.to_owned(),
                line,
                at: start + TimeDelta::nanoseconds(offset_ns),
                step_seconds,
                start,
            });
        }
        values[(offset_ns / step_ns) as usize] = Some(value);
    }
    Ok(Trace {
        name,
        step,
        start,
        values,
    })
}

/// `text` read as whole Unix seconds, when it is all digits (`None` otherwise): an error past
/// [`MAX_UNIX_SECONDS`], which is most likely milliseconds. Shared with the per-VM panels.
pub fn parse_unix_seconds(text: &str) -> Option<Result<DateTime<Utc>, String>> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())).then(|| {
        text.parse::<i64>()
            .ok()
            .filter(|t| *t <= MAX_UNIX_SECONDS)
            .and_then(|t| DateTime::from_timestamp(t, 0))
            .ok_or_else(|| {
                "past the year 5000 as Unix seconds; if it is in milliseconds, divide it by 1000"
                    .to_owned()
            })
    })
}

/// The fast path for the common `YYYY-MM-DDTHH:MM:SSZ` form; anything else (offsets, fractions,
/// invalid text) returns `None` and goes through chrono's full RFC 3339 parser.
fn parse_plain_utc(ts: &str) -> Option<DateTime<Utc>> {
    let b = ts.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
        || !matches!(b[19], b'Z' | b'z')
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let date = chrono::NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
    let time = chrono::NaiveTime::from_hms_opt(num(11..13)?, num(14..16)?, num(17..19)?)?;
    Some(date.and_time(time).and_utc())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    const GAPPY: &str = "timestamp,value\n\
        2024-01-01T00:00:00Z,1\n\
        2024-01-01T00:05:00Z,2.5\n\
        2024-01-01T00:10:00Z,0\n\
        2024-01-01T00:25:00Z,4\n\
        2024-01-01T00:30:00Z,3\n";

    #[test]
    fn parses_a_trace_with_gaps_as_none_not_zero() {
        let tr = parse_trace("gappy", GAPPY).unwrap();
        assert_eq!(tr.name, "gappy");
        assert_eq!(tr.step, TimeDelta::minutes(5));
        assert_eq!(tr.start, t("2024-01-01T00:00:00Z"));
        assert_eq!(
            tr.values,
            vec![
                Some(1.0),
                Some(2.5),
                Some(0.0),
                None,
                None,
                Some(4.0),
                Some(3.0)
            ]
        );
        assert_eq!(tr.len(), 7);
        assert_eq!(tr.gaps(), 2);
        assert_eq!(tr.at(5), t("2024-01-01T00:25:00Z"));
        assert_eq!(tr.end(), t("2024-01-01T00:35:00Z"));
        assert_eq!(tr.max(), Some(4.0));
        assert_eq!(tr.mean(), Some(10.5 / 5.0));
        assert_eq!(tr.value_at(t("2024-01-01T00:07:00Z")), Some(2.5));
        assert_eq!(tr.value_at(t("2024-01-01T00:16:00Z")), None);
        assert_eq!(tr.value_at(t("2023-12-31T23:59:00Z")), None);
        assert_eq!(tr.value_at(t("2024-01-01T00:35:00Z")), None);
    }

    #[test]
    fn fast_timestamp_path_agrees_with_chrono() {
        for ts in [
            "2024-02-29T23:59:59Z",
            "1970-01-01T00:00:00Z",
            "1995-07-13T12:34:56z",
        ] {
            assert_eq!(
                parse_plain_utc(ts),
                Some(
                    DateTime::parse_from_rfc3339(ts)
                        .unwrap()
                        .with_timezone(&Utc)
                )
            );
        }
        // Not the plain form, or invalid: left to chrono, which reports the error.
        for ts in [
            "2023-02-29T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00.5Z",
            "2024-01-01T00:00:00+01:00",
            "2024-01-0xT00:00:00Z",
        ] {
            assert_eq!(parse_plain_utc(ts), None, "{ts}");
        }
    }

    #[test]
    fn step_is_the_most_common_difference() {
        // Differences: 60, 60, 120 (a gap), 60 -> step 60 s.
        let text = "timestamp,value\n\
            2024-01-01T00:00:00Z,1\n2024-01-01T00:01:00Z,1\n2024-01-01T00:02:00Z,1\n\
            2024-01-01T00:04:00Z,1\n2024-01-01T00:05:00Z,1\n";
        let tr = parse_trace("x", text).unwrap();
        assert_eq!(tr.step, TimeDelta::minutes(1));
        assert_eq!(tr.values[3], None);
    }

    #[test]
    fn accepts_offsets_crlf_bom_and_blank_lines() {
        let text = "\u{feff}timestamp,value\r\n2024-01-01T01:00:00+01:00,1\r\n\r\n2024-01-01T00:01:00Z, 2 \r\n";
        let tr = parse_trace("x", text).unwrap();
        assert_eq!(tr.start, t("2024-01-01T00:00:00Z"));
        assert_eq!(tr.values, vec![Some(1.0), Some(2.0)]);
    }

    #[test]
    fn window_cuts_on_the_grid() {
        let tr = parse_trace("gappy", GAPPY).unwrap();
        let w = tr.window(
            Some(t("2024-01-01T00:04:00Z")),
            Some(t("2024-01-01T00:25:00Z")),
        );
        assert_eq!(w.start, t("2024-01-01T00:05:00Z"));
        assert_eq!(w.values, vec![Some(2.5), Some(0.0), None, None]);
        assert_eq!(tr.window(None, None), tr);
        let tail = tr.window(Some(t("2024-01-01T00:25:00Z")), None);
        assert_eq!(tail.values, vec![Some(4.0), Some(3.0)]);
        let none = tr.window(Some(t("2030-01-01T00:00:00Z")), None);
        assert!(none.is_empty());
        assert_eq!(none.max(), None);
        assert_eq!(none.mean(), None);
        let before = tr.window(None, Some(t("2020-01-01T00:00:00Z")));
        assert!(before.is_empty());
    }

    #[test]
    fn loads_plain_and_gzip_files() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("demo.csv");
        std::fs::write(&plain, GAPPY).unwrap();
        let gz = dir.path().join("demo.csv.gz");
        let mut enc =
            flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), Default::default());
        enc.write_all(GAPPY.as_bytes()).unwrap();
        enc.finish().unwrap();
        let a = load_trace(&plain).unwrap();
        let b = load_trace(&gz).unwrap();
        assert_eq!(a.name, "demo");
        assert_eq!(a, b);
        assert_eq!(a, parse_trace("demo", GAPPY).unwrap());
    }

    #[test]
    fn unix_seconds_read_as_their_time() {
        let unix = parse_trace(
            "demo",
            "timestamp,value\n1704067200,1\n1704067500,2.5\n1704067800,0\n\
             1704068700,4\n1704069000,3\n",
        )
        .unwrap();
        assert_eq!(unix, parse_trace("demo", GAPPY).unwrap());
    }

    #[test]
    fn missing_file_is_an_io_error_naming_it() {
        let e = load_trace(Path::new("/nonexistent/x.csv")).unwrap_err();
        assert!(matches!(e, TraceError::Io { .. }));
        assert!(e.to_string().contains("/nonexistent/x.csv"), "{e}");
    }

    fn err(text: &str) -> TraceError {
        parse_trace("f.csv", text).unwrap_err()
    }

    #[test]
    fn every_error_names_the_file_and_line() {
        let h = "timestamp,value\n";
        let ok0 = "2024-01-01T00:00:00Z,1\n";
        let cases: Vec<(String, usize, &str)> = vec![
            (format!("{h}{ok0}yesterday,1\n"), 3, "bad timestamp"),
            (format!("{h}{ok0}1704067260000,1\n"), 3, "divide it by 1000"),
            (
                format!("{h}{ok0}2024-01-01T00:01:00Z,abc\n"),
                3,
                "bad number",
            ),
            (format!("{h}{ok0}2024-01-01T00:01:00Z,-1\n"), 3, "negative"),
            (
                format!("{h}{ok0}2024-01-01T00:01:00Z,inf\n"),
                3,
                "not finite",
            ),
            (
                format!("{h}{ok0}2024-01-01T00:01:00Z,NaN\n"),
                3,
                "not finite",
            ),
            (format!("{h}{ok0}2024-01-01T00:00:00Z,1\n"), 3, "not after"),
            (
                format!("{h}{ok0}2024-01-01T00:01:00Z,1\n2023-01-01T00:00:00Z,1\n"),
                4,
                "not after",
            ),
            (
                format!(
                    "{h}{ok0}2024-01-01T00:01:00Z,1\n2024-01-01T00:02:00Z,1\n2024-01-01T00:02:30Z,1\n"
                ),
                5,
                "off the grid",
            ),
            (
                format!("{h}{ok0}2024-01-01T00:01:00Z\n"),
                3,
                "expected 2 fields",
            ),
            (format!("{h}{ok0}2024-01-01T00:01:00Z,1,2\n"), 3, "found 3"),
            (format!("time,value\n{ok0}"), 1, "wrong header"),
            (format!("timestamp,value,extra\n{ok0}"), 1, "wrong header"),
            (
                format!("{h}{ok0}2024-01-01T00:00:01Z,1\n2200-01-01T00:00:00Z,1\n"),
                4,
                "at most 20000000 steps",
            ),
            // Two rows 200 years apart: two steps, but the end of the trace would be past
            // what a time can hold.
            (
                format!("{h}2000-01-01T00:00:00Z,1\n2200-01-01T00:00:00Z,2\n"),
                3,
                "292 years",
            ),
            (
                format!("{h}{ok0}2026-01-01T00:00:60Z,2\n"),
                3,
                "leap second",
            ),
        ];
        for (text, line, what) in cases {
            let e = err(&text);
            let msg = e.to_string();
            assert_eq!(e.file(), "f.csv");
            assert_eq!(e.line(), Some(line), "{msg}");
            assert!(msg.starts_with(&format!("f.csv:{line}: ")), "{msg}");
            assert!(msg.contains(what), "{msg} should say {what}");
        }
    }

    #[test]
    fn empty_and_short_files_are_errors() {
        assert!(matches!(err(""), TraceError::Empty { .. }));
        assert!(matches!(err("\n\n"), TraceError::Empty { .. }));
        assert!(matches!(err("timestamp,value\n"), TraceError::Empty { .. }));
        let e = err("timestamp,value\n2024-01-01T00:00:00Z,1\n");
        assert!(matches!(e, TraceError::TooShort { rows: 1, .. }), "{e}");
        assert!(e.to_string().starts_with("f.csv: "));
    }
}
