//! Go's number formatting (`strconv.FormatFloat` and the `fmt` verbs that
//! templates use), so that `{{ $value }}`, `humanize` and `printf` print
//! exactly what Prometheus prints: alert texts are compared by people and by
//! promtool-format tests, and `1.234567e+06` must not become `1234567`.

use std::fmt::Write;

use super::exec::Val;

/// The decimal digits of a non-negative finite number, `0.d1d2… × 10^dp`,
/// without trailing zeros (zero has no digits), as Go's `decimalSlice`.
struct Digits {
    d: Vec<u8>,
    dp: i32,
}

/// Parses Rust's `{:e}` output (`1.2345e6`, `0e0`); Rust's float printing
/// is exact (shortest round-trip or correctly rounded), as Go's is.
fn digits_from_sci(s: &str) -> Digits {
    let (mant, exp) = s.split_once('e').unwrap_or((s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut d: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    while d.last() == Some(&b'0') {
        d.pop();
    }
    if d.is_empty() {
        return Digits { d, dp: 0 };
    }
    Digits { d, dp: exp + 1 }
}

fn shortest(a: f64) -> Digits {
    digits_from_sci(&format!("{a:e}"))
}

fn significant(a: f64, n: usize) -> Digits {
    digits_from_sci(&format!("{:.*e}", n.saturating_sub(1), a))
}

fn fmt_e(out: &mut String, d: &Digits, prec: i32, upper: bool) {
    out.push(d.d.first().map_or('0', |&c| c as char));
    if prec > 0 {
        out.push('.');
        for i in 1..=prec as usize {
            out.push(d.d.get(i).map_or('0', |&c| c as char));
        }
    }
    out.push(if upper { 'E' } else { 'e' });
    let exp = if d.d.is_empty() { 0 } else { d.dp - 1 };
    out.push(if exp < 0 { '-' } else { '+' });
    let _ = write!(out, "{:02}", exp.abs());
}

fn fmt_f(out: &mut String, d: &Digits, prec: i32) {
    if d.dp > 0 {
        for i in 0..d.dp as usize {
            out.push(d.d.get(i).map_or('0', |&c| c as char));
        }
    } else {
        out.push('0');
    }
    if prec > 0 {
        out.push('.');
        for i in 0..prec {
            let j = d.dp + i;
            let c = if j >= 0 {
                d.d.get(j as usize).copied()
            } else {
                None
            };
            out.push(c.map_or('0', |c| c as char));
        }
    }
}

/// `strconv.FormatFloat(v, verb, prec, 64)` for verbs `e E f g G`; `None`
/// is precision -1 (shortest). Infinities print as `+Inf`/`-Inf` as in Go.
pub fn format_float(v: f64, verb: char, prec: Option<usize>) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let mut out = String::new();
    if v.is_sign_negative() {
        out.push('-');
    }
    let a = v.abs();
    match verb {
        'f' | 'F' => match prec {
            Some(p) => {
                let _ = write!(out, "{a:.p$}");
            }
            None => {
                let d = shortest(a);
                let p = (d.d.len() as i32 - d.dp).max(0);
                fmt_f(&mut out, &d, p);
            }
        },
        'e' | 'E' => {
            let (d, p) = match prec {
                Some(p) => (significant(a, p + 1), p as i32),
                None => {
                    let d = shortest(a);
                    let p = (d.d.len() as i32 - 1).max(0);
                    (d, p)
                }
            };
            fmt_e(&mut out, &d, p, verb == 'E');
        }
        _ => {
            let shortest_mode = prec.is_none();
            let d = match prec {
                None => shortest(a),
                Some(p) => significant(a, p.max(1)),
            };
            let nd = d.d.len() as i32;
            let mut prec = prec.map_or(nd, |p| p.max(1) as i32);
            let mut eprec = prec;
            if eprec > nd && nd >= d.dp {
                eprec = nd;
            }
            // Go decides on exponent form with precision 6 in shortest mode.
            if shortest_mode {
                eprec = 6;
            }
            let exp = d.dp - 1;
            if exp < -4 || exp >= eprec {
                if prec > nd {
                    prec = nd;
                }
                fmt_e(&mut out, &d, prec - 1, verb == 'G');
            } else {
                if prec > d.dp {
                    prec = nd;
                }
                fmt_f(&mut out, &d, (prec - d.dp).max(0));
            }
        }
    }
    out
}

/// `fmt.Sprint` of one value (`%v`).
pub fn print_value(v: &Val, out: &mut String) {
    match v {
        Val::Float(f) => out.push_str(&format_float(*f, 'g', None)),
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

/// `fmt.Sprint(args...)`: spaces only between operands neither of which is
/// a string.
pub fn sprint(args: &[Val]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Val::Str(_)) && !matches!(args[i - 1], Val::Str(_)) {
            out.push(' ');
        }
        print_value(a, &mut out);
    }
    out
}

/// `fmt.Sprintln(args...)`: always spaces, then a newline.
pub fn sprintln(args: &[Val]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        print_value(a, &mut out);
    }
    out.push('\n');
    out
}

