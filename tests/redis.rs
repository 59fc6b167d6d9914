//! The Redis source against a real Redis: 127.0.0.1:6379, or the URL in
//! `HOURGLASS_TEST_REDIS`. Without a server the tests print `SKIP` and pass,
//! except under `CI=true`, where they fail. Each test works under its own
//! key prefix (tests run in parallel, perhaps beside other users of the
//! server) and deletes its keys when done.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::sources::{get, scrape_three_times, stored, Samples};
use common::{check_config, free_port, skip_unless_ci, Agent};
use hourglass::config::{Config, RedisSource};
use hourglass::sources::redis::RedisScraper;

fn redis_url() -> String {
    std::env::var("HOURGLASS_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A synchronous connection for setting up and checking, or None (after a
/// `SKIP` line) when no server answers outside CI.
fn server(test: &str) -> Option<redis::Connection> {
    let conn = redis::Client::open(redis_url())
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)));
    match conn {
        Ok(c) => Some(c),
        Err(e) => {
            skip_unless_ci(test, &format!("no Redis at {}", redis_url()), e);
            None
        }
    }
}

/// A key prefix of this test only; its keys are deleted when dropped.
struct Keys {
    prefix: String,
    conn: redis::Connection,
}

impl Keys {
    fn new(test: &str, conn: redis::Connection) -> Keys {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        Keys {
            prefix: format!("hgtest:{test}:{}:{nanos}", std::process::id()),
            conn,
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    fn cmd<T: redis::FromRedisValue>(&mut self, args: &[&str]) -> T {
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        c.query(&mut self.conn)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        // SCAN, not KEYS: the server may be shared and large.
        let pattern = format!("{}:*", self.prefix);
        let mut cursor = 0u64;
        loop {
            let page: redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query(&mut self.conn);
            let Ok((next, keys)) = page else { return };
            if !keys.is_empty() {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(&keys).query(&mut self.conn);
            }
            if next == 0 {
                return;
            }
            cursor = next;
        }
    }
}

/// One `sources.redis` entry from YAML flow-mapping fields.
fn source(fields: &str) -> RedisSource {
    let yaml = format!("sources:\n  redis:\n    - {{{fields}}}\n");
    let mut cfg = Config::parse(&yaml, "test.yml").unwrap_or_else(|e| panic!("{e}"));
    cfg.sources.redis.remove(0)
}

async fn scrape(s: &mut RedisScraper) -> (Result<(), String>, Samples) {
    common::sources::scrape(s, Duration::from_secs(3)).await
}

#[tokio::test]
async fn queue_lengths_of_lists_streams_and_globs() {
    let Some(conn) = server("queue_lengths_of_lists_streams_and_globs") else {
        return;
    };
    let mut k = Keys::new("queues", conn);
    let (list, stream, zset, set, other, missing) = (
        k.key("jobs:celery"),
        k.key("events"),
        k.key("jobs:delayed"),
        k.key("jobs:workers"),
        k.key("jobs:config"),
        k.key("absent"),
    );
    let _: i64 = k.cmd(&["RPUSH", &list, "1", "2", "3", "4", "5"]);
    for i in 0..3 {
        let _: String = k.cmd(&["XADD", &stream, "*", "n", &i.to_string()]);
    }
    let _: i64 = k.cmd(&["ZADD", &zset, "1", "a", "2", "b"]);
    let _: i64 = k.cmd(&["SADD", &set, "w1"]);
    let _: () = k.cmd(&["SET", &other, "not a queue"]);

    let glob = k.key("jobs:*");
    let mut s = RedisScraper::new(&source(&format!(
        "name: t, url: {:?}, queues: [{glob:?}, {stream:?}, {missing:?}, {list:?}]",
        redis_url()
    )));
    for round in 0..2 {
        let (r, got) = scrape(&mut s).await;
        assert_eq!(r, Ok(()), "round {round}");
        let len =
            |key: &str, ty: &str| get(&got, "redis_queue_length", &[("key", key), ("type", ty)]);
        assert_eq!(len(&list, "list"), Some(5.0 - round as f64), "{got:?}");
        assert_eq!(len(&stream, "stream"), Some(3.0), "{got:?}");
        assert_eq!(len(&zset, "zset"), Some(2.0), "{got:?}");
        assert_eq!(len(&set, "set"), Some(1.0), "{got:?}");
        assert_eq!(len(&missing, "none"), Some(0.0), "{got:?}");
        // A string is no queue, and a key listed twice is one series.
        let keyed = |key: &str| {
            got.iter()
                .filter(|(n, l, _)| {
                    n == "redis_queue_length" && l.iter().any(|(lk, lv)| lk == "key" && lv == key)
                })
                .count()
        };
        assert_eq!((keyed(&other), keyed(&list)), (0, 1), "{got:?}");
        // jobs:celery is also listed exactly, earlier: it counts there.
        assert_eq!(
            get(&got, "redis_queue_keys", &[("pattern", &glob)]),
            Some(3.0)
        );
        assert_eq!(
            get(
                &got,
                "redis_queue_keys_truncated_total",
                &[("pattern", &glob)]
            ),
            Some(0.0)
        );
        assert_eq!(get(&got, "redis_up", &[]), Some(1.0));
        // The next round: one item consumed, and the type cache in use.
        let _: Option<String> = k.cmd(&["LPOP", &list]);
    }

    // The cap: 2 of the 4 keys, and the truncation counted.
    let mut capped = RedisScraper::new(&source(&format!(
        "name: t, url: {:?}, queues: [{glob:?}], max_queue_keys: 2",
        redis_url()
    )));
    for round in 1..=2 {
        let (r, got) = scrape(&mut capped).await;
        assert_eq!(r, Ok(()));
        let n = got
            .iter()
            .filter(|(n, _, _)| n == "redis_queue_length")
            .count();
        // The cap counts keys of any type: the string may be one of them.
        assert!((1..=2).contains(&n), "{got:?}");
        assert_eq!(
            get(&got, "redis_queue_keys", &[("pattern", &glob)]),
            Some(2.0)
        );
        assert_eq!(
            get(
                &got,
                "redis_queue_keys_truncated_total",
                &[("pattern", &glob)]
            ),
            Some(round as f64)
        );
    }
}

#[tokio::test]
async fn info_metrics_and_hit_counters_move() {
    let Some(conn) = server("info_metrics_and_hit_counters_move") else {
        return;
    };
    let mut k = Keys::new("info", conn);
    let hit = k.key("hit");
    let _: () = k.cmd(&["SET", &hit, "1"]);
    let mut s = RedisScraper::new(&source(&format!("name: t, url: {:?}", redis_url())));
    let (r, before) = scrape(&mut s).await;
    assert_eq!(r, Ok(()));
    for name in [
        "redis_up",
        "redis_connected_clients",
        "redis_blocked_clients",
        "redis_memory_used_bytes",
        "redis_memory_max_bytes",
        "redis_mem_fragmentation_ratio",
        "redis_commands_processed_total",
        "redis_keyspace_hits_total",
        "redis_keyspace_misses_total",
        "redis_evicted_keys_total",
        "redis_expired_keys_total",
        "redis_rejected_connections_total",
        "redis_connected_slaves",
        "redis_uptime_in_seconds",
        "redis_config_maxclients",
        "redis_instance_info",
    ] {
        assert!(
            get(&before, name, &[]).is_some(),
            "{name} missing: {before:?}"
        );
    }
    // The test database holds at least our key.
    let db_keys = before
        .iter()
        .filter(|(n, _, _)| n == "redis_db_keys")
        .map(|(_, _, v)| *v)
        .sum::<f64>();
    assert!(db_keys >= 1.0, "{before:?}");
    assert!(get(&before, "redis_connected_clients", &[]).is_some_and(|v| v >= 2.0));
    let maxclients: i64 = {
        let v: Vec<String> = k.cmd(&["CONFIG", "GET", "maxclients"]);
        v.get(1).and_then(|s| s.parse().ok()).unwrap_or(-1)
    };
    assert_eq!(
        get(&before, "redis_config_maxclients", &[]),
        Some(maxclients as f64)
    );

    for _ in 0..3 {
        let _: Option<String> = k.cmd(&["GET", &hit]);
    }
    for _ in 0..2 {
        let _: Option<String> = k.cmd(&["GET", &k.key("miss")]);
    }
    let (r, after) = scrape(&mut s).await;
    assert_eq!(r, Ok(()));
    let delta =
        |name: &str| get(&after, name, &[]).unwrap_or(0.0) - get(&before, name, &[]).unwrap_or(0.0);
    // At least: other clients of the server may look keys up too.
    assert!(delta("redis_keyspace_hits_total") >= 3.0, "{after:?}");
    assert!(delta("redis_keyspace_misses_total") >= 2.0, "{after:?}");
    assert!(delta("redis_commands_processed_total") >= 6.0, "{after:?}");
}

#[tokio::test]
async fn unreachable_server_gives_redis_up_0_and_up_0_and_the_loop_goes_on() {
    let secret = "s3cr3t-bad-port";
    let cfg = source(&format!(
        "name: down, url: \"redis://:{secret}@127.0.0.1:{}\", queues: [q]",
        free_port()
    ));
    // Directly: the error names host:port, never the password.
    let mut s = RedisScraper::new(&cfg);
    let (r, got) = scrape(&mut s).await;
    let err = r.expect_err("a closed port fails");
    println!("closed port: {err}");
    assert!(err.contains("127.0.0.1:"), "{err}");
    assert!(!err.contains(secret), "{err}");
    assert_eq!(got.len(), 1, "only redis_up: {got:?}");
    assert_eq!(get(&got, "redis_up", &[]), Some(0.0));
    // While backing off: the same answer without a connection attempt.
    let (r, got) = scrape(&mut s).await;
    assert_eq!(r.err().as_deref(), Some(err.as_str()));
    assert_eq!(get(&got, "redis_up", &[]), Some(0.0));

    // In the scrape loop: redis_up 0 is stored, up is 0, and it goes on.
    let (store, stats) = scrape_three_times(RedisScraper::new(&cfg), "redis").await;
    let redis_up = stored(&store, "redis_up", "down");
    let up = stored(&store, "up", "down");
    assert!(redis_up.len() >= 3, "{redis_up:?}");
    assert!(up.len() >= 3, "{up:?}");
    // The last value of each is the end-of-run staleness marker.
    assert!(
        redis_up[..redis_up.len() - 1]
            .iter()
            .all(|v| *v == Some(0.0)),
        "{redis_up:?}"
    );
    assert!(up[..up.len() - 1].iter().all(|v| *v == Some(0.0)), "{up:?}");
    assert_eq!(
        stats.snapshot().scrape_failures_total,
        stats.snapshot().scrapes_total
    );
}

#[tokio::test]
async fn tls_to_a_plain_port_fails_cleanly() {
    let Some(conn) = server("tls_to_a_plain_port_fails_cleanly") else {
        return;
    };
    drop(conn);
    let plain = redis_url();
    let Some(rest) = plain.strip_prefix("redis://") else {
        println!("SKIP tls_to_a_plain_port_fails_cleanly: {plain} is not redis://");
        return;
    };
    let mut s = RedisScraper::new(&source(&format!(
        "name: t, url: \"rediss://{rest}\", timeout: 2s, interval: 2s"
    )));
    let (r, got) = scrape(&mut s).await;
    println!("TLS to a plain port: {r:?}");
    assert!(r.is_err(), "{got:?}");
    assert_eq!(get(&got, "redis_up", &[]), Some(0.0));
}

/// An ACL user, deleted when dropped.
struct AclUser<'a> {
    keys: &'a mut Keys,
    name: String,
}

impl Drop for AclUser<'_> {
    fn drop(&mut self) {
        let _: redis::RedisResult<i64> = redis::cmd("ACL")
            .arg("DELUSER")
            .arg(&self.name)
            .query(&mut self.keys.conn);
    }
}

