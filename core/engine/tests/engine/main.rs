//! Tests of engine, one binary for the area (each module was once a binary of its own).

mod chaos;
mod control_concurrency;
mod decide;
mod decide_properties;
mod drain;
mod forecast_forecaster;
mod forecast_model;
mod hardening;
mod memory_update;
mod meter;
mod pool;
mod predictive;
mod predictive_level;
mod reconcile;
mod restart;
mod vertical;
