//! The cost of scraping an application's /metrics page: parsing a realistic
//! ~550-sample page (a FastAPI app instrumented with the Python client:
//! process and GC metrics, request counters with `_created`, a latency
//! histogram per handler), and whole scrapes over loopback HTTP on a
//! current-thread runtime, reporting the agent thread's CPU time per scrape
//! (the test server runs on other threads and is not counted).
//! Run with `cargo bench --bench http_scrape`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hourglass::config::Config;
use hourglass::sources::http::{Format, HttpTarget, ParseOptions, Parser};
use hourglass::sources::{spawn_scrape_loop, SampleBuf, ScrapeConfig, ScrapeCtx, Source};
use hourglass::store::{Store, StoreConfig};

/// Counts allocations, to show that a steady-state parse makes none.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A page as the Python client renders it for a FastAPI app.
fn app_page() -> String {
    let mut p = String::new();
    let w = &mut p;
    for (name, kind, v) in [
        ("process_virtual_memory_bytes", "gauge", 1.2e9),
        ("process_resident_memory_bytes", "gauge", 8.4e7),
        ("process_start_time_seconds", "gauge", 1.7e9),
        ("process_cpu_seconds_total", "counter", 1234.56),
        ("process_open_fds", "gauge", 37.0),
        ("process_max_fds", "gauge", 1_048_576.0),
    ] {
        let _ = writeln!(
            w,
            "# HELP {name} Process metric.\n# TYPE {name} {kind}\n{name} {v:e}"
        );
    }
    for m in ["collected", "uncollectable"] {
        let _ = writeln!(w, "# HELP python_gc_objects_{m}_total Objects.\n# TYPE python_gc_objects_{m}_total counter");
        for g in 0..3 {
            let _ = writeln!(
                w,
                "python_gc_objects_{m}_total{{generation=\"{g}\"}} {}.0",
                1000 * g + 17
            );
        }
    }
    let _ = writeln!(
        w,
        "# HELP python_info Python platform information\n# TYPE python_info gauge"
    );
    let _ = writeln!(w, "python_info{{implementation=\"CPython\",major=\"3\",minor=\"12\",patchlevel=\"3\",version=\"3.12.3\"}} 1.0");
    let handlers: Vec<String> = (0..20)
        .map(|i| format!("/api/v1/resource_{i}/{{id}}"))
        .collect();
    let _ = writeln!(w, "# HELP http_requests_total Total number of requests by method, status and handler.\n# TYPE http_requests_total counter");
    for h in &handlers {
        for m in ["GET", "POST"] {
            for s in ["2xx", "4xx", "5xx"] {
                let _ = writeln!(
                    w,
                    "http_requests_total{{handler=\"{h}\",method=\"{m}\",status=\"{s}\"}} {}.0",
                    h.len() * 37
                );
            }
        }
    }
    let _ = writeln!(w, "# HELP http_requests_created Total number of requests by method, status and handler.\n# TYPE http_requests_created gauge");
    for h in &handlers {
        for m in ["GET", "POST"] {
            for s in ["2xx", "4xx", "5xx"] {
                let _ = writeln!(w, "http_requests_created{{handler=\"{h}\",method=\"{m}\",status=\"{s}\"}} 1.7000000012345e+09");
            }
        }
    }
    let buckets = [
        "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75", "1.0", "2.5", "5.0", "+Inf",
    ];
    let _ = writeln!(w, "# HELP http_request_duration_seconds Latency.\n# TYPE http_request_duration_seconds histogram");
    for h in &handlers {
        for (i, le) in buckets.iter().enumerate() {
            let _ = writeln!(w, "http_request_duration_seconds_bucket{{handler=\"{h}\",le=\"{le}\",method=\"GET\"}} {}.0", 100 * (i + 1));
        }
        let _ = writeln!(
            w,
            "http_request_duration_seconds_count{{handler=\"{h}\",method=\"GET\"}} 1200.0"
        );
        let _ = writeln!(
            w,
            "http_request_duration_seconds_sum{{handler=\"{h}\",method=\"GET\"}} 93.123456"
        );
    }
    let _ = writeln!(w, "# HELP http_request_duration_seconds_created Latency.\n# TYPE http_request_duration_seconds_created gauge");
    for h in &handlers {
        let _ = writeln!(w, "http_request_duration_seconds_created{{handler=\"{h}\",method=\"GET\"}} 1.7000000012345e+09");
    }
    p
}