#[tokio::test]
async fn password_file_wins_and_passwords_never_show() {
    let Some(conn) = server("password_file_wins_and_passwords_never_show") else {
        return;
    };
    let mut keys = Keys::new("auth", conn);
    let user = keys.key("user").replace(':', "_");
    let (right, in_url, wrong) = (
        format!("right-{}", std::process::id()),
        "url-pw-overridden",
        "wrong-pw-in-file",
    );
    // A user that may do everything but CONFIG: maxclients must then come
    // from INFO.
    let created: redis::RedisResult<()> = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&user)
        .arg("on")
        .arg(format!(">{right}"))
        .arg("~*")
        .arg("+@all")
        .arg("-config")
        .query(&mut keys.conn);
    if let Err(e) = created {
        println!("SKIP password_file_wins_and_passwords_never_show: ACL SETUSER: {e}");
        return;
    }
    let acl = AclUser {
        keys: &mut keys,
        name: user.clone(),
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let pw_file = dir.path().join("redis-password");
    std::fs::write(&pw_file, format!("{right}\n")).unwrap_or_else(|e| panic!("{e}"));
    let host = redis_url()
        .strip_prefix("redis://")
        .map(|r| r.rsplit('@').next().unwrap_or(r).to_owned())
        .unwrap_or_else(|| "127.0.0.1:6379".into());
    let cfg = source(&format!(
        "name: t, url: \"redis://{user}:{in_url}@{host}\", password_file: {:?}",
        pw_file
    ));
    let mut s = RedisScraper::new(&cfg);
    let (r, got) = scrape(&mut s).await;
    assert_eq!(r, Ok(()), "{got:?}");
    assert_eq!(get(&got, "redis_up", &[]), Some(1.0));
    let info_maxclients = get(&got, "redis_config_maxclients", &[]);
    let version: redis::InfoDict = redis::cmd("INFO")
        .arg("server")
        .query(&mut acl.keys.conn)
        .unwrap_or_else(|e| panic!("{e}"));
    let major: u32 = version
        .get::<String>("redis_version")
        .and_then(|v| v.split('.').next()?.parse().ok())
        .unwrap_or(0);
    if major >= 7 {
        assert!(info_maxclients.is_some_and(|v| v > 0.0), "{got:?}");
    }

    // A wrong password: redis_up 0, and no password in the error.
    std::fs::write(&pw_file, wrong).unwrap_or_else(|e| panic!("{e}"));
    let mut s = RedisScraper::new(&cfg);
    let (r, got) = scrape(&mut s).await;
    let err = r.expect_err("a wrong password fails");
    println!("wrong password: {err}");
    assert_eq!(get(&got, "redis_up", &[]), Some(0.0));
    for pw in [right.as_str(), in_url, wrong] {
        assert!(!err.contains(pw), "{err}");
    }
    assert!(!format!("{cfg:?}").contains(in_url));

    // A missing password file: the error names the path only.
    let cfg = source(&format!(
        "name: t, url: \"redis://{user}:{in_url}@{host}\", password_file: /nonexistent/pw"
    ));
    let (r, _) = scrape(&mut RedisScraper::new(&cfg)).await;
    let err = r.expect_err("no password file");
    assert!(
        err.contains("/nonexistent/pw") && !err.contains(in_url),
        "{err}"
    );
    drop(acl);
}

