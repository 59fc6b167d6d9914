use proptest::prelude::*;

use super::*;

type Row = (String, Vec<(String, String)>, f64, Option<i64>);

const OPTS: ParseOptions = ParseOptions {
    honor_labels: false,
    sample_limit: 1000,
};

fn parse_with(text: &str, format: Format, opts: ParseOptions) -> Result<Vec<Row>, ParseError> {
    let mut out = SampleBuf::new();
    let n = Parser::new().parse(text.as_bytes(), format, opts, &mut out)?;
    assert_eq!(n, out.len());
    Ok(out
        .iter()
        .map(|s| {
            let labels = s
                .labels()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            (s.name().to_owned(), labels, s.value, s.t)
        })
        .collect())
}

fn text(t: &str) -> Vec<Row> {
    match parse_with(t, Format::Text, OPTS) {
        Ok(rows) => rows,
        Err(e) => panic!("{e}"),
    }
}

fn err(t: &str, format: Format) -> String {
    match parse_with(t, format, OPTS) {
        Ok(rows) => panic!("parsed: {rows:?}"),
        Err(e) => e.to_string(),
    }
}

fn row(name: &str, labels: &[(&str, &str)], v: f64, t: Option<i64>) -> Row {
    let labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (name.to_owned(), labels, v, t)
}

