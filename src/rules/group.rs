//! Evaluating one rule group at one time: rules in order, recording results
//! written to the store before the next rule runs, alert states advanced,
//! `ALERTS`/`ALERTS_FOR_STATE` written, staleness markers for series a rule
//! stopped producing. Time is a parameter; the only clock read is a
//! monotonic stopwatch for the evaluation-duration metric, which no result
//! depends on.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::alert::{
    self, Alert, AlertEvent, AlertRuleState, AlertState, TemplateCtx, ALERTSTATE,
    ALERTS_FOR_STATE_METRIC, ALERTS_METRIC,
};
use super::rule::{Group, RecordingRule, Rule};
use super::template::{QuerySample, TemplateError};
use crate::model::{stale_nan, Labels, LabelsBuilder, METRIC_NAME};
use crate::promql::{Engine, Expr, InstantSample, Value};
use crate::store::{AppendError, SeriesRef, Store};

/// What rule evaluation needs from the configuration.
#[derive(Debug, Clone, Default)]
pub struct EvalContext {
    /// `global.external_labels`: visible to templates as `$externalLabels`;
    /// not added to alerts here (the notifier adds them).
    pub external_labels: Labels,
    /// `$externalURL` and the `externalURL` template function.
    pub external_url: String,
    /// The query offset of groups that set none.
    pub default_query_offset_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleHealth {
    Unknown,
    Ok,
    Err,
}

impl RuleHealth {
    /// The Prometheus API's words.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleHealth::Unknown => "unknown",
            RuleHealth::Ok => "ok",
            RuleHealth::Err => "err",
        }
    }
}

/// The state of one rule between evaluations.
#[derive(Debug, Clone)]
pub struct RuleState {
    /// `Rule::identity` of the rule this state belongs to.
    pub identity: u64,
    pub health: RuleHealth,
    pub last_error: Option<String>,
    pub last_eval_ms: Option<i64>,
    pub last_duration: Duration,
    /// Alerts of an alerting rule; empty for a recording rule.
    pub alerts: AlertRuleState,
    /// Series written at the last successful evaluation, which get a
    /// staleness marker when they are not written again.
    pub written: HashMap<u64, Labels>,
    /// The store's reference of each written series (by fingerprint), so
    /// that the next evaluation appends without a lookup by labels.
    refs: HashMap<u64, SeriesRef>,
}

impl RuleState {
    fn new(rule: &Rule) -> RuleState {
        RuleState {
            identity: rule.identity(),
            health: RuleHealth::Unknown,
            last_error: None,
            last_eval_ms: None,
            last_duration: Duration::ZERO,
            alerts: AlertRuleState::default(),
            written: HashMap::new(),
            refs: HashMap::new(),
        }
    }
}

/// The state of a group: one `RuleState` per rule, in rule order.
#[derive(Debug, Clone, Default)]
pub struct GroupState {
    pub rules: Vec<RuleState>,
    pub last_eval_ms: Option<i64>,
    pub last_duration: Duration,
}

impl GroupState {
    pub fn new(group: &Group) -> GroupState {
        GroupState {
            rules: group.rules.iter().map(RuleState::new).collect(),
            ..GroupState::default()
        }
    }

    /// The state for `group` after a reload: each rule takes the state of
    /// the first unclaimed old rule with the same identity, so pending
    /// timers and firing alerts survive; other rules start fresh.
    pub fn carry_over(group: &Group, old: GroupState) -> GroupState {
        let mut pool: Vec<Option<RuleState>> = old.rules.into_iter().map(Some).collect();
        let rules = group
            .rules
            .iter()
            .map(|r| {
                let id = r.identity();
                pool.iter_mut()
                    .find(|s| s.as_ref().is_some_and(|s| s.identity == id))
                    .and_then(Option::take)
                    .unwrap_or_else(|| RuleState::new(r))
            })
            .collect();
        GroupState {
            rules,
            last_eval_ms: old.last_eval_ms,
            last_duration: old.last_duration,
        }
    }
}

/// What one evaluation of a group did.
#[derive(Debug, Clone, Default)]
pub struct GroupEvalResult {
    pub t_ms: i64,
    /// Alert events of all alerting rules, in rule order.
    pub events: Vec<AlertEvent>,
    /// Rules that failed: (rule index, error). Other rules still ran.
    pub rule_errors: Vec<(usize, String)>,
    /// Template expansions that failed: (rule index, error).
    pub template_errors: Vec<(usize, TemplateError)>,
    /// Samples written, staleness markers included.
    pub samples_written: usize,
    /// Samples the store refused (out of order, series limit), with why.
    pub append_errors: Vec<String>,
    pub duration: Duration,
}

