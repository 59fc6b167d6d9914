//! The HTTP application source against a local HTTP server: Prometheus text
//! and OpenMetrics pages, JSON documents, and servers that misbehave (hang,
//! fail, send garbage or too much). Library-level tests run the real scrape
//! loop into a store; one test runs the real binary.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{first_value, free_port, wait_until, Agent};
use hourglass::config::Config;
use hourglass::model::{is_stale_nan, MatchOp, Matcher, METRIC_NAME};
use hourglass::sources::http::{HttpStats, HttpTarget};
use hourglass::sources::{spawn_scrape_loop, ScrapeConfig, ScrapeStats};
use hourglass::store::{Store, StoreConfig};

// ---------------------------------------------------------------------------
// A tiny HTTP/1.1 server on its own thread: one request per connection.

#[derive(Clone)]
struct Reply {
    status: u16,
    content_type: String,
    body: Vec<u8>,
    /// Never answer.
    hang: bool,
    /// Send Content-Length (else the body ends when the connection closes).
    content_length: bool,
}

fn reply(content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
    Reply {
        status: 200,
        content_type: content_type.to_owned(),
        body: body.into(),
        hang: false,
        content_length: true,
    }
}

const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const JSON: &str = "application/json";

#[derive(Clone, Default)]
struct Server {
    port: u16,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    /// The header block of every request received.
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start() -> Server {
        let listener = match TcpListener::bind("127.0.0.1:0") {
            Ok(l) => l,
            Err(e) => panic!("bind: {e}"),
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let server = Server {
            port,
            ..Server::default()
        };
        let s = server.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || s.handle(conn));
            }
        });
        server
    }

    fn route(&self, path: &str, r: Reply) {
        if let Ok(mut routes) = self.routes.lock() {
            routes.insert(path.to_owned(), r);
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn instance(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn last_request(&self) -> String {
        self.requests
            .lock()
            .ok()
            .and_then(|r| r.last().cloned())
            .unwrap_or_default()
    }

    fn handle(&self, mut conn: TcpStream) {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match conn.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
        if let Ok(mut r) = self.requests.lock() {
            r.push(head);
        }
        let r = self.routes.lock().ok().and_then(|r| r.get(&path).cloned());
        let r = r.unwrap_or_else(|| Reply {
            status: 404,
            ..reply("text/plain", "not found")
        });
        if r.hang {
            std::thread::sleep(Duration::from_secs(30));
            return;
        }
        let mut out = format!(
            "HTTP/1.1 {} X\r\nContent-Type: {}\r\nConnection: close\r\n",
            r.status, r.content_type
        );
        if r.content_length {
            out.push_str(&format!("Content-Length: {}\r\n", r.body.len()));
        }
        out.push_str("\r\n");
        let _ = conn.write_all(out.as_bytes());
        for piece in r.body.chunks(16 * 1024) {
            if conn.write_all(piece).is_err() {
                return;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The scrape loop of one configured target, into a store.

struct Target {
    store: Arc<Store>,
    stats: Arc<ScrapeStats>,
    http: Arc<HttpStats>,
    job: String,
    _shutdown: tokio::sync::watch::Sender<bool>,
}

/// Starts the target configured by `yaml` (one `sources.http` entry).
fn start_target(yaml: &str) -> Target {
    let text = format!("sources:\n  http:\n    - {yaml}\n");
    let cfg = match Config::parse(&text, "test.yml") {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let h = &cfg.sources.http[0];
    let schedule = cfg.http_schedule(h);
    let store = Arc::new(Store::new(StoreConfig::default()));
    let target = HttpTarget::new(h);
    let http = target.stats();
    let sc = ScrapeConfig::new(&h.name, h.instance(), schedule.interval, schedule.timeout);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let (_task, stats) = spawn_scrape_loop(target, store.clone(), sc, rx);
    Target {
        store,
        stats,
        http,
        job: h.name.clone(),
        _shutdown: tx,
    }
}

impl Target {
    async fn scrapes(&self, n: u64) {
        let start = Instant::now();
        while self.stats.snapshot().scrapes_total < n {
            assert!(start.elapsed() < Duration::from_secs(20), "no {n} scrapes");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Latest value of each series named `name`, by its labels (stale
    /// markers skipped).
    fn latest(&self, name: &str) -> Vec<(String, f64, i64)> {
        let set = self.store.select(
            &[Matcher::new(MatchOp::Equal, METRIC_NAME, name)],
            i64::MIN,
            i64::MAX,
        );
        (0..set.series.len())
            .filter_map(|i| {
                let last = set
                    .timestamps(i)
                    .iter()
                    .zip(set.values(i))
                    .rev()
                    .find(|(_, v)| !is_stale_nan(**v))?;
                Some((set.series[i].labels.to_string(), *last.1, *last.0))
            })
            .collect()
    }

    fn one(&self, name: &str) -> (String, f64, i64) {
        let all = self.latest(name);
        assert_eq!(all.len(), 1, "{name}: {all:?}");
        all[0].clone()
    }

    /// Waits until the latest `up` is `want` (a loaded machine may time out
    /// a scrape now and then, so one scrape's outcome is not asserted).
    async fn until_up(&self, want: f64) {
        let start = Instant::now();
        while self.latest("up").first().map(|u| u.1) != Some(want) {
            assert!(start.elapsed() < Duration::from_secs(20), "up never {want}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `name{...}` with the target labels, as `Labels` prints.
    fn labels(&self, name: &str, instance: &str, own: &[(&str, &str)]) -> String {
        let mut all: Vec<(String, String)> = own
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        all.push(("instance".into(), instance.into()));
        all.push(("job".into(), self.job.clone()));
        all.sort();
        let inner: Vec<String> = all
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}=\"{}\"",
                    v.replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace('\n', "\\n")
                )
            })
            .collect();
        format!("{name}{{{}}}", inner.join(", "))
    }
}

const APP_PAGE: &str = r#"# HELP http_requests_total Total HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="GET",handler="/api/v1/items",status="2xx"} 1027
http_requests_total{method="POST",handler="/api/v1/items",status="5xx"} 3
# HELP http_request_duration_seconds Request latency.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{handler="/api/v1/items",le="0.1"} 800
http_request_duration_seconds_bucket{handler="/api/v1/items",le="1"} 1020
http_request_duration_seconds_bucket{handler="/api/v1/items",le="+Inf"} 1030
http_request_duration_seconds_sum{handler="/api/v1/items"} 97.5
http_request_duration_seconds_count{handler="/api/v1/items"} 1030
# TYPE app_error_info gauge
app_error_info{path="C:\\DIR\\FILE.TXT",msg="say \"hi\"\nbye"} 1
app_ratio NaN
app_ceiling +Inf
app_floor -Inf
app_batch_last_success_timestamp_seconds 1.7e9 1700000000000
federated_up{job="other",instance="elsewhere:9100"} 1
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_page_lands_with_types_escapes_and_timestamps() {
    let server = Server::start();
    server.route("/metrics", reply(TEXT, APP_PAGE));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let token = dir.path().join("token");
    std::fs::write(&token, "t0ken\n").unwrap_or_else(|e| panic!("{e}"));
    let t = start_target(&format!(
        "{{name: api, url: \"{}\", interval: 100ms, timeout: 90ms, bearer_token_file: \"{}\", headers: {{X-Team: ops}}}}",
        server.url("/metrics"),
        token.display()
    ));
    t.scrapes(2).await;
    let inst = server.instance();
    t.until_up(1.0).await;

    let reqs = t.latest("http_requests_total");
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert!(reqs.iter().any(|(l, v, _)| *v == 1027.0
        && *l
            == t.labels(
                "http_requests_total",
                &inst,
                &[
                    ("handler", "/api/v1/items"),
                    ("method", "GET"),
                    ("status", "2xx")
                ]
            )));
    // Histogram: _bucket with le (normalized as Prometheus 3 does), _sum, _count.
    let buckets = t.latest("http_request_duration_seconds_bucket");
    let les: Vec<&str> = buckets
        .iter()
        .filter_map(|(l, _, _)| l.split("le=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(les, vec!["+Inf", "0.1", "1.0"], "{buckets:?}");
    assert_eq!(t.one("http_request_duration_seconds_sum").1, 97.5);
    assert_eq!(t.one("http_request_duration_seconds_count").1, 1030.0);
    // Escaped label values come back unescaped.
    assert_eq!(
        t.one("app_error_info").0,
        t.labels(
            "app_error_info",
            &inst,
            &[("msg", "say \"hi\"\nbye"), ("path", "C:\\DIR\\FILE.TXT")]
        )
    );
    assert!(t.one("app_ratio").1.is_nan());
    assert_eq!(t.one("app_ceiling").1, f64::INFINITY);
    assert_eq!(t.one("app_floor").1, f64::NEG_INFINITY);
    // An explicit timestamp is kept.
    assert_eq!(
        t.one("app_batch_last_success_timestamp_seconds").2,
        1_700_000_000_000
    );
    // honor_labels: false keeps the page's job/instance as exported_*.
    assert_eq!(
        t.one("federated_up").0,
        t.labels(
            "federated_up",
            &inst,
            &[
                ("exported_instance", "elsewhere:9100"),
                ("exported_job", "other")
            ]
        )
    );

    let req = server.last_request().to_ascii_lowercase();
    assert!(req.starts_with("get /metrics http/1.1"), "{req}");
    assert!(
        req.contains("accept: application/openmetrics-text;version=1.0.0"),
        "{req}"
    );
    assert!(
        req.contains("x-prometheus-scrape-timeout-seconds: 0.09\r\n"),
        "{req}"
    );
    assert!(req.contains("authorization: bearer t0ken\r\n"), "{req}");
    assert!(req.contains("x-team: ops\r\n"), "{req}");
    assert!(req.contains("user-agent: hourglass/"), "{req}");

    // A rotated token is used on the next scrape.
    std::fs::write(&token, "n3w").unwrap_or_else(|e| panic!("{e}"));
    let n = t.stats.snapshot().scrapes_total;
    t.scrapes(n + 2).await;
    assert!(server.last_request().contains("Bearer n3w\r\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honor_labels_lets_the_page_win() {
    let server = Server::start();
    server.route(
        "/federate",
        reply(
            TEXT,
            "federated_up{job=\"other\",instance=\"elsewhere:9100\"} 1\nlocal 2\n",
        ),
    );
    let t = start_target(&format!(
        "{{name: fed, url: \"{}\", interval: 100ms, honor_labels: true}}",
        server.url("/federate")
    ));
    t.until_up(1.0).await;
    assert_eq!(
        t.one("federated_up").0,
        "federated_up{instance=\"elsewhere:9100\", job=\"other\"}"
    );
    assert_eq!(t.one("local").0, t.labels("local", &server.instance(), &[]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openmetrics_page_by_content_type() {
    let server = Server::start();
    let page = "# TYPE jobs counter\njobs_total{queue=\"q\"} 7 1700000000.25 # {trace_id=\"a\"} 1\njobs_created{queue=\"q\"} 1.6e9\n# EOF\n";
    server.route("/metrics", reply(OPENMETRICS, page));
    let t = start_target(&format!(
        "{{name: om, url: \"{}\", interval: 100ms}}",
        server.url("/metrics")
    ));
    t.until_up(1.0).await;
    let (_, v, ts) = t.one("jobs_total");
    assert_eq!((v, ts), (7.0, 1_700_000_000_250));
    assert_eq!(t.one("jobs_created").1, 1.6e9);
    // The same page without `# EOF` fails, as in Prometheus.
    server.route("/metrics", reply(OPENMETRICS, "jobs_total 1\n"));
    let n = t.stats.snapshot().scrapes_total;
    t.scrapes(n + 2).await;
    t.until_up(0.0).await;
    assert!(t.http.errors("parse") >= 1);
}

const STATS_DOC: &str = r#"{
  "status": "ok",
  "data": {
    "queue_stats": {"pending": 42, "active": 3, "failed": "2"},
    "cpu_percent": 12.5,
    "db_healthy": true,
    "workers": [{"name": "w1", "busy": 1}, {"name": "w2", "busy": 0}],
    "version": "1.2.3"
  }
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_document_gives_gauges_and_counts_bad_paths() {
    let server = Server::start();
    server.route("/api/v1/system/stats", reply(JSON, STATS_DOC));
    let t = start_target(&format!(
        "name: stats
      url: \"{}\"
      interval: 100ms
      format: json
      metrics:
        - {{name: app_queue_pending, path: /data/queue_stats/pending, labels: {{queue: default}}}}
        - {{name: app_queue_failed, path: /data/queue_stats/failed}}
        - {{name: app_cpu_percent, path: /data/cpu_percent}}
        - {{name: app_db_healthy, path: /data/db_healthy}}
        - {{name: app_worker_busy, path: /data/workers/1/busy, labels: {{worker: w2}}}}
        - {{name: app_missing, path: /data/queue_stats/nope}}
        - {{name: app_version, path: /data/version}}",
        server.url("/api/v1/system/stats")
    ));
    t.scrapes(2).await;
    let inst = server.instance();
    t.until_up(1.0).await;
    assert_eq!(
        t.one("app_queue_pending"),
        (
            t.labels("app_queue_pending", &inst, &[("queue", "default")]),
            42.0,
            t.one("app_queue_pending").2
        )
    );
    assert_eq!(t.one("app_queue_failed").1, 2.0);
    assert_eq!(t.one("app_cpu_percent").1, 12.5);
    assert_eq!(t.one("app_db_healthy").1, 1.0);
    assert_eq!(t.one("app_worker_busy").1, 0.0);
    assert!(t.latest("app_missing").is_empty());
    assert!(t.latest("app_version").is_empty());
    assert_eq!(t.one("scrape_samples_scraped").1, 5.0);
    assert!(t.http.json_path_errors("app_missing") >= 1);
    assert!(t.http.json_path_errors("app_version") >= 1);
    assert_eq!(t.http.json_path_errors("app_cpu_percent"), 0);
    assert!(server
        .last_request()
        .to_ascii_lowercase()
        .contains("accept: application/json"));

    // Not JSON at all: the scrape fails.
    server.route(
        "/api/v1/system/stats",
        reply("text/html", "<html>oops</html>"),
    );
    let n = t.stats.snapshot().scrapes_total;
    t.scrapes(n + 2).await;
    t.until_up(0.0).await;
    assert!(t.http.errors("parse") >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_server_is_cut_at_the_timeout() {
    let server = Server::start();
    server.route(
        "/metrics",
        Reply {
            hang: true,
            ..reply(TEXT, "")
        },
    );
    let t = start_target(&format!(
        "{{name: slow, url: \"{}\", interval: 500ms, timeout: 200ms}}",
        server.url("/metrics")
    ));
    t.scrapes(2).await;
    t.until_up(0.0).await;
    let d = t.one("scrape_duration_seconds").1;
    assert!((0.19..0.4).contains(&d), "cut at {d}s");
    assert!(t.stats.snapshot().scrape_timeouts_total >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_and_refused_connection_are_down() {
    let server = Server::start();
    server.route(
        "/metrics",
        Reply {
            status: 500,
            ..reply(TEXT, "up 1\n")
        },
    );
    let t = start_target(&format!(
        "{{name: broken, url: \"{}\", interval: 100ms}}",
        server.url("/metrics")
    ));
    t.scrapes(2).await;
    t.until_up(0.0).await;
    assert!(t.http.errors("status") >= 1);
    // Nothing of the page was taken.
    assert_eq!(t.latest("up").len(), 1);

    // Recovers when the server does; a bad page then fails again.
    server.route("/metrics", reply(TEXT, "ok_metric 1\n"));
    let n = t.stats.snapshot().scrapes_total;
    t.scrapes(n + 2).await;
    t.until_up(1.0).await;
    assert_eq!(t.one("ok_metric").1, 1.0);

    let free = free_port();
    let refused = start_target(&format!(
        "{{name: gone, url: \"http://127.0.0.1:{free}/metrics\", interval: 100ms}}"
    ));
    refused.scrapes(2).await;
    refused.until_up(0.0).await;
    assert!(refused.http.errors("request") >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_bodies_fail_without_panic() {
    let server = Server::start();
    let mut noise = Vec::new();
    let mut x: u32 = 12345;
    for _ in 0..5000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        noise.push((x >> 16) as u8);
    }
    server.route("/noise", reply(TEXT, noise.clone()));
    server.route("/noise-om", reply(OPENMETRICS, noise));
    server.route("/badline", reply(TEXT, "a 1\nb{x=\"1\" 2\nc 3\n"));
    let big = "m{i=\"0000000000\"} 1\n".repeat(4000);
    server.route("/big", reply(TEXT, big.clone()));
    server.route(
        "/big-streamed",
        Reply {
            content_length: false,
            ..reply(TEXT, big)
        },
    );
    server.route(
        "/many",
        reply(
            TEXT,
            (0..200).map(|i| format!("m{i} 1\n")).collect::<String>(),
        ),
    );

    let cases = [
        ("/noise", "body_limit: 1MiB", "parse"),
        ("/noise-om", "body_limit: 1MiB", "parse"),
        ("/badline", "body_limit: 1MiB", "parse"),
        ("/big", "body_limit: 64KiB", "body_limit"),
        ("/big-streamed", "body_limit: 64KiB", "body_limit"),
        ("/many", "sample_limit: 100", "sample_limit"),
    ];
    let targets: Vec<_> = cases
        .iter()
        .enumerate()
        .map(|(i, (path, extra, _))| {
            start_target(&format!(
                "{{name: t{i}, url: \"{}\", interval: 250ms, {extra}}}",
                server.url(path)
            ))
        })
        .collect();
    for (t, (path, _, reason)) in targets.iter().zip(cases) {
        t.scrapes(2).await;
        t.until_up(0.0).await;
        // At least one: on a loaded machine a scrape may also time out.
        assert!(t.http.errors(reason) >= 1, "{path}: no {reason} error");
        assert_eq!(t.one("scrape_samples_scraped").1, 0.0, "{path}");
    }
    // The same big page within a larger limit lands.
    let ok = start_target(&format!(
        "{{name: ok, url: \"{}\", interval: 100ms, body_limit: 1MiB}}",
        server.url("/big-streamed")
    ));
    ok.until_up(1.0).await;
}

// ---------------------------------------------------------------------------
// The real binary.

#[test]
fn agent_scrapes_an_application() {
    let server = Server::start();
    server.route("/metrics", reply(TEXT, APP_PAGE));
    server.route("/api/v1/system/stats", reply(JSON, STATS_DOC));
    let config = format!(
        "rule_files: []
sources:
  host: {{enabled: false}}
  http:
    - {{name: api, url: \"{}\", interval: 200ms, bearer_token_file: token}}
    - name: stats
      url: \"{}\"
      interval: 200ms
      format: json
      metrics:
        - {{name: app_queue_pending, path: /data/queue_stats/pending}}
        - {{name: app_version, path: /data/version}}
",
        server.url("/metrics"),
        server.url("/api/v1/system/stats")
    );
    let agent = Agent::start_with_files(&config, &[("token", "agent-token\n")]);
    wait_until(Duration::from_secs(20), || {
        first_value(&agent.try_query("up{job=\"api\"}")) == Some(1.0)
            && first_value(&agent.try_query("up{job=\"stats\"}")) == Some(1.0)
    });
    let v = agent.try_query("sum(http_requests_total{job=\"api\"})");
    assert_eq!(first_value(&v), Some(1030.0), "{v}");
    let v =
        agent.try_query("histogram_quantile(0.5, rate(http_request_duration_seconds_bucket[1m]))");
    assert_eq!(v["status"], "success", "{v}");
    let v = agent.try_query("app_queue_pending");
    assert_eq!(first_value(&v), Some(42.0), "{v}");
    assert_eq!(
        v["data"]["result"][0]["metric"]["instance"],
        server.instance().as_str()
    );
    // The token file was found beside the config file.
    assert!(server
        .requests
        .lock()
        .map(|r| r.iter().any(|h| h.contains("Bearer agent-token\r\n")))
        .unwrap_or(false));
    let metrics = agent.metrics();
    assert!(
        metrics.contains(
            "hourglass_http_json_path_errors_total{job=\"stats\",metric=\"app_version\"}"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("hourglass_scrapes_total{job=\"api\""),
        "{metrics}"
    );
    let log = agent.log();
    assert!(!log.contains("agent-token"), "{log}");
}
