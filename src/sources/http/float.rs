//! Numbers as Prometheus reads and writes them: Go's `strconv.ParseFloat`
//! minus the forms Prometheus refuses, and the OpenMetrics rendering of
//! floats that Prometheus 3 gives histogram `le` and summary `quantile`
//! label values (`1` → `1.0`, `1e6` → `1e+06`).

use std::fmt::{self, Write as _};

/// Parses a sample value. Accepts what Go's `ParseFloat` does for decimal
/// input (`1`, `-2.5e-3`, `.5`, `NaN`, `+Inf`, `-Inf`, `inf`, `Infinity`, in
/// any case) and refuses hex floats and `_` separators, as Prometheus does.
pub fn parse_float(s: &str) -> Option<f64> {
    if s.bytes()
        .any(|c| matches!(c, b'p' | b'P' | b'_' | b'x' | b'X'))
    {
        return None;
    }
    s.parse::<f64>().ok()
}

/// A short string built on the stack, so that formatting a label value
/// does not allocate.
#[derive(Debug, Clone, Copy)]
pub struct StackStr {
    buf: [u8; 40],
    len: usize,
}

impl StackStr {
    pub fn new() -> StackStr {
        StackStr {
            buf: [0; 40],
            len: 0,
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever written; the fallback cannot happen.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    fn push(&mut self, b: u8) {
        if self.len < self.buf.len() {
            self.buf[self.len] = b;
            self.len += 1;
        }
    }

    fn push_str(&mut self, s: &str) {
        for &b in s.as_bytes() {
            self.push(b);
        }
    }
}

impl Default for StackStr {
    fn default() -> Self {
        StackStr::new()
    }
}

impl fmt::Write for StackStr {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.len + s.len() > self.buf.len() {
            return Err(fmt::Error);
        }
        self.push_str(s);
        Ok(())
    }
}

/// Formats `v` as Prometheus's `formatOpenMetricsFloat`: Go's shortest `%g`
/// (exponent form below 1e-4 and from 1e6 up, at least two exponent digits),
/// with `.0` added to integers, and `NaN`, `+Inf`, `-Inf`.
pub fn om_float(v: f64) -> StackStr {
    let mut out = StackStr::new();
    if v.is_nan() {
        out.push_str("NaN");
        return out;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        return out;
    }
    if v == 0.0 {
        out.push_str("0.0");
        return out;
    }
    // Rust's `{:e}` gives the shortest round-tripping digits, as Go's
    // shortest formatting does: `-1.2345e-7`.
    let mut sci = StackStr::new();
    if write!(sci, "{:e}", v.abs()).is_err() {
        return out;
    }
    let s = sci.as_str();
    let (mantissa, exp) = s.split_once('e').unwrap_or((s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits = [0u8; 24];
    let mut nd = 0;
    for &b in mantissa.as_bytes().iter().filter(|b| b.is_ascii_digit()) {
        if nd < digits.len() {
            digits[nd] = b;
            nd += 1;
        }
    }
    let digits = &digits[..nd];
    if v < 0.0 {
        out.push(b'-');
    }
    if !(-4..6).contains(&exp) {
        out.push(digits[0]);
        if nd > 1 {
            out.push(b'.');
            digits[1..].iter().for_each(|&d| out.push(d));
        }
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push(b'0');
        }
        let _ = write!(out, "{e}");
        return out;
    }
    if exp < 0 {
        out.push_str("0.");
        (0..(-exp - 1)).for_each(|_| out.push(b'0'));
        digits.iter().for_each(|&d| out.push(d));
        return out;
    }
    let int_len = exp as usize + 1;
    if nd <= int_len {
        digits.iter().for_each(|&d| out.push(d));
        (nd..int_len).for_each(|_| out.push(b'0'));
        out.push_str(".0");
    } else {
        digits[..int_len].iter().for_each(|&d| out.push(d));
        out.push(b'.');
        digits[int_len..].iter().for_each(|&d| out.push(d));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_floats() {
        assert_eq!(parse_float("1"), Some(1.0));
        assert_eq!(parse_float("-2.5e-3"), Some(-0.0025));
        assert_eq!(parse_float(".5"), Some(0.5));
        assert_eq!(parse_float("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_float("-Inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_float("Inf"), Some(f64::INFINITY));
        assert!(parse_float("NaN").is_some_and(f64::is_nan));
        assert!(parse_float("nan").is_some_and(f64::is_nan));
        assert_eq!(parse_float("0x1p3"), None);
        assert_eq!(parse_float("1_000"), None);
        assert_eq!(parse_float(""), None);
        assert_eq!(parse_float("1,5"), None);
    }

    #[test]
    fn formats_like_prometheus_openmetrics() {
        let cases: [(f64, &str); 18] = [
            (0.0, "0.0"),
            (-0.0, "0.0"),
            (1.0, "1.0"),
            (-1.0, "-1.0"),
            (0.005, "0.005"),
            (0.25, "0.25"),
            (2.5, "2.5"),
            (10.0, "10.0"),
            (300.0, "300.0"),
            (100000.0, "100000.0"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-10, "1.5e-10"),
            (1e100, "1e+100"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ];
        for (v, want) in cases {
            assert_eq!(om_float(v).as_str(), want, "{v}");
        }
        assert_eq!(om_float(f64::NAN).as_str(), "NaN");
        assert_eq!(om_float(f64::MAX).as_str(), "1.7976931348623157e+308");
        assert_eq!(om_float(-123.456).as_str(), "-123.456");
    }
}
