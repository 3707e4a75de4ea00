//! Tests of sim, one binary for the area (each module was once a binary of its own).

mod billing;
mod config;
mod conformance;
mod drain;
mod metrics;
mod scaling;
mod worlds;
