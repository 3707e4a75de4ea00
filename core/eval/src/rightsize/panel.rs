//! Per-VM panels: what each VM was given and what it used, step by step.
//!
//! Two formats are read (plain or gzip), told apart by their header:
//!
//! - **Bitbrains** (GWA-T-12): `timestamp,vm,cores,cpu_capacity_mhz,cpu_usage_mhz,
//!   mem_capacity_kb,mem_usage_kb`. CPU used in cores is `cpu_usage_mhz / (cpu_capacity_mhz /
//!   cores)`, CPU given is `cores`; memory is in KiB (× 1024 for bytes). A row with `cores = 0`
//!   and `cpu_capacity_mhz = 0` is a step where the VM was not provisioned (switched off): it is
//!   kept out of the panel as a gap and counted in [`Panel::off_rows`], never scored as zero use.
//! - **Generic long CSV**: the columns `timestamp,vm,cpu_used` and optionally `cpu_capacity`,
//!   `mem_used` and `mem_capacity`, in any order. CPU in cores, memory in bytes. A capacity,
//!   when given, must be above zero.
//!
//! Timestamps are RFC 3339 or whole Unix seconds; each VM's rows must be in increasing time
//! order (VMs may be interleaved). Usage must be finite and non-negative. Every problem is
//! reported as `file:line: what`.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use chrono::{DateTime, Utc};

/// The most bytes of text a panel may hold (after gzip inflation): 1 GiB, about 15 million
/// rows of the Bitbrains format.
pub const MAX_PANEL_BYTES: u64 = 1 << 30;

/// The longest line of a panel file, bytes.
pub const MAX_PANEL_LINE_BYTES: usize = 4096;

/// The Bitbrains header.
pub const BITBRAINS_HEADER: &str =
    "timestamp,vm,cores,cpu_capacity_mhz,cpu_usage_mhz,mem_capacity_kb,mem_usage_kb";

/// The generic format's columns: the first three are required.
pub const GENERIC_COLUMNS: [&str; 6] = [
    "timestamp",
    "vm",
    "cpu_used",
    "cpu_capacity",
    "mem_used",
    "mem_capacity",
];

/// One step of one VM. Values a panel does not have (see [`Columns`]) are 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Time of the step, seconds since the Unix epoch.
    pub at: i64,
    /// CPU used, cores.
    pub cpu: f64,
    /// CPU the VM was given, cores.
    pub cpu_given: f64,
    /// Memory used, bytes.
    pub mem: f64,
    /// Memory the VM was given, bytes.
    pub mem_given: f64,
}

/// Which values a panel has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Columns {
    /// CPU given (`cpu_capacity`).
    pub cpu_given: bool,
    /// Memory used.
    pub memory: bool,
    /// Memory given (`mem_capacity`).
    pub mem_given: bool,
}

/// One VM's series, in increasing time order.
#[derive(Debug, Clone, PartialEq)]
pub struct VmSeries {
    /// The VM's id as written in the panel.
    pub vm: String,
    /// Its steps.
    pub samples: Vec<Sample>,
}

/// The format a panel was read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PanelFormat {
    /// The Bitbrains GWA-T-12 format.
    Bitbrains,
    /// The generic long CSV.
    Generic,
}

/// A per-VM panel.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// The panel's name (the file name without `.csv` / `.csv.gz`).
    pub name: String,
    /// The format it was read in.
    pub format: PanelFormat,
    /// Which values it has.
    pub columns: Columns,
    /// The VMs, in order of first appearance.
    pub vms: Vec<VmSeries>,
    /// The step: the most common time between consecutive rows of a VM, seconds.
    pub step_seconds: i64,
    /// Rows read (VM steps, off rows included).
    pub rows: usize,
    /// Bitbrains rows of a VM that was not provisioned (`cores = 0`), kept out as gaps.
    pub off_rows: usize,
}

impl Panel {
    /// The first and last step of the whole panel, seconds since the epoch.
    pub fn span(&self) -> Option<(i64, i64)> {
        let first = self
            .vms
            .iter()
            .filter_map(|v| v.samples.first())
            .map(|s| s.at)
            .min()?;
        let last = self
            .vms
            .iter()
            .filter_map(|v| v.samples.last())
            .map(|s| s.at)
            .max()?;
        Some((first, last))
    }

    /// Steps in the panel (gaps and off rows excluded).
    pub fn steps(&self) -> usize {
        self.vms.iter().map(|v| v.samples.len()).sum()
    }
}

/// What is wrong with a panel file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanelError {
    /// The file.
    pub file: String,
    /// The 1-based line, when the problem is on one.
    pub line: Option<usize>,
    /// What is wrong.
    pub what: String,
}

impl fmt::Display for PanelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.what),
            None => write!(f, "{}: {}", self.file, self.what),
        }
    }
}

