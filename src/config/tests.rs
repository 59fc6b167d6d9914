use super::*;

fn env(k: &str) -> Option<String> {
    match k {
        "PORT" => Some("9999".into()),
        "MULTI" => Some("a\nb".into()),
        _ => None,
    }
}

#[test]
fn expands_variables_and_dollar_escapes() {
    let out = expand_env("a: ${PORT}\nb: $$x\nc: $y\n", env).unwrap();
    assert_eq!(out, "a: 9999\nb: $x\nc: $y\n");
}

#[test]
fn comments_are_not_expanded() {
    let text = "# uses ${NOPE}\na: ${PORT} # or ${NOPE}\nb: \"x # ${PORT}\"\nc: x#${PORT}\n";
    let out = expand_env(text, env).unwrap();
    assert_eq!(
        out,
        "# uses ${NOPE}\na: 9999 # or ${NOPE}\nb: \"x # 9999\"\nc: x#9999\n"
    );
}

#[test]
fn unset_variable_reports_line_and_column() {
    let e = expand_env("a: 1\nb: x${NOPE}\n", env).unwrap_err();
    assert_eq!((e.line, e.column), (2, 5));
    assert!(e.message.contains("NOPE is not set"), "{}", e.message);
    assert!(expand_env("a: ${MULTI}", env).is_err());
    assert!(expand_env("a: ${PORT", env).is_err());
    assert!(expand_env("a: ${A-B}", env).is_err());
}

#[test]
fn embedded_default_parses_with_host_every_second() {
    let c = Config::embedded_default().unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:9977");
    let s = c.host_schedule().unwrap();
    assert_eq!(s.interval, Duration::from_secs(1));
    // The inherited 4s timeout is cut to the 1s interval.
    assert_eq!(s.timeout, Duration::from_secs(1));
    assert_eq!(c.global.retention, Duration::from_secs(3600));
}

#[test]
fn empty_file_means_defaults() {
    let c = Config::parse("", "x.yml").unwrap();
    assert_eq!(c.global.scrape_interval, Duration::from_secs(5));
    assert_eq!(c.global.max_series, 100_000);
    assert!(c.sources.host.enabled);
}

fn err(text: &str) -> String {
    Config::parse(text, "hg.yml").unwrap_err().to_string()
}

#[test]
fn unknown_field_is_reported_with_its_line() {
    let e = err("listen: 127.0.0.1:1\nglobal:\n  scrape_intervl: 5s\n");
    assert!(e.starts_with("hg.yml:3:"), "{e}");
    assert!(e.contains("unknown field `scrape_intervl`"), "{e}");
}

#[test]
fn bad_duration_is_reported_with_its_line() {
    let e = err("global:\n  retention: 1 hour-ish\n");
    assert!(e.starts_with("hg.yml:2:"), "{e}");
}

#[test]
fn bad_listen_address_is_reported_with_its_line() {
    let e = err("\n\nlisten: localhost-9977\n");
    assert!(e.starts_with("hg.yml:3:"), "{e}");
}

#[test]
fn semantic_errors_name_the_field() {
    let e = err("global: {scrape_interval: 5s, scrape_timeout: 10s}\n");
    assert!(e.contains("scrape_timeout (10s) must not exceed"), "{e}");
    let e = err("sources: {host: {interval: 1s, timeout: 2s}}\n");
    assert!(e.contains("sources.host.timeout"), "{e}");
    let e = err("global: {retention: 10s}\n");
    assert!(e.contains("retention"), "{e}");
    let e = err("global: {external_labels: {\"bad-name\": x}}\n");
    assert!(e.contains("bad-name"), "{e}");
}

#[test]
fn host_can_be_disabled() {
    let c = Config::parse("sources: {host: {enabled: false}}", "x").unwrap();
    assert!(c.host_schedule().is_none());
}

#[test]
fn secret_file_trims_one_newline() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("pw");
    std::fs::write(&p, "s3cret\n").unwrap();
    assert_eq!(read_secret_file(&p).unwrap(), "s3cret");
    let e = read_secret_file(&dir.path().join("missing"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing"), "{e}");
}
