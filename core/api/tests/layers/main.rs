//! Tests of layers, one binary for the area (each module was once a binary of its own).

mod capability;
mod circuit;
mod conformance;
mod dry_run;
mod fault;
mod forwarding;
mod retry;
mod support;
