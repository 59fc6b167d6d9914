//! hourglass: an observability agent and alerting daemon.
//!
//! Data flows one way: sources → store → promql → (rules) → notify/export;
//! `app` is the only module that wires the others together.

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod model;
pub mod promql;
pub mod rules;
pub mod sources;
pub mod store;
pub mod telemetry;
