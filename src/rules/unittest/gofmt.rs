//! Printing the way promtool prints, so that a failure reads the same as
//! promtool's and scripts that grep its output keep working: Go's
//! `labels.Labels.String()`, `time.Duration.String()`,
//! `strconv.FormatFloat(v, 'E', -1, 64)` and promtool's `indentLines`.

use std::fmt::Write;

use crate::model::Labels;
use crate::rules::template::{format_float, go_quote};

/// `labels.Labels.String()`: `{__name__="up", job="api"}`.
pub fn labels(l: &Labels) -> String {
    pairs(l.iter().map(|l| (l.name.as_str(), l.value.as_str())))
}

/// The same for name/value pairs already sorted by name.
pub fn pairs<'a>(it: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut s = String::from("{");
    for (i, (name, value)) in it.enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(name);
        s.push('=');
        s.push_str(&go_quote(value));
    }
    s.push('}');
    s
}

/// `strconv.FormatFloat(v, 'E', -1, 64)`: `1.1E+01`, `1E-07`, `+Inf`.
pub fn float_e(v: f64) -> String {
    format_float(v, 'E', None)
}

/// Go's `time.Duration.String()` for whole milliseconds: `0s`, `500ms`,
/// `1m30s`, `10m0s`, `1h0m0s`, `1.5s`.
pub fn go_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    if ms < 0 {
        out.push('-');
    }
    let ms = ms.unsigned_abs();
    if ms < 1000 {
        let _ = write!(out, "{ms}ms");
        return out;
    }
    let (h, m) = (ms / 3_600_000, ms / 60_000 % 60);
    let (secs, frac) = (ms / 1000 % 60, ms % 1000);
    let s = if frac == 0 {
        secs.to_string()
    } else {
        format!("{secs}.{frac:03}")
            .trim_end_matches('0')
            .to_string()
    };
    if h > 0 {
        let _ = write!(out, "{h}h{m}m{s}s");
    } else if m > 0 {
        let _ = write!(out, "{m}m{s}s");
    } else {
        let _ = write!(out, "{s}s");
    }
    out
}

/// promtool's `indentLines`: every line but the first gets `indent`.
pub fn indent_lines(text: &str, indent: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
            out.push_str(indent);
        }
        out.push_str(line);
    }
    out
}

/// An alert as promtool compares it: labels and annotations, each sorted
/// by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LabelsAndAnnotations {
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
}

impl LabelsAndAnnotations {
    fn render(&self) -> String {
        let p = |v: &[(String, String)]| pairs(v.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        format!(
            "Labels:{}\nAnnotations:{}",
            p(&self.labels),
            p(&self.annotations)
        )
    }
}

/// promtool's `labelsAndAnnotations.String()`.
pub fn alerts(list: &[LabelsAndAnnotations]) -> String {
    if list.is_empty() {
        return "[]".into();
    }
    let mut s = String::from("[");
    for (i, a) in list.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "\n{i}:{}",
            indent_lines(&format!("\n{}", a.render()), "  ")
        );
    }
    s.push_str("\n]");
    s
}

/// promtool's `parsedSamplesString`: `nil`, or samples joined by `, `.
pub fn samples(list: &[(Labels, f64)]) -> String {
    if list.is_empty() {
        return "nil".into();
    }
    list.iter()
        .map(|(l, v)| format!("{} {}", labels(l), float_e(*v)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(500), "500ms");
        assert_eq!(go_duration(1_500), "1.5s");
        assert_eq!(go_duration(60_000), "1m0s");
        assert_eq!(go_duration(90_000), "1m30s");
        assert_eq!(go_duration(600_000), "10m0s");
        assert_eq!(go_duration(3_600_000), "1h0m0s");
        assert_eq!(go_duration(3_661_250), "1h1m1.25s");
        assert_eq!(go_duration(-60_000), "-1m0s");
    }

    #[test]
    fn floats_and_labels_print_like_go() {
        assert_eq!(float_e(11.0), "1.1E+01");
        assert_eq!(float_e(1e-7), "1E-07");
        assert_eq!(float_e(0.0), "0E+00");
        assert_eq!(float_e(f64::INFINITY), "+Inf");
        let l = Labels::from_pairs(&[("__name__", "up"), ("job", "a\"b")]);
        assert_eq!(labels(&l), r#"{__name__="up", job="a\"b"}"#);
        assert_eq!(labels(&Labels::empty()), "{}");
    }

    #[test]
    fn alert_lists_print_like_promtool() {
        let a = LabelsAndAnnotations {
            labels: vec![("alertname".into(), "A".into())],
            annotations: vec![],
        };
        assert_eq!(alerts(&[]), "[]");
        assert_eq!(
            alerts(&[a.clone(), a]),
            "[\n0:\n  Labels:{alertname=\"A\"}\n  Annotations:{},\n1:\n  Labels:{alertname=\"A\"}\n  Annotations:{}\n]"
        );
        assert_eq!(indent_lines("a\nb\n", "  "), "a\n  b\n  ");
    }
}