/// CPU time of the calling thread, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Serves `body` with keep-alive, as uvicorn or gunicorn would.
fn serve(body: Arc<Vec<u8>>) -> u16 {
    let listener = match TcpListener::bind("127.0.0.1:0") {
        Ok(l) => l,
        Err(e) => panic!("bind: {e}"),
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let body = body.clone();
            // As real servers do; without it Nagle's algorithm and delayed
            // ACKs add 40 ms to every response written in two parts.
            let _ = conn.set_nodelay(true);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(match conn.try_clone() {
                    Ok(c) => c,
                    Err(_) => return,
                });
                let mut conn = conn;
                let mut line = String::new();
                loop {
                    // Read one request head.
                    loop {
                        line.clear();
                        match reader.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => break,
                            Ok(_) => {}
                        }
                    }
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    if conn.write_all(head.as_bytes()).is_err() || conn.write_all(&body).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn main() {
    let page = app_page();
    let lines = page.lines().filter(|l| !l.starts_with('#')).count();

    // 1. Parsing alone.
    let mut parser = Parser::new();
    let mut out = SampleBuf::new();
    let opts = ParseOptions {
        honor_labels: false,
        sample_limit: 50_000,
    };
    let mut n = 0;
    for _ in 0..50 {
        out.clear();
        n = parser
            .parse(page.as_bytes(), Format::Text, opts, &mut out)
            .unwrap_or(0);
    }
    assert_eq!(n, lines, "the page parses");
    let iters = 5000;
    let allocs = ALLOCS.load(Ordering::Relaxed);
    let (cpu, wall) = (thread_cpu_ns(), Instant::now());
    for _ in 0..iters {
        out.clear();
        let r = parser.parse(
            std::hint::black_box(page.as_bytes()),
            Format::Text,
            opts,
            &mut out,
        );
        std::hint::black_box(r.is_ok());
    }
    let per_parse = wall.elapsed() / iters;
    let cpu_parse = (thread_cpu_ns() - cpu) / iters as u64;
    let allocs = (ALLOCS.load(Ordering::Relaxed) - allocs) as f64 / iters as f64;
    println!(
        "parse: {n} samples, {} KiB: {:.1} us/page wall, {:.1} us CPU, {:.0} ns/sample, {allocs:.2} allocations/page",
        page.len() / 1024,
        per_parse.as_secs_f64() * 1e6,
        cpu_parse as f64 / 1e3,
        per_parse.as_secs_f64() * 1e9 / n as f64
    );

    // 2. Whole scrapes over loopback HTTP, on a current-thread runtime.
    let port = serve(Arc::new(page.into_bytes()));
    let yaml = format!(
        "sources:\n  http:\n    - {{name: app, url: \"http://127.0.0.1:{port}/metrics\", interval: 10ms, timeout: 10ms}}\n"
    );
    let cfg = match Config::parse(&yaml, "bench.yml") {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let h = cfg.sources.http[0].clone();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("{e}"),
    };
    rt.block_on(async {
        // 2a. The source alone: request, response, parse.
        let mut target = HttpTarget::new(&h);
        let ctx = ScrapeCtx {
            timestamp_ms: 0,
            timeout: Duration::from_secs(5),
        };
        for _ in 0..20 {
            out.clear();
            let _ = target.scrape(ctx, &mut out).await;
        }
        assert_eq!(out.len(), lines, "scrapes succeed");
        let scrapes = 1000;
        let (cpu, wall) = (thread_cpu_ns(), Instant::now());
        for _ in 0..scrapes {
            out.clear();
            let _ = target.scrape(ctx, &mut out).await;
        }
        println!(
            "source scrape (HTTP + parse): {:.1} us CPU/scrape, {:.1} us wall/scrape",
            (thread_cpu_ns() - cpu) as f64 / scrapes as f64 / 1e3,
            wall.elapsed().as_secs_f64() * 1e6 / scrapes as f64
        );

        // 2b. The scrape loop into the store, as the agent runs it.
        let store = Arc::new(Store::new(StoreConfig::default()));
        let sc = ScrapeConfig::new("app", h.instance(), Duration::from_millis(10), Duration::from_millis(10));
        let (tx, rx) = tokio::sync::watch::channel(false);
        let (task, stats) = spawn_scrape_loop(HttpTarget::new(&h), store.clone(), sc, rx);
        while stats.snapshot().scrapes_total < 20 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (s0, cpu) = (stats.snapshot(), thread_cpu_ns());
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (s1, cpu1) = (stats.snapshot(), thread_cpu_ns());
        let _ = tx.send(true);
        let _ = task.await;
        let scrapes = s1.scrapes_total - s0.scrapes_total;
        let failed = s1.scrape_failures_total - s0.scrape_failures_total;
        let appended = s1.samples_appended_total - s0.samples_appended_total;
        println!(
            "scrape loop (HTTP + parse + store, every 10ms): {:.1} us CPU/scrape over {scrapes} scrapes ({failed} failed, {:.0} samples appended/scrape); target <= 5000 us",
            (cpu1 - cpu) as f64 / scrapes.max(1) as f64 / 1e3,
            appended as f64 / scrapes.max(1) as f64
        );
    });
}
