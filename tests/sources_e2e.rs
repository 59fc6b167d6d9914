//! End to end with every kind of source at once: the real binary scraping
//! the host, the local PostgreSQL and Redis, and an application serving a
//! Prometheus page and a JSON stats page, all queried through the API, with
//! a bundled recording rule evaluated over the Redis metrics.
//!
//! PostgreSQL and Redis are the real local servers (`HOURGLASS_TEST_POSTGRES`,
//! `HOURGLASS_TEST_REDIS` override them); when one is unreachable the test
//! prints SKIP, except under `CI=true`, where it fails.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_hourglass");

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

struct Agent {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Whether `addr` (host:port) accepts connections; otherwise SKIP (or fail
/// under CI).
fn reachable(what: &str, addr: &str) -> bool {
    let ok = addr
        .parse()
        .ok()
        .and_then(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).ok())
        .is_some();
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{what} at {addr} is unreachable under CI=true"
        );
        println!("SKIP: {what} at {addr} is unreachable");
    }
    ok
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

fn query(base: &str, q: &str) -> Vec<Value> {
    let url = format!(
        "{base}/api/v1/query?query={}",
        url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
    );
    reqwest::blocking::get(url)
        .ok()
        .and_then(|r| r.json::<Value>().ok())
        .and_then(|v| v["data"]["result"].as_array().cloned())
        .unwrap_or_default()
}

fn value(v: &Value) -> f64 {
    v["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Waits until `q` returns a sample for which `ok` holds; returns it.
fn wait_for(base: &str, q: &str, ok: impl Fn(f64) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let r = query(base, q);
        if let Some(s) = r.iter().find(|s| ok(value(s))) {
            return s.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{q} never satisfied the condition; last answer {r:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
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
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let config = format!(
        r#"listen: 127.0.0.1:{port}
global: {{scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: 1s}}
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
    let path: PathBuf = dir.path().join("hourglass.yml");
    std::fs::write(&path, config).expect("write config");
    let check = Command::new(BIN)
        .args(["check", "config"])
        .arg(&path)
        .output()
        .expect("check config");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let log = std::fs::File::create(dir.path().join("agent.log")).expect("log");
    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&path)
        .env("HOURGLASS_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start hourglass");
    let agent = Agent {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    let base = agent.base.as_str();

    // Every target is up.
    for (job, instance) in [
        ("postgres", "main".to_string()),
        ("redis", "cache".to_string()),
        ("api", format!("127.0.0.1:{app}")),
        ("stats", format!("127.0.0.1:{app}")),
    ] {
        wait_for(
            base,
            &format!("up{{job=\"{job}\",instance=\"{instance}\"}}"),
            |v| v == 1.0,
        );
    }
    // PostgreSQL and Redis in their exporters' names.
    wait_for(base, "pg_up{instance=\"main\"}", |v| v == 1.0);
    wait_for(base, "pg_settings_max_connections", |v| v > 0.0);
    wait_for(base, "sum(pg_stat_activity_count{datname=\"test\"})", |v| {
        v >= 1.0
    });
    wait_for(base, "redis_up{instance=\"cache\"}", |v| v == 1.0);
    let q = wait_for(base, &format!("redis_queue_length{{key=\"{key}\"}}"), |v| {
        v == 3.0
    });
    assert_eq!(q["metric"]["type"], "list", "{q}");
    // The application's page and its JSON stats.
    let s = wait_for(base, "http_requests_total{job=\"api\",code=\"500\"}", |v| {
        v == 3.0
    });
    assert_eq!(s["metric"]["path"], "/api", "{s}");
    wait_for(
        base,
        "http_request_duration_seconds_bucket{le=\"+Inf\"}",
        |v| v == 1030.0,
    );
    wait_for(base, "app_queue_pending{job=\"stats\"}", |v| v == 42.0);
    // A bundled recording rule over the Redis metrics.
    wait_for(
        base,
        "instance:redis_clients:ratio{instance=\"cache\"}",
        |v| v > 0.0 && v < 1.0,
    );

    let _: () = redis::cmd("DEL").arg(&key).query(&mut con).expect("DEL");
}
