use super::*;

fn errors(text: &str) -> Vec<String> {
    parse_rule_file(text, "r.yml")
        .expect_err("expected errors")
        .iter()
        .map(|e| e.to_string())
        .collect()
}

const GOOD: &str = r#"
groups:
  - name: node
    interval: 30s
    limit: 10
    labels:
      team: ops
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
        labels:
          source: rule
      - alert: InstanceDown
        expr: up == 0
        for: 5m
        keep_firing_for: 1m
        labels:
          severity: "{{ if eq $labels.job \"db\" }}page{{ else }}ticket{{ end }}"
          team: dba
        annotations:
          summary: "{{ $labels.instance }} down"
  - name: other
    query_offset: 1m
    rules:
      - alert: Always
        expr: vector(1)
"#;

#[test]
fn parses_a_valid_file() {
    let groups = parse_rule_file(GOOD, "r.yml").unwrap();
    assert_eq!(groups.len(), 2);
    let g = &groups[0];
    assert_eq!(
        (g.name.as_str(), g.file.as_str(), g.line),
        ("node", "r.yml", 3)
    );
    assert_eq!((g.interval_ms, g.limit), (Some(30_000), 10));
    assert_eq!(g.labels, Labels::from_pairs(&[("team", "ops")]));
    let Rule::Recording(rec) = &g.rules[0] else {
        panic!()
    };
    assert_eq!(rec.record, "job:up:sum");
    assert_eq!(
        rec.labels,
        Labels::from_pairs(&[("source", "rule"), ("team", "ops")])
    );
    assert_eq!(rec.line, 9);
    let Rule::Alerting(a) = &g.rules[1] else {
        panic!()
    };
    assert_eq!(
        (a.name.as_str(), a.for_ms, a.keep_firing_for_ms, a.line),
        ("InstanceDown", 300_000, 60_000, 13)
    );
    // Rule labels override group labels; both are templates.
    let names: Vec<_> = a
        .labels
        .iter()
        .map(|(k, t)| (k.as_str(), t.source()))
        .collect();
    assert_eq!(names[1], ("team", "dba"));
    assert_eq!(a.annotations[0].0, "summary");
    assert_eq!(groups[1].query_offset_ms, Some(60_000));
    assert_eq!(groups[1].interval_ms, None);
}

#[test]
fn empty_and_comment_only_files_have_no_groups() {
    assert!(parse_rule_file("", "r.yml").unwrap().is_empty());
    assert!(parse_rule_file("# nothing yet\n", "r.yml")
        .unwrap()
        .is_empty());
    assert!(parse_rule_file("groups: []\n", "r.yml").unwrap().is_empty());
}

#[test]
fn yaml_and_schema_errors_carry_their_line() {
    let e = errors("groups:\n  - name: a\n    rules:\n      - alert: X\n        exprr: up\n");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("r.yml:5: groups[0].rules[0]: unknown field `exprr`"),
        "{e:?}"
    );
    let e = errors("groups:\n  - name: a\n    rules: [\n");
    assert!(
        e[0].starts_with("r.yml:4:") || e[0].starts_with("r.yml:3:"),
        "{e:?}"
    );
    let e = errors("groups:\n  - name: a\n    limit: many\n");
    assert!(
        e[0].starts_with("r.yml:3: groups[0].limit: invalid type"),
        "{e:?}"
    );
}

