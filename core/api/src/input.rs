//! Reading input files within bounds, and the ranges of values Hoist accepts.
//!
//! Every file Hoist reads from a user (policy files, traces, plugin manifests, secrets) is read
//! through [`read_file`], which stops at a size limit instead of reading `/dev/zero` until the
//! machine runs out of memory, inflates gzip within the same limit, refuses lines longer than a
//! limit, and says where text is not UTF-8 by line and column. The constants below are the
//! documented ranges of counts and amounts that the policy file, the simulated cloud and the
//! commands check at load, so that nothing later meets a value it cannot compute with.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The most instances one group may have: the ceiling of every `min`, `max`, `desired` and
/// quota in a policy file or on the command line. Far above any real group (an EC2 Auto Scaling
/// group allows a few thousand, a Kubernetes deployment a few tens of thousands), low enough
/// that simulating a full group stays within memory.
pub const MAX_INSTANCES: u32 = 1_000_000;

/// The largest amount of work, demand or metric value a policy or a simulation may state
/// (requests per second, work units, queue length): 10^15, past any real service, and small
/// enough that every product and sum of such values stays finite and exact to many digits.
pub const MAX_AMOUNT: f64 = 1e15;

/// The largest price per instance-hour, in the catalog's currency: 10^6.
pub const MAX_PRICE_PER_HOUR: f64 = 1e6;

/// A number as people read it: plainly from 0.0001 up to 10^15, in scientific notation beyond
/// (`1e300`, not three hundred digits).
pub fn number(value: f64) -> String {
    let magnitude = value.abs();
    if value == 0.0 || !value.is_finite() || (1e-4..1e15).contains(&magnitude) {
        format!("{value}")
    } else {
        format!("{value:e}")
    }
}

/// How a file is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Bytes of text (after gzip inflation) read at most.
    pub max_bytes: u64,
    /// The longest line, bytes.
    pub max_line_bytes: usize,
    /// Inflate gzip input (recognised by its magic bytes).
    pub gzip: bool,
}

/// Why a file could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The operating system refused, or the gzip stream is broken.
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The path is a directory.
    Directory {
        /// The path.
        path: PathBuf,
    },
    /// The file holds more than [`ReadLimits::max_bytes`].
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit, bytes.
        limit: u64,
    },
    /// A line is longer than [`ReadLimits::max_line_bytes`].
    LineTooLong {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// The limit, bytes.
        limit: usize,
    },
    /// The bytes are not UTF-8 text.
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the first bad byte.
        line: usize,
        /// The 1-based column (in bytes) of the first bad byte.
        column: usize,
    },
}

impl ReadError {
    /// The file.
    pub fn path(&self) -> &Path {
        match self {
            ReadError::Io { path, .. }
            | ReadError::Directory { path }
            | ReadError::TooLarge { path, .. }
            | ReadError::LineTooLong { path, .. }
            | ReadError::NotUtf8 { path, .. } => path,
        }
    }

    /// The 1-based line the problem is on, when it is on one.
    pub fn line(&self) -> Option<usize> {
        match self {
            ReadError::LineTooLong { line, .. } | ReadError::NotUtf8 { line, .. } => Some(*line),
            _ => None,
        }
    }

    /// The 1-based column the problem is at, when known.
    pub fn column(&self) -> Option<usize> {
        match self {
            ReadError::NotUtf8 { column, .. } => Some(*column),
            _ => None,
        }
    }

