//! Prometheus rule files, the alert lifecycle and recording rules.
//!
//! * `file` — rule files: parsing and validation with `file:line`.
//! * `rule` — the validated rules (`RuleSet`, `Group`, `Rule`) and durations.
//! * `template` — Go templates for alert labels and annotations.
//! * `alert` — the alert state machine, a pure function of (state, query
//!   result, time).
//! * `group` — evaluating one group at one time against the store.
//!
//! Nothing here reads the wall clock, spawns tasks or knows about
//! notifiers: the manager (to come) schedules groups and forwards the
//! `AlertEvent`s that `group::eval_group` returns.

pub mod alert;
pub mod file;
pub mod group;
pub mod rule;
pub mod template;

pub use alert::{Alert, AlertEvent, AlertEventKind, AlertRuleState, AlertState};
pub use file::{load_files, parse_rule_file, RuleFileError};
pub use group::{eval_group, EvalContext, GroupEvalResult, GroupState, RuleHealth};
pub use rule::{AlertingRule, Group, RecordingRule, Rule, RuleSet};
