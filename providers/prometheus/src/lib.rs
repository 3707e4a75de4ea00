//! Prometheus as a Hoist metrics source.
#![forbid(unsafe_code)]
