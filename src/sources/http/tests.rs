use super::*;

fn source(yaml: &str) -> HttpSource {
    let text = format!("sources:\n  http:\n    - {yaml}\n");
    match Config::parse(&text, "t.yml") {
        Ok(c) => c.sources.http[0].clone(),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn timeout_header_is_in_seconds() {
    assert_eq!(timeout_seconds(Duration::from_secs(4)), "4");
    assert_eq!(timeout_seconds(Duration::from_millis(500)), "0.5");
}

#[test]
fn reasons_cover_every_error() {
    let errors = [
        HttpError::Client("x".into()),
        HttpError::Request("x".into()),
        HttpError::Status(reqwest::StatusCode::INTERNAL_SERVER_ERROR),
        HttpError::BodyLimit { limit: 1 },
        HttpError::Parse(ParseError::SampleLimit { limit: 1 }),
        HttpError::Parse(ParseError::Utf8 { line: 1 }),
        HttpError::TokenInvalid {
            path: PathBuf::from("t"),
        },
    ];
    for e in errors {
        assert!(REASONS.contains(&e.reason()), "{e}");
    }
    let e = HttpError::Status(reqwest::StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        e.to_string(),
        "server returned HTTP status 500 Internal Server Error"
    );
}

#[test]
fn stats_render_per_target_and_per_json_metric() {
    let prom = HttpTarget::new(&source(
        "{name: api, url: \"http://127.0.0.1:8000/metrics\"}",
    ));
    let json = HttpTarget::new(&source(
        "{name: stats, url: \"http://h:1/s\", format: json, metrics: [{name: q, path: /q}]}",
    ));
    prom.stats.count("status");
    json.stats.json_errors[0].fetch_add(2, Ordering::Relaxed);
    let mut w = MetricsWriter::new();
    write_stats(&[prom.stats(), json.stats()], &mut w);
    let s = w.finish();
    assert!(
        s.contains(
            "hourglass_http_scrape_errors_total{job=\"api\",instance=\"127.0.0.1:8000\",reason=\"status\"} 1\n"
        ),
        "{s}"
    );
    assert!(
        s.contains("hourglass_http_json_path_errors_total{job=\"stats\",metric=\"q\"} 2\n"),
        "{s}"
    );
    assert_eq!(s.matches("# TYPE").count(), 2, "{s}");
    assert_eq!(json.stats.json_path_errors("q"), 2);
    assert_eq!(prom.stats.errors("status"), 1);
}

#[test]
fn bearer_token_is_trimmed_and_sensitive() {
    let dir = std::env::temp_dir().join(format!("hourglass-bearer-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("token");
    let _ = std::fs::write(&path, "s3cret\n");
    let v = bearer(&path).map_err(|e| e.to_string());
    let _ = std::fs::remove_dir_all(&dir);
    let v = v.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v, "Bearer s3cret");
    assert!(v.is_sensitive());
    let e = bearer(&dir.join("missing")).err().map(|e| e.to_string());
    assert!(e.is_some_and(|e| e.starts_with("cannot read bearer_token_file")));
}
