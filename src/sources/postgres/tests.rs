//! Pure parts of the PostgreSQL source; the queries themselves are tested
//! against a real server in `tests/postgres.rs`.

use super::queries::{query_label, statements_sql, QUERY_LABEL_CHARS};
use super::*;

fn scraper(yaml_dsn: &str) -> PostgresScraper {
    let cfg = crate::config::Config::parse(
        &format!("sources:\n  postgres:\n    - {{name: a, dsn: {yaml_dsn:?}}}\n"),
        "t.yml",
    )
    .unwrap();
    PostgresScraper::new(&cfg.sources.postgres[0])
}

#[test]
fn query_label_collapses_whitespace_and_cuts_at_a_char_boundary() {
    let mut s = String::new();
    query_label("  SELECT *\n\tFROM   t\r\n WHERE a = $1  ", &mut s);
    assert_eq!(s, "SELECT * FROM t WHERE a = $1");
    query_label("", &mut s);
    assert_eq!(s, "");
    let long = format!("select {}", "é".repeat(500));
    query_label(&long, &mut s);
    assert_eq!(s.chars().count(), QUERY_LABEL_CHARS);
    assert!(s.starts_with("select éé"));
    // A cut that falls on the space between words leaves no trailing space.
    let words = "ab ".repeat(100);
    query_label(&words, &mut s);
    assert_eq!(s.chars().count(), QUERY_LABEL_CHARS - 1);
    assert!(s.ends_with("ab"));
}

#[test]
fn statements_sql_follows_the_version_and_quotes_the_schema() {
    let old = statements_sql("public", 120_000);
    assert!(old.contains("sum(s.total_time)"), "{old}");
    assert!(old.contains("\"public\".pg_stat_statements"));
    let new = statements_sql("we\"ird", 150_000);
    assert!(new.contains("sum(s.total_exec_time)"), "{new}");
    assert!(new.contains("\"we\"\"ird\".pg_stat_statements"), "{new}");
}

#[test]
fn every_form_of_the_password_is_redacted() {
    let s = scraper("postgres://mon:p%40ss%2Fw@db.example:6432/app");
    assert_eq!(s.target, "db.example:6432/app");
    assert_eq!(
        s.redact("auth p@ss/w failed for p%40ss%2Fw".into()),
        "auth xxxxx failed for xxxxx"
    );
    let s = scraper("host=h user=u password='se cret' dbname=d");
    assert_eq!(s.target, "h:5432/d");
    assert_eq!(s.redact("x se cret y".into()), "x xxxxx y");
}

#[test]
fn target_defaults_the_database_to_the_user() {
    assert_eq!(scraper("postgres://mon@h").target, "h:5432/mon");
    assert_eq!(
        scraper("postgres://mon@[::1]:5433/x").target,
        "[::1]:5433/x"
    );
}

#[tokio::test]
async fn a_failed_scrape_writes_pg_up_0_and_backs_off() {
    // Port 1 on loopback: refused at once, no network needed.
    let mut s = scraper("postgres://u:hunter2@127.0.0.1:1/db");
    let mut out = SampleBuf::new();
    let ctx = ScrapeCtx {
        timestamp_ms: 0,
        timeout: Duration::from_secs(2),
    };
    for attempt in 0..2 {
        out.clear();
        let err = match s.scrape(ctx, &mut out).await {
            Err(SourceError::Down(e)) => e.to_string(),
            other => panic!("attempt {attempt}: {other:?}"),
        };
        assert!(err.starts_with("127.0.0.1:1/db: connect: "), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let got: Vec<_> = out.iter().map(|x| (x.name(), x.value)).collect();
        assert_eq!(got, vec![("pg_up", 0.0)]);
    }
    // The second attempt came within the backoff: no new connection.
    assert_eq!(s.backoff.failures, 1);
}
