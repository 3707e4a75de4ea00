//! The `hoist` binary, run as a user runs it: one test binary for the whole command line (each
//! module was once a binary of its own).

mod aws_settings;
mod cost;
mod forecast;
mod hardening;
mod policy;
mod recommend;
mod reload;
mod rightsize;
mod route;
mod simulate;
mod trace;