impl std::error::Error for PanelError {}

/// Loads a panel from a `.csv` or `.csv.gz` file (gzip recognised by its magic bytes).
pub fn load_panel(path: &Path) -> Result<Panel, PanelError> {
    let file = path.display().to_string();
    let limits = hoist_api::input::ReadLimits {
        max_bytes: MAX_PANEL_BYTES,
        max_line_bytes: MAX_PANEL_LINE_BYTES,
        gzip: true,
    };
    let text = hoist_api::input::read_file(path, limits).map_err(|e| PanelError {
        file: file.clone(),
        line: e.line(),
        what: e.message(),
    })?;
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.clone());
    let name = base.strip_suffix(".gz").unwrap_or(&base);
    let name = name.strip_suffix(".csv").unwrap_or(name).to_owned();
    parse(name, &file, &text)
}

/// Parses panel text; `name` names the panel and the errors.
pub fn parse_panel(name: &str, text: &str) -> Result<Panel, PanelError> {
    parse(name.to_owned(), name, text)
}

#[derive(Clone, Copy)]
enum Layout {
    Bitbrains,
    /// Column index of each of [`GENERIC_COLUMNS`], when present.
    Generic([Option<usize>; 6], usize),
}

fn parse(name: String, file: &str, text: &str) -> Result<Panel, PanelError> {
    let err = |line: Option<usize>, what: String| PanelError {
        file: file.to_owned(),
        line,
        what,
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let (header_line, header) = loop {
        match lines.next() {
            None => return Err(err(None, "empty panel: no header".into())),
            Some((_, l)) if l.trim().is_empty() => continue,
            Some((n, l)) => break (n, l.trim()),
        }
    };
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let layout = if names.join(",") == BITBRAINS_HEADER {
        Layout::Bitbrains
    } else {
        let mut index = [None; 6];
        for (i, n) in names.iter().enumerate() {
            let Some(k) = GENERIC_COLUMNS.iter().position(|c| c == n) else {
                return Err(err(
                    Some(header_line),
                    format!(
                        "unknown column {n:?}: a panel is either the Bitbrains format ({BITBRAINS_HEADER}) or timestamp,vm,cpu_used with optional cpu_capacity, mem_used, mem_capacity"
                    ),
                ));
            };
            if index[k].is_some() {
                return Err(err(
                    Some(header_line),
                    format!("column {n:?} appears twice"),
                ));
            }
            index[k] = Some(i);
        }
        for required in 0..3 {
            if index[required].is_none() {
                return Err(err(
                    Some(header_line),
                    format!(
                        "missing column {:?}: the header needs timestamp, vm and cpu_used (found {header:?})",
                        GENERIC_COLUMNS[required]
                    ),
                ));
            }
        }
        if index[5].is_some() && index[4].is_none() {
            return Err(err(
                Some(header_line),
                "mem_capacity without mem_used: give both, or mem_used alone".into(),
            ));
        }
        Layout::Generic(index, names.len())
    };
    let (format, columns) = match layout {
        Layout::Bitbrains => (
            PanelFormat::Bitbrains,
            Columns {
                cpu_given: true,
                memory: true,
                mem_given: true,
            },
        ),
        Layout::Generic(index, _) => (
            PanelFormat::Generic,
            Columns {
                cpu_given: index[3].is_some(),
                memory: index[4].is_some(),
                mem_given: index[5].is_some(),
            },
        ),
    };

    let mut vms: Vec<VmSeries> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    // Line of each VM's last row, for the out-of-order message.
    let mut last_line: Vec<usize> = Vec::new();
    let mut rows = 0usize;
    let mut off_rows = 0usize;
    let mut cached_time: (&str, i64) = ("", 0);
    let mut fields: Vec<&str> = Vec::with_capacity(8);
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        fields.clear();
        fields.extend(line.split(',').map(str::trim));
        let expected = match layout {
            Layout::Bitbrains => 7,
            Layout::Generic(_, count) => count,
        };
        if fields.len() != expected {
            return Err(err(
                Some(n),
                format!(
                    "{} fields, expected {expected} as in the header",
                    fields.len()
                ),
            ));
        }
        let number = |i: usize, what: &str| -> Result<f64, PanelError> {
            let text = fields[i];
            let v: f64 = text
                .parse()
                .map_err(|_| err(Some(n), format!("{what} {text:?} is not a number")))?;
            if !v.is_finite() {
                return Err(err(
                    Some(n),
                    format!("{what} {text:?} is not a finite number"),
                ));
            }
            if v < 0.0 {
                return Err(err(Some(n), format!("{what} {text} is negative")));
            }
            Ok(v)
        };
        let (time_text, vm) = match layout {
            Layout::Bitbrains => (fields[0], fields[1]),
            Layout::Generic(index, _) => {
                (fields[index[0].unwrap_or(0)], fields[index[1].unwrap_or(1)])
            }
        };
        let at = if time_text == cached_time.0 {
            cached_time.1
        } else {
            let t = parse_time(time_text).map_err(|e| err(Some(n), e))?;
            cached_time = (time_text, t);
            t
        };
        if vm.is_empty() {
            return Err(err(Some(n), "empty vm id".into()));
        }
        rows += 1;
        let sample = match layout {
            Layout::Bitbrains => {
                let cores = number(2, "cores")?;
                let cpu_mhz = number(3, "cpu_capacity_mhz")?;
                let used_mhz = number(4, "cpu_usage_mhz")?;
                let mem_kb = number(5, "mem_capacity_kb")?;
                let used_kb = number(6, "mem_usage_kb")?;
                if cores == 0.0 && cpu_mhz == 0.0 {
                    if used_mhz > 0.0 {
                        return Err(err(
                            Some(n),
                            format!("cpu_usage_mhz {used_mhz} on a VM with 0 cores and 0 MHz"),
                        ));
                    }
                    off_rows += 1;
                    None
                } else {
                    for (v, what) in [
                        (cores, "cores"),
                        (cpu_mhz, "cpu_capacity_mhz"),
                        (mem_kb, "mem_capacity_kb"),
                    ] {
                        if v == 0.0 {
                            return Err(err(
                                Some(n),
                                format!(
                                    "{what} is 0: a provisioned VM needs a capacity above zero"
                                ),
                            ));
                        }
                    }
                    Some(Sample {
                        at,
                        cpu: used_mhz * cores / cpu_mhz,
                        cpu_given: cores,
                        mem: used_kb * 1024.0,
                        mem_given: mem_kb * 1024.0,
                    })
                }
            }
            Layout::Generic(index, _) => {
                let get = |k: usize| -> Result<f64, PanelError> {
                    match index[k] {
                        Some(i) => number(i, GENERIC_COLUMNS[k]),
                        None => Ok(0.0),
                    }
                };
                let sample = Sample {
                    at,
                    cpu: get(2)?,
                    cpu_given: get(3)?,
                    mem: get(4)?,
                    mem_given: get(5)?,
                };
                for (k, v) in [(3, sample.cpu_given), (5, sample.mem_given)] {
                    if index[k].is_some() && v == 0.0 {
                        return Err(err(
                            Some(n),
                            format!("{} is 0: a capacity must be above zero", GENERIC_COLUMNS[k]),
                        ));
                    }
                }
                Some(sample)
            }
        };
        let k = match by_name.get(vm) {
            Some(&k) => k,
            None => {
                by_name.insert(vm.to_owned(), vms.len());
                vms.push(VmSeries {
                    vm: vm.to_owned(),
                    samples: Vec::new(),
                });
                last_line.push(0);
                vms.len() - 1
            }
        };
        let series = &mut vms[k];
        if let Some(last) = series.samples.last()
            && last.at >= at
        {
            return Err(err(
                Some(n),
                format!(
                    "time {time_text} of VM {vm} is not after its previous row (line {}): each VM's rows must be in increasing time order",
                    last_line[k]
                ),
            ));
        }
        if let Some(sample) = sample {
            series.samples.push(sample);
            last_line[k] = n;
        }
    }
    if rows == 0 {
        return Err(err(None, "empty panel: a header and no rows".into()));
    }
    vms.retain(|v| !v.samples.is_empty());
    if vms.is_empty() {
        return Err(err(None, "no VM has a provisioned step".into()));
    }
    Ok(Panel {
        name,
        format,
        columns,
        step_seconds: common_step(&vms),
        vms,
        rows,
        off_rows,
    })
}

