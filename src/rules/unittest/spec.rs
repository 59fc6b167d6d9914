//! The unit-test file: its YAML form and validation into the plain
//! structures the runner uses. Every problem is reported with `file:line`,
//! all of them at once, before any test runs.
//!
//! The format is promtool's (`cmd/promtool/unittest.go`): unknown fields
//! are errors (promtool uses `yaml.UnmarshalStrict`), durations are
//! Prometheus durations, series use the expanding notation of PromQL test
//! scripts.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::model::Labels;
use crate::promql::test_script::{expand_series_values, parse_series_labels};
use crate::rules::file::Spanned;
use crate::rules::rule::parse_duration;

/// promtool's default `evaluation_interval`.
pub const DEFAULT_EVALUATION_INTERVAL_MS: i64 = 60_000;

/// A validated test file.
#[derive(Debug, Clone)]
pub struct TestFile {
    /// `rule_files` as written (relative to the test file, may be globs),
    /// each with its line.
    pub rule_files: Vec<(String, usize)>,
    pub evaluation_interval_ms: i64,
    pub group_eval_order: Vec<String>,
    /// `fuzzy_compare` (promtool 3): floats equal within one ULP.
    pub fuzzy_compare: bool,
    pub tests: Vec<TestGroup>,
}

/// One entry of `tests`: its own input series, evaluated from time 0.
#[derive(Debug, Clone)]
pub struct TestGroup {
    pub name: String,
    /// Spacing of the input samples; `evaluation_interval` when unset.
    pub interval_ms: i64,
    pub input_series: Vec<InputSeries>,
    pub alert_tests: Vec<AlertTest>,
    pub promql_tests: Vec<PromqlTest>,
    pub external_labels: Labels,
    pub external_url: String,
}

#[derive(Debug, Clone)]
pub struct InputSeries {
    pub labels: Labels,
    /// One entry per `interval`: `None` for `_`, a staleness marker for
    /// `stale`.
    pub values: Vec<Option<f64>>,
}

#[derive(Debug, Clone)]
pub struct AlertTest {
    pub eval_time_ms: i64,
    pub alertname: String,
    pub exp_alerts: Vec<ExpAlert>,
}

/// An expected alert: labels (without `alertname`, which the runner adds)
/// and annotations, both sorted by name, empty values kept as promtool
/// keeps them.
#[derive(Debug, Clone)]
pub struct ExpAlert {
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct PromqlTest {
    pub expr: String,
    pub eval_time_ms: i64,
    pub exp_samples: Vec<(Labels, f64)>,
}

/// Parses and validates the text of a test file; `file` names it in
/// errors, which read `file:line: message`.
pub fn parse_test_file(text: &str, file: &str) -> Result<TestFile, Vec<String>> {
    let raw: Option<RawFile> = serde_norway::from_str(text).map_err(|e| {
        let msg = e.to_string();
        let message = match msg.find(" at line ") {
            Some(i) => msg[..i].to_string(),
            None => msg,
        };
        vec![at(file, e.location().map_or(0, |l| l.line()), &message)]
    })?;
    let raw = raw.unwrap_or_default();
    let mut v = Validator {
        file,
        errors: Vec::new(),
    };
    let evaluation_interval_ms = v
        .duration("evaluation_interval", raw.evaluation_interval.as_ref())
        .filter(|&ms| ms > 0)
        .unwrap_or(DEFAULT_EVALUATION_INTERVAL_MS);
    let tests = raw
        .tests
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, t)| v.test_group(i, t, evaluation_interval_ms))
        .collect();
    let file_out = TestFile {
        rule_files: raw
            .rule_files
            .unwrap_or_default()
            .into_iter()
            .map(|s| (s.value, s.line))
            .collect(),
        evaluation_interval_ms,
        group_eval_order: raw.group_eval_order.unwrap_or_default(),
        fuzzy_compare: raw.fuzzy_compare,
        tests,
    };
    if v.errors.is_empty() {
        Ok(file_out)
    } else {
        Err(v.errors)
    }
}

