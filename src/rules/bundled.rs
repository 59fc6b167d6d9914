//! The rule files in `rules/`, compiled in (see `build.rs`): what
//! `hourglass run` evaluates when the configuration names no `rule_files`.

/// (name, text) of every bundled rule file, sorted by name.
pub const BUNDLED: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/bundled_rules.rs"));
