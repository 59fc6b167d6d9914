//! Prometheus rule files, the alert lifecycle and recording rules.
//!
//! * `file` — rule files: parsing and validation with `file:line`.
//! * `rule` — the validated rules (`RuleSet`, `Group`, `Rule`) and durations.
//! * `template` — Go templates for alert labels and annotations.
//! * `alert` — the alert state machine, a pure function of (state, query
//!   result, time).
//! * `group` — evaluating one group at one time against the store.
//! * `unittest` — promtool-format rule unit tests and `check rules`.
//! * `backtest` — replaying rules over recorded history.
//! * `bundled` — the rule files of `rules/`, compiled in.
//! * `manager` — the running side: loads files, schedules groups on their
//!   slots, reloads (all or nothing, state carried over), and sends alert
//!   events on a bounded channel.
//!
//! Apart from `manager`, nothing here reads the wall clock, spawns tasks or
//! knows about notifiers; and `manager` does not know the notifiers either,
//! only the channel.

pub mod alert;
pub mod backtest;
pub mod bundled;
pub mod file;
pub mod group;
pub mod manager;
pub mod rule;
pub mod template;
pub mod unittest;

pub use alert::{Alert, AlertEvent, AlertEventKind, AlertRuleState, AlertState};
pub use file::{load_files, parse_rule_file, RuleFileError};
pub use group::{eval_group, EvalContext, GroupEvalResult, GroupState, RuleHealth};
pub use rule::{AlertingRule, Group, RecordingRule, Rule, RuleSet};
