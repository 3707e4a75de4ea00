//! Tests of eval, one binary for the area (each module was once a binary of its own).

mod hpa;
mod metrics;
mod oracles;
mod predictive;
mod target_tracking;