/// Evaluates every rule of `group` at `t_ms`, in order.
pub fn eval_group(
    group: &Group,
    state: &mut GroupState,
    engine: &Engine,
    store: &Store,
    t_ms: i64,
    ctx: &EvalContext,
) -> GroupEvalResult {
    let started = Instant::now();
    if state.rules.len() != group.rules.len() {
        *state = GroupState::carry_over(group, std::mem::take(state));
    }
    let mut res = GroupEvalResult {
        t_ms,
        ..GroupEvalResult::default()
    };
    let offset = group.query_offset_ms.unwrap_or(ctx.default_query_offset_ms);
    let qt = t_ms - offset;
    let ext = Rc::new(ctx.external_labels.clone());
    let query = |q: &str| -> Result<Vec<QuerySample>, String> {
        let expr = crate::promql::parse(q).map_err(|e| e.to_string())?;
        let v = vector(
            engine
                .instant_query(store, &expr, qt)
                .map_err(|e| e.to_string())?,
        )?;
        Ok(v.into_iter()
            .map(|s| QuerySample {
                labels: s.labels,
                value: s.v,
            })
            .collect())
    };
    let tctx = TemplateCtx {
        external_labels: ext,
        external_url: &ctx.external_url,
        query: Some(&query),
    };
    for (i, (rule, rs)) in group.rules.iter().zip(state.rules.iter_mut()).enumerate() {
        let rule_started = Instant::now();
        let outcome = match rule {
            Rule::Recording(r) => record(r, engine, store, qt, group.limit).map(Some),
            Rule::Alerting(r) => query_rule(engine, store, &r.expr, qt).and_then(|v| {
                let out = alert::step(&mut rs.alerts, &v, t_ms, r, &tctx, group.limit)
                    .map_err(|e| e.to_string())?;
                res.events.extend(out.events);
                res.template_errors
                    .extend(out.template_errors.into_iter().map(|e| (i, e)));
                Ok(None)
            }),
        };
        match outcome {
            Ok(series) => {
                let (written, refs) = (&mut rs.written, &mut rs.refs);
                match series {
                    Some(series) => write(store, written, refs, series.into_iter(), qt, &mut res),
                    // ALERTS and ALERTS_FOR_STATE of the pending and firing alerts.
                    None => {
                        let alerts = rs
                            .alerts
                            .active
                            .values()
                            .filter(|a| a.state != AlertState::Inactive);
                        let series = alerts.flat_map(|a| {
                            let for_state = a.active_at_ms.div_euclid(1000) as f64;
                            [
                                (Out::Alert(a, ALERTS_METRIC, Some(a.state.as_str())), 1.0),
                                (Out::Alert(a, ALERTS_FOR_STATE_METRIC, None), for_state),
                            ]
                        });
                        write(store, written, refs, series, qt, &mut res)
                    }
                }
                rs.health = RuleHealth::Ok;
                rs.last_error = None;
            }
            Err(e) => {
                rs.health = RuleHealth::Err;
                rs.last_error = Some(e.clone());
                res.rule_errors.push((i, e));
            }
        }
        rs.last_eval_ms = Some(t_ms);
        rs.last_duration = rule_started.elapsed();
    }
    res.duration = started.elapsed();
    state.last_eval_ms = Some(t_ms);
    state.last_duration = res.duration;
    res
}

/// A query result as a vector; a scalar becomes one sample without labels,
/// as in Prometheus.
fn vector(v: Value) -> Result<Vec<InstantSample>, String> {
    match v {
        Value::Vector(v) => Ok(v),
        Value::Scalar(f) => Ok(vec![InstantSample {
            labels: Labels::empty(),
            t: 0,
            v: f,
        }]),
        other => Err(format!(
            "rule result is not a vector or scalar: {}",
            other.result_type()
        )),
    }
}

fn query_rule(
    engine: &Engine,
    store: &Store,
    expr: &Expr,
    qt: i64,
) -> Result<Vec<InstantSample>, String> {
    vector(
        engine
            .instant_query(store, expr, qt)
            .map_err(|e| e.to_string())?,
    )
}

/// A recording rule's output series: the result renamed and relabelled.
fn record(
    r: &RecordingRule,
    engine: &Engine,
    store: &Store,
    qt: i64,
    limit: usize,
) -> Result<Vec<(Out<'static>, f64)>, String> {
    let v = query_rule(engine, store, &r.expr, qt)?;
    let mut out = Vec::with_capacity(v.len());
    let mut seen = std::collections::HashSet::with_capacity(v.len());
    for s in v {
        let mut b = LabelsBuilder::from_labels(&s.labels);
        b.set(METRIC_NAME, &r.record);
        for l in r.labels.iter() {
            b.set(&l.name, &l.value);
        }
        let labels = b.into_labels();
        if !seen.insert(labels.fingerprint()) {
            return Err(
                "vector contains metrics with the same labelset after applying rule labels".into(),
            );
        }
        out.push((Out::Labels(labels), s.v));
    }
    if limit > 0 && out.len() > limit {
        return Err(format!(
            "exceeded limit of {limit} with {} series",
            out.len()
        ));
    }
    Ok(out)
}