#[derive(Default)]
struct Spec {
    minus: bool,
    plus: bool,
    space: bool,
    zero: bool,
    sharp: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// `fmt.Sprintf` for the verbs templates use: `%v %s %q %d %f %F %e %E %g
/// %G %x %X %t %%`, flags `-+ 0#`, width and precision. Wrong types and
/// missing or extra arguments print Go's `%!verb(type=value)` forms rather
/// than failing, as Go does.
pub fn sprintf(format: &str, args: &[Val]) -> String {
    let mut out = String::new();
    let mut next = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                '#' => spec.sharp = true,
                _ => break,
            }
            chars.next();
        }
        spec.width = read_num(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.prec = Some(read_num(&mut chars).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        next += 1;
        let body = format_one(verb, &spec, arg);
        pad(
            &mut out,
            &body,
            &spec,
            matches!(arg, Val::Int(_) | Val::Float(_)),
        );
    }
    if next < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, a) in args[next..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{}=", a.type_name());
            print_value(a, &mut out);
        }
        out.push(')');
    }
    out
}

fn read_num(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<usize> {
    let mut n: Option<usize> = None;
    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
        n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize));
        chars.next();
    }
    n
}

fn bad_verb(verb: char, arg: &Val) -> String {
    let mut s = format!("%!{verb}({}=", arg.type_name());
    print_value(arg, &mut s);
    s.push(')');
    s
}

fn signed(s: String, spec: &Spec) -> String {
    if s.starts_with('-') || s.starts_with('+') {
        s
    } else if spec.plus {
        format!("+{s}")
    } else if spec.space {
        format!(" {s}")
    } else {
        s
    }
}

