//! Backtests: replaying rule files over stored history, as if the rules had
//! been running, to see when each alert would have gone pending, fired and
//! resolved — the question of someone tuning a threshold.
//!
//! * here — `run`: a store, the rules and a time range in, a `Report` out.
//!   Pure like the rest of `rules`: no I/O, no clock. Groups are evaluated
//!   at the slots the running agent would use (`group::eval_timestamp`),
//!   each with its own `GroupState`, all groups interleaved in time order so
//!   that recording rules feed later rules exactly as they would live.
//! * `track` — following each rule's alerts from one evaluation to the next.
//! * `selectors` — which samples the rules read: each distinct selector and
//!   the time range it needs.
//! * `fetch` — those samples from a running agent, one query per selector.
//! * `data` — samples from files in the HTTP API's JSON; loading samples
//!   into a store with the staleness markers the API leaves out.
//! * `source` — `prepare`: the range from the arguments and a filled store.
//! * `render` — the report as text for a terminal, or as JSON.
//! * `time` — `--from`/`--to` arguments and the short time formats.

mod data;
mod fetch;
mod render;
mod selectors;
mod source;
mod time;
mod track;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use promql_parser::parser::token::{T_GTE, T_GTR, T_LSS, T_LTE};

use super::group::{eval_group, eval_timestamp, group_offset_ms, EvalContext, GroupState};
use super::rule::{Group, RuleSet};
use crate::model::Labels;
use crate::promql::{Engine, Expr, Value, MAX_RANGE_POINTS};
use crate::store::Store;
use track::Tracker;

pub use data::{load, parse_matrix, read_data_files, store_for, LoadStats, SeriesData};
pub use fetch::{fetch_from_agent, SelectorStat};
pub use render::{render_json, render_text};
pub use selectors::{missing_selectors, needed_selectors, NeededSelector};
pub use source::{prepare, Prepared, Source};
pub use time::{format_ago, format_dur, format_time, parse_time_arg};

/// What a backtest covers.
#[derive(Debug, Clone)]
pub struct Options {
    /// First evaluation at or after this time (ms).
    pub from_ms: i64,
    /// Last evaluation at or before this time (ms).
    pub to_ms: i64,
    /// The interval of groups that set none (`global.evaluation_interval`).
    pub default_interval_ms: i64,
    pub ctx: EvalContext,
}

#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    #[error("empty time range: from {from} is after to {to}")]
    EmptyRange { from: String, to: String },
    #[error("evaluation interval must be positive")]
    BadInterval,
    #[error("invalid time {arg:?}: {why}")]
    BadTime { arg: String, why: String },
    #[error("cannot start the HTTP client: {0}")]
    Client(String),
    #[error("cannot reach agent at {url}: {why}")]
    Unreachable { url: String, why: String },
    #[error("agent at {url} answered {query:?} with an error: {why}")]
    Query {
        url: String,
        query: String,
        why: String,
    },
    #[error("cannot read {path}: {why}")]
    ReadData { path: String, why: String },
    #[error("{path}: {why}")]
    BadData { path: String, why: String },
}

/// The outcome of a backtest.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub from_ms: i64,
    pub to_ms: i64,
    pub groups: Vec<GroupReport>,
    /// Lines printed under the heading: where the data came from (the
    /// caller knows).
    pub notes: Vec<String>,
    /// Things the reader should know about the data or the replay (empty
    /// selectors, refused samples); callers may add their own.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct GroupReport {
    pub name: String,
    pub file: String,
    pub interval_ms: i64,
    /// The first evaluation: an alert pending then was already true when
    /// the range began, so its `for` had maybe been running for longer.
    pub first_eval_ms: i64,
    pub evaluations: usize,
    pub rules: Vec<RuleReport>,
}

#[derive(Debug, Clone)]
pub enum RuleReport {
    Alerting(AlertReport),
    Recording(RecordingReport),
}

/// Failed evaluations of one rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleErrors {
    pub count: usize,
    pub first_at_ms: i64,
    pub first: String,
}

#[derive(Debug, Clone)]
pub struct AlertReport {
    pub name: String,
    pub expr: String,
    pub line: usize,
    pub for_ms: i64,
    pub keep_firing_for_ms: i64,
    /// Every label set that was ever pending, by first pending time.
    pub series: Vec<AlertSeries>,
    /// Set when the expression is `lhs OP number` with OP one of `>`,
    /// `>=`, `<`, `<=` (or the number first).
    pub condition: Option<Condition>,
    /// For a rule that never fired and has a `condition`: how close the
    /// left-hand side came to the threshold.
    pub closest: Option<Approach>,
    pub errors: Option<RuleErrors>,
}

