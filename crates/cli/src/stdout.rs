//! Standard output for every command.
//!
//! `print!` panics when the reader has gone away (`aksnet plan | head -1`
//! closes the pipe after one line, and the next write fails with `EPIPE`).
//! A reader that stops early is not an error of the design or the node:
//! the rest of the output is dropped quietly and the command still exits
//! with its own status (a plan's verdict stays 0 or 1). Any other write
//! error (a full disk behind `> file`) is said once on stderr and makes the
//! command exit 2, so a script never takes a truncated file for a result.
//!
//! `out!` and `outln!` are `print!` and `println!` with that behaviour,
//! `errln!` is `eprintln!` that ignores a closed stderr (`2>&1 | head`);
//! `clippy::print_stdout` and `print_stderr` are denied in this crate so
//! none is missed.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a write failed: later output is dropped.
static CLOSED: AtomicBool = AtomicBool::new(false);
/// Set when the failure was not a closed reader.
static FAILED: AtomicBool = AtomicBool::new(false);

/// Writes `args` to stdout and flushes (so the failure is seen here, not in
/// the exit hook); see the module comment for what a failure does.
pub fn write_fmt(args: fmt::Arguments<'_>) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        record(&e);
    }
}

/// Writes raw bytes (generated scripts) with the same behaviour.
pub fn write_bytes(bytes: &[u8]) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        record(&e);
    }
}

fn record(e: &io::Error) {
    CLOSED.store(true, Ordering::Relaxed);
    if e.kind() != io::ErrorKind::BrokenPipe {
        FAILED.store(true, Ordering::Relaxed);
        write_err_fmt(format_args!(
            "aksnet: cannot write to standard output: {e}\n"
        ));
    }
}

/// True when a write to stdout failed for another reason than a closed
/// reader: `main` then exits 2.
pub fn failed() -> bool {
    FAILED.load(Ordering::Relaxed)
}

/// Writes to stderr, ignoring a failure: a message nobody can read (the
/// pipe `2>&1 | head` closed) is no reason to panic, and the exit status
/// still says what happened.
pub fn write_err_fmt(args: fmt::Arguments<'_>) {
    let mut err = io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.flush());
}

/// `print!` that survives a closed stdout.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::stdout::write_fmt(format_args!($($arg)*))
    };
}

/// `println!` that survives a closed stdout.
macro_rules! outln {
    () => {
        $crate::stdout::write_fmt(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::stdout::write_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` that survives a closed stderr.
macro_rules! errln {
    () => {
        $crate::stdout::write_err_fmt(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::stdout::write_err_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprint!` that survives a closed stderr.
macro_rules! err {
    ($($arg:tt)*) => {
        $crate::stdout::write_err_fmt(format_args!($($arg)*))
    };
}
