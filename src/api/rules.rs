//! `/api/v1/rules`, `/api/v1/alerts` and `POST /-/reload`, in Prometheus's
//! JSON. These answers are small (one object per rule and alert), so they
//! are built with serde_json rather than by hand like query results.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::params::Params;
use super::{ok_json, ApiState};
use crate::model::Labels;
use crate::rules::alert::Alert;
use crate::rules::group::RuleState;
use crate::rules::{AlertState, Rule};

pub(super) async fn rules(
    State(st): State<ApiState>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let p = Params::parse(q.as_deref(), &body);
    let want_type = p.get("type").unwrap_or("");
    if !matches!(want_type, "" | "alert" | "record") {
        return super::ApiError::bad_data(format!(
            "unsupported type {want_type:?}: use \"alert\" or \"record\""
        ))
        .into_response();
    }
    let names = p.all("rule_name[]");
    let groups_wanted = p.all("rule_group[]");
    let files = p.all("file[]");
    let exclude_alerts = p.get("exclude_alerts") == Some("true");
    let mut out = Vec::new();
    for g in st.rules.as_ref().map(|m| m.groups()).unwrap_or_default() {
        if !wanted(&groups_wanted, &g.group.name) || !wanted(&files, &g.group.file) {
            continue;
        }
        let state = g.state.lock();
        let mut rules = Vec::new();
        for (rule, rs) in g.group.rules.iter().zip(&state.rules) {
            let is_alert = matches!(rule, Rule::Alerting(_));
            if (want_type == "alert" && !is_alert) || (want_type == "record" && is_alert) {
                continue;
            }
            if !wanted(&names, rule.name()) {
                continue;
            }
            rules.push(rule_json(rule, rs, exclude_alerts));
        }
        // Prometheus leaves out groups that a filter emptied.
        if rules.is_empty() && (!want_type.is_empty() || !names.is_empty()) {
            continue;
        }
        out.push(json!({
            "name": g.group.name,
            "file": g.group.file,
            "rules": rules,
            "interval": g.interval_ms as f64 / 1000.0,
            "limit": g.group.limit,
            "evaluationTime": state.last_duration.as_secs_f64(),
            "lastEvaluation": rfc3339(state.last_eval_ms),
        }));
    }
    ok_json(json!({"status": "success", "data": {"groups": out}}).to_string())
}

pub(super) async fn alerts(State(st): State<ApiState>) -> Response {
    let mut out = Vec::new();
    for g in st.rules.as_ref().map(|m| m.groups()).unwrap_or_default() {
        let state = g.state.lock();
        for rs in &state.rules {
            for a in rs.alerts.active_alerts() {
                out.push(alert_json(a));
            }
        }
    }
    ok_json(json!({"status": "success", "data": {"alerts": out}}).to_string())
}

/// `POST /-/reload`: reloads the rule files and answers when done: 200, or
/// 500 with the errors (the previous rules keep running).
pub(super) async fn reload(State(st): State<ApiState>) -> Response {
    let Some(handle) = st.reload.as_ref() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "rules are not running\n").into_response();
    };
    match handle.reload().await {
        Ok(summary) => (StatusCode::OK, format!("{summary}\n")).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("failed to reload rules; the previous rules keep running:\n{e}\n"),
        )
            .into_response(),
    }
}

fn wanted(filter: &[&str], value: &str) -> bool {
    filter.is_empty() || filter.contains(&value)
}

