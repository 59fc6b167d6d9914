//! Template functions: Go's builtins and Prometheus's additions, with the
//! argument rules of Go's reflection-based calls (a string parameter refuses
//! a number; `interface{}` parameters go through Prometheus's float
//! conversion).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use regex::Regex;

use super::exec::Val;
use super::gofmt::{format_float, sprint, sprintf, sprintln};
use super::humanize::{humanize, humanize1024, humanize_duration, humanize_timestamp};
use super::{QuerySample, TemplateData};

const NAMES: &[&str] = &[
    // Go's builtins.
    "and",
    "or",
    "not",
    "len",
    "index",
    "print",
    "printf",
    "println",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "html",
    "urlquery",
    // Prometheus's functions.
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "title",
    "toUpper",
    "toLower",
    "reReplaceAll",
    "match",
    "safeHtml",
    "stripPort",
    "stripDomain",
    "parseDuration",
    "query",
    "first",
    "label",
    "value",
    "strvalue",
    "sortByLabel",
    "pathPrefix",
    "externalURL",
    "graphLink",
    "tableLink",
];

pub(super) fn exists(name: &str) -> bool {
    NAMES.contains(&name)
}

type R<T> = Result<T, String>;

fn arity(name: &str, args: &[Val], n: usize) -> R<()> {
    if args.len() == n {
        Ok(())
    } else {
        Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ))
    }
}

/// A Go `string` parameter.
fn string(v: &Val) -> R<&str> {
    match v {
        Val::Str(s) => Ok(s),
        Val::Nil => Err("invalid value; expected string".into()),
        other => Err(format!(
            "wrong type for value; expected string; got {}",
            other.type_name()
        )),
    }
}

/// Prometheus's `convertToFloat`.
fn to_float(v: &Val) -> R<f64> {
    match v {
        Val::Float(f) => Ok(*f),
        Val::Int(i) => Ok(*i as f64),
        Val::Str(s) => parse_go_float(s),
        other => Err(format!("can't convert {} to float", other.type_name())),
    }
}

fn parse_go_float(s: &str) -> R<f64> {
    let t = s.strip_prefix('+').unwrap_or(s);
    let lower = t.trim_start_matches('-').to_ascii_lowercase();
    // Rust accepts "infinity" and "nan" in any case, as Go does; other
    // spellings Rust would take (none known) are not worth a grammar here.
    if lower.is_empty() || lower.starts_with('.') && lower.len() == 1 {
        return Err(format!("strconv.ParseFloat: parsing {s:?}: invalid syntax"));
    }
    s.parse::<f64>()
        .map_err(|_| format!("strconv.ParseFloat: parsing {s:?}: invalid syntax"))
}

fn sample(v: &Val) -> R<&QuerySample> {
    match v {
        Val::Sample(s) => Ok(s),
        other => Err(format!(
            "wrong type for value; expected *template.sample; got {}",
            other.type_name()
        )),
    }
}

/// Calls a function; errors come back in Go's words, prefixed like Go's
/// `error calling NAME: …` where Go would prefix them.
pub(super) fn call(name: &str, args: Vec<Val>, data: &TemplateData<'_>) -> R<Val> {
    let calling = |e: String| {
        if e.starts_with("wrong ") || e.starts_with("invalid value") {
            e
        } else {
            format!("error calling {name}: {e}")
        }
    };
    call_inner(name, &args, data).map_err(calling)
}