/// One label set of an alerting rule and its episodes, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSeries {
    pub labels: Labels,
    pub episodes: Vec<Episode>,
}

/// From going pending to resolving (or clearing before it fired).
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    pub pending_at_ms: i64,
    pub fired_at_ms: Option<i64>,
    /// Resolved (if it fired) or cleared (if not); None while still active
    /// at the end of the range.
    pub ended_at_ms: Option<i64>,
    /// The most extreme value of the expression while active: the highest,
    /// or the lowest for a `<`/`<=` condition.
    pub peak: f64,
    pub peak_at_ms: i64,
}

/// A simple comparison with a constant.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub lhs: String,
    /// `>`, `>=`, `<` or `<=`, with the series on the left.
    pub op: String,
    pub threshold: f64,
}

impl Condition {
    /// Whether lower values are the ones that fire.
    pub fn fires_low(&self) -> bool {
        self.op.starts_with('<')
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Approach {
    /// The left-hand side returned nothing at any evaluation.
    NoData,
    /// Its extreme (highest, or lowest for `<`), where and when.
    Extreme {
        value: f64,
        at_ms: i64,
        labels: Labels,
    },
}

#[derive(Debug, Clone)]
pub struct RecordingReport {
    pub record: String,
    pub expr: String,
    pub line: usize,
    /// Distinct series written.
    pub series: usize,
    /// Samples written (staleness markers not counted).
    pub samples: usize,
    pub errors: Option<RuleErrors>,
}

impl AlertReport {
    /// Episodes that reached firing.
    pub fn times_fired(&self) -> usize {
        self.episodes().filter(|e| e.fired_at_ms.is_some()).count()
    }

    /// Episodes that went pending (fired or not).
    pub fn times_pending(&self) -> usize {
        self.episodes().count()
    }

    /// Time spent firing, summed over label sets; an alert still firing
    /// counts until `to_ms`.
    pub fn firing_ms(&self, to_ms: i64) -> i64 {
        self.episodes()
            .filter_map(|e| Some(e.ended_at_ms.unwrap_or(to_ms) - e.fired_at_ms?))
            .sum()
    }

    /// The longest time an alert stayed pending without firing.
    pub fn longest_unfired_pending_ms(&self, to_ms: i64) -> Option<i64> {
        self.episodes()
            .filter(|e| e.fired_at_ms.is_none())
            .map(|e| e.ended_at_ms.unwrap_or(to_ms) - e.pending_at_ms)
            .max()
    }

    fn episodes(&self) -> impl Iterator<Item = &Episode> {
        self.series.iter().flat_map(|s| s.episodes.iter())
    }
}

/// Replays `rules` over `store` from `opts.from_ms` to `opts.to_ms`.
/// Recording rules and `ALERTS` series are written to the store, as the
/// live agent would.
pub fn run(
    store: &Store,
    engine: &Engine,
    rules: &RuleSet,
    opts: &Options,
) -> Result<Report, BacktestError> {
    if opts.from_ms > opts.to_ms {
        return Err(BacktestError::EmptyRange {
            from: format_time(opts.from_ms, false),
            to: format_time(opts.to_ms, false),
        });
    }
    if opts.default_interval_ms <= 0 {
        return Err(BacktestError::BadInterval);
    }
    let mut report = Report {
        from_ms: opts.from_ms,
        to_ms: opts.to_ms,
        ..Report::default()
    };
    let mut states: Vec<GroupState> = rules.groups.iter().map(GroupState::new).collect();
    let mut trackers: Vec<Vec<Tracker>> = rules
        .groups
        .iter()
        .map(|g| g.rules.iter().map(Tracker::new).collect())
        .collect();
    let intervals: Vec<i64> = rules
        .groups
        .iter()
        .map(|g| g.interval_ms.unwrap_or(opts.default_interval_ms).max(1))
        .collect();
    let firsts: Vec<i64> = rules
        .groups
        .iter()
        .zip(&intervals)
        .map(|(g, &iv)| first_slot(g, iv, opts.from_ms))
        .collect();
    let mut evaluations = vec![0usize; rules.groups.len()];
    let mut append_errors = Vec::new();
    let mut append_error_count = 0usize;

    // Every group's next slot; ties go to the group listed first.
    let mut queue: BinaryHeap<Reverse<(i64, usize)>> = firsts
        .iter()
        .enumerate()
        .filter(|(_, &t)| t <= opts.to_ms)
        .map(|(i, &t)| Reverse((t, i)))
        .collect();
    while let Some(Reverse((t, gi))) = queue.pop() {
        let group = &rules.groups[gi];
        let res = eval_group(group, &mut states[gi], engine, store, t, &opts.ctx);
        evaluations[gi] += 1;
        for (ri, e) in &res.rule_errors {
            if let Some(tr) = trackers[gi].get_mut(*ri) {
                tr.error(t, e);
            }
        }
        append_error_count += res.append_errors.len();
        for e in res.append_errors {
            if append_errors.len() < 3 {
                append_errors.push(e);
            }
        }
        for (tr, rs) in trackers[gi].iter_mut().zip(&states[gi].rules) {
            tr.observe(t, rs);
        }
        let next = t + intervals[gi];
        if next <= opts.to_ms {
            queue.push(Reverse((next, gi)));
        }
    }
    if append_error_count > 0 {
        report.warnings.push(format!(
            "{append_error_count} rule result samples were refused by the store, e.g. {}",
            append_errors.join("; ")
        ));
    }

    for (gi, group) in rules.groups.iter().enumerate() {
        let offset = group
            .query_offset_ms
            .unwrap_or(opts.ctx.default_query_offset_ms);
        let slots = (firsts[gi], intervals[gi], evaluations[gi]);
        let rules_out = group
            .rules
            .iter()
            .zip(std::mem::take(&mut trackers[gi]))
            .map(|(rule, tr)| tr.finish(rule, store, engine, slots, offset))
            .collect();
        report.groups.push(GroupReport {
            name: group.name.clone(),
            file: group.file.clone(),
            interval_ms: intervals[gi],
            first_eval_ms: firsts[gi],
            evaluations: evaluations[gi],
            rules: rules_out,
        });
    }
    Ok(report)
}

/// The first evaluation slot of `group` at or after `from_ms`.
fn first_slot(group: &Group, interval_ms: i64, from_ms: i64) -> i64 {
    let offset = group_offset_ms(&group.key(), interval_ms);
    let t = eval_timestamp(from_ms, interval_ms, offset);
    if t < from_ms {
        t + interval_ms
    } else {
        t
    }
}

/// `lhs OP number` (or `number OP rhs`, turned around) for the ordering
/// comparisons, without `bool`.
pub fn simple_comparison(expr: &Expr) -> Option<(Expr, Condition)> {
    fn number(e: &Expr) -> Option<f64> {
        match e {
            Expr::NumberLiteral(n) => Some(n.val),
            Expr::Paren(p) => number(&p.expr),
            Expr::Unary(u) => number(&u.expr).map(|v| -v),
            _ => None,
        }
    }
    match expr {
        Expr::Paren(p) => simple_comparison(&p.expr),
        Expr::Binary(b) if !b.modifier.as_ref().is_some_and(|m| m.return_bool) => {
            let (op, flipped) = match b.op.id() {
                T_GTR => (">", "<"),
                T_GTE => (">=", "<="),
                T_LSS => ("<", ">"),
                T_LTE => ("<=", ">="),
                _ => return None,
            };
            let (mut lhs, op, threshold) = match (number(&b.lhs), number(&b.rhs)) {
                (_, Some(c)) => (&*b.lhs, op, c),
                (Some(c), None) => (&*b.rhs, flipped, c),
                (None, None) => return None,
            };
            while let Expr::Paren(p) = lhs {
                lhs = &p.expr;
            }
            Some((
                lhs.clone(),
                Condition {
                    lhs: lhs.to_string(),
                    op: op.to_string(),
                    threshold,
                },
            ))
        }
        _ => None,
    }
}

/// The extreme of `lhs` over the group's evaluation slots, evaluated as a
/// range query in pieces of at most `MAX_RANGE_POINTS` steps. None when it
/// cannot be evaluated (the rule's own errors say why).
pub(super) fn closest_approach(
    store: &Store,
    engine: &Engine,
    lhs: &Expr,
    low: bool,
    (first, interval, count): (i64, i64, usize),
    offset: i64,
) -> Option<Approach> {
    let mut best: Option<(f64, i64, Labels)> = None;
    let chunk = (MAX_RANGE_POINTS - 1) as usize;
    let mut done = 0usize;
    while done < count {
        let n = chunk.min(count - done);
        let start = first + done as i64 * interval - offset;
        let end = start + (n as i64 - 1) * interval;
        let Value::Matrix(m) = engine.range_query(store, lhs, start, end, interval).ok()? else {
            return None;
        };
        for s in m {
            for p in s.samples {
                if p.v.is_nan() {
                    continue;
                }
                let better = match &best {
                    None => true,
                    Some((b, _, _)) if low => p.v < *b,
                    Some((b, _, _)) => p.v > *b,
                };
                if better {
                    best = Some((p.v, p.t + offset, s.labels.clone()));
                }
            }
        }
        done += n;
    }
    Some(match best {
        None => Approach::NoData,
        Some((value, at_ms, labels)) => Approach::Extreme {
            value,
            at_ms,
            labels,
        },
    })
}

#[cfg(test)]
mod tests;