fn at(file: &str, line: usize, message: &str) -> String {
    if line > 0 {
        format!("{file}:{line}: {message}")
    } else {
        format!("{file}: {message}")
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule_files: Option<Vec<Spanned>>,
    #[serde(default)]
    evaluation_interval: Option<Spanned>,
    #[serde(default)]
    group_eval_order: Option<Vec<String>>,
    #[serde(default)]
    fuzzy_compare: bool,
    #[serde(default)]
    tests: Option<Vec<RawTestGroup>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTestGroup {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    interval: Option<Spanned>,
    #[serde(default)]
    input_series: Option<Vec<RawSeries>>,
    #[serde(default)]
    alert_rule_test: Option<Vec<RawAlertTest>>,
    #[serde(default)]
    promql_expr_test: Option<Vec<RawPromqlTest>>,
    #[serde(default)]
    external_labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    external_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeries {
    #[serde(default)]
    series: Option<Spanned>,
    #[serde(default)]
    values: Option<Spanned>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlertTest {
    #[serde(default)]
    eval_time: Option<Spanned>,
    #[serde(default)]
    alertname: Option<Spanned>,
    #[serde(default)]
    exp_alerts: Option<Vec<RawExpAlert>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpAlert {
    #[serde(default)]
    exp_labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    exp_annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPromqlTest {
    #[serde(default)]
    expr: Option<Spanned>,
    #[serde(default)]
    eval_time: Option<Spanned>,
    #[serde(default)]
    exp_samples: Option<Vec<RawSample>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSample {
    #[serde(default)]
    labels: Option<Spanned>,
    #[serde(default)]
    value: f64,
}

struct Validator<'a> {
    file: &'a str,
    errors: Vec<String>,
}

impl Validator<'_> {
    fn push(&mut self, line: usize, message: String) {
        self.errors.push(at(self.file, line, &message));
    }

    /// A duration field; None when absent or invalid (the error is kept).
    fn duration(&mut self, what: &str, s: Option<&Spanned>) -> Option<i64> {
        let s = s?;
        match parse_duration(&s.value) {
            Ok(ms) => Some(ms),
            Err(e) => {
                self.push(s.line, format!("invalid '{what}': {e}"));
                None
            }
        }
    }

    fn test_group(&mut self, index: usize, t: RawTestGroup, eval_interval_ms: i64) -> TestGroup {
        // Prometheus 3 defaults `interval` to `evaluation_interval`; 2.x
        // loaded every sample at time 0 instead (see the module docs).
        let interval_ms = self
            .duration("interval", t.interval.as_ref())
            .filter(|&ms| ms > 0)
            .unwrap_or(eval_interval_ms);
        let name = t.name.unwrap_or_default();
        let input_series = t
            .input_series
            .unwrap_or_default()
            .into_iter()
            .filter_map(|s| self.series(s))
            .collect();
        let mut alert_tests = Vec::new();
        for a in t.alert_rule_test.unwrap_or_default() {
            let eval_time_ms = self
                .duration("eval_time", a.eval_time.as_ref())
                .unwrap_or(0);
            let alertname = a.alertname.unwrap_or_default();
            if alertname.value.is_empty() {
                let line = a.eval_time.as_ref().map_or(0, |s| s.line);
                let in_group = if name.is_empty() {
                    format!(" (in test {})", index + 1)
                } else {
                    format!(" (in TestGroup {name})")
                };
                self.push(
                    line,
                    format!(
                        "an item under alert_rule_test misses required attribute alertname at eval_time {}{in_group}",
                        crate::rules::rule::format_duration(eval_time_ms)
                    ),
                );
                continue;
            }
            let exp_alerts = a
                .exp_alerts
                .unwrap_or_default()
                .into_iter()
                .map(|e| ExpAlert {
                    labels: e.exp_labels.unwrap_or_default().into_iter().collect(),
                    annotations: e.exp_annotations.unwrap_or_default().into_iter().collect(),
                })
                .collect();
            alert_tests.push(AlertTest {
                eval_time_ms,
                alertname: alertname.value,
                exp_alerts,
            });
        }
        let mut promql_tests = Vec::new();
        for p in t.promql_expr_test.unwrap_or_default() {
            let eval_time_ms = self
                .duration("eval_time", p.eval_time.as_ref())
                .unwrap_or(0);
            let expr = p.expr.unwrap_or_default();
            if expr.value.trim().is_empty() {
                let line = p.eval_time.as_ref().map_or(0, |s| s.line);
                self.push(line, "promql_expr_test: 'expr' must be set".into());
                continue;
            }
            let mut exp_samples = Vec::new();
            for s in p.exp_samples.unwrap_or_default() {
                let labels = s.labels.unwrap_or_default();
                match parse_series_labels(&labels.value) {
                    Ok(l) => exp_samples.push((l, s.value)),
                    Err(e) => {
                        let line = if labels.line > 0 {
                            labels.line
                        } else {
                            expr.line
                        };
                        self.push(
                            line,
                            format!("exp_samples: invalid labels {:?}: {e}", labels.value),
                        );
                    }
                }
            }
            promql_tests.push(PromqlTest {
                expr: expr.value,
                eval_time_ms,
                exp_samples,
            });
        }
        let external_labels = t.external_labels.unwrap_or_default();
        TestGroup {
            name,
            interval_ms,
            input_series,
            alert_tests,
            promql_tests,
            external_labels: Labels::from_pairs(&external_labels.into_iter().collect::<Vec<_>>()),
            external_url: t.external_url.unwrap_or_default(),
        }
    }

    fn series(&mut self, s: RawSeries) -> Option<InputSeries> {
        let desc = s.series.unwrap_or_default();
        let values = s.values.unwrap_or_default();
        let line = if desc.line > 0 {
            desc.line
        } else {
            values.line
        };
        let labels = match parse_series_labels(&desc.value) {
            Ok(l) if l.is_empty() => {
                self.push(
                    line,
                    format!("input_series: series {:?} has no labels", desc.value),
                );
                None
            }
            Ok(l) => Some(l),
            Err(e) => {
                self.push(
                    line,
                    format!("input_series: invalid series {:?}: {e}", desc.value),
                );
                None
            }
        };
        let vals = match expand_series_values(&values.value) {
            Ok(v) => Some(v),
            Err(e) => {
                let line = if values.line > 0 { values.line } else { line };
                self.push(
                    line,
                    format!("input_series: invalid values {:?}: {e}", values.value),
                );
                None
            }
        };
        Some(InputSeries {
            labels: labels?,
            values: vals?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_promtool() {
        let f = parse_test_file(
            "rule_files: [a.yml]\ntests:\n- input_series:\n  - series: up\n    values: 1 _ stale 2x1\n",
            "t.yml",
        )
        .unwrap();
        assert_eq!(f.evaluation_interval_ms, 60_000);
        assert_eq!(f.rule_files, vec![("a.yml".to_string(), 1)]);
        let t = &f.tests[0];
        assert_eq!(
            t.interval_ms, 60_000,
            "interval defaults to evaluation_interval"
        );
        assert_eq!(t.input_series[0].values.len(), 5);
        assert_eq!(t.input_series[0].values[1], None);
    }

    #[test]
    fn empty_and_null_sections_are_accepted() {
        let f = parse_test_file("", "t.yml").unwrap();
        assert!(f.tests.is_empty());
        let f = parse_test_file(
            "rule_files:\ntests:\n- name: x\n  input_series:\n  alert_rule_test:\n  - eval_time: 5m\n    alertname: A\n    exp_alerts:\n",
            "t.yml",
        )
        .unwrap();
        assert_eq!(f.tests[0].alert_tests[0].eval_time_ms, 300_000);
        assert!(f.tests[0].alert_tests[0].exp_alerts.is_empty());
    }

    #[test]
    fn numbers_are_read_as_text_where_promtool_wants_strings() {
        let f = parse_test_file(
            "tests:\n- interval: 1m\n  input_series:\n  - series: x\n    values: 3\n  alert_rule_test:\n  - eval_time: 0\n    alertname: A\n    exp_alerts:\n    - exp_labels: {code: 500}\n",
            "t.yml",
        )
        .unwrap();
        let t = &f.tests[0];
        assert_eq!(t.input_series[0].values, vec![Some(3.0)]);
        assert_eq!(t.alert_tests[0].eval_time_ms, 0);
        assert_eq!(
            t.alert_tests[0].exp_alerts[0].labels,
            vec![("code".to_string(), "500".to_string())]
        );
    }

    #[test]
    fn errors_carry_file_and_line() {
        let errs = parse_test_file(
            "tests:\n- interval: 1x\n  input_series:\n  - series: 'up{a=}'\n    values: 1\n  - series: up\n    values: 1+\n  alert_rule_test:\n  - eval_time: 5m\n  promql_expr_test:\n  - expr: up\n    exp_samples:\n    - labels: 'up{'\n",
            "t.yml",
        )
        .unwrap_err();
        assert_eq!(errs.len(), 5, "{errs:#?}");
        assert!(
            errs[0].starts_with("t.yml:2: invalid 'interval'"),
            "{errs:#?}"
        );
        assert!(
            errs[1].starts_with("t.yml:4: input_series: invalid series"),
            "{errs:#?}"
        );
        assert!(
            errs[2].starts_with("t.yml:7: input_series: invalid values"),
            "{errs:#?}"
        );
        assert!(errs[3].starts_with("t.yml:9: an item under alert_rule_test misses required attribute alertname at eval_time 5m"), "{errs:#?}");
        assert!(
            errs[4].starts_with("t.yml:13: exp_samples: invalid labels"),
            "{errs:#?}"
        );
    }

    #[test]
    fn unknown_fields_are_rejected_with_their_line() {
        let errs = parse_test_file("tests:\n- name: a\n  input_seris: []\n", "t.yml").unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("t.yml:3: "), "{errs:?}");
        assert!(errs[0].contains("input_seris"), "{errs:?}");
        let errs = parse_test_file("tests: 5\n", "t.yml").unwrap_err();
        assert!(errs[0].starts_with("t.yml:1: "), "{errs:?}");
    }
}
