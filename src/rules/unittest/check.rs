//! `hourglass check rules`, shaped like `promtool check rules`: per file
//! `Checking FILE`, then `  SUCCESS: N rules found` or `  FAILED:` and one
//! `file:line: message` per problem; the duplicate-rules lint on by default.

use std::io;
use std::path::PathBuf;

use super::Sink;
use crate::rules::load_files;
use crate::rules::rule::{Group, Rule};

/// What `check rules` looks at besides validity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckOptions {
    /// Report rules with the same name and labels (promtool's
    /// `--lint=duplicate-rules`, its default).
    pub lint_duplicates: bool,
    /// Lint findings fail the check with exit code 3 (`--lint-fatal`).
    pub lint_fatal: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            lint_duplicates: true,
            lint_fatal: false,
        }
    }
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckOutcome {
    /// Every file is valid (lint findings, if any, are not fatal).
    Ok,
    /// At least one file has errors.
    Errors,
    /// Only lint findings, and `lint_fatal` is set.
    LintErrors,
}

impl CheckOutcome {
    /// promtool's exit codes: 0, 1, and 3 for fatal lint findings.
    pub fn exit_code(self) -> u8 {
        match self {
            CheckOutcome::Ok => 0,
            CheckOutcome::Errors => 1,
            CheckOutcome::LintErrors => 3,
        }
    }
}

/// Checks rule files, writing results to `out` and failures to `err` (as
/// promtool writes to stdout and stderr).
pub fn check_rule_files(
    paths: &[PathBuf],
    opts: &CheckOptions,
    out: &mut dyn io::Write,
    err: &mut dyn io::Write,
) -> io::Result<CheckOutcome> {
    check(paths, opts, &mut Sink::split(out, err))
}

pub(super) fn check(
    paths: &[PathBuf],
    opts: &CheckOptions,
    sink: &mut Sink<'_>,
) -> io::Result<CheckOutcome> {
    let (mut errors, mut lint) = (false, false);
    for p in paths {
        sink.out(&format!("Checking {}\n", p.display()))?;
        match load_files(std::slice::from_ref(p)) {
            Err(errs) => {
                errors = true;
                sink.err("  FAILED:\n")?;
                for e in errs {
                    sink.err(&format!("{e}\n"))?;
                }
            }
            Ok(set) => {
                let dups = if opts.lint_duplicates {
                    duplicates(&set.groups)
                } else {
                    Vec::new()
                };
                if dups.is_empty() {
                    sink.out(&format!("  SUCCESS: {} rules found\n", set.rule_count()))?;
                } else {
                    lint = true;
                    sink.err("  FAILED:\n")?;
                    sink.err(&format!("lint error {}\n", duplicates_message(&dups)))?;
                }
            }
        }
        sink.out("\n")?;
    }
    Ok(if errors {
        CheckOutcome::Errors
    } else if lint && opts.lint_fatal {
        CheckOutcome::LintErrors
    } else {
        CheckOutcome::Ok
    })
}

type NamedLabels = (String, Vec<(String, String)>);

/// Rules sharing a name (alert or recorded metric) and labels (group's and
/// rule's, label templates as written): every one after the first, sorted.
fn duplicates(groups: &[Group]) -> Vec<NamedLabels> {
    let mut all: Vec<NamedLabels> = groups
        .iter()
        .flat_map(|g| &g.rules)
        .map(|r| {
            let labels = match r {
                Rule::Alerting(a) => a
                    .labels
                    .iter()
                    .map(|(k, t)| (k.clone(), t.source().to_string()))
                    .collect(),
                Rule::Recording(rec) => rec
                    .labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect(),
            };
            (r.name().to_string(), labels)
        })
        .collect();
    all.sort();
    all.windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[1].clone())
        .collect()
}

fn duplicates_message(dups: &[NamedLabels]) -> String {
    let mut s = format!("{} duplicate rule(s) found.\n", dups.len());
    for (name, labels) in dups {
        s.push_str(&format!("Metric: {name}\nLabel(s):\n"));
        for (k, v) in labels {
            s.push_str(&format!("\t{k}: {v}\n"));
        }
    }
    s.push_str("Might cause inconsistency while recording expressions");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_text(text: &str, opts: CheckOptions) -> (CheckOutcome, String) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.yml");
        std::fs::write(&p, text).unwrap();
        let mut buf = Vec::new();
        let outcome = check(&[p], &opts, &mut Sink::one(&mut buf)).unwrap();
        let s = String::from_utf8(buf).unwrap();
        (outcome, s.replace(&dir.path().display().to_string(), "D"))
    }

    #[test]
    fn counts_rules_of_a_valid_file() {
        let (o, s) = check_text(
            "groups:\n- name: g\n  rules:\n  - record: a\n    expr: up\n  - alert: A\n    expr: up == 0\n",
            CheckOptions::default(),
        );
        assert_eq!(o, CheckOutcome::Ok);
        assert_eq!(s, "Checking D/r.yml\n  SUCCESS: 2 rules found\n\n");
    }

    #[test]
    fn reports_errors_with_file_and_line() {
        let (o, s) = check_text(
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up ==\n",
            CheckOptions::default(),
        );
        assert_eq!(o, CheckOutcome::Errors);
        assert_eq!(o.exit_code(), 1);
        assert!(
            s.starts_with("Checking D/r.yml\n  FAILED:\nD/r.yml:5: "),
            "{s}"
        );
    }

    #[test]
    fn duplicate_rules_are_a_lint_finding() {
        let text = "groups:\n- name: g\n  rules:\n  - record: a\n    expr: up\n    labels: {x: y}\n- name: h\n  labels: {x: y}\n  rules:\n  - record: a\n    expr: up\n";
        let (o, s) = check_text(text, CheckOptions::default());
        assert_eq!(o, CheckOutcome::Ok, "not fatal by default, as in promtool");
        assert!(
            s.contains("  FAILED:\nlint error 1 duplicate rule(s) found.\nMetric: a\nLabel(s):\n\tx: y\nMight cause"),
            "{s}"
        );
        let fatal = CheckOptions {
            lint_fatal: true,
            ..CheckOptions::default()
        };
        assert_eq!(check_text(text, fatal).0.exit_code(), 3);
        let off = CheckOptions {
            lint_duplicates: false,
            lint_fatal: true,
        };
        let (o, s) = check_text(text, off);
        assert_eq!(o, CheckOutcome::Ok);
        assert!(s.contains("SUCCESS: 2 rules found"), "{s}");
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let mut buf = Vec::new();
        let o = check(
            &[PathBuf::from("/nonexistent/r.yml")],
            &CheckOptions::default(),
            &mut Sink::one(&mut buf),
        )
        .unwrap();
        assert_eq!(o, CheckOutcome::Errors);
        let s = String::from_utf8(buf).unwrap();
        assert!(
            s.contains("/nonexistent/r.yml: cannot read rule file"),
            "{s}"
        );
    }
}
