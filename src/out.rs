//! Standard output that ends quietly when its reader goes away.
//!
//! `hoist run ... | head -1` closes the pipe after one line. Rust ignores SIGPIPE, so a plain
//! `println!` would panic on the next line; here a write to a closed pipe ends the process at
//! once, without a message and with exit code 141 (128 + SIGPIPE), as a Unix tool killed by
//! SIGPIPE does. The audit log is flushed record by record, so nothing written before is lost.
//! The crate's `println!` and `print!` macros (in `main.rs`) write through [`write()`].

use std::fmt;
use std::io::Write;

/// The exit code of a process whose standard output was closed under it.
pub const BROKEN_PIPE_EXIT: i32 = 128 + 13;

/// Writes `args` to standard output; on a closed pipe, exits with [`BROKEN_PIPE_EXIT`], on any
/// other write error, reports it and exits with 1.
pub fn write(args: fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(BROKEN_PIPE_EXIT);
        }
        // Standard error may be gone too; nothing more can be done then.
        let _ = writeln!(
            std::io::stderr(),
            "error: cannot write to standard output: {e}"
        );
        std::process::exit(1);
    }
}
