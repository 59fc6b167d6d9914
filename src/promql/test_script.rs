//! An interpreter for Prometheus' PromQL test scripts (the `promqltest`
//! format), and the series notation they share with promtool's rule unit
//! tests (`input_series`).
//!
//! ```text
//! load 1m
//!     http_requests_total{job="api"} 0+10x10 _ stale 1 2
//!
//! eval instant at 5m rate(http_requests_total[5m])
//!     {job="api"} 0.16666666666666666
//!
//! eval range from 0 to 2m step 1m http_requests_total
//!     http_requests_total{job="api"} 0 10 20
//!
//! eval instant at 1m a + on(x) b
//!     expect fail regex: many-to-many
//!
//! clear
//! ```
//!
//! Series values use the expanding notation: `a+bxN` is `a`, then `N` more
//! values each `b` larger (`a-bxN` decreasing, `axN` repeating), `_` is a
//! missing sample, `_xN` are `N` missing samples and `stale` is a staleness
//! marker.

use crate::model::{stale_nan, Labels, LabelsBuilder, MatchOp};
use crate::promql::stats::almost_equal;
use crate::promql::{parse, Engine, EngineOptions, Value};
use crate::store::{Store, StoreConfig};

/// Expands a sequence in series notation into one entry per step: `None`
/// for a missing sample, a staleness marker (see
/// [`crate::model::is_stale_nan`]) for `stale`.
pub fn expand_series_values(notation: &str) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for tok in notation.split_whitespace() {
        if tok == "_" {
            out.push(None);
        } else if let Some(n) = tok.strip_prefix("_x") {
            out.extend(std::iter::repeat_n(None, parse_count(n, tok)?));
        } else if tok == "stale" {
            out.push(Some(stale_nan()));
        } else if let Some(p) = tok.rfind('x').filter(|&p| p > 0) {
            let n = parse_count(&tok[p + 1..], tok)?;
            let head = &tok[..p];
            let split = head
                .char_indices()
                .skip(1)
                .find(|&(i, c)| (c == '+' || c == '-') && !head[..i].ends_with(['e', 'E']));
            let (mut v, inc) = match split {
                Some((i, c)) => {
                    let inc = parse_number(&head[i + 1..])?;
                    (parse_number(&head[..i])?, if c == '-' { -inc } else { inc })
                }
                None => (parse_number(head)?, 0.0),
            };
            // Cumulative addition, as Prometheus expands, so that
            // fractional increments round the same way.
            out.push(Some(v));
            for _ in 0..n {
                v += inc;
                out.push(Some(v));
            }
        } else {
            out.push(Some(parse_number(tok)?));
        }
    }
    Ok(out)
}

fn parse_count(s: &str, tok: &str) -> Result<usize, String> {
    s.parse()
        .map_err(|_| format!("invalid repetition count in {tok:?}"))
}

fn parse_number(s: &str) -> Result<f64, String> {
    match s {
        "Inf" | "+Inf" | "inf" | "+inf" => Ok(f64::INFINITY),
        "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
        "NaN" | "nan" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("invalid number {s:?}")),
    }
}

/// Parses a series description such as `up{job="api", instance="a:1"}` or
/// `{job="api"}` into its label set.
pub fn parse_series_labels(desc: &str) -> Result<Labels, String> {
    let desc = desc.trim();
    if desc == "{}" {
        return Ok(Labels::empty());
    }
    let expr = promql_parser::parser::parse(desc).map_err(|e| format!("{desc}: {e}"))?;
    let promql_parser::parser::Expr::VectorSelector(vs) = expr else {
        return Err(format!("{desc}: not a series description"));
    };
    let mut b = LabelsBuilder::new();
    if let Some(name) = &vs.name {
        b.set(crate::model::METRIC_NAME, name);
    }
    for m in &vs.matchers.matchers {
        if !matches!(m.op, MatchOp::Equal) {
            return Err(format!(
                "{desc}: only '=' is allowed in a series description"
            ));
        }
        b.set(&m.name, &m.value);
    }
    Ok(b.into_labels())
}

