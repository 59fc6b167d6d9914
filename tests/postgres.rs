//! The PostgreSQL source against a real server: 127.0.0.1:5432, user
//! postgres, database `test`, or the DSN in `HOURGLASS_TEST_POSTGRES`.
//! Without a server the tests print `SKIP` and pass, except under
//! `CI=true`, where they fail. Tests that need exact counts work in a
//! database of their own (`hg_test_*`, created and dropped here), as tests
//! run in parallel and the server may have other users.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::sources::{count, get, scrape_three_times, stored, Samples};
use common::{client, free_port, skip_unless_ci, urlencode, Agent};
use hourglass::config::{Config, PostgresSource};
use hourglass::sources::postgres::{PostgresScraper, QUERY_LABEL_CHARS};
use hourglass::sources::{SampleBuf, ScrapeCtx, Source};
use tokio_postgres::{Client, NoTls};

fn base_dsn() -> String {
    std::env::var("HOURGLASS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// `dsn` with another database.
fn with_db(dsn: &str, db: &str) -> String {
    match url::Url::parse(dsn) {
        Ok(mut u) if u.scheme().starts_with("postgres") => {
            u.set_path(&format!("/{db}"));
            u.to_string()
        }
        _ => format!("{dsn} dbname={db}"),
    }
}

async fn connect(dsn: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(dsn, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// A connection to the test server, or None (after a `SKIP` line) when no
/// server answers outside CI.
async fn server(test: &str) -> Option<Client> {
    let c = tokio::time::timeout(Duration::from_secs(5), connect(&base_dsn())).await;
    let err = match c {
        Ok(Ok(c)) => return Some(c),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "no answer within 5s".to_owned(),
    };
    skip_unless_ci(test, &format!("no PostgreSQL at {}", base_dsn()), err);
    None
}

/// A database of one test, created afresh; `drop` it at the end.
struct TestDb {
    admin: Client,
    name: String,
}

impl TestDb {
    async fn create(admin: Client, name: &str) -> TestDb {
        let db = TestDb {
            admin,
            name: name.to_owned(),
        };
        db.drop_db().await;
        db.admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        db
    }

    fn dsn(&self) -> String {
        with_db(&base_dsn(), &self.name)
    }

    async fn session(&self) -> Client {
        connect(&self.dsn())
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.name))
    }

    async fn drop_db(&self) {
        // FORCE (PostgreSQL 13+) ends sessions left by a failed run.
        let force = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if self.admin.batch_execute(&force).await.is_err() {
            let _ = self
                .admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {}", self.name))
                .await;
        }
    }
}

/// One `sources.postgres` entry from YAML flow-mapping fields.
fn source(fields: &str) -> PostgresSource {
    let yaml = format!("sources:\n  postgres:\n    - {{{fields}}}\n");
    let mut cfg = Config::parse(&yaml, "test.yml").unwrap_or_else(|e| panic!("{e}"));
    cfg.sources.postgres.remove(0)
}

fn scraper(dsn: &str) -> PostgresScraper {
    PostgresScraper::new(&source(&format!("name: t, dsn: {dsn:?}")))
}

async fn scrape(s: &mut PostgresScraper) -> (Result<(), String>, Samples) {
    common::sources::scrape(s, Duration::from_secs(4)).await
}

const STATES: [&str; 6] = [
    "active",
    "idle",
    "idle in transaction",
    "idle in transaction (aborted)",
    "fastpath function call",
    "disabled",
];

#[tokio::test]
async fn activity_counts_follow_sessions_and_absent_states_are_0() {
    let test = "activity_counts_follow_sessions_and_absent_states_are_0";
    let Some(admin) = server(test).await else {
        return;
    };
    let db = TestDb::create(admin, "hg_test_activity").await;
    let mut s = scraper(&base_dsn());
    let states = |got: &Samples| -> Vec<f64> {
        STATES
            .iter()
            .map(|st| {
                get(
                    got,
                    "pg_stat_activity_count",
                    &[("datname", &db.name), ("state", st)],
                )
                .unwrap_or(-1.0)
            })
            .collect()
    };
    // No session yet: every state is there, at 0.
    let (r, got) = scrape(&mut s).await;
    assert_eq!(r, Ok(()));
    assert_eq!(states(&got), vec![0.0; 6], "{got:?}");
    assert_eq!(get(&got, "pg_up", &[]), Some(1.0));

    // Two idle sessions, two in a transaction, one in a failed transaction.
    let idle = [db.session().await, db.session().await];
    let in_tx = [db.session().await, db.session().await];
    for c in &in_tx {
        c.batch_execute("BEGIN; SELECT 1").await.unwrap();
    }
    let aborted = db.session().await;
    aborted.batch_execute("BEGIN").await.unwrap();
    assert!(aborted.batch_execute("SELECT 1/0").await.is_err());
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (r, got) = scrape(&mut s).await;
    assert_eq!(r, Ok(()));
    assert_eq!(
        states(&got),
        vec![0.0, 2.0, 2.0, 1.0, 0.0, 0.0],
        "{STATES:?}: {got:?}"
    );
    let longest = get(
        &got,
        "pg_stat_activity_max_tx_duration",
        &[("datname", &db.name), ("state", "idle in transaction")],
    );
    assert!(longest.is_some_and(|v| v >= 0.2), "{longest:?}");
    assert_eq!(
        get(
            &got,
            "pg_stat_activity_max_tx_duration",
            &[("datname", &db.name), ("state", "idle")]
        ),
        Some(0.0)
    );

    // Sessions end: back to 0.
    drop((idle, in_tx, aborted));
    let start = Instant::now();
    loop {
        let (_, got) = scrape(&mut s).await;
        if states(&got) == vec![0.0; 6] {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{got:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    db.drop_db().await;
}

#[tokio::test]
async fn commits_and_rollbacks_move_the_xact_counters() {
    let test = "commits_and_rollbacks_move_the_xact_counters";
    let Some(admin) = server(test).await else {
        return;
    };
    let db = TestDb::create(admin, "hg_test_xact").await;
    let session = db.session().await;
    session
        .batch_execute("CREATE TABLE t (x int)")
        .await
        .unwrap();
    let mut s = scraper(&base_dsn());
    let xacts = |got: &Samples| {
        let l = [("datname", db.name.as_str())];
        (
            get(got, "pg_stat_database_xact_commit", &l),
            get(got, "pg_stat_database_xact_rollback", &l),
            get(got, "pg_stat_database_tup_inserted", &l),
        )
    };
    // Statistics reach pg_stat_database when the backend flushes them (at
    // most once a second): wait for the table's creation to show first.
    let start = Instant::now();
    let before = loop {
        let (r, got) = scrape(&mut s).await;
        assert_eq!(r, Ok(()));
        if let (Some(c), Some(rb), Some(ins)) = xacts(&got) {
            if c >= 1.0 {
                break (c, rb, ins);
            }
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{got:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for i in 0..5 {
        session
            .batch_execute(&format!("BEGIN; INSERT INTO t VALUES ({i}); COMMIT"))
            .await
            .unwrap();
    }
    for _ in 0..3 {
        session
            .batch_execute("BEGIN; INSERT INTO t VALUES (0); ROLLBACK")
            .await
            .unwrap();
    }
    // A backend flushes its statistics at most once a second, else after
    // 10 s idle; one more transaction a second later flushes them at once.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    session.batch_execute("SELECT 1").await.unwrap();
    let start = Instant::now();
    loop {
        let (r, got) = scrape(&mut s).await;
        assert_eq!(r, Ok(()));
        let (c, rb, ins) = xacts(&got);
        let (c, rb, ins) = (
            c.unwrap_or(0.0) - before.0,
            rb.unwrap_or(0.0) - before.1,
            ins.unwrap_or(0.0) - before.2,
        );
        if c >= 5.0 && rb >= 3.0 {
            // Rolled-back inserts count as inserted tuples too.
            assert!(ins >= 8.0, "{ins}: {got:?}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "commits {c}, rollbacks {rb}: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(session);
    db.drop_db().await;
}

#[tokio::test]
async fn settings_sizes_locks_replication_and_stat_database_families() {
    let test = "settings_sizes_locks_replication_and_stat_database_families";
    let Some(admin) = server(test).await else {
        return;
    };
    let db = TestDb::create(admin, "hg_test_families").await;
    let max_conn: String = db
        .admin
        .query_one("SHOW max_connections", &[])
        .await
        .unwrap()
        .get(0);
    let locker = db.session().await;
    locker
        .batch_execute("CREATE TABLE l (x int); BEGIN; LOCK TABLE l IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();

    let mut s = scraper(&db.dsn());
    let (r, got) = scrape(&mut s).await;
    assert_eq!(r, Ok(()));
    let dbl = [("datname", db.name.as_str())];
    assert_eq!(get(&got, "pg_up", &[]), Some(1.0));
    assert_eq!(
        get(&got, "pg_settings_max_connections", &[]),
        max_conn.parse().ok()
    );
    assert_eq!(get(&got, "pg_replication_is_replica", &[]), Some(0.0));
    assert_eq!(get(&got, "pg_replication_lag_seconds", &[]), Some(0.0));
    assert!(get(&got, "pg_postmaster_start_time_seconds", &[]).is_some_and(|v| v > 1e9));
    assert!(get(&got, "pg_database_size_bytes", &dbl).is_some_and(|v| v > 1e6));
    assert_eq!(
        get(
            &got,
            "pg_locks_count",
            &[("datname", &db.name), ("mode", "accessexclusivelock")]
        ),
        Some(1.0),
        "{got:?}"
    );
    // Every mode of every database, 0 when none is held.
    assert_eq!(count(&got, "pg_locks_count", &dbl), 9);
    assert_eq!(
        get(
            &got,
            "pg_locks_count",
            &[("datname", &db.name), ("mode", "sireadlock")]
        ),
        Some(0.0)
    );
    for col in [
        "numbackends",
        "xact_commit",
        "xact_rollback",
        "blks_read",
        "blks_hit",
        "tup_returned",
        "tup_fetched",
        "tup_inserted",
        "tup_updated",
        "tup_deleted",
        "conflicts",
        "temp_files",
        "temp_bytes",
        "deadlocks",
    ] {
        let name = format!("pg_stat_database_{col}");
        assert_eq!(count(&got, &name, &dbl), 1, "{name}: {got:?}");
        let (_, labels, _) = got
            .iter()
            .find(|(n, l, _)| *n == name && l.iter().any(|(_, v)| *v == db.name))
            .unwrap();
        let keys: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, vec!["datid", "datname"]);
    }
    // The scraper's session and the locker.
    assert!(get(&got, "pg_stat_database_numbackends", &dbl).is_some_and(|v| v >= 2.0));
    // No label anywhere is empty, and no series repeats.
    let mut keys: Vec<String> = got.iter().map(|(n, l, _)| format!("{n}{l:?}")).collect();
    keys.sort();
    let n = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), n, "duplicate series");
    assert!(got
        .iter()
        .all(|(_, l, _)| l.iter().all(|(_, v)| !v.is_empty())));
    drop(locker);
    drop(s);
    db.drop_db().await;
}

/// pg_stat_statements needs `shared_preload_libraries`: the test server
/// usually lacks it, and then the extension, even created, must give no
/// series and no error. With it (CI may configure it), the top statements
/// come with bounded labels.
#[tokio::test]
async fn pg_stat_statements_present_or_absent() {
    let test = "pg_stat_statements_present_or_absent";
    let Some(admin) = server(test).await else {
        return;
    };
    let preload: String = admin
        .query_one("SELECT current_setting('shared_preload_libraries')", &[])
        .await
        .unwrap()
        .get(0);
    let loaded = preload.contains("pg_stat_statements");
    let db = TestDb::create(admin, "hg_test_statements").await;
    let session = db.session().await;

    // Not installed: nothing, no error. A limit above the number of
    // statements, so that ours is surely reported.
    let mut s = PostgresScraper::new(&source(&format!(
        "name: t, dsn: {:?}, statements: {{limit: 1000}}",
        db.dsn()
    )));
    let mut top2 = PostgresScraper::new(&source(&format!(
        "name: t, dsn: {:?}, statements: {{limit: 2}}",
        db.dsn()
    )));
    let (r, got) = scrape(&mut s).await;
    assert_eq!(r, Ok(()));
    assert_eq!(count(&got, "pg_stat_statements_calls_total", &[]), 0);

    match session
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .await
    {
        Ok(()) => {}
        Err(e) => {
            println!("SKIP {test} (with the extension): cannot create it: {e}");
            db.drop_db().await;
            return;
        }
    }
    let long = format!(
        "SELECT   1 AS a,\n\n\t{} FROM generate_series(1, 3)",
        (0..60)
            .map(|i| format!("{i} AS c{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for _ in 0..3 {
        session.batch_execute(&long).await.unwrap();
    }
    // The first scrape sees the extension, the next ones use it.
    for round in 0..3 {
        let (r, got) = scrape(&mut s).await;
        assert_eq!(r, Ok(()), "round {round}");
        assert_eq!(get(&got, "pg_up", &[]), Some(1.0));
        let n = count(&got, "pg_stat_statements_calls_total", &[]);
        if !loaded {
            assert_eq!(n, 0, "round {round}: {got:?}");
            continue;
        }
        if round == 0 {
            continue;
        }
        assert!((1..=1000).contains(&n), "round {round}: {n}");
        for (name, labels, v) in &got {
            if !name.starts_with("pg_stat_statements_") {
                continue;
            }
            assert!(*v >= 0.0);
            let keys: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(keys, vec!["datname", "user", "queryid", "query"]);
            let query = &labels[3].1;
            assert!(query.chars().count() <= QUERY_LABEL_CHARS, "{query}");
            assert!(!query.contains("  ") && !query.contains('\n'), "{query}");
        }
        let ours = got.iter().find(|(n, l, _)| {
            n == "pg_stat_statements_calls_total"
                && l.iter()
                    .any(|(k, v)| k == "query" && v.starts_with("SELECT $1 AS a, $2 AS c0"))
        });
        assert!(
            ours.is_some_and(|(_, _, v)| *v >= 3.0),
            "round {round}: {got:?}"
        );
        // The limit keeps the statements with the most time.
        let (r, top) = scrape(&mut top2).await;
        assert_eq!(r, Ok(()));
        let mut secs: Vec<f64> = got
            .iter()
            .filter(|(n, _, _)| n == "pg_stat_statements_seconds_total")
            .map(|(_, _, v)| *v)
            .collect();
        secs.sort_by(|a, b| b.total_cmp(a));
        let top_secs: Vec<f64> = top
            .iter()
            .filter(|(n, _, _)| n == "pg_stat_statements_seconds_total")
            .map(|(_, _, v)| *v)
            .collect();
        if round == 2 {
            assert_eq!(top_secs.len(), 2, "{top:?}");
            // Both from among the largest of a moment before.
            assert!(
                top_secs.iter().all(|v| *v >= secs[2]),
                "{top_secs:?} {secs:?}"
            );
        }
    }
    if !loaded {
        println!(
            "{test}: pg_stat_statements is not in shared_preload_libraries here; \
             only its absence was tested"
        );
    }
    drop(session);
    drop(s);
    db.drop_db().await;
}

#[tokio::test]
async fn bad_port_gives_pg_up_0_and_up_0_without_the_password() {
    let secret = "Pw-d0nt-l3ak";
    let dsn = format!(
        "postgres://postgres:{secret}@127.0.0.1:{}/test",
        free_port()
    );
    let cfg = source(&format!("name: down, dsn: {dsn:?}"));
    // Directly: the error names host:port/db, never the password.
    let mut s = PostgresScraper::new(&cfg);
    let (r, got) = scrape(&mut s).await;
    let err = r.expect_err("a closed port fails");
    println!("closed port: {err}");
    assert!(err.starts_with("127.0.0.1:"), "{err}");
    assert!(err.contains("/test: connect: "), "{err}");
    assert!(!err.contains(secret), "{err}");
    assert_eq!(got, vec![("pg_up".to_owned(), vec![], 0.0)]);
    // While backing off: the same answer without a connection attempt.
    let (r2, got) = scrape(&mut s).await;
    assert_eq!(r2.err().as_deref(), Some(err.as_str()));
    assert_eq!(get(&got, "pg_up", &[]), Some(0.0));

    // In the scrape loop: pg_up 0 is stored, up is 0, and it goes on.
    let (store, _) = scrape_three_times(PostgresScraper::new(&cfg), "postgres").await;
    let pg_up = stored(&store, "pg_up", "down");
    let up = stored(&store, "up", "down");
    assert!(pg_up.len() >= 3, "{pg_up:?}");
    // The last value of each is the end-of-run staleness marker.
    assert!(
        pg_up[..pg_up.len() - 1].iter().all(|v| *v == Some(0.0)),
        "{pg_up:?}"
    );
    assert!(up[..up.len() - 1].iter().all(|v| *v == Some(0.0)), "{up:?}");
    for l in store.series(&[], i64::MIN, i64::MAX) {
        assert!(!format!("{l:?}").contains(secret), "{l:?}");
    }
}

/// A server that accepts connections and never answers: the scrape gives
/// up within its timeout with `pg_up 0`, and the next ones back off.
#[tokio::test]
async fn a_silent_server_is_cut_at_the_timeout() {
    let silent = TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = silent.local_addr().expect("address").port();
    let mut s = scraper(&format!("postgres://postgres@127.0.0.1:{port}/test"));
    let mut buf = SampleBuf::new();
    let ctx = ScrapeCtx {
        timestamp_ms: 0,
        timeout: Duration::from_millis(500),
    };
    let started = Instant::now();
    let r = s.scrape(ctx, &mut buf).await.map_err(|e| e.to_string());
    let took = started.elapsed();
    let err = r.expect_err("no answer");
    println!("silent server: {err} after {took:?}");
    assert!(took < Duration::from_millis(500), "{took:?}");
    assert!(err.contains(&format!("127.0.0.1:{port}/test")), "{err}");
    let got: Vec<_> = buf.iter().map(|x| (x.name().to_owned(), x.value)).collect();
    assert_eq!(got, vec![("pg_up".to_owned(), 0.0)]);
    // Backing off: answered at once.
    let started = Instant::now();
    buf.clear();
    assert!(s.scrape(ctx, &mut buf).await.is_err());
    assert!(started.elapsed() < Duration::from_millis(50));
    drop(silent);
}

#[tokio::test]
async fn dsn_file_tls_modes_and_a_wrong_certificate() {
    let test = "dsn_file_tls_modes_and_a_wrong_certificate";
    let Some(admin) = server(test).await else {
        return;
    };
    // dsn_file: read at connection time, trailing newline ignored.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dsn");
    std::fs::write(&file, format!("{}\n", base_dsn())).unwrap();
    let mut s = PostgresScraper::new(&source(&format!("name: f, dsn_file: {file:?}")));
    let (r, got) = scrape(&mut s).await;
    assert_eq!(r, Ok(()));
    assert_eq!(get(&got, "pg_up", &[]), Some(1.0));
    let missing = dir.path().join("missing");
    let mut s = PostgresScraper::new(&source(&format!("name: f, dsn_file: {missing:?}")));
    let (r, got) = scrape(&mut s).await;
    let err = r.expect_err("no file");
    assert!(err.contains("cannot read dsn_file"), "{err}");
    assert_eq!(get(&got, "pg_up", &[]), Some(0.0));

    let ssl: String = admin.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    if ssl != "on" {
        println!("SKIP {test} (TLS): the server has ssl off");
        return;
    }
    let dsn = base_dsn();
    // require: encrypted, any certificate; the session says it is TLS.
    let mut s = PostgresScraper::new(&source(&format!(
        "name: t, dsn: {dsn:?}, tls: {{mode: require}}"
    )));
    let (r, got) = scrape(&mut s).await;
    assert_eq!(r, Ok(()));
    assert_eq!(get(&got, "pg_up", &[]), Some(1.0));
    let tls_sessions: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid)
             WHERE ssl AND application_name = 'hourglass'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(tls_sessions >= 1);
    // verify-full against the system's roots: a self-signed server
    // certificate is refused, and says why.
    let mut s = PostgresScraper::new(&source(&format!(
        "name: t, dsn: {dsn:?}, tls: {{mode: verify-full}}"
    )));
    let (r, got) = scrape(&mut s).await;
    let err = r.expect_err("an untrusted certificate");
    println!("verify-full, system roots: {err}");
    assert!(err.contains("connect"), "{err}");
    assert_eq!(get(&got, "pg_up", &[]), Some(0.0));

    // verify-full with the server's own certificate as the CA, by the name
    // in it (Debian's snakeoil certificate names localhost).
    let cert: String = admin
        .query_one("SHOW ssl_cert_file", &[])
        .await
        .unwrap()
        .get(0);
    if std::fs::read(&cert).is_err() {
        println!("SKIP {test} (verify-full with ca_file): cannot read {cert}");
        return;
    }
    let local = match url::Url::parse(&dsn) {
        Ok(mut u) if u.host_str() == Some("127.0.0.1") => {
            let _ = u.set_host(Some("localhost"));
            u.to_string()
        }
        _ => {
            println!("SKIP {test} (verify-full with ca_file): {dsn} is not on 127.0.0.1");
            return;
        }
    };
    let mut s = PostgresScraper::new(&source(&format!(
        "name: t, dsn: {local:?}, tls: {{mode: verify-full, ca_file: {cert:?}}}"
    )));
    let (r, got) = scrape(&mut s).await;
    match r {
        Ok(()) => assert_eq!(get(&got, "pg_up", &[]), Some(1.0)),
        Err(e) if e.contains("not valid for name") => {
            println!("SKIP {test} (verify-full with ca_file): {cert} does not name localhost: {e}")
        }
        Err(e) => panic!("verify-full with {cert}: {e}"),
    }
}

// The real binary: a target on a closed port is down (pg_up 0, up 0) while
// a good one and the host source go on, and the password shows nowhere.

#[test]
fn agent_keeps_going_with_a_postgres_target_down() {
    let test = "agent_keeps_going_with_a_postgres_target_down";
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if rt.block_on(server(test)).is_none() {
        return;
    }
    let secret = "Agent-pw-n0t-sh0wn";
    let bad = format!(
        "postgres://postgres:{secret}@127.0.0.1:{}/test",
        free_port()
    );
    let agent = Agent::start_with(
        &format!(
        "sources:\n  host: {{interval: 1s}}\n  postgres:\n    - {{name: good, dsn: {:?}, interval: 1s}}\n    - {{name: bad, dsn: {bad:?}, interval: 1s}}\n",
            base_dsn()
        ),
        &[],
        "debug",
    );
    let start = Instant::now();
    let want = [
        ("pg_up{instance=\"bad\"}", 0.0),
        ("up{job=\"postgres\",instance=\"bad\"}", 0.0),
        ("pg_up{instance=\"good\"}", 1.0),
        ("up{job=\"postgres\",instance=\"good\"}", 1.0),
        ("up{job=\"host\"}", 1.0),
        (
            "count(pg_stat_activity_count{job=\"postgres\",instance=\"good\",datname=\"test\"})",
            6.0,
        ),
    ];
    loop {
        let got: Vec<Option<f64>> = want.iter().map(|(q, _)| agent.value(q)).collect();
        if got.iter().zip(&want).all(|(g, (_, w))| *g == Some(*w)) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{want:?}: {got:?}\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Host metrics keep coming.
    assert!(agent.value("node_load1").is_some());

    // The password: not in any label, the agent's metrics or its log.
    let series = client()
        .get(format!(
            "{}/api/v1/series?match[]={}",
            agent.base,
            urlencode("{job=\"postgres\"}")
        ))
        .send()
        .and_then(|r| r.text())
        .unwrap_or_default();
    assert!(series.contains("\"bad\""), "{series}");
    let metrics = agent.metrics();
    assert!(metrics.contains("instance=\"bad\""), "{metrics}");
    let log = agent.log();
    assert!(log.contains("scrape failed"), "{log}");
    for (what, text) in [("series", &series), ("metrics", &metrics), ("log", &log)] {
        assert!(!text.contains(secret), "{what}: {text}");
    }
}
