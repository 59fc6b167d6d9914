//! End-to-end tests: the real `hourglass` binary, a temporary config file,
//! and the HTTP API queried as a user (or Grafana) would.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{check_config, client, free_port, get_json, hourglass, urlencode, wait_until, Agent};
use serde_json::Value;

fn proc_meminfo_bytes(key: &str) -> f64 {
    let text = std::fs::read_to_string("/proc/meminfo").expect("read /proc/meminfo");
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{key}:")))
        .expect("key in meminfo");
    let kb: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024.0
}

#[test]
fn agent_scrapes_host_and_answers_promql() {
    let agent = Agent::start("sources:\n  host: {interval: 1s}\n");
    // Two scrapes.
    wait_until(Duration::from_secs(15), || {
        let v = agent.query("count_over_time(up{job=\"host\"}[1m])");
        v["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .is_some_and(|n| n >= 2.0)
    });

    // MemTotal equals /proc/meminfo exactly.
    let v = agent.query("node_memory_MemTotal_bytes");
    assert_eq!(v["data"]["resultType"], "vector");
    let got: f64 = v["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(got, proc_meminfo_bytes("MemTotal"));
    assert_eq!(v["data"]["result"][0]["metric"]["job"], "host");

    // up is 1.
    let v = agent.query("up{job=\"host\"}");
    assert_eq!(v["data"]["result"][0]["value"][1], "1", "{v}");

    // A scalar, as Prometheus renders it.
    let v = agent.query("1 + 1");
    assert_eq!(v["data"]["resultType"], "scalar");
    assert_eq!(v["data"]["result"][1], "2");

    // query_range returns the points.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let (status, v) = get_json(&format!(
        "{}/api/v1/query_range?query=up&start={}&end={}&step=1",
        agent.base,
        now - 30.0,
        now
    ));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["resultType"], "matrix");
    let points = v["data"]["result"][0]["values"].as_array().unwrap();
    assert!(points.len() >= 2, "{v}");
    assert!(points.iter().all(|p| p[1] == "1"), "{v}");

    // POST form works like GET.
    let r = client()
        .post(format!("{}/api/v1/query", agent.base))
        .form(&[("query", "node_load1")])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // A bad query: Prometheus's error JSON with HTTP 400.
    let (status, v) = get_json(&format!("{}/api/v1/query?query=sum(", agent.base));
    assert_eq!(status, 400);
    assert_eq!(v["status"], "error");
    assert_eq!(v["errorType"], "bad_data");
    assert!(v["error"].as_str().unwrap().contains("parse"), "{v}");

    // Series and label endpoints, as Grafana uses them.
    let (status, v) = get_json(&format!(
        "{}/api/v1/series?match[]={}",
        agent.base,
        urlencode("node_network_receive_bytes_total")
    ));
    assert_eq!(status, 200, "{v}");
    assert!(v["data"].as_array().is_some_and(|a| !a.is_empty()), "{v}");
    let (_, v) = get_json(&format!("{}/api/v1/labels", agent.base));
    let names: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x.as_str())
        .collect();
    assert!(names.contains(&"__name__") && names.contains(&"job"), "{v}");
    let (_, v) = get_json(&format!("{}/api/v1/label/__name__/values", agent.base));
    let metrics: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x.as_str())
        .collect();
    for m in [
        "node_cpu_seconds_total",
        "node_memory_MemAvailable_bytes",
        "node_load1",
        "process_resident_memory_bytes",
        "scrape_duration_seconds",
    ] {
        assert!(metrics.contains(&m), "{m} missing from {metrics:?}");
    }

    // The agent's own metrics.
    let text = agent.metrics();
    assert!(text.contains("hourglass_store_series "), "{text}");
    assert!(
        text.contains("hourglass_query_duration_seconds_count"),
        "{text}"
    );
}