/// A step's time: RFC 3339, or whole Unix seconds (`1372629600`), as panels exported from
/// monitoring systems often have.
fn parse_time(text: &str) -> Result<i64, String> {
    if let Some(unix) = hoist_sim::trace::parse_unix_seconds(text) {
        return unix
            .map(|t| t.timestamp())
            .map_err(|reason| format!("timestamp {text:?} is {reason}"));
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc).timestamp())
        .map_err(|e| {
            format!(
                "timestamp {text:?}: {e} (expected RFC 3339, e.g. 2024-01-01T00:00:00Z, or Unix \
                 seconds)"
            )
        })
}

/// The most common time between consecutive rows of a VM (300 s when no VM has two rows).
fn common_step(vms: &[VmSeries]) -> i64 {
    let mut counts: HashMap<i64, usize> = HashMap::new();
    for vm in vms {
        for w in vm.samples.windows(2) {
            *counts.entry(w[1].at - w[0].at).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .max_by_key(|&(step, count)| (count, std::cmp::Reverse(step)))
        .map_or(300, |(step, _)| step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bitbrains_rows_in_cores_and_bytes() {
        let p = parse_panel(
            "bb",
            "timestamp,vm,cores,cpu_capacity_mhz,cpu_usage_mhz,mem_capacity_kb,mem_usage_kb\r\n\
             2013-07-01T00:00:00Z,7,2,5200.0,1300.0,1024,512\r\n\
             2013-07-01T00:05:00Z,7,0,0.0,0.0,0,0\r\n\
             2013-07-01T00:10:00Z,7,2,5200.0,2600.0,1024,256\r\n",
        )
        .unwrap();
        assert_eq!(p.format, PanelFormat::Bitbrains);
        assert_eq!((p.rows, p.off_rows), (3, 1));
        let s = &p.vms[0].samples;
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].cpu, s[0].cpu_given), (0.5, 2.0));
        assert_eq!(
            (s[0].mem, s[0].mem_given),
            (512.0 * 1024.0, 1024.0 * 1024.0)
        );
        assert_eq!(s[1].cpu, 1.0);
        assert_eq!(p.step_seconds, 600);
    }

    #[test]
    fn reads_generic_columns_in_any_order() {
        let p = parse_panel(
            "g",
            "vm,timestamp,cpu_used\na,2024-01-01T00:00:00Z,0.5\nb,2024-01-01T00:00:00Z,1\na,2024-01-01T00:05:00Z,0.25\n",
        )
        .unwrap();
        assert_eq!(
            p.columns,
            Columns {
                cpu_given: false,
                memory: false,
                mem_given: false
            }
        );
        assert_eq!(p.vms.len(), 2);
        assert_eq!(p.vms[0].samples[1].cpu, 0.25);
        assert_eq!(p.step_seconds, 300);
    }

    #[test]
    fn reads_unix_seconds_as_well_as_rfc_3339() {
        let p = parse_panel(
            "g",
            "timestamp,vm,cpu_used\n1704067200,a,0.5\n2024-01-01T00:01:00Z,a,1\n1704067320,a,0.25\n",
        )
        .unwrap();
        let at: Vec<i64> = p.vms[0].samples.iter().map(|s| s.at).collect();
        assert_eq!(at, [1_704_067_200, 1_704_067_260, 1_704_067_320]);
        assert_eq!(p.step_seconds, 60);
        let e = error("timestamp,vm,cpu_used\n1704067200000,a,0.5\n");
        assert!(
            e.starts_with("p.csv:2: timestamp \"1704067200000\" is past the year 5000")
                && e.contains("divide it by 1000"),
            "{e}"
        );
    }

    fn error(text: &str) -> String {
        parse_panel("p.csv", text).unwrap_err().to_string()
    }

    #[test]
    fn refuses_bad_panels_with_file_and_line() {
        let h = "timestamp,vm,cpu_used,cpu_capacity,mem_used,mem_capacity\n";
        let ok = "2024-01-01T00:00:00Z,a,0.5,1,100,1000\n";
        let e = error("timestamp,vm\n");
        assert!(e.starts_with("p.csv:1: missing column \"cpu_used\""), "{e}");
        let e = error(&format!("{h}{ok}2024-01-01T00:05:00Z,a,-1,1,100,1000\n"));
        assert!(e.starts_with("p.csv:3: cpu_used -1 is negative"), "{e}");
        let e = error(&format!("{h}{ok}2024-01-01T00:05:00Z,a,1,0,100,1000\n"));
        assert!(e.starts_with("p.csv:3: cpu_capacity is 0"), "{e}");
        let e = error(&format!("{h}{ok}2024-01-01T00:05:00Z,a,x,1,100,1000\n"));
        assert!(
            e.starts_with("p.csv:3: cpu_used \"x\" is not a number"),
            "{e}"
        );
        let e = error(&format!("{h}{ok}2024-01-01T00:00:00Z,a,1,1,100,1000\n"));
        assert!(
            e.starts_with(
                "p.csv:3: time 2024-01-01T00:00:00Z of VM a is not after its previous row (line 2)"
            ),
            "{e}"
        );
        let e = error(&format!("{h}{ok}2024-01-01T00:05:00Z,a,1,1,100\n"));
        assert!(e.starts_with("p.csv:3: 5 fields, expected 6"), "{e}");
        let e = error(&format!("{h}{ok}yesterday,a,1,1,100,1000\n"));
        assert!(e.starts_with("p.csv:3: timestamp \"yesterday\""), "{e}");
        let e = error(&format!(
            "{BITBRAINS_HEADER}\n2013-07-01T00:00:00Z,7,2,5200,100,0,10\n"
        ));
        assert!(e.starts_with("p.csv:2: mem_capacity_kb is 0"), "{e}");
        let e = error("timestamp,vm,cpu\n");
        assert!(e.starts_with("p.csv:1: unknown column \"cpu\""), "{e}");
    }
}