// The real binary: a good and an unreachable Redis side by side, read back
// through the HTTP API, the bundled Redis rules evaluated over them.

#[test]
fn agent_reports_queues_and_a_down_redis() {
    let Some(conn) = server("agent_reports_queues_and_a_down_redis") else {
        return;
    };
    let mut k = Keys::new("agent", conn);
    let (list, stream) = (k.key("celery"), k.key("stream:events"));
    let _: i64 = k.cmd(&["RPUSH", &list, "a", "b", "c", "d", "e"]);
    for i in 0..2 {
        let _: String = k.cmd(&["XADD", &stream, "*", "n", &i.to_string()]);
    }
    let secret = "agent-s3cret";
    let agent = Agent::start_with(
        &format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: 1s}}\n\
         sources:\n  host: {{enabled: false}}\n  redis:\n\
         \x20   - {{name: cache, url: {:?}, queues: [{list:?}, {:?}]}}\n\
         \x20   - {{name: gone, url: \"redis://:{secret}@127.0.0.1:{}\"}}\n",
            redis_url(),
            k.key("stream:*"),
            free_port()
        ),
        &[],
        "debug",
    );
    let len = |key: &str, ty: &str| {
        format!(
            "redis_queue_length{{job=\"redis\",instance=\"cache\",key=\"{key}\",type=\"{ty}\"}}"
        )
    };
    assert_eq!(agent.wait_for(&len(&list, "list"), |v| v == 5.0), 5.0);
    assert_eq!(agent.wait_for(&len(&stream, "stream"), |v| v == 2.0), 2.0);
    agent.wait_for("redis_up{instance=\"cache\"}", |v| v == 1.0);
    agent.wait_for("up{job=\"redis\",instance=\"cache\"}", |v| v == 1.0);
    agent.wait_for("redis_up{instance=\"gone\"}", |v| v == 0.0);
    agent.wait_for("up{job=\"redis\",instance=\"gone\"}", |v| v == 0.0);
    // The bundled rules find the names they use.
    agent.wait_for("instance:redis_clients:ratio{instance=\"cache\"}", |v| {
        v > 0.0 && v < 1.0
    });
    // A consumer takes two items; the next scrapes see it.
    let _: Vec<String> = k.cmd(&["LPOP", &list, "2"]);
    agent.wait_for(&len(&list, "list"), |v| v == 3.0);
    let log = agent.log();
    assert!(log.contains("gone"), "the failure is logged: {log}");
    assert!(!log.contains(secret), "{log}");

    // `check config` prints the targets without the password.
    let out = check_config(agent.path("hourglass.yml"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("source redis gone"), "{text}");
    assert!(!text.contains(secret), "{text}");
}
