//! The Prometheus text exposition format (0.0.4) and OpenMetrics 1.0 text,
//! parsed straight into a [`SampleBuf`].
//!
//! Hand-written because the crates on offer either split label sets on `,`
//! and `=` (wrong for escaped values), drop timestamps, or build owned
//! families, maps and strings for every sample; this parser walks the body
//! once and writes names and label values from the body into the buffer's
//! arena, so a steady-state scrape allocates nothing. It follows Prometheus's
//! own parsers (`promparse.go`, `openmetricsparse.go`): an invalid line fails
//! the whole scrape with its line number; label values unescape `\\`, `\"`
//! and `\n` and keep other escapes as written; values are Go floats (`NaN`,
//! `+Inf`, `-Inf`); timestamps are integer milliseconds in the text format
//! and float seconds in OpenMetrics; OpenMetrics must end with `# EOF` and
//! its exemplars are checked and skipped; `le` of histograms and `quantile`
//! of summaries are normalized as Prometheus 3 does (`le="1"` → `le="1.0"`).
//! It is more lenient than Prometheus only about white space (runs of blanks,
//! `\r\n` line ends, trailing blanks).

use super::super::SampleBuf;
use super::float::{om_float, parse_float, StackStr};
use super::lex::{
    scan_label, scan_metric_name, skip_blank, snippet, token, unescape, LabelScan, LineResult,
};

/// The exposition format of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`, also taken for any unknown content type.
    Text,
    /// `application/openmetrics-text`.
    OpenMetrics,
}

impl Format {
    /// The format a `Content-Type` header announces.
    pub fn from_content_type(ct: Option<&str>) -> Format {
        match ct {
            Some(ct)
                if ct
                    .trim_start()
                    .get(..28)
                    .is_some_and(|p| p.eq_ignore_ascii_case("application/openmetrics-text")) =>
            {
                Format::OpenMetrics
            }
            _ => Format::Text,
        }
    }
}

/// What the target's configuration says about its samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    /// false: `job`/`instance` on the page become `exported_job`/`exported_instance`.
    pub honor_labels: bool,
    /// More samples than this fail the scrape.
    pub sample_limit: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
    #[error("sample limit exceeded: the page has more than {limit} samples")]
    SampleLimit { limit: usize },
    #[error("line {line}: the body is not valid UTF-8")]
    Utf8 { line: usize },
}

/// A reusable parser: its buffers keep their capacity across scrapes.
#[derive(Debug, Default)]
pub struct Parser {
    labels: Vec<Label>,
    /// Unescaped label values of the current line.
    unescaped: String,
    /// `exported_...` label names being built.
    renamed: String,
    /// Normalized `le`/`quantile` values by their text on the page: a page
    /// repeats the same dozen bucket bounds for every series, so each is
    /// parsed and formatted once, not once per sample.
    normalized: Vec<(String, StackStr)>,
}

/// Most distinct `le`/`quantile` texts remembered; more are formatted each time.
const NORMALIZED_CACHE: usize = 256;

#[derive(Debug, Clone, Copy)]
struct Label {
    name: (usize, usize),
    value: Val,
}

/// Where a label's value is: in the line as written, or unescaped in the scratch string.
#[derive(Debug, Clone, Copy)]
enum Val {
    Line(usize, usize),
    Scratch(usize, usize),
}

/// The kind of the family being read, as far as parsing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Histogram,
    Summary,
    Other,
}

impl Parser {
    pub fn new() -> Parser {
        Parser::default()
    }