fn format_one(verb: char, spec: &Spec, arg: &Val) -> String {
    match (verb, arg) {
        ('v', Val::Float(f)) => signed(format_float(*f, 'g', spec.prec), spec),
        ('v', Val::Int(i)) | ('d', Val::Int(i)) => signed(i.to_string(), spec),
        ('v', a) => {
            let mut s = String::new();
            print_value(a, &mut s);
            s
        }
        ('s', Val::Str(s)) => match spec.prec {
            Some(p) => s.chars().take(p).collect(),
            None => s.clone(),
        },
        ('q', Val::Str(s)) => go_quote(s),
        ('t', Val::Bool(b)) => b.to_string(),
        ('f' | 'F' | 'e' | 'E' | 'g' | 'G', Val::Float(f)) => {
            let prec = match verb {
                'g' | 'G' => spec.prec,
                _ => Some(spec.prec.unwrap_or(6)),
            };
            signed(format_float(*f, verb, prec), spec)
        }
        ('x', Val::Int(i)) => format!("{i:x}"),
        ('X', Val::Int(i)) => format!("{i:X}"),
        ('x', Val::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
        ('X', Val::Str(s)) => s.bytes().map(|b| format!("{b:02X}")).collect(),
        _ => bad_verb(verb, arg),
    }
}

fn pad(out: &mut String, body: &str, spec: &Spec, numeric: bool) {
    let len = body.chars().count();
    let Some(w) = spec.width.filter(|&w| w > len) else {
        out.push_str(body);
        return;
    };
    let fill = w - len;
    if spec.minus {
        out.push_str(body);
        out.extend(std::iter::repeat_n(' ', fill));
    } else if spec.zero && numeric && !body.ends_with("Inf") && body != "NaN" {
        // Zero padding goes after the sign.
        let (sign, digits) = match body.chars().next() {
            Some(c @ ('-' | '+' | ' ')) => (Some(c), &body[1..]),
            _ => (None, body),
        };
        out.extend(sign);
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(digits);
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(body);
    }
}

/// `strconv.Quote`, close enough for label values: Rust's escaping of
/// control characters differs only in rare code points.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_g_switches_to_exponent_like_go() {
        // Outputs of Go's fmt.Sprint(float64).
        let cases = [
            (1234567.0, "1.234567e+06"),
            (123456.0, "123456"),
            (1e6, "1e+06"),
            (0.5, "0.5"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.0, "0"),
            (-0.0, "-0"),
            (-2.5, "-2.5"),
            (100.0, "100"),
            (1e21, "1e+21"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ];
        for (v, want) in cases {
            assert_eq!(format_float(v, 'g', None), want, "{v}");
        }
    }

    #[test]
    fn precision_g_matches_go() {
        let cases = [
            (1.234567, "1.235"),
            (1.0, "1"),
            (100.0, "100"),
            (1234.5, "1234"),
            (12345.0, "1.234e+04"),
            (0.0, "0"),
            (12.34, "12.34"),
            (1.1765, "1.177"),
            (0.000012345, "1.234e-05"),
        ];
        for (v, want) in cases {
            assert_eq!(format_float(v, 'g', Some(4)), want, "{v}");
        }
    }

    #[test]
    fn printf_verbs_flags_and_mistakes() {
        let f = |x: f64| Val::Float(x);
        assert_eq!(sprintf("%.2f", &[f(1.23456)]), "1.23");
        assert_eq!(sprintf("%f", &[f(1.5)]), "1.500000");
        assert_eq!(sprintf("%e", &[f(1234.5)]), "1.234500e+03");
        assert_eq!(
            sprintf("%8.2f|%-6.1f|%06.1f", &[f(1.5), f(2.0), f(-3.25)]),
            "    1.50|2.0   |-003.2"
        );
        assert_eq!(sprintf("%+d %d%%", &[Val::Int(5), Val::Int(-7)]), "+5 -7%");
        assert_eq!(
            sprintf("%s=%q", &[Val::Str("a".into()), Val::Str("b\"c".into())]),
            "a=\"b\\\"c\""
        );
        assert_eq!(sprintf("%d", &[f(1.5)]), "%!d(float64=1.5)");
        assert_eq!(sprintf("%.2f", &[Val::Int(5)]), "%!f(int=5)");
        assert_eq!(sprintf("%s %s", &[Val::Str("x".into())]), "x %!s(MISSING)");
        assert_eq!(sprintf("%v", &[f(1.0), Val::Int(2)]), "1%!(EXTRA int=2)");
        assert_eq!(
            sprintf("%v|%v", &[f(1234567.0), Val::Bool(true)]),
            "1.234567e+06|true"
        );
    }

    #[test]
    fn sprint_spaces_between_non_strings_only() {
        let args = [
            Val::Int(1),
            Val::Int(2),
            Val::Str("a".into()),
            Val::Float(0.5),
        ];
        assert_eq!(sprint(&args), "1 2a0.5");
        assert_eq!(sprintln(&args), "1 2 a 0.5\n");
    }
}
