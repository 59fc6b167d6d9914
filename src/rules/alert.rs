//! The alert lifecycle of one alerting rule, as a pure function of the
//! previous state, the query result and the evaluation time: inactive →
//! pending → firing → resolved, per label set, with `for`,
//! `keep_firing_for` and 15 minutes of resolved retention. Semantics follow
//! Prometheus's `AlertingRule.Eval`.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use super::rule::AlertingRule;
use super::template::{QueryFn, TemplateData, TemplateError};
use crate::model::{Labels, LabelsBuilder, METRIC_NAME};
use crate::promql::InstantSample;

/// How long a resolved alert is kept (and reported, so that a lost
/// "resolved" notification is sent again).
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// The label naming the alert.
pub const ALERTNAME: &str = "alertname";
/// The series of pending and firing alerts, value 1.
pub const ALERTS_METRIC: &str = "ALERTS";
/// The label of `ALERTS` that holds the alert's state.
pub const ALERTSTATE: &str = "alertstate";
/// The series holding each alert's `active_at` (seconds), value for restoring
/// `for` timers.
pub const ALERTS_FOR_STATE_METRIC: &str = "ALERTS_FOR_STATE";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    /// The name the Prometheus API and the `alertstate` label use.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert: one label set of one alerting rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Series labels without `__name__`, plus the rule's (templated) labels
    /// (group labels included) and `alertname`. External labels are not
    /// here: the notifier adds them.
    pub labels: Labels,
    /// Templated annotations, sorted by name.
    pub annotations: Vec<(String, String)>,
    pub state: AlertState,
    /// The query value at the last evaluation that returned this label set.
    pub value: f64,
    /// When the condition started to hold (ms).
    pub active_at_ms: i64,
    pub fired_at_ms: Option<i64>,
    /// Set once a firing alert stops firing; the alert is then inactive.
    pub resolved_at_ms: Option<i64>,
    /// When the condition stopped holding while `keep_firing_for` holds the
    /// alert firing.
    pub keep_firing_since_ms: Option<i64>,
    /// For the notifier's resend logic; the state machine never sets it.
    pub last_sent_at_ms: Option<i64>,
}

/// What happened to an alert at one evaluation, for the notifier, the log
/// and backtests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertEventKind {
    /// The condition started to hold (with `for: 0` it fires at once too).
    Pending,
    /// Pending for at least `for`: the alert fires.
    Firing,
    /// A firing alert stopped (after `keep_firing_for`, if any).
    Resolved,
    /// A pending alert whose condition cleared before `for` elapsed.
    PendingCleared,
    /// A firing alert whose annotations changed (usually via `$value`).
    Updated,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlertEvent {
    pub kind: AlertEventKind,
    pub alert: Alert,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlertError {
    #[error("vector contains metrics with the same labelset after applying alert labels")]
    DuplicateLabelSet,
    #[error("exceeded limit of {limit} with {count} alerts")]
    Limit { limit: usize, count: usize },
}

/// The alerts of one rule, keyed by the fingerprint of their labels.
#[derive(Debug, Clone, Default)]
pub struct AlertRuleState {
    pub active: HashMap<u64, Alert>,
}

impl AlertRuleState {
    /// The rule's state: the highest state of its alerts.
    pub fn state(&self) -> AlertState {
        self.active
            .values()
            .map(|a| a.state)
            .max()
            .unwrap_or(AlertState::Inactive)
    }

    /// All alerts, resolved ones included, sorted by labels.
    pub fn alerts(&self) -> Vec<&Alert> {
        let mut v: Vec<&Alert> = self.active.values().collect();
        v.sort_by(|a, b| a.labels.cmp(&b.labels));
        v
    }

    /// Pending and firing alerts, sorted by labels (the API's "active").
    pub fn active_alerts(&self) -> Vec<&Alert> {
        let mut v = self.alerts();
        v.retain(|a| a.state != AlertState::Inactive);
        v
    }
}

/// What templates may see besides the series: external labels and URL, and
/// a query function for `query`.
#[derive(Clone, Default)]
pub struct TemplateCtx<'a> {
    pub external_labels: Rc<Labels>,
    pub external_url: &'a str,
    pub query: Option<QueryFn<'a>>,
}

/// The outcome of a successful step.
#[derive(Debug, Clone, Default)]
pub struct StepOutput {
    /// Sorted by alert labels.
    pub events: Vec<AlertEvent>,
    /// Failed expansions (the alert carries `<error expanding template: …>`).
    pub template_errors: Vec<TemplateError>,
}