    /// Parses `body` and appends its samples to `out`; returns how many.
    /// On an error `out` holds a partial page, which the caller discards.
    pub fn parse(
        &mut self,
        body: &[u8],
        format: Format,
        opts: ParseOptions,
        out: &mut SampleBuf,
    ) -> Result<usize, ParseError> {
        let text = std::str::from_utf8(body).map_err(|e| ParseError::Utf8 {
            line: 1 + body[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count(),
        })?;
        let mut kind = Kind::Other;
        let mut eof = false;
        let mut n = 0;
        let mut lineno = 0;
        for raw in text.split('\n') {
            lineno += 1;
            let line = raw.trim_matches(|c| c == ' ' || c == '\t' || c == '\r');
            if line.is_empty() {
                continue;
            }
            let syntax = |message: String| ParseError::Syntax {
                line: lineno,
                message,
            };
            if eof {
                return Err(syntax("unexpected data after # EOF".into()));
            }
            if let Some(rest) = line.strip_prefix('#') {
                comment(rest, format, &mut kind, &mut eof).map_err(syntax)?;
                continue;
            }
            self.sample(line, format, kind, opts, out).map_err(syntax)?;
            n += 1;
            if n > opts.sample_limit {
                return Err(ParseError::SampleLimit {
                    limit: opts.sample_limit,
                });
            }
        }
        if format == Format::OpenMetrics && !eof {
            return Err(ParseError::Syntax {
                line: lineno,
                message: "data does not end with # EOF".into(),
            });
        }
        Ok(n)
    }

    /// One sample line: `name[{labels}] value [timestamp] [# exemplar]`.
    fn sample(
        &mut self,
        line: &str,
        format: Format,
        kind: Kind,
        opts: ParseOptions,
        out: &mut SampleBuf,
    ) -> LineResult<()> {
        let b = line.as_bytes();
        let name_end = scan_metric_name(b, 0);
        if name_end == 0 {
            return Err(format!(
                "expected a metric name or #, got {:?}",
                snippet(line)
            ));
        }
        self.labels.clear();
        self.unescaped.clear();
        let mut i = name_end;
        let brace = skip_blank(b, i);
        if b.get(brace) == Some(&b'{') {
            i = self.labels(line, brace + 1)?;
        }
        // The value is separated by blanks: `foo1.5` is no sample.
        let vs = skip_blank(b, i);
        if vs == i || vs >= b.len() {
            return Err(format!(
                "expected a blank and a value after the metric in {:?}",
                snippet(line)
            ));
        }
        let (value, next) = token(line, vs);
        let value = parse_float(value)
            .ok_or_else(|| format!("invalid value {:?} in {:?}", value, snippet(line)))?;
        i = skip_blank(b, next);
        let mut ts = None;
        if i < b.len() && b[i] != b'#' {
            let (t, next) = token(line, i);
            ts = Some(
                parse_timestamp(t, format)
                    .ok_or_else(|| format!("invalid timestamp {:?} in {:?}", t, snippet(line)))?,
            );
            i = skip_blank(b, next);
        }
        if i < b.len() {
            if format == Format::OpenMetrics && b[i] == b'#' {
                exemplar(line, i + 1)?;
            } else {
                return Err(format!(
                    "unexpected {:?} after the sample in {:?}",
                    snippet(&line[i..]),
                    snippet(line)
                ));
            }
        }
        self.emit(line, &line[..name_end], value, ts, kind, opts, out);
        Ok(())
    }

    /// Reads a label set after its `{`; returns the index after the `}`.
    fn labels(&mut self, line: &str, mut i: usize) -> LineResult<usize> {
        loop {
            let l = match scan_label(line, i)? {
                LabelScan::End(next) => return Ok(next),
                LabelScan::Label(l) => l,
            };
            let value = if l.escaped {
                let start = self.unescaped.len();
                unescape(&line[l.value.0..l.value.1], &mut self.unescaped);
                Val::Scratch(start, self.unescaped.len())
            } else {
                Val::Line(l.value.0, l.value.1)
            };
            let name = &line[l.name.0..l.name.1];
            if self
                .labels
                .iter()
                .any(|o| &line[o.name.0..o.name.1] == name)
            {
                return Err(format!("label {name} appears twice in {:?}", snippet(line)));
            }
            self.labels.push(Label {
                name: l.name,
                value,
            });
            i = l.next;
        }
    }

    /// Writes the parsed sample into `out`.
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        line: &str,
        name: &str,
        value: f64,
        ts: Option<i64>,
        kind: Kind,
        opts: ParseOptions,
        out: &mut SampleBuf,
    ) {
        let Parser {
            labels,
            unescaped,
            renamed,
            normalized,
        } = self;
        let value_of = |l: &Label| -> &str {
            match l.value {
                Val::Line(a, b) => &line[a..b],
                Val::Scratch(a, b) => &unescaped[a..b],
            }
        };
        let mut sb = out.begin(name);
        for l in labels.iter() {
            let lname = &line[l.name.0..l.name.1];
            let lvalue = value_of(l);
            let conflicts =
                !opts.honor_labels && !lvalue.is_empty() && (lname == "job" || lname == "instance");
            let out_name = if conflicts {
                // As Prometheus: prefix `exported_` until the name is free.
                renamed.clear();
                renamed.push_str(lname);
                loop {
                    renamed.insert_str(0, "exported_");
                    let taken = labels.iter().any(|o| {
                        &line[o.name.0..o.name.1] == renamed.as_str() && !value_of(o).is_empty()
                    });
                    if !taken {
                        break;
                    }
                }
                renamed.as_str()
            } else {
                lname
            };
            let normalize = (kind == Kind::Histogram && lname == "le")
                || (kind == Kind::Summary && lname == "quantile");
            sb = match normalize.then(|| normalized_value(normalized, lvalue)) {
                Some(Some(n)) => sb.label(out_name, n.as_str()),
                _ => sb.label(out_name, lvalue),
            };
        }
        match ts {
            Some(t) => sb.value_at(value, t),
            None => sb.value(value),
        }
    }
}

