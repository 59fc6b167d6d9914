//! Rendering of API responses in Prometheus's JSON, written by hand into one
//! buffer: a query_range over thousands of series would otherwise build a large
//! tree of `serde_json::Value`s only to serialise it.

use std::fmt::Write as _;

use crate::model::Labels;
use crate::promql::Value;
use crate::telemetry::push_float;

/// Appends `s` as a JSON string.
pub fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `{"name":"value",...}` for a label set.
pub fn push_labels(out: &mut String, labels: &Labels) {
    out.push('{');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(out, &l.name);
        out.push(':');
        push_str(out, &l.value);
    }
    out.push('}');
}

/// `[<unix seconds>,"<value>"]`, as Prometheus renders a sample point.
pub fn push_point(out: &mut String, t_ms: i64, v: f64) {
    out.push('[');
    push_unix_seconds(out, t_ms);
    out.push_str(",\"");
    push_float(out, v);
    out.push_str("\"]");
}

fn push_unix_seconds(out: &mut String, t_ms: i64) {
    if t_ms < 0 {
        out.push('-');
    }
    let secs = t_ms.unsigned_abs() / 1000;
    let ms = t_ms.unsigned_abs() % 1000;
    if ms == 0 {
        let _ = write!(out, "{secs}");
    } else {
        // Three decimals without trailing zeros, exactly as the millisecond
        // timestamp is (no float rounding).
        let frac = format!("{ms:03}");
        let _ = write!(out, "{secs}.{}", frac.trim_end_matches('0'));
    }
}

/// The `data` object of a query answer.
pub fn push_query_data(out: &mut String, value: &Value, t_ms: i64) {
    match value {
        Value::Scalar(v) => {
            out.push_str("{\"resultType\":\"scalar\",\"result\":");
            push_point(out, t_ms, *v);
        }
        Value::String(s) => {
            out.push_str("{\"resultType\":\"string\",\"result\":[");
            push_unix_seconds(out, t_ms);
            out.push(',');
            push_str(out, s);
            out.push(']');
        }
        Value::Vector(samples) => {
            out.push_str("{\"resultType\":\"vector\",\"result\":[");
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                push_labels(out, &s.labels);
                out.push_str(",\"value\":");
                push_point(out, s.t, s.v);
                out.push('}');
            }
            out.push(']');
        }
        Value::Matrix(series) => {
            out.push_str("{\"resultType\":\"matrix\",\"result\":[");
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                push_labels(out, &s.labels);
                out.push_str(",\"values\":[");
                for (j, p) in s.samples.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    push_point(out, p.t, p.v);
                }
                out.push_str("]}");
            }
            out.push(']');
        }
    }
    out.push('}');
}

/// `{"status":"success","data":<data>}` around data written by `f`.
pub fn success(f: impl FnOnce(&mut String)) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("{\"status\":\"success\",\"data\":");
    f(&mut out);
    out.push('}');
    out
}

/// Prometheus's error shape.
pub fn error(kind: &str, message: &str) -> String {
    let mut out = String::with_capacity(64 + message.len());
    out.push_str("{\"status\":\"error\",\"errorType\":");
    push_str(&mut out, kind);
    out.push_str(",\"error\":");
    push_str(&mut out, message);
    out.push('}');
    out
}

/// A JSON array of strings.
pub fn push_str_array<S: AsRef<str>>(out: &mut String, items: &[S]) {
    out.push('[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(out, s.as_ref());
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::InstantSample;

    #[test]
    fn vector_matches_prometheus_json() {
        let v = Value::Vector(vec![InstantSample {
            labels: Labels::from_pairs(&[("__name__", "up"), ("job", "host")]),
            t: 1_435_781_451_781,
            v: 1.0,
        }]);
        let s = success(|o| push_query_data(o, &v, 0));
        assert_eq!(
            s,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"host"},"value":[1435781451.781,"1"]}]}}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(parsed["data"]["result"][0]["value"][1], "1");
    }

    #[test]
    fn scalars_and_special_floats() {
        let s = success(|o| push_query_data(o, &Value::Scalar(f64::NEG_INFINITY), 1_500));
        assert_eq!(
            s,
            r#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"-Inf"]}}"#
        );
        let s = success(|o| push_query_data(o, &Value::Scalar(0.1), -1_500));
        assert!(s.contains("[-1.5,\"0.1\"]"), "{s}");
    }

    #[test]
    fn errors_escape_messages() {
        let e = error("bad_data", "1:5: parse error: unexpected \"}\"\n");
        let parsed: serde_json::Value = serde_json::from_str(&e).unwrap();
        assert_eq!(parsed["errorType"], "bad_data");
        assert_eq!(parsed["error"], "1:5: parse error: unexpected \"}\"\n");
    }
}