#[test]
fn text_page_with_histogram_summary_and_timestamps() {
    let page = "\
# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000
http_requests_total{method=\"post\",code=\"400\"}    3 1395066363000

# A comment, then a histogram.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le=\"0.05\"} 24054
http_request_duration_seconds_bucket{le=\"1\"} 33444
http_request_duration_seconds_bucket{le=\"+Inf\"} 144320
http_request_duration_seconds_sum 53423
http_request_duration_seconds_count 144320
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile=\"0.5\"} 4773
rpc_duration_seconds{quantile=\"1\"} 5000
metric_without_timestamp_and_labels 12.47
something_weird{problem=\"division by zero\"} +Inf -3982045
";
    let rows = text(page);
    assert_eq!(
        rows[0],
        row(
            "http_requests_total",
            &[("method", "post"), ("code", "200")],
            1027.0,
            Some(1395066363000)
        )
    );
    assert_eq!(rows[1].2, 3.0);
    assert_eq!(
        rows[2],
        row(
            "http_request_duration_seconds_bucket",
            &[("le", "0.05")],
            24054.0,
            None
        )
    );
    // Prometheus 3 normalizes le and quantile values to OpenMetrics floats.
    assert_eq!(rows[3].1, vec![("le".to_owned(), "1.0".to_owned())]);
    assert_eq!(rows[4].1, vec![("le".to_owned(), "+Inf".to_owned())]);
    assert_eq!(
        rows[5],
        row("http_request_duration_seconds_sum", &[], 53423.0, None)
    );
    assert_eq!(rows[6].0, "http_request_duration_seconds_count");
    assert_eq!(rows[8].1, vec![("quantile".to_owned(), "1.0".to_owned())]);
    assert_eq!(
        rows[9],
        row("metric_without_timestamp_and_labels", &[], 12.47, None)
    );
    assert_eq!(
        rows[10],
        row(
            "something_weird",
            &[("problem", "division by zero")],
            f64::INFINITY,
            Some(-3982045)
        )
    );
    assert_eq!(rows.len(), 11);
}

#[test]
fn escapes_special_values_and_white_space() {
    let page = "msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\"} 1.458255915e9\r\n\
                a{x=\"\\t stays\",} NaN\n\
                \tb { y = \"1\" , z=\"\" } -Inf  \n\
                c +inf\n";
    let rows = text(page);
    assert_eq!(
        rows[0].1,
        vec![
            ("path".to_owned(), "C:\\DIR\\FILE.TXT".to_owned()),
            (
                "error".to_owned(),
                "Cannot find file:\n\"FILE.TXT\"".to_owned()
            ),
        ]
    );
    assert_eq!(rows[0].2, 1.458255915e9);
    assert_eq!(rows[1].1, vec![("x".to_owned(), "\\t stays".to_owned())]);
    assert!(rows[1].2.is_nan());
    assert_eq!(
        rows[2],
        row("b", &[("y", "1"), ("z", "")], f64::NEG_INFINITY, None)
    );
    assert_eq!(rows[3].2, f64::INFINITY);
}

#[test]
fn target_labels_on_the_page_are_exported_unless_honored() {
    let page = "m{job=\"app\",instance=\"x:1\",a=\"b\"} 1\n\
                n{job=\"app\",exported_job=\"old\"} 2\n\
                o{job=\"\"} 3\n";
    let rows = text(page);
    assert_eq!(
        rows[0].1,
        vec![
            ("exported_job".to_owned(), "app".to_owned()),
            ("exported_instance".to_owned(), "x:1".to_owned()),
            ("a".to_owned(), "b".to_owned()),
        ]
    );
    assert_eq!(
        rows[1].1,
        vec![
            ("exported_exported_job".to_owned(), "app".to_owned()),
            ("exported_job".to_owned(), "old".to_owned()),
        ]
    );
    // An empty value is no label: nothing conflicts.
    assert_eq!(rows[2].1, vec![("job".to_owned(), String::new())]);

    let honored = parse_with(
        page,
        Format::Text,
        ParseOptions {
            honor_labels: true,
            ..OPTS
        },
    );
    let honored = honored.unwrap_or_default();
    assert_eq!(honored[0].1[0], ("job".to_owned(), "app".to_owned()));
    assert_eq!(honored[0].1[1], ("instance".to_owned(), "x:1".to_owned()));
}

#[test]
fn openmetrics_counters_exemplars_and_eof() {
    let page = "\
# TYPE http_requests counter
# HELP http_requests Requests.
# UNIT http_requests requests
http_requests_total{path=\"/\"} 5 1700000000.5 # {trace_id=\"abc\"} 1 1700000000.1
http_requests_created{path=\"/\"} 1.7e9
# TYPE latency histogram
latency_bucket{le=\"0.5\"} 1 # {trace_id=\"x,}\"} 0.3
latency_bucket{le=\"+Inf\"} 2
latency_count 2
latency_sum 0.7
# EOF
";
    let rows = match parse_with(page, Format::OpenMetrics, OPTS) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        rows[0],
        row(
            "http_requests_total",
            &[("path", "/")],
            5.0,
            Some(1700000000500)
        )
    );
    assert_eq!(rows[1].0, "http_requests_created");
    assert_eq!(rows[2].1, vec![("le".to_owned(), "0.5".to_owned())]);
    assert_eq!(rows.len(), 6);

    let e = err("a 1\n", Format::OpenMetrics);
    assert!(e.contains("does not end with # EOF"), "{e}");
    let e = err("a 1\n# EOF\nb 2\n", Format::OpenMetrics);
    assert_eq!(e, "line 3: unexpected data after # EOF");
    let e = err("# just a comment\na 1\n# EOF\n", Format::OpenMetrics);
    assert!(
        e.starts_with("line 1: expected HELP, TYPE, UNIT or EOF"),
        "{e}"
    );
    let e = err("# TYPE a untyped\n# EOF\n", Format::OpenMetrics);
    assert!(e.contains("invalid metric type"), "{e}");
    let e = err("a 1 # trace\n# EOF\n", Format::OpenMetrics);
    assert!(e.contains("exemplar"), "{e}");
}

#[test]
fn content_type_picks_the_parser() {
    let om = Some("application/openmetrics-text; version=1.0.0; charset=utf-8");
    assert_eq!(Format::from_content_type(om), Format::OpenMetrics);
    let text = Some("text/plain; version=0.0.4; charset=utf-8");
    assert_eq!(Format::from_content_type(text), Format::Text);
    assert_eq!(Format::from_content_type(None), Format::Text);
    assert_eq!(
        Format::from_content_type(Some("application/json")),
        Format::Text
    );
}

#[test]
fn errors_name_the_line() {
    let cases = [
        ("ok 1\nbad{a=\"b\" 1\n", "line 2: expected , or }"),
        ("ok 1\n\nbad 1x\n", "line 3: invalid value \"1x\""),
        ("bad{a=\"b} 1\n", "line 1: unterminated value of label a"),
        ("bad{a=\"1\",a=\"2\"} 1\n", "line 1: label a appears twice"),
        ("bad 1 2 3\n", "line 1: unexpected \"3\""),
        ("bad 1 1.5\n", "line 1: invalid timestamp \"1.5\""),
        ("bad\n", "line 1: expected a blank and a value"),
        ("bad1.5\n", "line 1: expected a blank and a value"),
        ("{a=\"b\"} 1\n", "line 1: expected a metric name or #"),
        ("bad{1a=\"b\"} 1\n", "line 1: expected a label name"),
        ("bad{a=b} 1\n", "line 1: expected \" to open"),
        ("bad{a\"b\"} 1\n", "line 1: expected = after label a"),
        ("bad{a=\"b\"\n", "line 1: expected , or }"),
        (
            "# TYPE x countr\n",
            "line 1: invalid metric type \"countr\"",
        ),
        (
            "# TYPE 1x counter\n",
            "line 1: expected a metric name after TYPE",
        ),
        ("bad 0x10\n", "line 1: invalid value"),
        ("a 1\nbad 1 # {a=\"b\"} 1\n", "line 2: unexpected"),
    ];
    for (page, want) in cases {
        let e = err(page, Format::Text);
        assert!(e.starts_with(want), "{page:?}: {e}");
    }
    let mut body = b"ok 1\nok2 2\nbad{a=\"".to_vec();
    body.extend_from_slice(&[0xff, 0xfe]);
    body.extend_from_slice(b"\"} 1\n");
    let e = Parser::new()
        .parse(&body, Format::Text, OPTS, &mut SampleBuf::new())
        .map_err(|e| e.to_string());
    assert_eq!(e, Err("line 3: the body is not valid UTF-8".to_owned()));
}

#[test]
fn comments_and_help_are_free_text_in_the_text_format() {
    let rows =
        text("#\n# anything { at all\n# HELP x it's \\n fine \"\n# HELP\n#TYPE y gauge\ny 1\n");
    assert_eq!(rows, vec![row("y", &[], 1.0, None)]);
    assert!(text("").is_empty());
    assert!(text("\n\n  \n").is_empty());
}

#[test]
fn sample_limit_fails_the_page() {
    let page = "a 1\nb 2\nc 3\n";
    let limited = ParseOptions {
        sample_limit: 2,
        ..OPTS
    };
    assert_eq!(
        parse_with(page, Format::Text, limited),
        Err(ParseError::SampleLimit { limit: 2 })
    );
    let exact = ParseOptions {
        sample_limit: 3,
        ..OPTS
    };
    assert_eq!(
        parse_with(page, Format::Text, exact).map(|r| r.len()),
        Ok(3)
    );
}

#[test]
fn reuse_keeps_keys_stable() {
    let page = "m{a=\"x\\\\y\",job=\"j\"} 1\n";
    let mut p = Parser::new();
    let mut out = SampleBuf::new();
    let _ = p.parse(page.as_bytes(), Format::Text, OPTS, &mut out);
    let first: Vec<u8> = out
        .iter()
        .next()
        .map(|s| s.key().to_vec())
        .unwrap_or_default();
    out.clear();
    let _ = p.parse(page.as_bytes(), Format::Text, OPTS, &mut out);
    let second: Vec<u8> = out
        .iter()
        .next()
        .map(|s| s.key().to_vec())
        .unwrap_or_default();
    assert!(!first.is_empty());
    assert_eq!(first, second);
}

const VALID: &str = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"\\\\\\n\"} 1 1700000000000\n# TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.5\nh_count 2\n# EOF\n";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut p = Parser::new();
        let mut out = SampleBuf::new();
        for format in [Format::Text, Format::OpenMetrics] {
            out.clear();
            let _ = p.parse(&body, format, OPTS, &mut out);
        }
    }

    #[test]
    fn mutated_pages_never_panic(
        edits in proptest::collection::vec((0usize..VALID.len(), any::<u8>(), 0u8..3), 1..8)
    ) {
        let mut body = VALID.as_bytes().to_vec();
        for (at, byte, op) in edits {
            let at = at.min(body.len());
            match op {
                0 => body.insert(at, byte),
                1 if at < body.len() => { body.remove(at); }
                _ if at < body.len() => body[at] = byte,
                _ => {}
            }
        }
        let mut p = Parser::new();
        let mut out = SampleBuf::new();
        for format in [Format::Text, Format::OpenMetrics] {
            out.clear();
            if let Ok(n) = p.parse(&body, format, OPTS, &mut out) {
                prop_assert_eq!(n, out.len());
            }
        }
    }
}
