//! # hoist-fuzz: fuzzing Hoist's parsers on stable Rust
//!
//! A small mutational fuzzer without coverage feedback, run as ordinary tests
//! (`fuzz/tests/fuzz.rs`): each [`Target`] starts from its seed corpus in
//! `fuzz/corpus/<target>/`, runs every corpus file as it is, then stacks byte- and token-level
//! [mutations](mutate) on corpus files for `HOIST_FUZZ_SECONDS` seconds, with a seeded
//! [`Rng`] so that every case can be replayed. Each input runs on a worker thread under
//! `catch_unwind` and a time bound; the first panic or input over the bound fails the test,
//! with the input written to `fuzz/artifacts/` and the commands that replay it. See
//! `fuzz/README.md`.

pub mod mutate;
pub mod rng;
pub mod runner;
pub mod targets;

pub use mutate::Mutator;
pub use rng::Rng;
pub use runner::{Case, Config, Failure, FailureKind, Report, Target, run, run_test};
pub use targets::{PLUGIN_PROTOCOL, POLICY_FILE, TARGETS, TRACE_CSV};