/// Parses `metric{labels} <values...>` into the label set and the
/// expanded values.
pub fn parse_series_line(line: &str) -> Result<(Labels, Vec<Option<f64>>), String> {
    let line = line.trim();
    let end = match (line.find('{'), line.find(char::is_whitespace)) {
        (Some(b), ws) if ws.is_none_or(|w| b < w) => closing_brace(line, b)? + 1,
        (_, Some(w)) => w,
        (_, None) => line.len(),
    };
    let labels = parse_series_labels(&line[..end])?;
    Ok((labels, expand_series_values(&line[end..])?))
}

fn closing_brace(s: &str, open: usize) -> Result<usize, String> {
    let mut in_str = false;
    let mut escaped = false;
    for (i, c) in s[open..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_str => escaped = true,
            '"' => in_str = !in_str,
            '}' if !in_str => return Ok(open + i),
            _ => {}
        }
    }
    Err(format!("unclosed '{{' in {s:?}"))
}

/// Parses a duration like `5m`, `1h30m`, `90s`, `250ms`, `0` into
/// milliseconds; a bare number counts seconds.
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    if let Ok(n) = body.parse::<f64>() {
        let ms = (n * 1000.0).round() as i64;
        return Ok(if neg { -ms } else { ms });
    }
    let mut total = 0i64;
    let mut rest = body;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("invalid duration {s:?}"));
        }
        let n: i64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration {s:?}"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            _ => return Err(format!("invalid duration {s:?}")),
        };
        total += n * unit;
        rest = &rest[unit_len..];
    }
    Ok(if neg { -total } else { total })
}

/// What an `eval` expects.
#[derive(Default)]
struct Expectations {
    fail: bool,
    fail_msg: Option<String>,
    fail_regex: Option<String>,
    ordered: bool,
    scalar: Option<f64>,
    string: Option<String>,
    series: Vec<(Labels, Vec<Option<f64>>)>,
    /// `expect range vector from .. to .. step ..`: the steps of the series.
    range: Option<(i64, i64, i64)>,
}

