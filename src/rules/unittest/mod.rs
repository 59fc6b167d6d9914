//! Unit tests for rule files in promtool's format (`hourglass test rules`),
//! and `hourglass check rules`, both shaped like promtool's so that rule
//! repositories tested with promtool in CI can switch, or run both.
//!
//! ```yaml
//! rule_files: [alerts.yml]          # relative to this file; globs allowed
//! evaluation_interval: 1m           # default 1m
//! group_eval_order: [first, second] # default: file order
//! tests:
//!   - name: disk fills up
//!     interval: 1m                  # default: evaluation_interval
//!     external_labels: {cluster: eu1}
//!     input_series:
//!       - series: 'node_filesystem_avail_bytes{mountpoint="/"}'
//!         values: '100-10x10 _ stale'
//!     alert_rule_test:
//!       - eval_time: 10m
//!         alertname: DiskFull
//!         exp_alerts:
//!           - exp_labels: {severity: page, mountpoint: /}
//!             exp_annotations: {summary: "/ is full"}
//!     promql_expr_test:
//!       - expr: node_filesystem_avail_bytes
//!         eval_time: 2m
//!         exp_samples:
//!           - labels: 'node_filesystem_avail_bytes{mountpoint="/"}'
//!             value: 80
//! ```
//!
//! Semantics follow promtool (`cmd/promtool/unittest.go`): each test group
//! gets a fresh store with its input series; every rule group is evaluated
//! with `rules::eval_group` at 0, `evaluation_interval`, … up to the
//! largest `eval_time` of the group; an alert test compares the *firing*
//! alerts of its alert name (labels with `alertname`, expanded
//! annotations) at the last evaluation at or before its `eval_time`,
//! ignoring order; PromQL tests run after all evaluations.
//!
//! Known differences from promtool:
//! * `interval` defaults to `evaluation_interval`, as in Prometheus 3;
//!   Prometheus 2.x loaded every sample at time 0 when it was unset.
//! * Without `group_eval_order` groups run in file order (promtool's order
//!   is then unspecified); groups missing from it rank with its first entry,
//!   as in promtool, in file order among themselves.
//! * An expected `NaN` matches a `NaN` result.
//! * Test-file problems are all reported up front with `file:line`, and
//!   rule files are loaded once per test file rather than once per test.
//! * The query engine has Prometheus 3 semantics: range windows and the
//!   lookback are open on the left, where Prometheus 2.x included a sample
//!   exactly at the window's start.

mod check;
mod glob;
mod gofmt;
mod run;
mod spec;

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

pub use check::{check_rule_files, CheckOptions, CheckOutcome};
pub use spec::{parse_test_file, TestFile};

use crate::rules::load_files;
use crate::rules::rule::Group;
use run::FloatCompare;

/// Options of `test rules`.
#[derive(Debug, Clone, Default)]
pub struct TestOptions {
    /// Only run test groups whose `name` matches (promtool's `--run`).
    pub run: Option<regex::Regex>,
}

/// Runs the test files, writing everything promtool would print (to stdout
/// and stderr) to `out`, in order. True when every test passed.
pub fn run_test_files(paths: &[PathBuf], out: &mut dyn Write) -> io::Result<bool> {
    run_tests(paths, &TestOptions::default(), &mut Sink::one(out))
}

/// Like [`run_test_files`], with options, and with failures and warnings
/// written to `err` as promtool writes them to stderr.
pub fn run_test_files_with(
    paths: &[PathBuf],
    opts: &TestOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<bool> {
    run_tests(paths, opts, &mut Sink::split(out, err))
}

/// promtool's two output streams, or one for both.
pub(crate) struct Sink<'a> {
    out: &'a mut dyn Write,
    err: Option<&'a mut dyn Write>,
}

impl<'a> Sink<'a> {
    pub(crate) fn one(out: &'a mut dyn Write) -> Sink<'a> {
        Sink { out, err: None }
    }

    pub(crate) fn split(out: &'a mut dyn Write, err: &'a mut dyn Write) -> Sink<'a> {
        Sink {
            out,
            err: Some(err),
        }
    }