/// `v` as Prometheus 3 writes `le` and `quantile` values, or None when it
/// is no number (then it is kept as written).
fn normalized_value(cache: &mut Vec<(String, StackStr)>, v: &str) -> Option<StackStr> {
    if let Some((_, n)) = cache.iter().find(|(raw, _)| raw == v) {
        return Some(*n);
    }
    let n = om_float(parse_float(v)?);
    if cache.len() < NORMALIZED_CACHE {
        cache.push((v.to_owned(), n));
    }
    Some(n)
}

/// A `#` line: HELP, TYPE (which sets `kind`), UNIT and EOF in OpenMetrics;
/// anything else is a comment in the text format and an error in OpenMetrics.
fn comment(rest: &str, format: Format, kind: &mut Kind, eof: &mut bool) -> LineResult<()> {
    let om = format == Format::OpenMetrics;
    let rest = rest.trim_start_matches([' ', '\t']);
    let (word, args) = match rest.find([' ', '\t']) {
        Some(i) => (&rest[..i], rest[i..].trim_start_matches([' ', '\t'])),
        None => (rest, ""),
    };
    let meta = matches!(word, "HELP" | "TYPE") || (om && word == "UNIT");
    if om && word == "EOF" && args.is_empty() {
        *eof = true;
        return Ok(());
    }
    if !meta || (!om && args.is_empty()) {
        return if om {
            Err(format!(
                "expected HELP, TYPE, UNIT or EOF after #, got {:?}",
                snippet(rest)
            ))
        } else {
            Ok(())
        };
    }
    let name_end = scan_metric_name(args.as_bytes(), 0);
    let name_ends_word = args
        .as_bytes()
        .get(name_end)
        .is_none_or(|&c| c == b' ' || c == b'\t');
    if name_end == 0 || !name_ends_word {
        return Err(format!(
            "expected a metric name after {word}, got {:?}",
            snippet(args)
        ));
    }
    if word != "TYPE" {
        return Ok(());
    }
    let t = args[name_end..].trim_matches([' ', '\t']);
    *kind = match (t, om) {
        ("histogram", _) => Kind::Histogram,
        ("summary", _) => Kind::Summary,
        ("counter" | "gauge", _) | ("untyped", false) => Kind::Other,
        ("gaugehistogram" | "stateset" | "info" | "unknown", true) => Kind::Other,
        _ => return Err(format!("invalid metric type {t:?}")),
    };
    Ok(())
}

/// An OpenMetrics exemplar after the `#`: ` {labels} value [timestamp]`.
/// Checked for syntax and dropped (the store keeps no exemplars).
fn exemplar(line: &str, i: usize) -> LineResult<()> {
    let b = line.as_bytes();
    let mut i = skip_blank(b, i);
    if b.get(i) != Some(&b'{') {
        return Err(format!(
            "expected {{ to open an exemplar in {:?}",
            snippet(line)
        ));
    }
    i += 1;
    loop {
        match scan_label(line, i)? {
            LabelScan::End(next) => {
                i = next;
                break;
            }
            LabelScan::Label(l) => i = l.next,
        }
    }
    let (v, next) = token(line, skip_blank(b, i));
    if parse_float(v).is_none() {
        return Err(format!(
            "invalid exemplar value {v:?} in {:?}",
            snippet(line)
        ));
    }
    let i = skip_blank(b, next);
    if i < b.len() {
        let (t, next) = token(line, i);
        if parse_timestamp(t, Format::OpenMetrics).is_none() || skip_blank(b, next) < b.len() {
            return Err(format!("invalid exemplar timestamp in {:?}", snippet(line)));
        }
    }
    Ok(())
}

fn parse_timestamp(t: &str, format: Format) -> Option<i64> {
    match format {
        Format::Text => t.parse().ok(),
        // OpenMetrics timestamps are seconds, possibly fractional.
        Format::OpenMetrics => parse_float(t)
            .filter(|s| s.is_finite())
            .map(|s| (s * 1000.0).round() as i64),
    }
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