#[test]
fn reports_every_semantic_error_with_its_line() {
    let text = r#"groups:
  - name: g
    rules:
      - alert: Both
        record: both
        expr: up
      - expr: up
      - alert: BadExpr
        expr: sum(rate(x[5m])
      - record: "bad name"
        expr: up
      - record: "x{a=\"b\"}"
        expr: up
      - alert: BadLabels
        expr: up
        labels:
          "bad-label": x
          __name__: y
        annotations:
          "bad ann": z
      - alert: BadTemplate
        expr: up
        annotations:
          summary: "{{ $lables.instance }}"
      - alert: BadFor
        expr: up
        for: 5
        keep_firing_for: 1x
      - record: rec
        expr: up
        for: 1m
        annotations:
          a: b
      - alert: RangeExpr
        expr: up[5m]
      - alert: NoExpr
  - name: g
    rules: []
  - rules:
      - alert: InNameless
        expr: up
"#;
    let e = errors(text);
    let want = [
        "r.yml:5: group \"g\", rule 1, \"Both\": only one of 'record' and 'alert' must be set",
        "r.yml:7: group \"g\", rule 2, \"\": one of 'record' or 'alert' must be set",
        "r.yml:9: group \"g\", rule 3, \"BadExpr\": could not parse expression: parse error:",
        "r.yml:10: group \"g\", rule 4, \"bad name\": invalid recording rule name: bad name",
        "r.yml:12: group \"g\", rule 5, \"x{a=\\\"b\\\"}\": braces present in the recording rule name",
        "r.yml:17: group \"g\", rule 6, \"BadLabels\": invalid label name: bad-label",
        "r.yml:18: group \"g\", rule 6, \"BadLabels\": invalid label name: __name__",
        "r.yml:20: group \"g\", rule 6, \"BadLabels\": invalid annotation name: bad ann",
        "r.yml:24: group \"g\", rule 7, \"BadTemplate\": annotation \"summary\": template: __alert_BadTemplate:1: undefined variable \"$lables\"",
        "r.yml:27: group \"g\", rule 8, \"BadFor\": invalid 'for': not a valid duration string: \"5\"",
        "r.yml:28: group \"g\", rule 8, \"BadFor\": invalid 'keep_firing_for': not a valid duration string: \"1x\"",
        "r.yml:29: group \"g\", rule 9, \"rec\": invalid field 'annotations' in recording rule",
        "r.yml:29: group \"g\", rule 9, \"rec\": invalid field 'for' in recording rule",
        "r.yml:35: group \"g\", rule 10, \"RangeExpr\": expression must be an instant vector or a scalar, not a matrix",
        "r.yml:36: group \"g\", rule 11, \"NoExpr\": field 'expr' must be set in rule",
        "r.yml:37: group name \"g\" is repeated in the same file",
        "r.yml:40: group name must not be empty",
    ];
    for (i, w) in want.iter().enumerate() {
        assert!(
            e.get(i).is_some_and(|g| g.starts_with(w)),
            "error {i}:\n want {w}\n got  {:?}",
            e.get(i)
        );
    }
    assert_eq!(e.len(), want.len(), "{e:#?}");
}

#[test]
fn lines_are_right_for_flow_style_and_anchors() {
    let text = "groups: [{name: a, rules: [\n  {alert: A, expr: up},\n  {alert: B, expr: 'sum(', labels: {x: y}}]}]\n";
    let e = errors(text);
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("r.yml:3: group \"a\", rule 2, \"B\": could not parse expression"),
        "{e:?}"
    );
    let text =
        "x: &e 'up =='\ngroups:\n  - name: a\n    rules:\n      - alert: A\n        expr: *e\n";
    // An alias points at the anchored scalar; any line in the file beats none.
    let e = parse_rule_file(text, "r.yml").unwrap_err();
    assert!(
        e[0].message.contains("unknown field `x`") || e[0].line > 0,
        "{e:?}"
    );
}

#[test]
fn span_probe_reads_serde_norways_error_format() {
    // If serde_norway changes its Debug form, lines silently become 0: catch it here.
    let e: serde_norway::Error = serde_norway::from_str::<u8>("\n\n  x").unwrap_err();
    assert_eq!(line_of(&e), 3);
}

#[test]
fn load_files_collects_errors_of_all_files() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yml");
    let bad = dir.path().join("bad.yml");
    std::fs::write(&good, GOOD).unwrap();
    std::fs::write(
        &bad,
        "groups:\n  - name: b\n    rules:\n      - alert: X\n        expr: 'up +'\n",
    )
    .unwrap();
    let set = load_files(&[&good]).unwrap();
    assert_eq!((set.groups.len(), set.rule_count()), (2, 3));
    let missing = dir.path().join("missing.yml");
    let e = load_files(&[&good, &bad, &missing]).unwrap_err();
    assert_eq!(e.len(), 2);
    assert_eq!((e[0].file.as_str(), e[0].line), (bad.to_str().unwrap(), 5));
    assert!(e[1].message.starts_with("cannot read rule file"));
}

#[test]
fn metric_names() {
    assert!(is_metric_name("job:up:sum"));
    assert!(is_metric_name("_x1"));
    assert!(!is_metric_name("1x"));
    assert!(!is_metric_name("a-b"));
    assert!(!is_metric_name(""));
}
