//! A backtest report for a person at a terminal, or as JSON for tools.
//!
//! The text leads with what matters when tuning a threshold: per alerting
//! rule whether and how often it would have fired and for how long, then
//! each label set's episodes on one line each, and for a rule that never
//! fired, how close it came.

use std::fmt::Write as _;

use serde_json::{json, Value as Json};

use super::time::{format_ago, format_date, format_dur, format_time, same_day};
use super::{
    AlertReport, Approach, Episode, GroupReport, RecordingReport, Report, RuleErrors, RuleReport,
};
use crate::model::Labels;

/// Label sets shown per rule, and episodes per label set; JSON has all.
const MAX_SERIES_SHOWN: usize = 20;
const MAX_EPISODES_SHOWN: usize = 12;

/// The report as text. `now_ms` is for the relative times (`-42m`).
pub fn render_text(report: &Report, now_ms: i64) -> String {
    let mut out = String::new();
    let f = Fmt {
        now: now_ms,
        short: same_day(report.from_ms, report.to_ms),
    };
    let span = report.to_ms - report.from_ms;
    let _ = writeln!(
        out,
        "Backtest from {} ({}) to {} ({}), {}; times are UTC{}",
        format_time(report.from_ms, false),
        format_ago(report.from_ms, now_ms),
        format_time(report.to_ms, false),
        format_ago(report.to_ms, now_ms),
        format_dur(span),
        if f.short {
            format!(" on {}", format_date(report.from_ms))
        } else {
            String::new()
        }
    );
    for n in &report.notes {
        let _ = writeln!(out, "{n}");
    }
    for w in &report.warnings {
        let _ = writeln!(out, "warning: {w}");
    }

    let mut fired: Vec<String> = Vec::new();
    let mut alerts = 0;
    for g in &report.groups {
        for r in &g.rules {
            out.push('\n');
            match r {
                RuleReport::Alerting(a) => {
                    alerts += 1;
                    f.alert(&mut out, a, g, report);
                    let n = a.times_fired();
                    if n > 0 {
                        fired.push(format!(
                            "{} ({}×, {})",
                            a.name,
                            n,
                            format_dur(a.firing_ms(report.to_ms))
                        ));
                    }
                }
                RuleReport::Recording(r) => f.recording(&mut out, r, &g.file),
            }
        }
    }
    out.push('\n');
    if report.groups.iter().all(|g| g.rules.is_empty()) {
        out.push_str("No rules to evaluate.\n");
    } else if fired.is_empty() {
        let _ = writeln!(
            out,
            "Summary: none of {alerts} alerting rules would have fired."
        );
    } else {
        let _ = writeln!(
            out,
            "Summary: {} of {alerts} alerting rules would have fired: {}.",
            fired.len(),
            fired.join(", ")
        );
    }
    out
}

struct Fmt {
    now: i64,
    /// Only the time of day (the whole range is within one UTC day).
    short: bool,
}

impl Fmt {
    /// `03:12:05 (-8m)`.
    fn at(&self, t: i64) -> String {
        format!(
            "{} ({})",
            format_time(t, self.short),
            format_ago(t, self.now)
        )
    }

    /// `03:12:05 (-8m, what)`.
    fn at_with(&self, t: i64, what: &str) -> String {
        format!(
            "{} ({}, {what})",
            format_time(t, self.short),
            format_ago(t, self.now)
        )
    }

