//! End to end with every kind of source at once: the real binary scraping
//! the host, the local PostgreSQL and Redis, and an application serving a
//! Prometheus page and a JSON stats page, all queried through the API, with
//! a bundled recording rule evaluated over the Redis metrics.
//!
//! PostgreSQL and Redis are the real local servers (`HOURGLASS_TEST_POSTGRES`,
//! `HOURGLASS_TEST_REDIS` override them); when one is unreachable the test
//! prints SKIP, except under `CI=true`, where it fails.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::{check_config, skip_unless_ci, Agent};

const PROM_PAGE: &str = "# HELP http_requests_total Requests.\n\
# TYPE http_requests_total counter\n\
http_requests_total{code=\"200\",path=\"/api\"} 1027\n\
http_requests_total{code=\"500\",path=\"/api\"} 3\n\
# TYPE http_request_duration_seconds histogram\n\
http_request_duration_seconds_bucket{le=\"0.1\"} 900\n\
http_request_duration_seconds_bucket{le=\"+Inf\"} 1030\n\
http_request_duration_seconds_sum 87.5\n\
http_request_duration_seconds_count 1030\n";

const JSON_PAGE: &str = r#"{"data": {"queue_stats": {"pending": 42, "failed": 1}}}"#;

/// Whether `addr` (host:port) accepts connections; otherwise SKIP (or fail
/// under CI).
fn reachable(what: &str, addr: &str) -> bool {
    let conn = addr.parse().map_err(|e| format!("{e}")).and_then(|a| {
        TcpStream::connect_timeout(&a, Duration::from_secs(2)).map_err(|e| e.to_string())
    });
    match conn {
        Ok(_) => true,
        Err(e) => {
            skip_unless_ci("all_sources", &format!("no {what} at {addr}"), e);
            false
        }
    }
}

/// A tiny application: `/metrics` (Prometheus text) and `/stats` (JSON).
fn serve_app() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind app");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            // Read the headers to their end.
            let mut h = String::new();
            while reader.read_line(&mut h).map(|n| n > 2).unwrap_or(false) {
                h.clear();
            }
            let (ctype, body) = if line.contains("/stats") {
                ("application/json", JSON_PAGE)
            } else {
                ("text/plain; version=0.0.4", PROM_PAGE)
            };
            let mut s = &stream;
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn all_sources_scraped_and_queried_through_the_api() {
    let pg = std::env::var("HOURGLASS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let redis_url =
        std::env::var("HOURGLASS_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    if !reachable("PostgreSQL", "127.0.0.1:5432") || !reachable("Redis", "127.0.0.1:6379") {
        return;
    }
    // A queue of 3 jobs, under a key of this test's own.
    let key = format!("hg-e2e:{}:jobs", std::process::id());
    let client = redis::Client::open(redis_url.as_str()).expect("redis url");
    let mut con = client.get_connection().expect("redis connection");
    let _: () = redis::cmd("DEL").arg(&key).query(&mut con).expect("DEL");
    let _: i64 = redis::cmd("RPUSH")
        .arg(&key)
        .arg(&["a", "b", "c"][..])
        .query(&mut con)
        .expect("RPUSH");

    let app = serve_app();
    let config = format!(
        r#"global: {{scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: 1s}}
sources:
  host: {{interval: 1s}}
  postgres:
    - {{name: main, dsn: "{pg}"}}
  redis:
    - {{name: cache, url: "{redis_url}", queues: ["hg-e2e:{pid}:*"]}}
  http:
    - {{name: api, url: "http://127.0.0.1:{app}/metrics"}}
    - name: stats
      url: "http://127.0.0.1:{app}/stats"
      format: json
      metrics: [{{name: app_queue_pending, path: /data/queue_stats/pending}}]
"#,
        pid = std::process::id()
    );
    let agent = Agent::start(&config);
    let check = check_config(agent.path("hourglass.yml"));
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // Every target is up.
    for (job, instance) in [
        ("postgres", "main".to_string()),
        ("redis", "cache".to_string()),
        ("api", format!("127.0.0.1:{app}")),
        ("stats", format!("127.0.0.1:{app}")),
    ] {
        agent.wait_for(
            &format!("up{{job=\"{job}\",instance=\"{instance}\"}}"),
            |v| v == 1.0,
        );
    }
    // PostgreSQL and Redis in their exporters' names.
    agent.wait_for("pg_up{instance=\"main\"}", |v| v == 1.0);
    agent.wait_for("pg_settings_max_connections", |v| v > 0.0);
    agent.wait_for("sum(pg_stat_activity_count{datname=\"test\"})", |v| {
        v >= 1.0
    });
    agent.wait_for("redis_up{instance=\"cache\"}", |v| v == 1.0);
    let q = format!("redis_queue_length{{key=\"{key}\"}}");
    agent.wait_for(&q, |v| v == 3.0);
    let v = agent.query(&q);
    assert_eq!(v["data"]["result"][0]["metric"]["type"], "list", "{v}");
    // The application's page and its JSON stats.
    let q = "http_requests_total{job=\"api\",code=\"500\"}";
    agent.wait_for(q, |v| v == 3.0);
    let v = agent.query(q);
    assert_eq!(v["data"]["result"][0]["metric"]["path"], "/api", "{v}");
    agent.wait_for("http_request_duration_seconds_bucket{le=\"+Inf\"}", |v| {
        v == 1030.0
    });
    agent.wait_for("app_queue_pending{job=\"stats\"}", |v| v == 42.0);
    // A bundled recording rule over the Redis metrics.
    agent.wait_for("instance:redis_clients:ratio{instance=\"cache\"}", |v| {
        v > 0.0 && v < 1.0
    });

    let _: () = redis::cmd("DEL").arg(&key).query(&mut con).expect("DEL");
}