/// Runs a test script; returns every failure, each prefixed with
/// `name:line`.
pub fn run_script(name: &str, src: &str) -> Result<(), String> {
    let lines: Vec<&str> = src.lines().collect();
    let mut errors = Vec::new();
    let mut store = new_store();
    let engine = Engine::new(EngineOptions::default());
    let mut i = 0;
    while i < lines.len() {
        let line = strip_comment(lines[i]).trim();
        let lineno = i + 1;
        i += 1;
        if line.is_empty() {
            continue;
        }
        let block_start = i;
        if line != "clear" {
            while i < lines.len() && !ends_block(lines[i]) {
                i += 1;
            }
        }
        let block: Vec<&str> = lines[block_start..i]
            .iter()
            .map(|l| strip_comment(l).trim())
            .filter(|l| !l.is_empty())
            .collect();
        let res = if line == "clear" {
            store = new_store();
            Ok(())
        } else if let Some(step) = line.strip_prefix("load ") {
            load(&store, step, &block)
        } else if line.starts_with("eval") {
            eval(&engine, &store, line, &block)
        } else {
            Err(format!("unknown command {line:?}"))
        };
        if let Err(e) = res {
            errors.push(format!("{name}:{lineno}: {e}"));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

fn new_store() -> Store {
    Store::new(StoreConfig {
        retention_ms: i64::MAX / 4,
        max_series: 1_000_000,
    })
}

/// A block of data or expectations ends at a blank line or at the next
/// command written at the start of a line.
fn ends_block(l: &str) -> bool {
    let l = strip_comment(l);
    l.trim().is_empty()
        || l.starts_with("eval")
        || l.starts_with("load ")
        || l.trim_end() == "clear"
}

fn strip_comment(l: &str) -> &str {
    if l.trim_start().starts_with('#') {
        ""
    } else {
        l
    }
}

fn load(store: &Store, step: &str, block: &[&str]) -> Result<(), String> {
    let gap = parse_duration_ms(step)?;
    for line in block {
        let (labels, vals) = parse_series_line(line)?;
        for (i, v) in vals.iter().enumerate() {
            if let Some(v) = v {
                store
                    .append_labels(&labels, i as i64 * gap, *v)
                    .map_err(|e| format!("loading {labels}: {e}"))?;
            }
        }
    }
    Ok(())
}

fn eval(engine: &Engine, store: &Store, line: &str, block: &[&str]) -> Result<(), String> {
    let (cmd, rest) = line
        .split_once(char::is_whitespace)
        .ok_or("incomplete eval")?;
    let mut exp = Expectations {
        fail: cmd == "eval_fail",
        ordered: cmd == "eval_ordered",
        ..Default::default()
    };
    parse_expectations(block, &mut exp)?;
    let rest = rest.trim_start();
    if let Some(r) = rest.strip_prefix("instant") {
        let r = r
            .trim_start()
            .strip_prefix("at")
            .ok_or("expected 'at'")?
            .trim_start();
        let (t, q) = r.split_once(char::is_whitespace).ok_or("missing query")?;
        eval_instant(engine, store, parse_duration_ms(t)?, q.trim(), &exp)
    } else if let Some(r) = rest.strip_prefix("range") {
        let r = r
            .trim_start()
            .strip_prefix("from")
            .ok_or("expected 'from'")?;
        let (from, r) = r.split_once(" to ").ok_or("expected 'to'")?;
        let (to, r) = r.split_once(" step ").ok_or("expected 'step'")?;
        let (step, q) = r
            .trim_start()
            .split_once(char::is_whitespace)
            .ok_or("missing query")?;
        let (from, to, step) = (
            parse_duration_ms(from)?,
            parse_duration_ms(to)?,
            parse_duration_ms(step)?,
        );
        eval_range(engine, store, (from, to, step), q.trim(), &exp)
    } else {
        Err(format!("invalid eval command {line:?}"))
    }
}

fn parse_expectations(block: &[&str], exp: &mut Expectations) -> Result<(), String> {
    for l in block {
        if let Some(r) = l.strip_prefix("expect range vector from ") {
            let (from, r) = r.split_once(" to ").ok_or("expected 'to'")?;
            let (to, step) = r.split_once(" step ").ok_or("expected 'step'")?;
            exp.range = Some((
                parse_duration_ms(from)?,
                parse_duration_ms(to)?,
                parse_duration_ms(step)?,
            ));
        } else if let Some(r) = l.strip_prefix("expect string ") {
            exp.string = Some(r.trim().trim_matches('"').to_owned());
        } else if let Some(r) = l.strip_prefix("expect ") {
            let (kind, arg) = r.split_once(char::is_whitespace).unwrap_or((r, ""));
            match kind.trim() {
                "fail" => {
                    exp.fail = true;
                    let arg = arg.trim();
                    if let Some(m) = arg.strip_prefix("msg:") {
                        exp.fail_msg = Some(m.trim().trim_matches('"').to_owned());
                    } else if let Some(m) = arg.strip_prefix("regex:") {
                        exp.fail_regex = Some(m.trim().trim_matches('"').to_owned());
                    }
                }
                "ordered" => exp.ordered = true,
                // This engine produces no annotations.
                "warn" | "info" | "no_warn" | "no_info" => {}
                k => return Err(format!("unknown expectation {k:?}")),
            }
        } else if let Ok(v) = parse_number(l) {
            exp.scalar = Some(v);
        } else {
            exp.series.push(parse_series_line(l)?);
        }
    }
    Ok(())
}

fn check_failure(exp: &Expectations, err: &str) -> Result<(), String> {
    if let Some(m) = &exp.fail_msg {
        if !err.contains(m.as_str()) {
            return Err(format!("expected error {m:?}, got {err:?}"));
        }
    }
    if let Some(r) = &exp.fail_regex {
        let re = regex::Regex::new(r).map_err(|e| e.to_string())?;
        if !re.is_match(err) {
            return Err(format!("expected error matching {r:?}, got {err:?}"));
        }
    }
    Ok(())
}

fn eval_instant(
    engine: &Engine,
    store: &Store,
    t: i64,
    q: &str,
    exp: &Expectations,
) -> Result<(), String> {
    let res = parse(q).and_then(|e| engine.instant_query(store, &e, t));
    let v = match (res, exp.fail) {
        (Err(e), true) => return check_failure(exp, &e.to_string()),
        (Ok(v), true) => return Err(format!("expected {q} to fail, got {v:?}")),
        (Err(e), false) => return Err(format!("{q}: {e}")),
        (Ok(v), false) => v,
    };
    match &v {
        Value::Scalar(s) => {
            let want = exp
                .scalar
                .ok_or_else(|| format!("{q}: unexpected scalar {s}"))?;
            if !almost_equal(want, *s, 1e-6) {
                return Err(format!("{q}: expected scalar {want}, got {s}"));
            }
        }
        Value::String(s) => {
            if exp.string.as_deref() != Some(s) {
                return Err(format!("{q}: expected string {:?}, got {s:?}", exp.string));
            }
        }
        Value::Vector(vec) => {
            let got: Vec<(Labels, Vec<(i64, f64)>)> = vec
                .iter()
                .map(|s| (s.labels.clone(), vec![(t, s.v)]))
                .collect();
            let want = expected_points(&exp.series, t, t, 1)?;
            compare(q, &want, &got, exp.ordered)?;
        }
        Value::Matrix(m) => {
            let (from, to, step) = exp.range.unwrap_or((t, t, 1));
            let got: Vec<(Labels, Vec<(i64, f64)>)> = m
                .iter()
                .map(|s| {
                    (
                        s.labels.clone(),
                        s.samples.iter().map(|p| (p.t, p.v)).collect(),
                    )
                })
                .collect();
            let want = expected_points(&exp.series, from, to, step)?;
            compare(q, &want, &got, false)?;
        }
    }
    if matches!(v, Value::Scalar(_) | Value::Vector(_)) {
        check_range_consistency(engine, store, t, q, &v)?;
    }
    Ok(())
}

/// Like Prometheus' test runner, re-runs an instant query as a range query
/// around its time and checks that the middle step gives the same answer.
fn check_range_consistency(
    engine: &Engine,
    store: &Store,
    t: i64,
    q: &str,
    inst: &Value,
) -> Result<(), String> {
    let e = parse(q).map_err(|e| e.to_string())?;
    let Value::Matrix(m) = engine
        .range_query(store, &e, t - 60_000, t + 60_000, 60_000)
        .map_err(|e| format!("{q} as range query: {e}"))?
    else {
        return Err(format!("{q} as range query: not a matrix"));
    };
    let got: Vec<(Labels, Vec<(i64, f64)>)> = m
        .iter()
        .filter_map(|s| {
            s.samples
                .iter()
                .find(|p| p.t == t)
                .map(|p| (s.labels.clone(), vec![(t, p.v)]))
        })
        .collect();
    let want: Vec<(Labels, Vec<(i64, f64)>)> = match inst {
        Value::Scalar(v) => vec![(Labels::empty(), vec![(t, *v)])],
        Value::Vector(v) => v
            .iter()
            .map(|s| (s.labels.clone(), vec![(t, s.v)]))
            .collect(),
        _ => return Ok(()),
    };
    compare(
        &format!("{q} (range query at the same time)"),
        &want,
        &got,
        false,
    )
}

fn eval_range(
    engine: &Engine,
    store: &Store,
    (from, to, step): (i64, i64, i64),
    q: &str,
    exp: &Expectations,
) -> Result<(), String> {
    let res = parse(q).and_then(|e| engine.range_query(store, &e, from, to, step));
    let v = match (res, exp.fail) {
        (Err(e), true) => return check_failure(exp, &e.to_string()),
        (Ok(v), true) => return Err(format!("expected {q} to fail, got {v:?}")),
        (Err(e), false) => return Err(format!("{q}: {e}")),
        (Ok(v), false) => v,
    };
    let Value::Matrix(m) = v else {
        return Err(format!("{q}: range query did not return a matrix"));
    };
    let got: Vec<(Labels, Vec<(i64, f64)>)> = m
        .iter()
        .map(|s| {
            (
                s.labels.clone(),
                s.samples.iter().map(|p| (p.t, p.v)).collect(),
            )
        })
        .collect();
    let want = expected_points(&exp.series, from, to, step)?;
    compare(q, &want, &got, false)
}

type Points = Vec<(Labels, Vec<(i64, f64)>)>;

fn expected_points(
    series: &[(Labels, Vec<Option<f64>>)],
    from: i64,
    to: i64,
    step: i64,
) -> Result<Points, String> {
    series
        .iter()
        .map(|(l, vals)| {
            let pts: Vec<(i64, f64)> = vals
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.map(|v| (from + i as i64 * step, v)))
                .collect();
            if let Some(&(t, _)) = pts.last() {
                if t > to {
                    return Err(format!("expected series {l} has more points than steps"));
                }
            }
            Ok((l.clone(), pts))
        })
        .collect()
}

fn compare(q: &str, want: &Points, got: &Points, ordered: bool) -> Result<(), String> {
    let show = |p: &Points| {
        p.iter()
            .map(|(l, pts)| format!("  {l} {pts:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let fail = || {
        Err(format!(
            "{q}:\nexpected:\n{}\ngot:\n{}",
            show(want),
            show(got)
        ))
    };
    if want.len() != got.len() {
        return fail();
    }
    for (i, (l, pts)) in want.iter().enumerate() {
        let found = if ordered {
            Some(&got[i]).filter(|g| &g.0 == l)
        } else {
            got.iter().find(|g| &g.0 == l)
        };
        let Some((_, gpts)) = found else {
            return fail();
        };
        if gpts.len() != pts.len()
            || gpts
                .iter()
                .zip(pts)
                .any(|(a, b)| a.0 != b.0 || !almost_equal(b.1, a.1, 1e-6))
        {
            return fail();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::is_stale_nan;

    #[test]
    fn expands_series_notation() {
        let v = expand_series_values("1 -2+4x3 1-2x2 _ _x2 stale 5x2 1e3+1x1").unwrap();
        let want = [
            Some(1.0),
            Some(-2.0),
            Some(2.0),
            Some(6.0),
            Some(10.0),
            Some(1.0),
            Some(-1.0),
            Some(-3.0),
            None,
            None,
            None,
        ];
        assert_eq!(&v[..11], &want);
        assert!(is_stale_nan(v[11].unwrap()));
        assert_eq!(
            &v[12..],
            &[Some(5.0), Some(5.0), Some(5.0), Some(1000.0), Some(1001.0)]
        );
        assert!(expand_series_values("1+x").is_err());
        assert!(expand_series_values("NaN Inf -Inf").unwrap()[0]
            .unwrap()
            .is_nan());
    }

    #[test]
    fn parses_series_lines_and_durations() {
        let (l, v) = parse_series_line(r#"up{job="a b", x="}"} 1 2"#).unwrap();
        assert_eq!(
            l,
            Labels::from_pairs(&[("__name__", "up"), ("job", "a b"), ("x", "}")])
        );
        assert_eq!(v, vec![Some(1.0), Some(2.0)]);
        let (l, _) = parse_series_line("{} 3").unwrap();
        assert!(l.is_empty());
        assert_eq!(parse_duration_ms("1h30m").unwrap(), 5_400_000);
        assert_eq!(parse_duration_ms("0").unwrap(), 0);
        assert_eq!(parse_duration_ms("250ms").unwrap(), 250);
        assert_eq!(parse_duration_ms("-5m").unwrap(), -300_000);
    }

    #[test]
    fn promql_test_scripts() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/promql/testdata");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "test"))
            .collect();
        files.sort();
        assert!(!files.is_empty());
        let mut failures = Vec::new();
        for f in files {
            let src = std::fs::read_to_string(&f).unwrap();
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            if let Err(e) = run_script(&name, &src) {
                failures.push(e);
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }
}
