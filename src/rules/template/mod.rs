//! Go `text/template` for alert labels and annotations, compatible with what
//! Prometheus rule files use: `{{ $labels.x }}`, `{{ $value | humanize }}`,
//! `{{ .Labels.x }}`, `printf`, `if`/`else`, `range`, `with`, pipelines and
//! Prometheus's functions (`humanize*`, `title`, `reReplaceAll`, `query`…).
//!
//! Written here rather than taken from a crate: the one Rust port of Go
//! templates (`gtmpl`) is unmaintained and prints numbers the Rust way, while
//! alert texts must read exactly as Prometheus renders them
//! (`1.234567e+06`, `%!f(int=5)`).
//!
//! Templates are parsed once when a rule file is loaded (`Template::parse`,
//! which is also the validation) and executed for each alert at each
//! evaluation. Execution never panics; Prometheus's error text is kept.

mod exec;
mod funcs;
mod gofmt;
mod humanize;
mod lex;
mod parse;

use std::fmt;
use std::rc::Rc;

use crate::model::Labels;

pub use gofmt::{format_float, go_quote};

/// One sample of a `query` result, as templates see it.
#[derive(Debug, Clone, PartialEq)]
pub struct QuerySample {
    pub labels: Labels,
    pub value: f64,
}

/// Runs a PromQL query for the `query` template function.
pub type QueryFn<'a> = &'a dyn Fn(&str) -> Result<Vec<QuerySample>, String>;

/// What an alert template can see: `.Labels` / `$labels` (the series'
/// labels), `.ExternalLabels`, `.ExternalURL`, `.Value` / `$value`.
#[derive(Clone)]
pub struct TemplateData<'a> {
    pub labels: Rc<Labels>,
    pub external_labels: Rc<Labels>,
    pub external_url: &'a str,
    pub value: f64,
    /// Backs the `query` function; without it `query` fails.
    pub query: Option<QueryFn<'a>>,
}

impl fmt::Debug for TemplateData<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TemplateData")
            .field("labels", &self.labels)
            .field("external_labels", &self.external_labels)
            .field("external_url", &self.external_url)
            .field("value", &self.value)
            .finish_non_exhaustive()
    }
}

/// A parse or execution error, in Go's words
/// (`template: NAME:LINE: function "x" not defined`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError(pub String);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TemplateError {}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    name: String,
    source: String,
    nodes: Vec<parse::Node>,
}