    /// What is wrong, without the file and line (for messages that print those themselves).
    pub fn message(&self) -> String {
        match self {
            ReadError::Io { source, .. } => format!("cannot read the file: {source}"),
            ReadError::Directory { .. } => "is a directory, not a file".to_owned(),
            ReadError::TooLarge { limit, .. } => format!(
                "the file is larger than the limit of {}; reading stopped there",
                bytes_in_words(*limit)
            ),
            ReadError::LineTooLong { limit, .. } => format!(
                "the line is longer than the limit of {}; reading stopped there",
                bytes_in_words(*limit as u64)
            ),
            ReadError::NotUtf8 { .. } => {
                "the file is not UTF-8 text here (a binary file, or text in another encoding); save it as UTF-8"
                    .to_owned()
            }
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path().display())?;
        if let Some(line) = self.line() {
            write!(f, ":{line}")?;
            if let Some(column) = self.column() {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.message())
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// `n` bytes as people say it: "64 MiB", "1 KiB", "100 bytes".
pub fn bytes_in_words(n: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (size, unit) in UNITS {
        if n >= size && n.is_multiple_of(size) {
            return format!("{} {unit}", n / size);
        }
    }
    format!("{n} bytes")
}

/// Reads the UTF-8 text of `path` within `limits`: refuses a directory, stops at
/// [`ReadLimits::max_bytes`] (after inflating gzip, when asked), and checks line lengths and
/// UTF-8, naming the line.
pub fn read_file(path: &Path, limits: ReadLimits) -> Result<String, ReadError> {
    let io = |source| ReadError::Io {
        path: path.to_owned(),
        source,
    };
    if std::fs::metadata(path).map_err(io)?.is_dir() {
        return Err(ReadError::Directory {
            path: path.to_owned(),
        });
    }
    let file = std::fs::File::open(path).map_err(io)?;
    let mut head = Vec::with_capacity(2);
    let mut file = file;
    (&mut file).take(2).read_to_end(&mut head).map_err(io)?;
    let gzip = limits.gzip && head.starts_with(&[0x1f, 0x8b]);
    let rest = std::io::Cursor::new(head).chain(file);
    let bytes = if gzip {
        read_limited(
            flate2::read::MultiGzDecoder::new(rest),
            path,
            limits.max_bytes,
        )?
    } else {
        read_limited(rest, path, limits.max_bytes)?
    };
    text_from_bytes(path, bytes, limits.max_line_bytes)
}

fn read_limited(reader: impl Read, path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| ReadError::Io {
            path: path.to_owned(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            path: path.to_owned(),
            limit,
        });
    }
    Ok(bytes)
}

/// Checks line lengths and UTF-8 of `bytes` read from `path`, naming the first bad line.
pub fn text_from_bytes(
    path: &Path,
    bytes: Vec<u8>,
    max_line_bytes: usize,
) -> Result<String, ReadError> {
    // Line lengths first, on bytes: a long line of binary is reported as too long, which is
    // the cheaper and the truer message for a file that is not text at all.
    let mut line = 1;
    let mut line_start = 0;
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' {
            line += 1;
            line_start = i + 1;
        } else if i - line_start >= max_line_bytes {
            return Err(ReadError::LineTooLong {
                path: path.to_owned(),
                line,
                limit: max_line_bytes,
            });
        }
    }
    String::from_utf8(bytes).map_err(|e| {
        let bad = e.utf8_error().valid_up_to();
        let before = &e.as_bytes()[..bad];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let column = bad
            - before
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |p| p + 1)
            + 1;
        ReadError::NotUtf8 {
            path: path.to_owned(),
            line,
            column,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn limits(max_bytes: u64, max_line_bytes: usize) -> ReadLimits {
        ReadLimits {
            max_bytes,
            max_line_bytes,
            gzip: true,
        }
    }

    #[test]
    fn reads_text_within_the_limits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "one\ntwo\n").unwrap();
        assert_eq!(read_file(&path, limits(8, 4)).unwrap(), "one\ntwo\n");
    }

    #[test]
    fn stops_at_the_size_limit_even_on_an_endless_device() {
        let e = read_file(Path::new("/dev/zero"), limits(1 << 20, usize::MAX)).unwrap_err();
        assert!(
            matches!(e, ReadError::TooLarge { limit, .. } if limit == 1 << 20),
            "{e}"
        );
        assert!(
            e.to_string().contains("larger than the limit of 1 MiB"),
            "{e}"
        );
    }

    #[test]
    fn bounds_gzip_after_inflation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bomb.csv.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![b'\n'; 10 << 20]).unwrap();
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() < 100_000);
        let e = read_file(&path, limits(1 << 20, 100)).unwrap_err();
        assert!(matches!(e, ReadError::TooLarge { .. }), "{e}");
    }

    #[test]
    fn names_the_long_line_and_the_bad_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "ok\nthis line is long\n").unwrap();
        let e = read_file(&path, limits(1000, 10)).unwrap_err();
        assert_eq!(e.line(), Some(2), "{e}");
        std::fs::write(&path, b"ok\nab\xffc\n").unwrap();
        let e = read_file(&path, limits(1000, 10)).unwrap_err();
        assert_eq!((e.line(), e.column()), (Some(2), Some(3)), "{e}");
        assert!(e.to_string().contains("not UTF-8"), "{e}");
    }

    #[test]
    fn refuses_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_file(dir.path(), limits(1000, 10)).unwrap_err();
        assert!(matches!(e, ReadError::Directory { .. }), "{e}");
    }

    #[test]
    fn sizes_in_words() {
        assert_eq!(bytes_in_words(64 << 20), "64 MiB");
        assert_eq!(bytes_in_words(1000), "1000 bytes");
    }
}
