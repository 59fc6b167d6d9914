//! Following one rule through the replay: each alert's episodes (pending,
//! firing, resolved or cleared) from the rule's state after every
//! evaluation, its peak values, and a recording rule's output.

use std::collections::{HashMap, HashSet};

use super::{
    closest_approach, simple_comparison, AlertReport, AlertSeries, Episode, RecordingReport,
    RuleErrors, RuleReport,
};
use crate::promql::Engine;
use crate::rules::alert::AlertState;
use crate::rules::group::RuleState;
use crate::rules::rule::Rule;
use crate::store::Store;

/// What is learnt about one rule while the replay runs.
pub(super) enum Tracker {
    Alert {
        series: Vec<AlertSeries>,
        index: HashMap<u64, usize>,
        /// Label sets with an episode still open.
        open: HashSet<u64>,
        errors: Option<RuleErrors>,
        fires_low: bool,
    },
    Record {
        series: HashSet<u64>,
        samples: usize,
        errors: Option<RuleErrors>,
    },
}

impl Tracker {
    pub(super) fn new(rule: &Rule) -> Tracker {
        match rule {
            Rule::Alerting(r) => Tracker::Alert {
                series: Vec::new(),
                index: HashMap::new(),
                open: HashSet::new(),
                errors: None,
                fires_low: simple_comparison(&r.expr).is_some_and(|(_, c)| c.fires_low()),
            },
            Rule::Recording(_) => Tracker::Record {
                series: HashSet::new(),
                samples: 0,
                errors: None,
            },
        }
    }

    pub(super) fn error(&mut self, t: i64, e: &str) {
        let (Tracker::Alert { errors, .. } | Tracker::Record { errors, .. }) = self;
        match errors {
            Some(x) => x.count += 1,
            None => {
                *errors = Some(RuleErrors {
                    count: 1,
                    first_at_ms: t,
                    first: e.to_string(),
                })
            }
        }
    }

    /// Takes in the rule's state after the evaluation at `t`.
    pub(super) fn observe(&mut self, t: i64, rs: &RuleState) {
        match self {
            Tracker::Record {
                series, samples, ..
            } => {
                if rs.last_error.is_none() {
                    *samples += rs.written.len();
                    series.extend(rs.written.keys().copied());
                }
            }
            Tracker::Alert {
                series,
                index,
                open,
                fires_low,
                ..
            } => {
                let mut live = HashSet::with_capacity(open.len());
                for (&fp, a) in &rs.alerts.active {
                    if a.state == AlertState::Inactive {
                        continue;
                    }
                    live.insert(fp);
                    let si = *index.entry(fp).or_insert_with(|| {
                        series.push(AlertSeries {
                            labels: a.labels.clone(),
                            episodes: Vec::new(),
                        });
                        series.len() - 1
                    });
                    let eps = &mut series[si].episodes;
                    match eps
                        .last_mut()
                        .filter(|e| e.ended_at_ms.is_none() && e.pending_at_ms == a.active_at_ms)
                    {
                        Some(e) => {
                            e.fired_at_ms = e.fired_at_ms.or(a.fired_at_ms);
                            let better = if *fires_low {
                                a.value < e.peak
                            } else {
                                a.value > e.peak
                            };
                            if better || e.peak.is_nan() {
                                e.peak = a.value;
                                e.peak_at_ms = t;
                            }
                        }
                        None => {
                            // A new episode; one still open (a reset the
                            // state machine made without our seeing it
                            // clear) ends now.
                            if let Some(e) = eps.last_mut().filter(|e| e.ended_at_ms.is_none()) {
                                e.ended_at_ms = Some(t);
                            }
                            eps.push(Episode {
                                pending_at_ms: a.active_at_ms,
                                fired_at_ms: a.fired_at_ms,
                                ended_at_ms: None,
                                peak: a.value,
                                peak_at_ms: t,
                            });
                            open.insert(fp);
                        }
                    }
                }
                open.retain(|fp| {
                    if live.contains(fp) {
                        return true;
                    }
                    let ended = rs
                        .alerts
                        .active
                        .get(fp)
                        .and_then(|a| a.resolved_at_ms)
                        .unwrap_or(t);
                    if let Some(e) = index.get(fp).and_then(|&i| series[i].episodes.last_mut()) {
                        e.ended_at_ms.get_or_insert(ended);
                    }
                    false
                });
            }
        }
    }

    /// The rule's report. `slots` is (first slot, interval, count) of its
    /// group; `offset` its query offset.
    pub(super) fn finish(
        self,
        rule: &Rule,
        store: &Store,
        engine: &Engine,
        slots: (i64, i64, usize),
        offset: i64,
    ) -> RuleReport {
        match (self, rule) {
            (
                Tracker::Alert {
                    mut series, errors, ..
                },
                Rule::Alerting(r),
            ) => {
                series.sort_by(|a, b| {
                    let first = |s: &AlertSeries| s.episodes.first().map(|e| e.pending_at_ms);
                    first(a)
                        .cmp(&first(b))
                        .then_with(|| a.labels.cmp(&b.labels))
                });
                let cmp = simple_comparison(&r.expr);
                let mut report = AlertReport {
                    name: r.name.clone(),
                    expr: r.expr_text.clone(),
                    line: r.line,
                    for_ms: r.for_ms,
                    keep_firing_for_ms: r.keep_firing_for_ms,
                    series,
                    condition: cmp.as_ref().map(|(_, c)| c.clone()),
                    closest: None,
                    errors,
                };
                if report.times_fired() == 0 {
                    if let Some((lhs, cond)) = &cmp {
                        report.closest =
                            closest_approach(store, engine, lhs, cond.fires_low(), slots, offset);
                    }
                }
                RuleReport::Alerting(report)
            }
            (
                Tracker::Record {
                    series,
                    samples,
                    errors,
                },
                _,
            ) => RuleReport::Recording(RecordingReport {
                record: rule.name().to_string(),
                expr: rule.expr_text().to_string(),
                line: rule.line(),
                series: series.len(),
                samples,
                errors,
            }),
            // Trackers are made from the same rules, in the same order.
            (Tracker::Alert { errors, .. }, _) => RuleReport::Recording(RecordingReport {
                record: rule.name().to_string(),
                expr: rule.expr_text().to_string(),
                line: rule.line(),
                series: 0,
                samples: 0,
                errors,
            }),
        }
    }
}