impl Template {
    /// Parses `text`; `name` appears in error messages (Prometheus uses
    /// `__alert_` + the alert name).
    pub fn parse(name: &str, text: &str) -> Result<Template, TemplateError> {
        let nodes =
            parse::parse(text).map_err(|e| TemplateError(format!("template: {name}:{e}")))?;
        Ok(Template {
            name: name.to_string(),
            source: text.to_string(),
            nodes,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// True when the text has no actions, so expanding it is a copy.
    pub fn is_static(&self) -> bool {
        self.nodes.iter().all(|n| matches!(n, parse::Node::Text(_)))
    }

    /// Runs the template.
    pub fn execute(&self, data: &TemplateData<'_>) -> Result<String, TemplateError> {
        if self.is_static() {
            return Ok(self.source.clone());
        }
        let mut ex = exec::Exec::new(&self.name, data);
        ex.run(&self.nodes).map_err(TemplateError)?;
        Ok(ex.out)
    }

    /// Runs the template the way Prometheus expands alert labels and
    /// annotations: on failure the text is `<error expanding template: …>`
    /// and the error is returned too, for the log.
    pub fn expand(&self, data: &TemplateData<'_>) -> (String, Option<TemplateError>) {
        match self.execute(data) {
            Ok(s) => (s, None),
            Err(e) => {
                let e = TemplateError(format!("error executing template {}: {}", self.name, e.0));
                (format!("<error expanding template: {e}>"), Some(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(value: f64) -> TemplateData<'static> {
        TemplateData {
            labels: Rc::new(Labels::from_pairs(&[
                ("__name__", "up"),
                ("instance", "db1.example.com:9100"),
                ("job", "node"),
            ])),
            external_labels: Rc::new(Labels::from_pairs(&[("cluster", "eu1")])),
            external_url: "http://hg.example.com/prefix",
            value,
            query: None,
        }
    }

    fn run(text: &str, value: f64) -> String {
        let t = Template::parse("__alert_Test", text).unwrap_or_else(|e| panic!("{text}: {e}"));
        match t.execute(&data(value)) {
            Ok(s) => s,
            Err(e) => format!("ERR {e}"),
        }
    }

    #[test]
    fn variables_fields_and_pipes() {
        assert_eq!(
            run("{{ $labels.instance }} down", 0.0),
            "db1.example.com:9100 down"
        );
        assert_eq!(
            run("{{ .Labels.job }}/{{ .Value }}", 1234567.0),
            "node/1.234567e+06"
        );
        assert_eq!(run("{{ $value }}", 0.5), "0.5");
        assert_eq!(run("{{ $externalLabels.cluster }}", 0.0), "eu1");
        // Prometheus runs templates with `missingkey=zero`.
        assert_eq!(run("{{ $labels.missing }}|", 0.0), "|");
        assert_eq!(run("{{ index $labels \"missing\" }}|", 0.0), "|");
        assert_eq!(run("{{ $value | humanize }}", 1234567.0), "1.235M");
        assert_eq!(run("{{ $value | humanize1024 }}", 1234567.0), "1.177Mi");
        assert_eq!(run("{{ humanizeDuration $value }}", 3661.0), "1h 1m 1s");
        assert_eq!(run("{{ $value | humanizePercentage }}", 0.1234), "12.34%");
        assert_eq!(run("{{ printf \"%.2f\" $value }}", 1.23456), "1.23");
        assert_eq!(
            run(
                "{{ $labels.job | toUpper }} {{ toLower \"AB\" }} {{ title \"a b\" }}",
                0.0
            ),
            "NODE ab A B"
        );
        assert_eq!(
            run(
                "{{ reReplaceAll \"(.*):.*\" \"$1\" $labels.instance }}",
                0.0
            ),
            "db1.example.com"
        );
        assert_eq!(
            run(
                "{{ $labels.instance | stripPort }} {{ $labels.instance | stripDomain }}",
                0.0
            ),
            "db1.example.com db1:9100"
        );
        assert_eq!(run("{{ \"5m\" | parseDuration }}", 0.0), "300");
        assert_eq!(
            run("{{ externalURL }} {{ pathPrefix }}", 0.0),
            "http://hg.example.com/prefix /prefix"
        );
    }

    #[test]
    fn control_structures() {
        let t = "{{ if gt $value 80.0 }}high{{ else if gt $value 50.0 }}mid{{ else }}low{{ end }}";
        assert_eq!(run(t, 90.0), "high");
        assert_eq!(run(t, 60.0), "mid");
        assert_eq!(run(t, 10.0), "low");
        assert_eq!(
            run(
                "{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}",
                0.0
            ),
            "__name__=up;instance=db1.example.com:9100;job=node;"
        );
        assert_eq!(
            run("{{ range $externalLabels }}{{ . }}{{ end }}", 0.0),
            "eu1"
        );
        assert_eq!(run("{{ range $k, $v := $labels }}{{ if eq $k \"job\" }}{{ break }}{{ end }}{{ $k }} {{ end }}", 0.0), "__name__ instance ");
        assert_eq!(
            run("{{ with $labels.job }}job={{ . }}{{ end }}", 0.0),
            "job=node"
        );
        assert_eq!(
            run("{{ with $labels.nope }}x{{ else }}none{{ end }}", 0.0),
            "none"
        );
        assert_eq!(
            run(
                "{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}",
                0.0
            ),
            "2"
        );
        assert_eq!(
            run(
                "{{ if and (gt $value 1.0) (lt $value 3.0) }}in{{ end }}",
                2.0
            ),
            "in"
        );
        assert_eq!(run("{{ or $labels.nope \"default\" }}", 0.0), "default");
        assert_eq!(run("{{ not false }} {{ len $labels }}", 0.0), "true 3");
        assert_eq!(run("a {{- \" b \" -}} c", 0.0), "a b c");
    }

    #[test]
    fn execution_errors_are_reported_in_go_words() {
        let e = run("{{ gt $value 80 }}", 1.0);
        assert!(e.starts_with("ERR template: __alert_Test:1: executing \"__alert_Test\" at <gt $value 80>: error calling gt: incompatible types for comparison"), "{e}");
        assert!(run("{{ humanize \"abc\" }}", 0.0)
            .contains("strconv.ParseFloat: parsing \"abc\": invalid syntax"));
        assert!(run("{{ toUpper $value }}", 0.0)
            .contains("wrong type for value; expected string; got float64"));
        assert!(run("{{ humanize 1 2 }}", 0.0)
            .contains("wrong number of args for humanize: want 1 got 2"));
        assert!(run("{{ query \"up\" }}", 0.0).contains("queries are not available"));
        assert!(run("{{ reReplaceAll \"(\" \"\" \"x\" }}", 0.0).contains("error parsing regexp"));
        assert!(run("{{ .Nope }}", 0.0).contains("can't evaluate field Nope"));
        assert_eq!(run("{{ printf \"%.2f\" 5 }}", 0.0), "%!f(int=5)");
    }

    #[test]
    fn expand_puts_the_error_in_the_text() {
        let t = Template::parse("__alert_X", "v={{ humanize \"x\" }}").unwrap();
        let (s, e) = t.expand(&data(0.0));
        assert!(s.starts_with("<error expanding template: error executing template __alert_X: template: __alert_X:1:"), "{s}");
        assert!(e.is_some());
        let t = Template::parse("__alert_X", "static text").unwrap();
        assert!(t.is_static());
        assert_eq!(t.expand(&data(0.0)), ("static text".to_string(), None));
    }

    #[test]
    fn parse_errors_name_the_template_and_line() {
        let e = Template::parse("__alert_X", "ok\n{{ humanise $value }}").unwrap_err();
        assert_eq!(
            e.0,
            "template: __alert_X:2: function \"humanise\" not defined in {{humanise $value}}"
        );
    }

    #[test]
    fn query_results_can_be_ranged_and_picked() {
        let q = |expr: &str| -> Result<Vec<QuerySample>, String> {
            assert_eq!(expr, "up");
            Ok(vec![
                QuerySample {
                    labels: Labels::from_pairs(&[("job", "b")]),
                    value: 1.0,
                },
                QuerySample {
                    labels: Labels::from_pairs(&[("job", "a")]),
                    value: 0.0,
                },
            ])
        };
        let mut d = data(0.0);
        d.query = Some(&q);
        let t = Template::parse(
            "t",
            "{{ range query \"up\" | sortByLabel \"job\" }}{{ .Labels.job }}={{ .Value }} {{ end }}{{ with query \"up\" }}{{ . | first | value }} {{ . | first | label \"job\" }}{{ end }}",
        )
        .unwrap();
        assert_eq!(t.execute(&d).unwrap(), "a=0 b=1 1 b");
    }
}