    fn alert(&self, out: &mut String, a: &AlertReport, g: &GroupReport, report: &Report) {
        let file = &g.file;
        let mut head = format!("ALERT {} ({file}:{}", a.name, a.line);
        if a.for_ms > 0 {
            let _ = write!(head, ", for {}", format_dur(a.for_ms));
        }
        if a.keep_firing_for_ms > 0 {
            let _ = write!(
                head,
                ", keep_firing_for {}",
                format_dur(a.keep_firing_for_ms)
            );
        }
        head.push_str("): ");
        let fired = a.times_fired();
        let span = (report.to_ms - report.from_ms).max(1);
        if fired > 0 {
            let firing = a.firing_ms(report.to_ms);
            let _ = write!(
                head,
                "fired {fired} {}, firing {} in total ({:.0}% of the range)",
                if fired == 1 { "time" } else { "times" },
                format_dur(firing),
                firing as f64 * 100.0 / span as f64
            );
            let unfired = a.series.iter().flat_map(|s| &s.episodes);
            let unfired = unfired.filter(|e| e.fired_at_ms.is_none());
            let (cleared, pending): (Vec<&Episode>, Vec<&Episode>) =
                unfired.partition(|e| e.ended_at_ms.is_some());
            if !cleared.is_empty() {
                let _ = write!(
                    head,
                    "; {} more went pending and cleared before firing",
                    cleared.len()
                );
            }
            if !pending.is_empty() {
                let _ = write!(head, "; {} pending at the end", pending.len());
            }
        } else {
            head.push_str("never fired");
            let pending = a.times_pending();
            if pending > 0 {
                let longest = a.longest_unfired_pending_ms(report.to_ms).unwrap_or(0);
                let _ = write!(
                    head,
                    "; pending {pending} {}, longest {} (for is {})",
                    if pending == 1 { "time" } else { "times" },
                    format_dur(longest),
                    format_dur(a.for_ms)
                );
            }
            match (&a.condition, &a.closest) {
                (
                    Some(c),
                    Some(Approach::Extreme {
                        value,
                        at_ms,
                        labels,
                    }),
                ) => {
                    let _ = write!(
                        head,
                        "; {} {} vs threshold {} {} at {}{}",
                        if c.fires_low() {
                            "min value"
                        } else {
                            "max value"
                        },
                        format_value(*value),
                        c.op,
                        format_value(c.threshold),
                        self.at(*at_ms),
                        on_labels(labels)
                    );
                }
                (Some(c), Some(Approach::NoData)) => {
                    let _ = write!(
                        head,
                        "; `{}` returned no data at any evaluation (check the metric name and labels)",
                        c.lhs
                    );
                }
                (Some(_), None) => {}
                (None, _) if pending == 0 && a.errors.is_none() => {
                    head.push_str("; the expression never returned a result");
                }
                (None, _) => {}
            }
        }
        let _ = writeln!(out, "{head}");
        let _ = writeln!(out, "  expr: {}", one_line(&a.expr));
        if let Some(e) = &a.errors {
            self.errors(out, e);
        }
        for s in a.series.iter().take(MAX_SERIES_SHOWN) {
            let _ = writeln!(out, "  {}", series_name(&s.labels, &a.name));
            let skip = s.episodes.len().saturating_sub(MAX_EPISODES_SHOWN);
            if skip > 0 {
                let _ = writeln!(out, "    … {skip} earlier episodes");
            }
            for e in &s.episodes[skip..] {
                let _ = writeln!(
                    out,
                    "    {}",
                    self.episode(e, a, g.first_eval_ms, report.to_ms)
                );
            }
        }
        if a.series.len() > MAX_SERIES_SHOWN {
            let _ = writeln!(
                out,
                "  … and {} more label sets (--format json lists all)",
                a.series.len() - MAX_SERIES_SHOWN
            );
        }
    }

    /// `pending at 03:12:05 (-8m), firing at 03:17:05 (-3m, after 5m),
    /// resolved at 03:20:10 (now, fired 3m5s); peak 0.93 at 03:18:00`.
    fn episode(&self, e: &Episode, a: &AlertReport, first_eval_ms: i64, to_ms: i64) -> String {
        let mut s = if e.pending_at_ms == first_eval_ms {
            format!(
                "pending at {}",
                self.at_with(e.pending_at_ms, "already true at the start")
            )
        } else {
            format!("pending at {}", self.at(e.pending_at_ms))
        };
        match e.fired_at_ms {
            Some(f) => {
                let _ = write!(
                    s,
                    ", firing at {}",
                    self.at_with(f, &format!("after {}", format_dur(f - e.pending_at_ms)))
                );
                match e.ended_at_ms {
                    Some(r) => {
                        let _ = write!(
                            s,
                            ", resolved at {}",
                            self.at_with(r, &format!("fired {}", format_dur(r - f)))
                        );
                    }
                    None => {
                        let _ = write!(
                            s,
                            ", still firing at the end ({} so far)",
                            format_dur(to_ms - f)
                        );
                    }
                }
            }
            None => match e.ended_at_ms {
                Some(c) => {
                    let _ = write!(
                        s,
                        ", cleared at {}",
                        self.at_with(
                            c,
                            &format!(
                                "after {} of the {} needed",
                                format_dur(c - e.pending_at_ms),
                                format_dur(a.for_ms)
                            )
                        )
                    );
                }
                None => {
                    let _ = write!(
                        s,
                        ", still pending at the end ({} of the {} needed)",
                        format_dur(to_ms - e.pending_at_ms),
                        format_dur(a.for_ms)
                    );
                }
            },
        }
        let _ = write!(
            s,
            "; peak {} at {}",
            format_value(e.peak),
            format_time(e.peak_at_ms, self.short)
        );
        s
    }

    fn recording(&self, out: &mut String, r: &RecordingReport, file: &str) {
        let _ = writeln!(
            out,
            "RECORD {} ({file}:{}): {} series, {} samples",
            r.record, r.line, r.series, r.samples
        );
        let _ = writeln!(out, "  expr: {}", one_line(&r.expr));
        if let Some(e) = &r.errors {
            self.errors(out, e);
        }
    }

    fn errors(&self, out: &mut String, e: &RuleErrors) {
        let _ = writeln!(
            out,
            "  ! {} {} failed, the first at {}: {}",
            e.count,
            if e.count == 1 {
                "evaluation"
            } else {
                "evaluations"
            },
            self.at(e.first_at_ms),
            e.first
        );
    }
}