fn rule_json(rule: &Rule, rs: &RuleState, exclude_alerts: bool) -> Value {
    let mut obj = Map::new();
    match rule {
        Rule::Alerting(r) => {
            obj.insert("state".into(), json!(rs.alerts.state().as_str()));
            obj.insert("name".into(), json!(r.name));
            obj.insert("query".into(), json!(r.expr_text));
            obj.insert("duration".into(), json!(r.for_ms as f64 / 1000.0));
            obj.insert(
                "keepFiringFor".into(),
                json!(r.keep_firing_for_ms as f64 / 1000.0),
            );
            obj.insert("labels".into(), templates_json(&r.labels));
            obj.insert("annotations".into(), templates_json(&r.annotations));
            if !exclude_alerts {
                let alerts: Vec<Value> = rs
                    .alerts
                    .active_alerts()
                    .into_iter()
                    .map(alert_json)
                    .collect();
                obj.insert("alerts".into(), json!(alerts));
            }
        }
        Rule::Recording(r) => {
            obj.insert("name".into(), json!(r.record));
            obj.insert("query".into(), json!(r.expr_text));
            if !r.labels.is_empty() {
                obj.insert("labels".into(), labels_json(&r.labels));
            }
        }
    }
    obj.insert("health".into(), json!(rs.health.as_str()));
    if let Some(e) = &rs.last_error {
        obj.insert("lastError".into(), json!(e));
    }
    obj.insert(
        "evaluationTime".into(),
        json!(rs.last_duration.as_secs_f64()),
    );
    obj.insert("lastEvaluation".into(), json!(rfc3339(rs.last_eval_ms)));
    let kind = if matches!(rule, Rule::Alerting(_)) {
        "alerting"
    } else {
        "recording"
    };
    obj.insert("type".into(), json!(kind));
    Value::Object(obj)
}

fn alert_json(a: &Alert) -> Value {
    let mut obj = Map::new();
    obj.insert("labels".into(), labels_json(&a.labels));
    let ann: Map<String, Value> = a
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    obj.insert("annotations".into(), Value::Object(ann));
    let state = match a.state {
        AlertState::Firing => "firing",
        AlertState::Pending => "pending",
        AlertState::Inactive => "inactive",
    };
    obj.insert("state".into(), json!(state));
    obj.insert("activeAt".into(), json!(rfc3339(Some(a.active_at_ms))));
    if let Some(t) = a.keep_firing_since_ms {
        obj.insert("keepFiringSince".into(), json!(rfc3339(Some(t))));
    }
    obj.insert("value".into(), json!(go_float_e(a.value)));
    Value::Object(obj)
}

fn labels_json(l: &Labels) -> Value {
    Value::Object(
        l.iter()
            .map(|l| (l.name.to_string(), json!(l.value.to_string())))
            .collect(),
    )
}

fn templates_json(t: &[(String, crate::rules::template::Template)]) -> Value {
    Value::Object(
        t.iter()
            .map(|(k, v)| (k.clone(), json!(v.source())))
            .collect(),
    )
}

/// RFC 3339 with milliseconds in UTC; Prometheus's zero time when never.
fn rfc3339(ms: Option<i64>) -> String {
    match ms {
        Some(ms) if ms > 0 => {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64);
            humantime::format_rfc3339_millis(t).to_string()
        }
        _ => "0001-01-01T00:00:00Z".to_string(),
    }
}

/// A float as Go's `strconv.FormatFloat(v, 'e', -1, 64)`, which is how
/// Prometheus renders an alert's value: `1e+00`, `4.2e-01`.
pub(crate) fn go_float_e(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let s = format!("{v:e}");
    let Some((mant, exp)) = s.split_once('e') else {
        return s;
    };
    let (sign, digits) = match exp.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exp),
    };
    format!("{mant}e{sign}{digits:0>2}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_render_as_go_does() {
        assert_eq!(go_float_e(1.0), "1e+00");
        assert_eq!(go_float_e(0.42), "4.2e-01");
        assert_eq!(go_float_e(123456.0), "1.23456e+05");
        assert_eq!(go_float_e(-2.5e-120), "-2.5e-120");
        assert_eq!(go_float_e(0.0), "0e+00");
        assert_eq!(go_float_e(f64::INFINITY), "+Inf");
        assert_eq!(go_float_e(f64::NAN), "NaN");
    }

    #[test]
    fn times_render_in_utc_or_as_go_zero_time() {
        assert_eq!(rfc3339(None), "0001-01-01T00:00:00Z");
        assert_eq!(rfc3339(Some(1_700_000_000_123)), "2023-11-14T22:13:20.123Z");
    }
}