/// A series a rule writes. An alert's series are described rather than
/// built: in the steady state the same series are written every
/// evaluation, and their label sets are found by fingerprint among those of
/// the last one instead of being allocated again.
pub(crate) enum Out<'a> {
    Labels(Labels),
    /// `ALERTS` (with `alertstate`) or `ALERTS_FOR_STATE` of an alert.
    Alert(&'a Alert, &'static str, Option<&'static str>),
}

impl Out<'_> {
    fn fingerprint(&self) -> u64 {
        match self {
            Out::Labels(l) => l.fingerprint(),
            Out::Alert(a, name, Some(state)) => a
                .labels
                .fingerprint_with(&[(METRIC_NAME, name), (ALERTSTATE, state)]),
            Out::Alert(a, name, None) => a.labels.fingerprint_with(&[(METRIC_NAME, name)]),
        }
    }

    fn build(self) -> Labels {
        match self {
            Out::Labels(l) => l,
            Out::Alert(a, name, state) => {
                let mut b = LabelsBuilder::from_labels(&a.labels);
                b.set(METRIC_NAME, name);
                if let Some(state) = state {
                    b.set(ALERTSTATE, state);
                }
                b.into_labels()
            }
        }
    }
}

/// Appends the rule's series at `qt`, and staleness markers for the ones
/// it wrote last time but not now. `written` and `refs` are the rule's
/// series of the last evaluation and their store references.
fn write<'a>(
    store: &Store,
    written: &mut HashMap<u64, Labels>,
    refs: &mut HashMap<u64, SeriesRef>,
    series: impl Iterator<Item = (Out<'a>, f64)>,
    qt: i64,
    res: &mut GroupEvalResult,
) {
    let mut old = std::mem::take(written);
    let old_refs = std::mem::take(refs);
    let mut now: HashMap<u64, Labels> = HashMap::with_capacity(old.len());
    let mut now_refs: HashMap<u64, SeriesRef> = HashMap::with_capacity(old.len());
    let append = |labels: &Labels, fp: u64, v: f64, res: &mut GroupEvalResult| {
        // Through the reference of the last evaluation when there is one;
        // by labels when it is new or its series was dropped since.
        let by_ref = old_refs
            .get(&fp)
            .map(|&r| store.append(r, qt, v).map(|()| r));
        let done = match by_ref {
            Some(Err(AppendError::UnknownSeries)) | None => store.append_labels(labels, qt, v),
            Some(other) => other,
        };
        match done {
            Ok(r) => {
                res.samples_written += 1;
                Some(r)
            }
            Err(e) => {
                res.append_errors.push(format!("{labels}: {e}"));
                None
            }
        }
    };
    for (out, v) in series {
        let fp = out.fingerprint();
        let labels = match old.remove(&fp) {
            Some(l) => l,
            None => out.build(),
        };
        if let Some(r) = append(&labels, fp, v, res) {
            now_refs.insert(fp, r);
        }
        now.insert(fp, labels);
    }
    // What is left of the last evaluation's series was not written now.
    let mut stale: Vec<(u64, Labels)> = old.into_iter().collect();
    stale.sort_by(|a, b| a.1.cmp(&b.1));
    for (fp, labels) in &stale {
        append(labels, *fp, stale_nan(), res);
    }
    *written = now;
    *refs = now_refs;
}

/// The offset of a group's slots within its interval, from a hash of its
/// key, so that groups with the same interval spread over it instead of all
/// running at once (Prometheus's `Group.hash() % interval`).
pub fn group_offset_ms(group_key: &str, interval_ms: i64) -> i64 {
    if interval_ms <= 0 {
        return 0;
    }
    (xxhash_rust::xxh3::xxh3_64(group_key.as_bytes()) % interval_ms as u64) as i64
}

/// The latest evaluation slot at or before `now_ms`: slots are
/// `offset + k * interval` (Prometheus's `EvalTimestamp`).
pub fn eval_timestamp(now_ms: i64, interval_ms: i64, offset_ms: i64) -> i64 {
    let interval = interval_ms.max(1);
    let adj = now_ms - offset_ms;
    adj - adj.rem_euclid(interval) + offset_ms
}

/// Slots skipped between the evaluation at `last_ms` and the one at
/// `now_slot_ms` (for the missed-iterations metric).
pub fn missed_iterations(last_ms: i64, now_slot_ms: i64, interval_ms: i64) -> i64 {
    ((now_slot_ms - last_ms) / interval_ms.max(1) - 1).max(0)
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
