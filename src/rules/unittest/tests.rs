//! The runner end to end on small files written to a temp dir: output
//! shape, evaluation order and timing, and how errors are reported.

use std::path::{Path, PathBuf};

use super::*;

struct Files(tempfile::TempDir);

impl Files {
    fn new(files: &[(&str, &str)]) -> Files {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        Files(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    /// Runs `test` and returns (passed, output with the temp dir as `D`).
    fn run(&self, test: &str) -> (bool, String) {
        self.run_with(test, &TestOptions::default())
    }

    fn run_with(&self, test: &str, opts: &TestOptions) -> (bool, String) {
        let mut out = Vec::new();
        let ok = run_tests(&[self.path(test)], opts, &mut Sink::one(&mut out)).unwrap();
        let s = String::from_utf8(out).unwrap();
        (ok, s.replace(&self.0.path().display().to_string(), "D"))
    }
}

const RULES: &str = r#"
groups:
  - name: g
    rules:
      - alert: High
        expr: x > 5
        for: 2m
        labels: {severity: page}
        annotations: {summary: "x is {{ $value }}"}
"#;

#[test]
fn passing_file_prints_success() {
    let f = Files::new(&[
        ("r.yml", RULES),
        (
            "t.yml",
            r#"
rule_files: [r.yml]
tests:
  - interval: 1m
    input_series:
      - series: x{i="a"}
        values: 0 10x10
    alert_rule_test:
      - eval_time: 2m
        alertname: High
      - eval_time: 3m
        alertname: High
        exp_alerts:
          - exp_labels: {severity: page, i: a}
            exp_annotations: {summary: x is 10}
"#,
        ),
    ]);
    assert_eq!(
        f.run("t.yml"),
        (true, "Unit Testing:  D/t.yml\n  SUCCESS\n\n".into())
    );
}

#[test]
fn failures_print_promtools_diff() {
    let f = Files::new(&[
        ("r.yml", RULES),
        (
            "t.yml",
            r#"
rule_files: [r.yml]
tests:
  - name: one
    interval: 1m
    input_series:
      - series: x{i="a"}
        values: 0 10x10
    alert_rule_test:
      - eval_time: 10m
        alertname: High
    promql_expr_test:
      - expr: x
        eval_time: 1m
        exp_samples:
          - labels: x{i="b"}
            value: 10
"#,
        ),
    ]);
    let (ok, out) = f.run("t.yml");
    assert!(!ok);
    let want = r#"Unit Testing:  D/t.yml
  FAILED:
    name: one,
    alertname: High, time: 10m, 
        exp:[], 
        got:[
            0:
              Labels:{alertname="High", i="a", severity="page"}
              Annotations:{summary="x is 10"}
            ]

    expr: "x", time: 1m,
        exp: {__name__="x", i="b"} 1E+01
        got: {__name__="x", i="a"} 1E+01


"#;
    assert_eq!(out, want);
}

#[test]
fn eval_time_between_evaluations_sees_the_earlier_one() {
    // Evaluations at 0, 2m, 4m: at 5m the alert (for: 2m) pending since
    // 2m has fired at 4m.
    let f = Files::new(&[
        ("r.yml", RULES),
        (
            "t.yml",
            r#"
rule_files: [r.yml]
evaluation_interval: 2m
tests:
  - interval: 1m
    input_series:
      - series: x
        values: 0 0 10x10
    alert_rule_test:
      - eval_time: 3m59s
        alertname: High
      - eval_time: 5m
        alertname: High
        exp_alerts:
          - exp_labels: {severity: page}
            exp_annotations: {summary: x is 10}
"#,
        ),
    ]);
    let (ok, out) = f.run("t.yml");
    assert!(ok, "{out}");
}

#[test]
fn groups_follow_group_eval_order() {
    // `b` reads what `a` records at the same time only when `a` runs first.
    let rules = r#"
groups:
  - name: b
    rules:
      - alert: Copied
        expr: rec > 0
  - name: a
    rules:
      - record: rec
        expr: x
"#;
    let test = |order: &str| {
        format!(
            r#"
rule_files: [r.yml]
{order}
tests:
  - interval: 1m
    input_series:
      - series: x
        values: 1 stale
    alert_rule_test:
      - eval_time: 0m
        alertname: Copied
        exp_alerts: [{{}}]
"#
        )
    };
    let f = Files::new(&[
        ("r.yml", rules),
        ("ordered.yml", &test("group_eval_order: [a, b]")),
        ("file_order.yml", &test("")),
    ]);
    assert!(f.run("ordered.yml").0);
    assert!(!f.run("file_order.yml").0);
}

#[test]
fn rule_evaluation_errors_end_the_test_group() {
    let rules = r#"
groups:
  - name: g
    rules:
      - record: dup
        expr: label_replace(x, "i", "same", "", "")
"#;
    let f = Files::new(&[
        ("r.yml", rules),
        (
            "t.yml",
            r#"
rule_files: [r.yml]
tests:
  - interval: 1m
    input_series:
      - series: x{i="a"}
        values: 1x3
      - series: x{i="b"}
        values: 1x3
    promql_expr_test:
      - expr: x
        eval_time: 2m
"#,
        ),
    ]);
    let (ok, out) = f.run("t.yml");
    assert!(!ok);
    assert!(
        out.contains("  FAILED:\n    rule: dup, time: 0s, err: "),
        "{out}"
    );
    assert!(!out.contains("expr:"), "{out}");
}

#[test]
fn globs_warnings_and_rule_file_errors() {
    let f = Files::new(&[
        ("rules/a.yml", RULES),
        (
            "rules/bad.yaml",
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: x >\n",
        ),
        (
            "t/ok.yml",
            "rule_files: ['../rules/*.yml', missing.yml]\ntests: []\n",
        ),
        ("t/bad.yml", "rule_files: ['../rules/*.yaml']\ntests: []\n"),
        ("t/badglob.yml", "tests: []\nrule_files: ['[']\n"),
    ]);
    let (ok, out) = f.run("t/ok.yml");
    assert!(ok, "{out}");
    assert!(
        out.contains("  WARNING: no file match pattern D/t/missing.yml\n"),
        "{out}"
    );
    let (ok, out) = f.run("t/bad.yml");
    assert!(!ok);
    assert!(out.contains("  FAILED:\nD/rules/bad.yaml:5: "), "{out}");
    let (ok, out) = f.run("t/badglob.yml");
    assert!(!ok);
    assert!(
        out.contains("D/t/badglob.yml:2: rule_files: syntax error in pattern"),
        "{out}"
    );
}

#[test]
fn test_file_errors_and_unreadable_files() {
    let f = Files::new(&[(
        "t.yml",
        "tests:\n  - interval: 1m\n    group_eval_order: [a]\n",
    )]);
    let (ok, out) = f.run("t.yml");
    assert!(!ok);
    assert!(out.contains("  FAILED:\nD/t.yml:3: "), "{out}");
    let (ok, out) = f.run("missing.yml");
    assert!(!ok);
    assert!(
        out.contains("D/missing.yml: cannot read test file"),
        "{out}"
    );
    let f = Files::new(&[("t.yml", "group_eval_order: [a, a]\n")]);
    let (ok, out) = f.run("t.yml");
    assert!(!ok);
    assert!(
        out.contains("group name repeated in evaluation order: a"),
        "{out}"
    );
}

#[test]
fn run_option_selects_test_groups_by_name() {
    let f = Files::new(&[(
        "t.yml",
        r#"
tests:
  - name: good
    input_series: [{series: x, values: "1"}]
    promql_expr_test: [{expr: x, eval_time: 0m, exp_samples: [{labels: x, value: 1}]}]
  - name: bad
    input_series: [{series: x, values: "1"}]
    promql_expr_test: [{expr: x, eval_time: 0m, exp_samples: [{labels: x, value: 2}]}]
"#,
    )]);
    assert!(!f.run("t.yml").0);
    let opts = TestOptions {
        run: Some(regex::Regex::new("^good$").unwrap()),
    };
    assert!(f.run_with("t.yml", &opts).0);
}

#[test]
fn scalars_and_fuzzy_compare() {
    let third = 1.0f64 / 3.0;
    let off = f64::from_bits(third.to_bits() + 1);
    let test = |fuzzy: bool| {
        format!(
            "fuzzy_compare: {fuzzy}\ntests:\n  - promql_expr_test:\n      - expr: '1/3'\n        eval_time: 0m\n        exp_samples: [{{labels: '{{}}', value: {off:?}}}]\n"
        )
    };
    let f = Files::new(&[("exact.yml", &test(false)), ("fuzzy.yml", &test(true))]);
    let (ok, out) = f.run("exact.yml");
    assert!(!ok);
    assert!(out.contains("got: {} 3.333333333333333E-01"), "{out}");
    assert!(f.run("fuzzy.yml").0);
}

#[test]
fn clean_folds_parent_dirs() {
    assert_eq!(
        clean(Path::new("a/b/../c/./d.yml")),
        PathBuf::from("a/c/d.yml")
    );
    assert_eq!(clean(Path::new("../x.yml")), PathBuf::from("../x.yml"));
}
