//! The Redis source's cost per scrape against a real server (127.0.0.1:6379
//! or `HOURGLASS_TEST_REDIS`): N scrapes of INFO plus a few queue patterns
//! (two globs over six keys, two exact keys) on a current-thread runtime,
//! reporting the agent's process CPU time (user + system, from
//! /proc/self/stat) per scrape beside the wall time. The target is at most
//! 5 ms of CPU per scrape. `HOURGLASS_BENCH_SCRAPES` sets N (default 2000).
//! Without a server it prints `SKIP` and exits.

use std::time::{Duration, Instant};

use hourglass::config::Config;
use hourglass::sources::redis::RedisScraper;
use hourglass::sources::{SampleBuf, ScrapeCtx, Source};

fn main() {
    let url =
        std::env::var("HOURGLASS_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut conn = match redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
    {
        Ok(c) => c,
        Err(e) => {
            println!("SKIP redis_scrape: no Redis at {url}: {e}");
            return;
        }
    };
    let prefix = format!("hgbench:{}", std::process::id());
    if let Err(e) = setup(&mut conn, &prefix) {
        println!("SKIP redis_scrape: setting up keys: {e}");
        return;
    }

    let yaml = format!(
        "sources:\n  redis:\n    - name: bench\n      url: {url:?}\n      queues: [\"{prefix}:jobs:*\", \"{prefix}:delayed:*\", \"{prefix}:celery\", \"{prefix}:absent\"]\n"
    );
    let result = match Config::parse(&yaml, "bench.yml") {
        Ok(cfg) => run(&cfg),
        Err(e) => Err(e.to_string()),
    };
    let _: redis::RedisResult<()> = redis::cmd("DEL")
        .arg(
            [
                "jobs:q0",
                "jobs:q1",
                "jobs:q2",
                "jobs:q3",
                "jobs:q4",
                "jobs:stream",
                "delayed:z",
                "celery",
            ]
            .map(|k| format!("{prefix}:{k}"))
            .to_vec(),
        )
        .query(&mut conn);
    if let Err(e) = result {
        eprintln!("redis_scrape failed: {e}");
        std::process::exit(1);
    }
}

fn setup(conn: &mut redis::Connection, prefix: &str) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    for q in 0..5 {
        let items: Vec<u32> = (0..100).collect();
        pipe.cmd("RPUSH")
            .arg(format!("{prefix}:jobs:q{q}"))
            .arg(items)
            .ignore();
    }
    for i in 0..100 {
        pipe.cmd("XADD")
            .arg(format!("{prefix}:jobs:stream"))
            .arg("*")
            .arg("n")
            .arg(i)
            .ignore();
    }
    pipe.cmd("ZADD")
        .arg(format!("{prefix}:delayed:z"))
        .arg(1)
        .arg("a")
        .ignore();
    pipe.cmd("RPUSH")
        .arg(format!("{prefix}:celery"))
        .arg("x")
        .ignore();
    pipe.query::<()>(conn)
}

fn run(cfg: &Config) -> Result<(), String> {
    let n: u32 = std::env::var("HOURGLASS_BENCH_SCRAPES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut source = RedisScraper::new(&cfg.sources.redis[0]);
    let mut buf = SampleBuf::new();
    let ctx = ScrapeCtx {
        timestamp_ms: 0,
        timeout: Duration::from_secs(4),
    };
    rt.block_on(async {
        // Warm-up: the connection, the type cache, the buffers' capacity.
        for _ in 0..20 {
            buf.clear();
            source
                .scrape(ctx, &mut buf)
                .await
                .map_err(|e| e.to_string())?;
        }
        let queue_series = buf
            .iter()
            .filter(|s| s.name() == "redis_queue_length")
            .count();
        if queue_series != 9 {
            return Err(format!("expected 9 queue series, got {queue_series}"));
        }
        let (cpu0, wall0) = (process_cpu()?, Instant::now());
        for _ in 0..n {
            buf.clear();
            source
                .scrape(ctx, &mut buf)
                .await
                .map_err(|e| e.to_string())?;
        }
        let (cpu, wall) = (process_cpu()? - cpu0, wall0.elapsed());
        let per = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(n);
        println!(
            "redis_scrape: {n} scrapes, {} samples each ({queue_series} queue lengths, 2 globs + 2 exact keys)",
            buf.len()
        );
        println!(
            "redis_scrape: wall {:.0} µs/scrape, agent CPU {:.0} µs/scrape (target ≤ 5000 µs)",
            per(wall),
            per(cpu)
        );
        Ok(())
    })
}

/// User + system CPU time of this process so far, from /proc/self/stat.
fn process_cpu() -> Result<Duration, String> {
    let stat = std::fs::read_to_string("/proc/self/stat").map_err(|e| e.to_string())?;
    // Fields after the parenthesised command name; utime and stime are
    // fields 14 and 15 of the whole line.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("no ) in /proc/self/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64, String> {
        fields
            .get(i)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad /proc/self/stat field {i}"))
    };
    let total = ticks(11)? + ticks(12)?;
    let hz = rustix::param::clock_ticks_per_second();
    Ok(Duration::from_secs_f64(total as f64 / hz as f64))
}