fn call_inner(name: &str, a: &[Val], data: &TemplateData<'_>) -> R<Val> {
    let one_str = |a: &[Val]| -> R<String> {
        arity(name, a, 1)?;
        string(&a[0]).map(str::to_string)
    };
    let one_float = |a: &[Val]| -> R<f64> {
        arity(name, a, 1)?;
        to_float(&a[0])
    };
    Ok(match name {
        "not" => {
            arity(name, a, 1)?;
            Val::Bool(!a[0].truthy())
        }
        "len" => {
            arity(name, a, 1)?;
            Val::Int(match &a[0] {
                Val::Str(s) => s.len(),
                Val::Map(m) => m.len(),
                Val::Samples(s) => s.len(),
                other => return Err(format!("len of type {}", other.type_name())),
            } as i64)
        }
        "index" => {
            if a.is_empty() {
                return Err(format!(
                    "wrong number of args for {name}: want at least 1 got 0"
                ));
            }
            let mut v = a[0].clone();
            for k in &a[1..] {
                v = match (&v, k) {
                    // A missing key gives the element type's zero value.
                    (Val::Map(m), Val::Str(k)) => Val::Str(m.get(k).unwrap_or("").to_string()),
                    (Val::Samples(s), Val::Int(i)) => {
                        match usize::try_from(*i).ok().and_then(|i| s.get(i)) {
                            Some(x) => Val::Sample(Rc::new(x.clone())),
                            None => return Err(format!("index out of range: {i}")),
                        }
                    }
                    (Val::Nil, _) => return Err("index of untyped nil".into()),
                    (c, k) => {
                        return Err(format!(
                            "can't index item of type {} with {}",
                            c.type_name(),
                            k.type_name()
                        ))
                    }
                };
            }
            v
        }
        "print" => Val::Str(sprint(a)),
        "println" => Val::Str(sprintln(a)),
        "printf" => {
            let Some(f) = a.first() else {
                return Err(format!(
                    "wrong number of args for {name}: want at least 1 got 0"
                ));
            };
            Val::Str(sprintf(string(f)?, &a[1..]))
        }
        "eq" => {
            if a.len() < 2 {
                return Err("missing argument for comparison".into());
            }
            let mut any = false;
            for b in &a[1..] {
                any |= compare(&a[0], b)? == std::cmp::Ordering::Equal;
            }
            Val::Bool(any)
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            arity(name, a, 2)?;
            if name != "ne" && matches!(a[0], Val::Bool(_)) {
                return Err("invalid type for comparison".into());
            }
            let o = compare(&a[0], &a[1])?;
            use std::cmp::Ordering::*;
            Val::Bool(match name {
                "ne" => o != Equal,
                "lt" => o == Less,
                "le" => o != Greater,
                "gt" => o == Greater,
                _ => o != Less,
            })
        }
        "html" => Val::Str(html_escape(&sprint(a))),
        "urlquery" => {
            Val::Str(url::form_urlencoded::byte_serialize(sprint(a).as_bytes()).collect())
        }
        "humanize" => Val::Str(humanize(one_float(a)?)),
        "humanize1024" => Val::Str(humanize1024(one_float(a)?)),
        "humanizeDuration" => Val::Str(humanize_duration(one_float(a)?)),
        "humanizePercentage" => Val::Str(format!(
            "{}%",
            format_float(one_float(a)? * 100.0, 'g', Some(4))
        )),
        "humanizeTimestamp" => Val::Str(humanize_timestamp(one_float(a)?)?),
        "title" => Val::Str(title(&one_str(a)?)),
        "toUpper" => Val::Str(one_str(a)?.to_uppercase()),
        "toLower" => Val::Str(one_str(a)?.to_lowercase()),
        "safeHtml" => Val::Str(one_str(a)?),
        "reReplaceAll" => {
            arity(name, a, 3)?;
            let re = regex(string(&a[0])?)?;
            Val::Str(re.replace_all(string(&a[2])?, string(&a[1])?).into_owned())
        }
        "match" => {
            arity(name, a, 2)?;
            Val::Bool(regex(string(&a[0])?)?.is_match(string(&a[1])?))
        }
        "stripPort" => {
            let s = one_str(a)?;
            Val::Str(split_host_port(&s).map_or(s, |(h, _)| h))
        }
        "stripDomain" => Val::Str(strip_domain(&one_str(a)?)),
        "parseDuration" => {
            let d = crate::rules::rule::parse_duration(&one_str(a)?)?;
            Val::Float(d as f64 / 1000.0)
        }
        "query" => {
            let q = one_str(a)?;
            let f = data.query.ok_or("queries are not available here")?;
            Val::Samples(Rc::new(f(&q)?))
        }
        "first" => {
            arity(name, a, 1)?;
            match &a[0] {
                Val::Samples(s) => match s.first() {
                    Some(x) => Val::Sample(Rc::new(x.clone())),
                    None => return Err("first() called on vector with no elements".into()),
                },
                other => {
                    return Err(format!(
                        "wrong type for value; expected template.queryResult; got {}",
                        other.type_name()
                    ))
                }
            }
        }
        "label" => {
            arity(name, a, 2)?;
            Val::Str(
                sample(&a[1])?
                    .labels
                    .get(string(&a[0])?)
                    .unwrap_or("")
                    .to_string(),
            )
        }
        "value" => {
            arity(name, a, 1)?;
            Val::Float(sample(&a[0])?.value)
        }
        "strvalue" => {
            arity(name, a, 1)?;
            Val::Str(
                sample(&a[0])?
                    .labels
                    .get("__value__")
                    .unwrap_or("")
                    .to_string(),
            )
        }
        "sortByLabel" => {
            arity(name, a, 2)?;
            let key = string(&a[0])?;
            let Val::Samples(s) = &a[1] else {
                return Err(format!(
                    "wrong type for value; expected template.queryResult; got {}",
                    a[1].type_name()
                ));
            };
            let mut v = (**s).clone();
            v.sort_by(|x, y| {
                x.labels
                    .get(key)
                    .unwrap_or("")
                    .cmp(y.labels.get(key).unwrap_or(""))
            });
            Val::Samples(Rc::new(v))
        }
        "externalURL" => {
            arity(name, a, 0)?;
            Val::Str(data.external_url.to_string())
        }
        "pathPrefix" => {
            arity(name, a, 0)?;
            let path = url::Url::parse(data.external_url)
                .map(|u| u.path().to_string())
                .unwrap_or_default();
            Val::Str(if path == "/" && !data.external_url.ends_with('/') {
                String::new()
            } else {
                path
            })
        }
        "graphLink" | "tableLink" => {
            let e: String = url::form_urlencoded::byte_serialize(one_str(a)?.as_bytes()).collect();
            let tab = if name == "graphLink" { 0 } else { 1 };
            Val::Str(format!("/graph?g0.expr={e}&g0.tab={tab}"))
        }
        _ => return Err(format!("function \"{name}\" not defined")),
    })
}