    fn out(&mut self, s: &str) -> io::Result<()> {
        self.out.write_all(s.as_bytes())
    }

    fn err(&mut self, s: &str) -> io::Result<()> {
        match &mut self.err {
            Some(e) => e.write_all(s.as_bytes()),
            None => self.out.write_all(s.as_bytes()),
        }
    }
}

fn run_tests(paths: &[PathBuf], opts: &TestOptions, sink: &mut Sink<'_>) -> io::Result<bool> {
    let mut ok = true;
    for p in paths {
        sink.out(&format!("Unit Testing:  {}\n", p.display()))?;
        let errs = test_file(p, opts, sink)?;
        if errs.is_empty() {
            sink.out("  SUCCESS\n")?;
        } else {
            ok = false;
            sink.err("  FAILED:\n")?;
            for e in errs {
                sink.err(&format!("{e}\n"))?;
                sink.out("\n")?;
            }
        }
        sink.out("\n")?;
    }
    sink.out.flush()?;
    Ok(ok)
}

/// Runs one test file; returns its failures.
fn test_file(path: &Path, opts: &TestOptions, sink: &mut Sink<'_>) -> io::Result<Vec<String>> {
    let name = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return Ok(vec![format!("{name}: cannot read test file: {e}")]),
    };
    let tf = match parse_test_file(&text, &name) {
        Ok(f) => f,
        Err(errs) => return Ok(errs),
    };
    let base = path.parent().unwrap_or(Path::new(""));
    let mut files = Vec::new();
    for (pattern, line) in &tf.rule_files {
        let p = Path::new(pattern);
        let full = if pattern.is_empty() || p.is_absolute() {
            p.to_path_buf()
        } else {
            clean(&base.join(p))
        };
        match glob::glob(&full) {
            Ok(m) if m.is_empty() => {
                sink.err(&format!(
                    "  WARNING: no file match pattern {}\n",
                    full.display()
                ))?;
            }
            Ok(m) => files.extend(m),
            Err(e) => return Ok(vec![format!("{name}:{line}: rule_files: {e}")]),
        }
    }
    let mut order: HashMap<&str, usize> = HashMap::new();
    for (i, g) in tf.group_eval_order.iter().enumerate() {
        if order.insert(g, i).is_some() {
            return Ok(vec![format!(
                "{name}: group name repeated in evaluation order: {g}"
            )]);
        }
    }
    let set = match load_files(&files) {
        Ok(s) => s,
        Err(errs) => return Ok(errs.iter().map(ToString::to_string).collect()),
    };
    let groups = ordered_groups(&set.groups, &order);
    let floats = if tf.fuzzy_compare {
        FloatCompare::Fuzzy
    } else {
        FloatCompare::Exact
    };
    let mut errs = Vec::new();
    for tg in &tf.tests {
        if opts.run.as_ref().is_some_and(|re| !re.is_match(&tg.name)) {
            continue;
        }
        errs.extend(run::run_test_group(
            tg,
            &groups,
            tf.evaluation_interval_ms,
            floats,
        ));
    }
    Ok(errs)
}

/// Groups in `group_eval_order`; those not named in it rank as its first
/// entry (index 0, as in promtool); the sort is stable, so file order
/// breaks ties.
fn ordered_groups<'a>(groups: &'a [Group], order: &HashMap<&str, usize>) -> Vec<&'a Group> {
    let mut v: Vec<&Group> = groups.iter().collect();
    v.sort_by_key(|g| order.get(g.name.as_str()).copied().unwrap_or(0));
    v
}

/// Lexically drops `.` and folds `dir/..`, as Go's `filepath.Join` cleans
/// the paths it prints.
fn clean(p: &Path) -> PathBuf {
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.iter().collect()
}

#[cfg(test)]
mod tests;
