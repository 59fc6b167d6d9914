//! The PostgreSQL source's cost per scrape against a real server
//! (127.0.0.1:5432 database `test`, or `HOURGLASS_TEST_POSTGRES`): N scrapes
//! on a current-thread runtime, reporting the agent's process CPU time
//! (user + system, from /proc/self/stat) per scrape beside the wall time,
//! once over plain TCP and once as the DSN has it (libpq's default `prefer`:
//! TLS when the server offers it). The target is at most 5 ms of CPU per
//! scrape. `HOURGLASS_BENCH_SCRAPES` sets N (default 1000). Without a server
//! it prints `SKIP` and exits.

use std::time::{Duration, Instant};

use hourglass::config::Config;
use hourglass::sources::postgres::PostgresScraper;
use hourglass::sources::{SampleBuf, ScrapeCtx, Source};

fn main() {
    let dsn = std::env::var("HOURGLASS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let n: u32 = std::env::var("HOURGLASS_BENCH_SCRAPES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            println!("SKIP postgres_scrape: no runtime: {e}");
            return;
        }
    };
    for (what, tls) in [
        ("plain TCP", ", tls: {mode: disable}"),
        ("as the DSN says", ""),
    ] {
        let yaml = format!("sources:\n  postgres:\n    - {{name: bench, dsn: {dsn:?}{tls}}}\n");
        let cfg = match Config::parse(&yaml, "bench.yml") {
            Ok(c) => c,
            Err(e) => {
                println!("SKIP postgres_scrape: {e}");
                return;
            }
        };
        let Some(source) = cfg.sources.postgres.first() else {
            return;
        };
        let mut scraper = PostgresScraper::new(source);
        if !rt.block_on(run(&mut scraper, what, n)) {
            return;
        }
    }
}

/// N scrapes after a first one that connects; false when the server is
/// not there.
async fn run(scraper: &mut PostgresScraper, what: &str, n: u32) -> bool {
    let mut buf = SampleBuf::new();
    let ctx = ScrapeCtx {
        timestamp_ms: 0,
        timeout: Duration::from_secs(4),
    };
    if let Err(e) = scraper.scrape(ctx, &mut buf).await {
        println!("SKIP postgres_scrape: {e}");
        return false;
    }
    let samples = buf.len();
    let (cpu0, wall0) = (process_cpu(), Instant::now());
    let mut failed = 0;
    for _ in 0..n {
        buf.clear();
        if scraper.scrape(ctx, &mut buf).await.is_err() {
            failed += 1;
        }
    }
    let wall = wall0.elapsed().as_secs_f64() / f64::from(n);
    let cpu = (process_cpu() - cpu0) / f64::from(n);
    println!(
        "postgres_scrape ({what}): {n} scrapes of {samples} samples, {failed} failed: \
         {:.3} ms CPU per scrape (target <= 5 ms), {:.3} ms wall",
        cpu * 1e3,
        wall * 1e3
    );
    true
}

/// This process's CPU time (user + system) in seconds, from /proc/self/stat.
fn process_cpu() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The command name may hold spaces: fields are counted after its `)`.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 11 and 12 here.
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    ticks / rustix::param::clock_ticks_per_second() as f64
}