/// The alert's labels without `alertname` (it is in the heading), or
/// `(no labels)`.
fn series_name(labels: &Labels, alertname: &str) -> String {
    let mut b = crate::model::LabelsBuilder::from_labels(labels);
    if labels.get(super::super::alert::ALERTNAME) == Some(alertname) {
        b.del(super::super::alert::ALERTNAME);
    }
    let l = b.into_labels();
    if l.is_empty() {
        "(no labels)".into()
    } else {
        l.to_string()
    }
}

fn on_labels(labels: &Labels) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!(" on {labels}")
    }
}

fn one_line(expr: &str) -> String {
    expr.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A value as a person compares it with a threshold: integers in full,
/// others to four significant digits (more when the integer part is longer),
/// without trailing zeros.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == v.trunc() && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    let a = v.abs();
    if !(1e-4..1e15).contains(&a) {
        return format!("{v:.3e}");
    }
    // Zero or negative below 1, counting the zeros after the point.
    let int_digits = a.log10().floor() as i32 + 1;
    let decimals = (4 - int_digits).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn ts(ms: i64) -> Json {
    json!(super::time::format_rfc3339_ms(ms))
}

fn secs(ms: i64) -> Json {
    json!(ms as f64 / 1000.0)
}

fn labels_json(l: &Labels) -> Json {
    Json::Object(
        l.iter()
            .map(|l| (l.name.clone(), Json::String(l.value.clone())))
            .collect(),
    )
}

fn errors_json(e: &Option<RuleErrors>) -> Json {
    match e {
        None => Json::Null,
        Some(e) => json!({"count": e.count, "first_at": ts(e.first_at_ms), "first": e.first}),
    }
}

/// The report as JSON: times in RFC 3339 (UTC, milliseconds), durations
/// in seconds, values as numbers (null for NaN).
pub fn render_json(report: &Report) -> String {
    let groups: Vec<Json> = report
        .groups
        .iter()
        .map(|g| {
            let rules: Vec<Json> = g
                .rules
                .iter()
                .map(|r| match r {
                    RuleReport::Alerting(a) => alert_json(a, g, report.to_ms),
                    RuleReport::Recording(r) => json!({
                        "type": "recording",
                        "name": r.record,
                        "expr": r.expr,
                        "file": g.file,
                        "line": r.line,
                        "series": r.series,
                        "samples": r.samples,
                        "errors": errors_json(&r.errors),
                    }),
                })
                .collect();
            json!({
                "name": g.name,
                "file": g.file,
                "interval_seconds": secs(g.interval_ms),
                "evaluations": g.evaluations,
                "rules": rules,
            })
        })
        .collect();
    let v = json!({
        "from": ts(report.from_ms),
        "to": ts(report.to_ms),
        "notes": report.notes,
        "warnings": report.warnings,
        "groups": groups,
    });
    let mut s = serde_json::to_string_pretty(&v)
        .unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()));
    s.push('\n');
    s
}

fn alert_json(a: &AlertReport, g: &GroupReport, to_ms: i64) -> Json {
    let file = &g.file;
    let series: Vec<Json> = a
        .series
        .iter()
        .map(|s| {
            let episodes: Vec<Json> = s
                .episodes
                .iter()
                .map(|e| {
                    let outcome = match (e.fired_at_ms, e.ended_at_ms) {
                        (Some(_), Some(_)) => "resolved",
                        (Some(_), None) => "firing",
                        (None, Some(_)) => "cleared",
                        (None, None) => "pending",
                    };
                    json!({
                        "pending_at": ts(e.pending_at_ms),
                        "true_at_start": e.pending_at_ms == g.first_eval_ms,
                        "fired_at": e.fired_at_ms.map(ts),
                        "ended_at": e.ended_at_ms.map(ts),
                        "outcome": outcome,
                        "firing_seconds": e.fired_at_ms.map(|f| secs(e.ended_at_ms.unwrap_or(to_ms) - f)),
                        "peak": e.peak,
                        "peak_at": ts(e.peak_at_ms),
                    })
                })
                .collect();
            json!({"labels": labels_json(&s.labels), "episodes": episodes})
        })
        .collect();
    let closest = match &a.closest {
        None => Json::Null,
        Some(Approach::NoData) => json!({"no_data": true}),
        Some(Approach::Extreme {
            value,
            at_ms,
            labels,
        }) => json!({"value": value, "at": ts(*at_ms), "labels": labels_json(labels)}),
    };
    json!({
        "type": "alerting",
        "name": a.name,
        "expr": a.expr,
        "file": file,
        "line": a.line,
        "for_seconds": secs(a.for_ms),
        "keep_firing_for_seconds": secs(a.keep_firing_for_ms),
        "times_fired": a.times_fired(),
        "times_pending": a.times_pending(),
        "firing_seconds": secs(a.firing_ms(to_ms)),
        "condition": a.condition.as_ref().map(|c| json!({"lhs": c.lhs, "op": c.op, "threshold": c.threshold})),
        "closest": closest,
        "errors": errors_json(&a.errors),
        "alerts": series,
    })
}
