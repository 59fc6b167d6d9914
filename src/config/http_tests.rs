use super::*;

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(text, "hg.yml").map_err(|e| e.to_string())
}

#[test]
fn defaults_and_instance() {
    let c = parse("sources:\n  http:\n    - {name: api, url: \"http://127.0.0.1:8000/metrics\"}\n")
        .unwrap();
    let h = &c.sources.http[0];
    assert_eq!(h.format, HttpFormat::Prometheus);
    assert_eq!(h.body_limit, DEFAULT_BODY_LIMIT);
    assert_eq!(h.sample_limit, DEFAULT_SAMPLE_LIMIT);
    assert!(!h.honor_labels);
    assert!(!h.tls.insecure_skip_verify);
    assert_eq!(h.instance(), "127.0.0.1:8000");
    let s = c.http_schedule(h);
    assert_eq!(
        (s.interval, s.timeout),
        (Duration::from_secs(5), Duration::from_secs(4))
    );
    assert!(c
        .summary()
        .contains("source http api: http://127.0.0.1:8000/metrics"));
}

#[test]
fn instance_gets_the_default_port_and_password_is_redacted() {
    let c = parse(
        "sources:\n  http:\n    - {name: a, url: \"https://u:secret@example.com/m\"}\n    - {name: b, url: \"http://[::1]/m\"}\n",
    )
    .unwrap();
    assert_eq!(c.sources.http[0].instance(), "example.com:443");
    assert_eq!(c.sources.http[1].instance(), "[::1]:80");
    assert!(!c.summary().contains("secret"), "{}", c.summary());
}

#[test]
fn json_source_with_metrics() {
    let c = parse(concat!(
        "sources:\n  http:\n    - name: stats\n      url: http://127.0.0.1:8000/api/v1/system/stats\n",
        "      format: json\n      body_limit: 64KiB\n",
        "      metrics:\n        - {name: app_queue_pending, path: /data/queue_stats/pending, labels: {queue: default}}\n",
        "        - {name: app_jobs_total, path: /data/jobs, type: counter}\n",
    ))
    .unwrap();
    let h = &c.sources.http[0];
    assert_eq!(h.format, HttpFormat::Json);
    assert_eq!(h.body_limit, 64 * 1024);
    assert_eq!(h.metrics[0].labels["queue"], "default");
    assert_eq!(h.metrics[1].kind, JsonMetricType::Counter);
}

#[test]
fn single_value_errors_carry_their_line() {
    let cases = [
        ("url: \"ftp://x/m\"", "scheme must be http or https"),
        ("url: \"not a url\"", "invalid URL"),
        (
            "url: \"http://h/m\"\n      format: json\n      metrics: [{name: 1bad, path: /a}]",
            "not a valid metric name",
        ),
        (
            "url: \"http://h/m\"\n      format: json\n      metrics: [{name: ok, path: a/b}]",
            "must start with /",
        ),
        (
            "url: \"http://h/m\"\n      format: json\n      metrics: [{name: ok, path: /a~2}]",
            "~ must be written ~0",
        ),
        (
            "url: \"http://h/m\"\n      format: json\n      metrics: [{name: ok, path: /a, labels: {a-b: x}}]",
            "not a valid label name",
        ),
        ("url: \"http://h/m\"\n      body_limit: 10 parsecs", "not a size"),
        (
            "url: \"http://h/m\"\n      headers: {Accept: x}",
            "set by hourglass",
        ),
        ("url: \"http://h/m\"\n      tls: {verify: false}", "unknown field"),
    ];
    for (body, want) in cases {
        let text = format!("sources:\n  http:\n    - name: a\n      {body}\n");
        let e = parse(&text).unwrap_err();
        assert!(e.starts_with("hg.yml:"), "{body}: {e}");
        let line: usize = e
            .split(':')
            .nth(1)
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        assert!(line >= 3, "{body}: {e}");
        assert!(e.contains(want), "{body}: {e}");
    }
}

#[test]
fn cross_field_errors_name_the_source() {
    let cases = [
        (
            "- {name: a, url: \"http://h/1\"}\n    - {name: a, url: \"http://h/2\"}",
            "used twice",
        ),
        (
            "- {name: a, url: \"http://h/1\", format: json}",
            "needs metrics",
        ),
        (
            "- {name: a, url: \"http://h/1\", metrics: [{name: x, path: /x}]}",
            "only for format: json",
        ),
        (
            "- {name: a, url: \"http://h/1\", interval: 1s, timeout: 2s}",
            "must not exceed",
        ),
        (
            "- {name: a, url: \"http://h/1\", format: json, metrics: [{name: x, path: /x, type: counter}]}",
            "end in _total",
        ),
        (
            "- {name: a, url: \"http://h/1\", format: json, metrics: [{name: x, path: /x, labels: {job: y}}]}",
            "set by the scrape",
        ),
        (
            "- {name: a, url: \"http://h/1\", bearer_token_file: t, headers: {Authorization: x}}",
            "not both",
        ),
        ("- {name: \"\", url: \"http://h/1\"}", "non-empty"),
    ];
    for (body, want) in cases {
        let e = parse(&format!("sources:\n  http:\n    {body}\n")).unwrap_err();
        assert!(e.contains(want), "{body}: {e}");
    }
}

#[test]
fn relative_paths_follow_the_config_file() {
    let mut c = parse(
        "sources:\n  http:\n    - {name: a, url: \"https://h/m\", bearer_token_file: tok, tls: {ca_file: /etc/ca.pem}}\n",
    )
    .unwrap();
    c.sources.http[0].resolve_paths(Path::new("/etc/hourglass/hourglass.yml"));
    let h = &c.sources.http[0];
    assert_eq!(
        h.bearer_token_file.as_deref(),
        Some(Path::new("/etc/hourglass/tok"))
    );
    assert_eq!(h.tls.ca_file.as_deref(), Some(Path::new("/etc/ca.pem")));
}

#[test]
fn byte_sizes() {
    assert_eq!(parse_byte_size("1048576"), Ok(1 << 20));
    assert_eq!(parse_byte_size("10MiB"), Ok(10 << 20));
    assert_eq!(parse_byte_size("10MB"), Ok(10 << 20));
    assert_eq!(parse_byte_size("1.5 KB"), Ok(1536));
    assert!(parse_byte_size("0").is_err());
    assert!(parse_byte_size("-1").is_err());
    assert!(parse_byte_size("MB").is_err());
}
