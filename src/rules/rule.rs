//! Validated rules, as the evaluator uses them, and Prometheus durations.

use promql_parser::parser::Expr;

use super::template::Template;
use crate::model::Labels;

/// The rules of all loaded files, in file order then group order.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub groups: Vec<Group>,
}

impl RuleSet {
    pub fn rule_count(&self) -> usize {
        self.groups.iter().map(|g| g.rules.len()).sum()
    }
}

/// A group: rules evaluated in order at one interval.
#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    /// The file it came from; with the name, the group's identity across
    /// reloads (as in Prometheus, where a group key is file + name).
    pub file: String,
    pub line: usize,
    /// `interval`; None means the global evaluation interval.
    pub interval_ms: Option<i64>,
    /// `query_offset`: rules query this far in the past.
    pub query_offset_ms: Option<i64>,
    /// `limit`: most series a rule may produce (alerts for alerting rules);
    /// 0 means no limit.
    pub limit: usize,
    /// `labels`, already merged into every rule's labels; kept for the API.
    pub labels: Labels,
    pub rules: Vec<Rule>,
}

impl Group {
    /// A stable key of the group (file + name), for state across reloads
    /// and for spreading evaluation slots (see `group::aligned_eval_time`).
    pub fn key(&self) -> String {
        format!("{};{}", self.file, self.name)
    }
}

#[derive(Debug, Clone)]
pub enum Rule {
    Alerting(AlertingRule),
    Recording(RecordingRule),
}

impl Rule {
    /// The alert name or recorded metric name.
    pub fn name(&self) -> &str {
        match self {
            Rule::Alerting(r) => &r.name,
            Rule::Recording(r) => &r.record,
        }
    }

    pub fn expr_text(&self) -> &str {
        match self {
            Rule::Alerting(r) => &r.expr_text,
            Rule::Recording(r) => &r.expr_text,
        }
    }

    pub fn line(&self) -> usize {
        match self {
            Rule::Alerting(r) => r.line,
            Rule::Recording(r) => r.line,
        }
    }

    /// A stable identity for carrying state over a reload: the kind, name,
    /// expression and label sources. A rule whose query or labels changed
    /// is a new rule and starts from inactive, as in Prometheus.
    pub fn identity(&self) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        let mut put = |s: &str| {
            h.update(s.as_bytes());
            h.update(&[0xff]);
        };
        match self {
            Rule::Alerting(r) => {
                put("alert");
                put(&r.name);
                put(&r.expr_text);
                for (k, t) in &r.labels {
                    put(k);
                    put(t.source());
                }
            }
            Rule::Recording(r) => {
                put("record");
                put(&r.record);
                put(&r.expr_text);
                for l in r.labels.iter() {
                    put(&l.name);
                    put(&l.value);
                }
            }
        }
        h.digest()
    }
}

#[derive(Debug, Clone)]
pub struct AlertingRule {
    pub name: String,
    pub expr: Expr,
    pub expr_text: String,
    /// `for`: how long the condition must hold before the alert fires.
    pub for_ms: i64,
    /// `keep_firing_for`: how long a firing alert keeps firing after the
    /// condition cleared.
    pub keep_firing_for_ms: i64,
    /// Group labels then rule labels (rule labels win), as templates; sorted
    /// by name.
    pub labels: Vec<(String, Template)>,
    pub annotations: Vec<(String, Template)>,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct RecordingRule {
    pub record: String,
    pub expr: Expr,
    pub expr_text: String,
    /// Group labels then rule labels (rule labels win).
    pub labels: Labels,
    pub line: usize,
}

/// Parses a Prometheus duration (`5m`, `1h30m`, `1d`, `500ms`, `0`) into
/// milliseconds. Units must come in decreasing order, each at most once; a
/// year is 365 days and a week 7 days, as in Prometheus.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let bad = || format!("not a valid duration string: {s:?}");
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err("empty duration string".into());
    }
    let mut rest = s;
    let mut next_unit = 0;
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        // "ms" before "m", so that "5ms" is not read as 5m followed by "s".
        let (i, (unit, mult)) = UNITS
            .iter()
            .enumerate()
            .skip(next_unit)
            .filter(|(_, (u, _))| rest.starts_with(u) && !(*u == "m" && rest.starts_with("ms")))
            .map(|(i, u)| (i, *u))
            .next()
            .ok_or_else(bad)?;
        rest = &rest[unit.len()..];
        next_unit = i + 1;
        total = n
            .checked_mul(mult)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| "duration out of range".to_string())?;
    }
    Ok(total)
}

/// Formats milliseconds the way Prometheus prints durations (`1h30m`, `0s`).
pub fn format_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let d = std::time::Duration::from_millis(ms.unsigned_abs());
    let s = promql_parser::util::display_duration(&d);
    if ms < 0 {
        format!("-{s}")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_prometheus() {
        assert_eq!(parse_duration("5m"), Ok(300_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("1d2h"), Ok(93_600_000));
        assert_eq!(parse_duration("500ms"), Ok(500));
        assert_eq!(parse_duration("1m500ms"), Ok(60_500));
        assert_eq!(parse_duration("1w"), Ok(604_800_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("0s"), Ok(0));
        for bad in ["", "5", "m", "30m1h", "5mm", "1.5m", "-1m", "5 m", "1h1h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_format_back() {
        assert_eq!(format_duration(5_400_000), "1h30m");
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(500), "500ms");
    }
}