/// Go's `lt`/`eq` on basic kinds: ints with ints, floats with floats,
/// strings with strings; an int and a float are incompatible (so
/// `gt $value 80` fails in Prometheus too: write `80.0`).
fn compare(a: &Val, b: &Val) -> R<std::cmp::Ordering> {
    use std::cmp::Ordering;
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => Ok(x.cmp(y)),
        (Val::Float(x), Val::Float(y)) => Ok(x.partial_cmp(y).unwrap_or(Ordering::Less)),
        (Val::Str(x), Val::Str(y)) => Ok(x.cmp(y)),
        (Val::Bool(x), Val::Bool(y)) => Ok(x.cmp(y)),
        (Val::Nil, Val::Nil) => Ok(Ordering::Equal),
        (Val::Map(_) | Val::Samples(_) | Val::Sample(_) | Val::Data, _)
        | (_, Val::Map(_) | Val::Samples(_) | Val::Sample(_) | Val::Data) => {
            Err("invalid type for comparison".into())
        }
        _ => Err("incompatible types for comparison".into()),
    }
}

/// Go's deprecated `strings.Title`: upper-cases the first letter after a
/// separator.
fn title(s: &str) -> String {
    let sep = |c: char| {
        if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else if c.is_alphanumeric() {
            false
        } else {
            c.is_whitespace()
        }
    };
    let mut prev = ' ';
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if sep(prev) {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev = c;
    }
    out
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&#39;"),
            '"' => out.push_str("&#34;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// `net.SplitHostPort` for the forms instance labels take.
fn split_host_port(s: &str) -> Option<(String, String)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, port) = rest.split_once("]:")?;
        return Some((host.to_string(), port.to_string()));
    }
    let (host, port) = s.rsplit_once(':')?;
    if host.contains(':') {
        return None;
    }
    Some((host.to_string(), port.to_string()))
}

fn strip_domain(s: &str) -> String {
    let (host, port) = split_host_port(s).unwrap_or_else(|| (s.to_string(), String::new()));
    if host.parse::<std::net::IpAddr>().is_ok() {
        return s.to_string();
    }
    let short = host.split('.').next().unwrap_or("");
    if port.is_empty() {
        short.to_string()
    } else if short.contains(':') {
        format!("[{short}]:{port}")
    } else {
        format!("{short}:{port}")
    }
}

thread_local! {
    /// Compiled patterns of `reReplaceAll` and `match`, which run for every
    /// alert at every evaluation with the same few patterns.
    static REGEX_CACHE: RefCell<HashMap<String, Regex>> = RefCell::new(HashMap::new());
}

fn regex(p: &str) -> R<Regex> {
    if let Some(re) = REGEX_CACHE.with(|c| c.borrow().get(p).cloned()) {
        return Ok(re);
    }
    let re = Regex::new(p).map_err(|e| format!("error parsing regexp: {e}"))?;
    REGEX_CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= 256 {
            c.clear();
        }
        c.insert(p.to_string(), re.clone());
    });
    Ok(re)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_hosts() {
        assert_eq!(title("aa bb-cc_dd"), "Aa Bb-Cc_dd");
        assert_eq!(strip_domain("foo.example.com:9100"), "foo:9100");
        assert_eq!(strip_domain("10.0.0.1:9100"), "10.0.0.1:9100");
        assert_eq!(strip_domain("foo.example.com"), "foo");
        assert_eq!(
            split_host_port("[::1]:80"),
            Some(("::1".into(), "80".into()))
        );
        assert_eq!(split_host_port("host"), None);
        assert_eq!(html_escape("<a & 'b'>"), "&lt;a &amp; &#39;b&#39;&gt;");
    }

    #[test]
    fn comparisons_follow_go_kinds() {
        use std::cmp::Ordering::*;
        assert_eq!(compare(&Val::Float(81.0), &Val::Float(80.0)), Ok(Greater));
        assert_eq!(compare(&Val::Int(1), &Val::Int(1)), Ok(Equal));
        assert!(compare(&Val::Float(1.0), &Val::Int(1))
            .unwrap_err()
            .contains("incompatible"));
        assert!(compare(&Val::Str("a".into()), &Val::Float(1.0)).is_err());
    }
}