#[test]
fn sigterm_stops_the_agent_cleanly_in_time() {
    let mut agent = Agent::start("");
    let pid = agent.pid();
    let sent = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let code = loop {
        if let Some(s) = agent.child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "agent still running after 5 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(code.success(), "exit status {code:?}");
    let stderr = agent.log();
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Every task stopped by itself, none was cut at the deadline.
    assert!(!stderr.contains("did not stop"), "{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
}

#[test]
fn runs_without_a_config_file() {
    let port = free_port();
    let mut child = hourglass(&["run", "--listen", &format!("127.0.0.1:{port}")])
        .env("HOURGLASS_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start hourglass");
    let base = format!("http://127.0.0.1:{port}");
    let ok = (|| {
        for _ in 0..100 {
            if let Ok(r) = client()
                .get(format!(
                    "{base}/api/v1/query?query=node_memory_MemAvailable_bytes"
                ))
                .send()
            {
                if let Ok(v) = r.json::<Value>() {
                    if v["data"]["result"]
                        .as_array()
                        .is_some_and(|a| !a.is_empty())
                    {
                        return true;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    })();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        ok,
        "no node_memory_MemAvailable_bytes from the default configuration"
    );
}

#[test]
fn check_config_reports_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "listen: 127.0.0.1:9977\nglobal:\n  scrape_interval: fast\n",
    )
    .unwrap();
    let out = check_config(&bad);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:3:", bad.display())), "{err}");

    let good = dir.path().join("good.yml");
    std::fs::write(&good, "sources:\n  host: {interval: 2s}\n").unwrap();
    let out = check_config(&good);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("source host: every 2s"), "{text}");
    assert!(text.contains("bundled rule file(s)"), "{text}");

    // The rule files a config names are checked too.
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    std::fs::write(
        dir.path().join("rules/a.yml"),
        HOST_RULES.replace("> 0", "> "),
    )
    .unwrap();
    let with_rules = dir.path().join("with_rules.yml");
    std::fs::write(&with_rules, "rule_files: [\"rules/*.yml\"]\n").unwrap();
    let out = check_config(&with_rules);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rules/a.yml:7:"), "{err}");
}

#[test]
fn example_config_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/hourglass.example.yml");
    let out = check_config(example);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const HOST_RULES: &str = r#"groups:
  - name: host
    rules:
      - record: host:memory_available:ratio
        expr: node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes
      - alert: HostHasMemory
        expr: host:memory_available:ratio > 0
        for: 2s
        labels: {severity: info}
        annotations:
          summary: "{{ $labels.instance }} has {{ $value | humanizePercentage }} available"
"#;

fn firing_alerts(agent: &Agent) -> Vec<Value> {
    let (status, v) = get_json(&format!("{}/api/v1/alerts", agent.base));
    assert_eq!(status, 200, "{v}");
    v["data"]["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a["state"] == "firing")
        .collect()
}

#[test]
fn rules_fire_and_a_broken_reload_keeps_them_running() {
    let agent = Agent::start_with_files(
        "global: {evaluation_interval: 1s}\nsources:\n  host: {interval: 1s}\nrule_files: [\"rules/*.yml\"]\n",
        &[("rules/host.yml", HOST_RULES)],
    );
    // pending at the first evaluation with data, firing 2 s later.
    wait_until(Duration::from_secs(20), || {
        !firing_alerts(&agent).is_empty()
    });
    let alert = firing_alerts(&agent).remove(0);
    assert_eq!(alert["labels"]["alertname"], "HostHasMemory");
    assert_eq!(alert["labels"]["severity"], "info");
    assert_eq!(alert["labels"]["job"], "host");
    let summary = alert["annotations"]["summary"].as_str().unwrap_or("");
    assert!(summary.ends_with("% available"), "{summary}");
    let active_at = alert["activeAt"].clone();
    // The recording rule and ALERTS are series like any other.
    let v = agent.query("ALERTS{alertname=\"HostHasMemory\",alertstate=\"firing\"}");
    assert_eq!(v["data"]["result"].as_array().map(Vec::len), Some(1), "{v}");
    let v = agent.query("host:memory_available:ratio");
    let ratio: f64 = v["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(ratio > 0.0 && ratio <= 1.0, "{v}");
    assert_eq!(
        agent.metric("hourglass_rules_last_reload_successful"),
        Some(1.0)
    );

    // A broken file written over the good one: the watcher's reload is
    // rejected with file:line, and the old rules keep running.
    let broken = HOST_RULES.replace("> 0", "> ");
    std::fs::write(agent.path("rules/host.yml"), broken).expect("write broken rules");
    wait_until(Duration::from_secs(10), || {
        agent.metric("hourglass_rules_last_reload_successful") == Some(0.0)
    });
    let r = client()
        .post(format!("{}/-/reload", agent.base))
        .send()
        .expect("reload");
    assert_eq!(r.status().as_u16(), 500);
    let body = r.text().unwrap_or_default();
    assert!(body.contains("rules/host.yml:7:"), "{body}");
    assert!(agent.log().contains("rules/host.yml:7:"), "{}", agent.log());
    let before = agent.query("timestamp(ALERTS{alertname=\"HostHasMemory\"})");
    let t0: f64 = before["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    wait_until(Duration::from_secs(10), || {
        let v = agent.query("timestamp(ALERTS{alertname=\"HostHasMemory\"})");
        v["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .is_some_and(|t| t >= t0 + 2.0)
    });
    let still = firing_alerts(&agent);
    assert_eq!(still.len(), 1, "{still:?}");
    assert_eq!(still[0]["activeAt"], active_at);

    // A good file with one more rule, applied by SIGHUP: the surviving
    // alert keeps its state (same activeAt), the new rule is there.
    let more = format!(
        "{HOST_RULES}      - alert: NeverFires\n        expr: node_memory_MemTotal_bytes < 0\n"
    );
    std::fs::write(agent.path("rules/host.yml"), more).expect("write rules");
    let pid = agent.pid();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill")
        .success());
    wait_until(Duration::from_secs(10), || {
        agent.metric("hourglass_rules_last_reload_successful") == Some(1.0)
    });
    let (_, rules) = get_json(&format!("{}/api/v1/rules?type=alert", agent.base));
    let names: Vec<&str> = rules["data"]["groups"][0]["rules"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["HostHasMemory", "NeverFires"], "{rules}");
    let after = firing_alerts(&agent);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["activeAt"], active_at);
}