/// Advances the rule's alerts to `now_ms` given the query result.
/// `limit` (0 = none) bounds the pending and firing alerts; above it the
/// state is cleared and an error returned, as Prometheus does. A duplicate
/// label set leaves the state untouched.
pub fn step(
    state: &mut AlertRuleState,
    result: &[InstantSample],
    now_ms: i64,
    rule: &AlertingRule,
    ctx: &TemplateCtx<'_>,
    limit: usize,
) -> Result<StepOutput, AlertError> {
    let mut out = StepOutput::default();
    let mut fresh: Vec<(u64, Alert)> = Vec::with_capacity(result.len());
    let mut seen: HashSet<u64> = HashSet::with_capacity(result.len());
    for s in result {
        let data = TemplateData {
            labels: Rc::new(s.labels.clone()),
            external_labels: ctx.external_labels.clone(),
            external_url: ctx.external_url,
            value: s.v,
            query: ctx.query,
        };
        let mut expand = |t: &super::template::Template| {
            let (text, err) = t.expand(&data);
            out.template_errors.extend(err);
            text
        };
        let mut b = LabelsBuilder::from_labels(&s.labels);
        b.del(METRIC_NAME);
        for (name, t) in &rule.labels {
            b.set(name, &expand(t));
        }
        b.set(ALERTNAME, &rule.name);
        let annotations: Vec<(String, String)> = rule
            .annotations
            .iter()
            .map(|(name, t)| (name.clone(), expand(t)))
            .collect();
        let labels = b.into_labels();
        let fp = labels.fingerprint();
        if !seen.insert(fp) {
            return Err(AlertError::DuplicateLabelSet);
        }
        fresh.push((
            fp,
            Alert {
                labels,
                annotations,
                state: AlertState::Pending,
                value: s.v,
                active_at_ms: now_ms,
                fired_at_ms: None,
                resolved_at_ms: None,
                keep_firing_since_ms: None,
                last_sent_at_ms: None,
            },
        ));
    }

    let mut events = Vec::new();
    for (fp, a) in fresh {
        match state.active.get_mut(&fp) {
            // A live alert keeps its timers; value and annotations follow
            // the latest evaluation.
            Some(old) if old.state != AlertState::Inactive => {
                old.value = a.value;
                if old.annotations != a.annotations {
                    old.annotations = a.annotations;
                    if old.state == AlertState::Firing {
                        events.push((AlertEventKind::Updated, fp));
                    }
                }
            }
            // New, or a resolved alert coming back: a fresh pending alert.
            _ => {
                state.active.insert(fp, a);
                events.push((AlertEventKind::Pending, fp));
            }
        }
    }

    let mut count = 0;
    let mut dropped = Vec::new();
    let mut gone = Vec::new();
    for (&fp, a) in state.active.iter_mut() {
        if !seen.contains(&fp) {
            let mut keep_firing = false;
            if a.state == AlertState::Firing && rule.keep_firing_for_ms > 0 {
                let since = *a.keep_firing_since_ms.get_or_insert(now_ms);
                keep_firing = now_ms - since < rule.keep_firing_for_ms;
            }
            if a.state == AlertState::Pending
                || a.resolved_at_ms
                    .is_some_and(|r| now_ms - r > RESOLVED_RETENTION_MS)
            {
                gone.push(fp);
            }
            if a.state != AlertState::Inactive && !keep_firing {
                let kind = if a.state == AlertState::Pending {
                    AlertEventKind::PendingCleared
                } else {
                    AlertEventKind::Resolved
                };
                a.state = AlertState::Inactive;
                a.resolved_at_ms = Some(now_ms);
                dropped.push(AlertEvent {
                    kind,
                    alert: a.clone(),
                });
            }
            if !keep_firing {
                continue;
            }
        } else {
            a.keep_firing_since_ms = None;
        }
        count += 1;
        if a.state == AlertState::Pending && now_ms - a.active_at_ms >= rule.for_ms {
            a.state = AlertState::Firing;
            a.fired_at_ms = Some(now_ms);
            events.push((AlertEventKind::Firing, fp));
        }
    }
    for fp in gone {
        state.active.remove(&fp);
    }
    if limit > 0 && count > limit {
        state.active.clear();
        return Err(AlertError::Limit { limit, count });
    }
    out.events = events
        .into_iter()
        .filter_map(|(kind, fp)| {
            let alert = state.active.get(&fp)?.clone();
            Some(AlertEvent { kind, alert })
        })
        .chain(dropped)
        .collect();
    // Stable order: by labels, then in lifecycle order.
    out.events
        .sort_by(|a, b| a.alert.labels.cmp(&b.alert.labels));
    Ok(out)
}

/// The `ALERTS` (value 1, with `alertstate`) and `ALERTS_FOR_STATE` (value
/// `active_at` in seconds) series of the pending and firing alerts, sorted.
pub fn alert_series(state: &AlertRuleState) -> Vec<(Labels, f64)> {
    let mut out = Vec::new();
    for a in state.active_alerts() {
        let mut b = LabelsBuilder::from_labels(&a.labels);
        b.set(METRIC_NAME, ALERTS_METRIC);
        b.set(ALERTSTATE, a.state.as_str());
        out.push((b.build(), 1.0));
        b.del(ALERTSTATE);
        b.set(METRIC_NAME, ALERTS_FOR_STATE_METRIC);
        out.push((b.into_labels(), a.active_at_ms.div_euclid(1000) as f64));
    }
    out
}

#[cfg(test)]
#[path = "alert_tests.rs"]
mod tests;
