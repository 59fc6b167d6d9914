//! `hourglass backtest` end to end: the real binary replaying rules over a
//! running agent's history, and over a file in the API's JSON.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::{first_value, free_port, hourglass, wait_until, Agent};
use serde_json::Value;

/// The number of `up` samples of the host job in the last minute.
fn scrapes(agent: &Agent) -> f64 {
    first_value(&agent.try_query("count_over_time(up{job=\"host\"}[1m])")).unwrap_or(0.0)
}

fn backtest(args: &[&str]) -> Output {
    hourglass(&["backtest"])
        .args(args)
        .env_remove("HOURGLASS_URL")
        .output()
        .expect("run hourglass backtest")
}

fn stdout(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{text}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write file");
    p.display().to_string()
}

const HOST_RULES: &str = r#"
groups:
  - name: host
    interval: 1s
    rules:
      - record: host:memory_total:bytes
        expr: node_memory_MemTotal_bytes
      - alert: MemoryPresent
        expr: host:memory_total:bytes > 0
        for: 2s
      - alert: LoadAbsurd
        expr: node_load1 > 1e9
        for: 1m
"#;

#[test]
fn backtest_replays_a_running_agents_history() {
    let agent = Agent::start("sources:\n  host: {interval: 1s}\n");
    wait_until(Duration::from_secs(30), || scrapes(&agent) >= 6.0);
    let rules = write(agent.dir(), "rules.yml", HOST_RULES);

    let out = backtest(&[&rules, "--url", &agent.base, "--from", "-1m"]);
    let text = stdout(&out);
    // MemTotal and load1; the recorded series is computed, not fetched.
    assert!(
        text.contains("Data: 2 queries to http://127.0.0.1:"),
        "{text}"
    );
    assert!(
        text.contains("RECORD host:memory_total:bytes (") && text.contains(": 1 series, "),
        "{text}"
    );
    assert!(
        text.contains("ALERT MemoryPresent (") && text.contains(", for 2s): fired 1 time, firing "),
        "{text}"
    );
    assert!(text.contains("    pending at "), "{text}");
    assert!(text.contains(", firing at "), "{text}");
    assert!(
        text.contains("(after 2s)") || text.contains(", after 2s)"),
        "{text}"
    );
    assert!(text.contains("still firing at the end"), "{text}");
    assert!(
        text.contains("ALERT LoadAbsurd (") && text.contains("never fired; max value "),
        "{text}"
    );
    assert!(text.contains("vs threshold > 1000000000 at "), "{text}");
    assert!(
        text.contains("Summary: 1 of 2 alerting rules would have fired: MemoryPresent (1×"),
        "{text}"
    );

    // The same as JSON.
    let out = backtest(&[
        &rules,
        "--url",
        &agent.base,
        "--from",
        "-1m",
        "--to",
        "now",
        "--format",
        "json",
    ]);
    let v: Value = serde_json::from_str(&stdout(&out)).expect("json output");
    let rules = &v["groups"][0]["rules"];
    assert_eq!(rules[0]["type"], "recording");
    assert_eq!(rules[1]["name"], "MemoryPresent");
    assert_eq!(rules[1]["times_fired"], 1, "{v}");
    let ep = &rules[1]["alerts"][0]["episodes"][0];
    assert_eq!(ep["outcome"], "firing", "{v}");
    assert!(ep["peak"].as_f64().is_some_and(|p| p > 0.0), "{v}");
    assert_eq!(rules[2]["times_fired"], 0);
    let closest = rules[2]["closest"]["value"]
        .as_f64()
        .expect("closest value");
    assert!((0.0..1e9).contains(&closest), "{v}");
}

#[test]
fn an_unreachable_agent_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rules = write(dir.path(), "rules.yml", HOST_RULES);
    let url = format!("http://127.0.0.1:{}", free_port());
    let out = backtest(&[&rules, "--url", &url, "--timeout", "5s"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot reach agent at {url}: ")),
        "{err}"
    );
    assert!(err.contains("--data"), "{err}");
}

#[test]
fn invalid_rule_files_are_reported_with_file_and_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rules = write(
        dir.path(),
        "bad.yml",
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: 'x >'\n",
    );
    let out = backtest(&[&rules, "--data", &rules]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yml:5: "), "{err}");
}

/// 2024-05-01T03:00:00Z.
const T0: i64 = 1_714_532_400;

#[test]
fn backtest_reads_the_apis_json_from_a_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    // `queue_depth` every 15 s for 20 minutes: 10, but 120 from 5 to 12
    // minutes in; `errors_total` flat.
    let point = |i: i64, v: f64| format!("[{},\"{v}\"]", T0 + i * 15);
    let depth: Vec<String> = (0..80)
        .map(|i| point(i, if (20..48).contains(&i) { 120.0 } else { 10.0 }))
        .collect();
    let errors: Vec<String> = (0..80).map(|i| point(i, 3.0)).collect();
    let data = format!(
        r#"{{"status":"success","data":{{"resultType":"matrix","result":[
            {{"metric":{{"__name__":"queue_depth","queue":"jobs"}},"values":[{}]}},
            {{"metric":{{"__name__":"errors_total","job":"api"}},"values":[{}]}}]}}}}"#,
        depth.join(","),
        errors.join(",")
    );
    let data = write(dir.path(), "data.json", &data);
    let rules = write(
        dir.path(),
        "rules.yml",
        r#"
groups:
  - name: queues
    interval: 15s
    rules:
      - alert: QueueBacklog
        expr: queue_depth > 100
        for: 5m
      - alert: QueueBlip
        expr: queue_depth > 100
        for: 10m
      - alert: ErrorsRising
        expr: rate(errors_total[5m]) > 0.1
"#,
    );
    let out = backtest(&[
        &rules,
        "--data",
        &data,
        "--from",
        &T0.to_string(),
        "--to",
        "2024-05-01T03:20:00Z",
    ]);
    let text = stdout(&out);
    assert!(
        text.contains("Backtest from 2024-05-01T03:00:00Z ("),
        "{text}"
    );
    assert!(text.contains("times are UTC on 2024-05-01"), "{text}");
    assert!(
        text.contains("ALERT QueueBacklog (") && text.contains(", for 5m): fired 1 time"),
        "{text}"
    );
    // Pending on the first evaluation that sees 120 (5 min in), firing
    // 5 min later, resolved when 10 is back (12 min in).
    assert!(text.contains("pending at 03:05:"), "{text}");
    assert!(text.contains(", firing at 03:10:"), "{text}");
    assert!(text.contains(", after 5m), resolved at 03:12:"), "{text}");
    assert!(text.contains("; peak 120 at 03:05:"), "{text}");
    assert!(
        text.contains("ALERT QueueBlip (")
            && text.contains("never fired; pending 1 time, longest 7m (for is 10m)"),
        "{text}"
    );
    assert!(text.contains("cleared at 03:12:"), "{text}");
    assert!(
        text.contains("max value 120 vs threshold > 100 at 03:05:")
            && text.contains(r#"on queue_depth{queue="jobs"}"#),
        "{text}"
    );
    assert!(
        text.contains("ALERT ErrorsRising (") && text.contains("max value 0 vs threshold > 0.1"),
        "{text}"
    );
}
