//! Benchmarks of the store on realistic host data: 10 000 node_exporter-like
//! series (20 hosts × 500) scraped every second for an hour.
//!
//! Besides criterion's timings this prints the figures the store must meet:
//! bytes per sample all-in (from `stats().bytes`, cross-checked against the
//! allocator), and a comparison of the chunk codec with pco and Gorilla XOR.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use criterion::{BatchSize, Criterion, Throughput};
use hourglass::model::{MatchOp, Matcher};
use hourglass::store::chunk::Codec;
use hourglass::store::{SeriesRef, Store, StoreConfig};

/// Counts live heap bytes, to check `stats().bytes` against.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n as isize - l.size() as isize, Ordering::Relaxed);
        System.realloc(p, l, n)
    }
}

#[global_allocator]
static A: Counting = Counting;

const HOSTS: usize = 20;
const SERIES_PER_HOST: usize = 500;
const SECONDS: usize = 3600;
const T0: i64 = 1_700_000_000_000;

mod data {
    //! A deterministic generator of node_exporter-like host metrics.

    use hourglass::model::Labels;

    /// SplitMix64: small, fast, good enough for test data.
    #[derive(Clone)]
    pub struct Rng(u64);

    impl Rng {
        pub fn new(seed: u64) -> Rng {
            Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
        }
        pub fn u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        pub fn f64(&mut self) -> f64 {
            (self.u64() >> 11) as f64 / (1u64 << 53) as f64
        }
        pub fn normal(&mut self) -> f64 {
            // Irwin–Hall: the sum of 4 uniforms, rescaled to unit variance.
            let s: f64 = (0..4).map(|_| self.f64()).sum();
            (s - 2.0) * 3f64.sqrt()
        }
        pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
            lo + (hi - lo) * self.f64()
        }
    }

    /// How one series moves from one second to the next.
    #[derive(Clone)]
    pub enum Kind {
        Const(f64),
        /// A counter of integer units (value = n * mult / 10^dec) growing by
        /// about `mean` ± `sd` units a second; the mean breathes slowly.
        Counter {
            n: i64,
            mult: i64,
            dec: i32,
            mean: f64,
            sd: f64,
            period: f64,
        },
        /// A byte counter with heavy-tailed increments of `mult` bytes,
        /// idle with probability `idle`.
        Bursty {
            n: i64,
            mult: i64,
            mu: f64,
            sigma: f64,
            idle: f64,
        },
        /// A gauge of integer units that moves with probability `p` by a
        /// step of about `sd` units, kept within [lo, hi].
        Gauge {
            n: i64,
            mult: i64,
            dec: i32,
            p: f64,
            sd: f64,
            lo: i64,
            hi: i64,
        },
        /// A full-precision float such as a duration.
        Float {
            mean: f64,
            sd: f64,
        },
        /// `node_time_seconds`: the scrape time with nanoseconds.
        TimeSeconds,
    }

    pub struct Series {
        pub labels: Labels,
        pub kind: Kind,
        pub rng: Rng,
        pub t: u64,
    }

    impl Series {
        /// The value at the next scrape, taken at `ts` ms.
        pub fn next(&mut self, ts: i64) -> f64 {
            let r = &mut self.rng;
            self.t += 1;
            match &mut self.kind {
                Kind::Const(v) => *v,
                Kind::Counter {
                    n,
                    mult,
                    dec,
                    mean,
                    sd,
                    period,
                } => {
                    let m = *mean * (1.0 + 0.3 * (self.t as f64 / *period).sin());
                    *n += (m + *sd * r.normal()).round().max(0.0) as i64;
                    scaled(*n * *mult, *dec)
                }
                Kind::Bursty {
                    n,
                    mult,
                    mu,
                    sigma,
                    idle,
                } => {
                    if r.f64() >= *idle {
                        *n += (*mu + *sigma * r.normal()).exp().round() as i64;
                    }
                    (*n * *mult) as f64
                }
                Kind::Gauge {
                    n,
                    mult,
                    dec,
                    p,
                    sd,
                    lo,
                    hi,
                } => {
                    if r.f64() < *p {
                        *n = (*n + (*sd * r.normal()).round() as i64).clamp(*lo, *hi);
                    }
                    scaled(*n * *mult, *dec)
                }
                Kind::Float { mean, sd } => (*mean + *sd * r.normal()).abs(),
                Kind::TimeSeconds => {
                    let ns = ts * 1_000_000 + (r.u64() % 1_000_000) as i64;
                    ns as f64 / 1e9
                }
            }
        }
    }

    /// As procfs computes seconds from ticks: a division, not a multiplication.
    fn scaled(n: i64, dec: i32) -> f64 {
        if dec == 0 {
            n as f64
        } else {
            n as f64 / 10f64.powi(dec)
        }
    }

    struct Host<'a> {
        out: &'a mut Vec<Series>,
        instance: String,
        rng: Rng,
    }

    impl Host<'_> {
        fn add(&mut self, name: &str, extra: &[(&str, &str)], kind: Kind) {
            let mut pairs: Vec<(&str, &str)> = vec![
                ("__name__", name),
                ("job", "node"),
                ("instance", &self.instance),
            ];
            pairs.extend_from_slice(extra);
            let seed = self.rng.u64();
            self.out.push(Series {
                labels: Labels::from_pairs(&pairs),
                kind,
                rng: Rng::new(seed),
                t: 0,
            });
        }

        fn counter(&mut self, name: &str, extra: &[(&str, &str)], dec: i32, mean: f64, sd: f64) {
            let start = (mean.max(1.0) * self.rng.range(1e4, 1e6)) as i64;
            let period = self.rng.range(300.0, 3000.0);
            self.add(
                name,
                extra,
                Kind::Counter {
                    n: start,
                    mult: 1,
                    dec,
                    mean,
                    sd,
                    period,
                },
            );
        }

        fn bursty(
            &mut self,
            name: &str,
            extra: &[(&str, &str)],
            mult: i64,
            mean: f64,
            sigma: f64,
            idle: f64,
        ) {
            let n = (mean * self.rng.range(1e4, 1e6)) as i64;
            self.add(
                name,
                extra,
                Kind::Bursty {
                    n,
                    mult,
                    mu: mean.ln(),
                    sigma,
                    idle,
                },
            );
        }

        #[allow(clippy::too_many_arguments)]
        fn gauge(
            &mut self,
            name: &str,
            extra: &[(&str, &str)],
            mult: i64,
            dec: i32,
            p: f64,
            sd: f64,
            lo: i64,
            hi: i64,
        ) {
            let n = (lo + hi) / 2 + (self.rng.normal() * (hi - lo) as f64 / 8.0) as i64;
            self.add(
                name,
                extra,
                Kind::Gauge {
                    n,
                    mult,
                    dec,
                    p,
                    sd,
                    lo,
                    hi,
                },
            );
        }
    }

    /// 500 series of one host, as node_exporter exposes them.
    pub fn host(h: usize, out: &mut Vec<Series>) {
        let start = out.len();
        let mut host = Host {
            out,
            instance: format!("host-{h:02}.example.internal:9100"),
            rng: Rng::new(h as u64 + 1),
        };
        let x = &mut host;
        let cpus: Vec<String> = (0..16).map(|c| c.to_string()).collect();
        for cpu in &cpus {
            let load = x.rng.range(0.05, 0.6);
            let c = cpu.as_str();
            let m = |mode| [("cpu", c), ("mode", mode)];
            x.counter(
                "node_cpu_seconds_total",
                &m("idle"),
                2,
                100.0 * (1.0 - load),
                3.0,
            );
            let user = 70.0 * load;
            x.counter(
                "node_cpu_seconds_total",
                &m("user"),
                2,
                user,
                2.0 + user * 0.2,
            );
            let sys = 25.0 * load;
            x.counter(
                "node_cpu_seconds_total",
                &m("system"),
                2,
                sys,
                1.0 + sys * 0.2,
            );
            x.counter("node_cpu_seconds_total", &m("iowait"), 2, 0.5, 0.8);
            x.counter("node_cpu_seconds_total", &m("irq"), 2, 0.05, 0.2);
            x.counter("node_cpu_seconds_total", &m("softirq"), 2, 0.4, 0.6);
            x.counter("node_cpu_seconds_total", &m("steal"), 2, 0.1, 0.3);
            x.add("node_cpu_seconds_total", &m("nice"), Kind::Const(12.34));
            x.counter(
                "node_softnet_processed_total",
                &[("cpu", c)],
                0,
                200.0,
                80.0,
            );
            x.add(
                "node_softnet_dropped_total",
                &[("cpu", c)],
                Kind::Const(0.0),
            );
            x.counter(
                "node_softnet_times_squeezed_total",
                &[("cpu", c)],
                0,
                0.02,
                0.15,
            );
            x.counter(
                "node_schedstat_timeslices_total",
                &[("cpu", c)],
                0,
                300.0,
                100.0,
            );
            x.add(
                "node_cpu_guest_seconds_total",
                &[("cpu", c), ("mode", "user")],
                Kind::Const(0.0),
            );
        }
        for (dev, bytes, idle) in [
            ("eth0", 150_000.0, 0.0),
            ("eth1", 1.0, 1.0),
            ("lo", 20_000.0, 0.1),
            ("docker0", 3_000.0, 0.5),
        ] {
            let d = [("device", dev)];
            x.bursty("node_network_receive_bytes_total", &d, 1, bytes, 1.0, idle);
            x.bursty(
                "node_network_transmit_bytes_total",
                &d,
                1,
                bytes * 0.6,
                1.0,
                idle,
            );
            let pk = bytes / 700.0 * (1.0 - idle);
            x.counter("node_network_receive_packets_total", &d, 0, pk, pk * 0.5);
            x.counter(
                "node_network_transmit_packets_total",
                &d,
                0,
                pk * 0.8,
                pk * 0.4,
            );
            x.add("node_network_receive_errs_total", &d, Kind::Const(0.0));
            x.add("node_network_transmit_errs_total", &d, Kind::Const(0.0));
            x.counter("node_network_receive_drop_total", &d, 0, 0.01, 0.1);
            x.add("node_network_transmit_drop_total", &d, Kind::Const(0.0));
            x.add(
                "node_network_mtu_bytes",
                &d,
                Kind::Const(if dev == "lo" { 65536.0 } else { 1500.0 }),
            );
            x.add("node_network_up", &d, Kind::Const(1.0));
            x.add("node_network_carrier", &d, Kind::Const(1.0));
            x.add("node_network_speed_bytes", &d, Kind::Const(1.25e9));
        }
        for dev in ["nvme0n1", "nvme1n1", "sda", "dm-0"] {
            let d = [("device", dev)];
            x.counter("node_disk_reads_completed_total", &d, 0, 5.0, 8.0);
            x.counter("node_disk_writes_completed_total", &d, 0, 20.0, 15.0);
            x.bursty("node_disk_read_bytes_total", &d, 4096, 8.0, 1.5, 0.6);
            x.bursty("node_disk_written_bytes_total", &d, 4096, 30.0, 1.2, 0.3);
            x.counter("node_disk_read_time_seconds_total", &d, 3, 3.0, 4.0);
            x.counter("node_disk_write_time_seconds_total", &d, 3, 20.0, 20.0);
            x.counter("node_disk_io_time_seconds_total", &d, 3, 15.0, 10.0);
            x.counter(
                "node_disk_io_time_weighted_seconds_total",
                &d,
                3,
                40.0,
                40.0,
            );
            x.gauge("node_disk_io_now", &d, 1, 0, 0.3, 1.0, 0, 4);
        }
        let constant_mem = [
            "MemTotal",
            "SwapTotal",
            "SwapFree",
            "HugePages_Total",
            "HugePages_Free",
            "HugePages_Rsvd",
            "HugePages_Surp",
            "Hugepagesize",
            "VmallocTotal",
            "CmaTotal",
            "CmaFree",
            "DirectMap4k",
            "DirectMap2M",
            "DirectMap1G",
            "Mlocked",
        ];
        for m in constant_mem {
            let v = (x.rng.u64() % 50_000_000) as f64 * 1024.0;
            x.add(&format!("node_memory_{m}_bytes"), &[], Kind::Const(v));
        }
        let moving_mem: [(&str, f64, f64); 30] = [
            ("MemFree", 0.9, 2000.0),
            ("MemAvailable", 0.9, 2000.0),
            ("Cached", 0.7, 500.0),
            ("Buffers", 0.5, 20.0),
            ("Active", 0.8, 1000.0),
            ("Inactive", 0.8, 1000.0),
            ("Active_anon", 0.8, 800.0),
            ("Inactive_anon", 0.5, 200.0),
            ("Active_file", 0.6, 400.0),
            ("Inactive_file", 0.6, 400.0),
            ("Dirty", 0.9, 300.0),
            ("Writeback", 0.2, 50.0),
            ("AnonPages", 0.8, 800.0),
            ("Mapped", 0.3, 50.0),
            ("Shmem", 0.2, 20.0),
            ("Slab", 0.6, 30.0),
            ("SReclaimable", 0.5, 25.0),
            ("SUnreclaim", 0.5, 10.0),
            ("KernelStack", 0.3, 4.0),
            ("PageTables", 0.5, 20.0),
            ("Committed_AS", 0.7, 1000.0),
            ("VmallocUsed", 0.1, 8.0),
            ("Percpu", 0.05, 4.0),
            ("AnonHugePages", 0.05, 2048.0),
            ("Unevictable", 0.01, 1.0),
            ("SwapCached", 0.01, 1.0),
            ("KReclaimable", 0.5, 25.0),
            ("Bounce", 0.0, 0.0),
            ("WritebackTmp", 0.0, 0.0),
            ("Inactive_file_low", 0.3, 100.0),
        ];
        for (m, p, sd) in moving_mem {
            x.gauge(
                &format!("node_memory_{m}_bytes"),
                &[],
                1024,
                0,
                p,
                sd,
                0,
                30_000_000,
            );
        }
        for (mp, dev, fs, busy) in [
            ("/", "/dev/nvme0n1p2", "ext4", 0.6),
            ("/boot", "/dev/nvme0n1p1", "vfat", 0.0),
            ("/var", "/dev/nvme1n1p1", "xfs", 0.8),
            ("/home", "/dev/sda1", "ext4", 0.1),
            ("/run", "tmpfs", "tmpfs", 0.3),
            ("/dev/shm", "tmpfs", "tmpfs", 0.05),
            ("/var/lib/docker", "/dev/mapper/docker", "xfs", 0.5),
            ("/tmp", "tmpfs", "tmpfs", 0.2),
        ] {
            let l = [("device", dev), ("fstype", fs), ("mountpoint", mp)];
            let size = (x.rng.u64() % 100_000_000 + 1_000_000) as f64 * 4096.0;
            x.add("node_filesystem_size_bytes", &l, Kind::Const(size));
            x.add(
                "node_filesystem_files",
                &l,
                Kind::Const((size / 16384.0).round()),
            );
            x.add("node_filesystem_readonly", &l, Kind::Const(0.0));
            x.add("node_filesystem_device_error", &l, Kind::Const(0.0));
            x.gauge(
                "node_filesystem_avail_bytes",
                &l,
                4096,
                0,
                busy,
                50.0,
                0,
                100_000_000,
            );
            x.gauge(
                "node_filesystem_free_bytes",
                &l,
                4096,
                0,
                busy,
                50.0,
                0,
                100_000_000,
            );
            x.gauge(
                "node_filesystem_files_free",
                &l,
                1,
                0,
                busy * 0.5,
                5.0,
                0,
                10_000_000,
            );
        }
        x.gauge("node_load1", &[], 1, 2, 0.8, 5.0, 0, 1600);
        x.gauge("node_load5", &[], 1, 2, 0.6, 2.0, 0, 1600);
        x.gauge("node_load15", &[], 1, 2, 0.4, 1.0, 0, 1600);
        x.bursty("node_vmstat_pgpgin", &[], 1, 50.0, 1.5, 0.6);
        x.bursty("node_vmstat_pgpgout", &[], 1, 200.0, 1.2, 0.3);
        x.add("node_vmstat_pswpin", &[], Kind::Const(0.0));
        x.add("node_vmstat_pswpout", &[], Kind::Const(0.0));
        x.counter("node_vmstat_pgfault", &[], 0, 20_000.0, 8_000.0);
        x.counter("node_vmstat_pgmajfault", &[], 0, 0.3, 0.7);
        x.add("node_vmstat_oom_kill", &[], Kind::Const(0.0));
        for (i, mean) in [1.0, 5.0, 40.0, 300.0, 1000.0].into_iter().enumerate() {
            x.counter(
                &format!("node_vmstat_misc{i}"),
                &[],
                0,
                mean,
                mean * 0.5 + 0.3,
            );
        }
        x.bursty("node_netstat_IpExt_InOctets", &[], 1, 200_000.0, 1.0, 0.0);
        x.bursty("node_netstat_IpExt_OutOctets", &[], 1, 120_000.0, 1.0, 0.0);
        for i in 0..38 {
            // Means spread log-uniformly from 0.001 to 2000 a second.
            let mean = 10f64.powf(x.rng.range(-3.0, 3.3));
            x.counter(
                &format!("node_netstat_Stat{i}"),
                &[],
                0,
                mean,
                mean * 0.5 + 0.3,
            );
        }
        for i in 0..16 {
            let (p, sd) = [(0.3, 2.0), (0.6, 5.0), (0.1, 1.0), (0.5, 3.0)][i % 4];
            x.gauge(
                &format!("node_sockstat_Gauge{i}"),
                &[],
                1,
                0,
                p,
                sd,
                0,
                2000,
            );
        }
        for i in 0..8 {
            let sensor = format!("temp{i}");
            let mult = [1000, 500, 125, 1000][i % 4];
            x.gauge(
                "node_hwmon_temp_celsius",
                &[("chip", "platform_coretemp_0"), ("sensor", &sensor)],
                mult,
                3,
                0.3,
                1.0,
                25_000 / mult,
                90_000 / mult,
            );
        }
        x.counter("node_context_switches_total", &[], 0, 15_000.0, 5_000.0);
        x.counter("node_intr_total", &[], 0, 20_000.0, 6_000.0);
        x.counter("node_forks_total", &[], 0, 5.0, 4.0);
        x.gauge("node_procs_running", &[], 1, 0, 0.9, 2.0, 1, 20);
        x.gauge("node_procs_blocked", &[], 1, 0, 0.3, 1.0, 0, 5);
        x.add("node_boot_time_seconds", &[], Kind::Const(1_699_000_000.0));
        x.add("node_entropy_available_bits", &[], Kind::Const(256.0));
        x.gauge("node_filefd_allocated", &[], 1, 0, 0.5, 10.0, 1000, 100_000);
        x.add("node_time_seconds", &[], Kind::TimeSeconds);
        x.add("up", &[], Kind::Const(1.0));
        x.add("scrape_samples_scraped", &[], Kind::Const(500.0));
        x.add(
            "scrape_duration_seconds",
            &[],
            Kind::Float {
                mean: 0.015,
                sd: 0.004,
            },
        );
        x.add(
            "node_timex_offset_seconds",
            &[],
            Kind::Float {
                mean: 0.0,
                sd: 1e-4,
            },
        );
        x.add(
            "node_timex_frequency_adjustment_ratio",
            &[],
            Kind::Float {
                mean: 1.00001,
                sd: 1e-7,
            },
        );
        for c in [
            "cpu",
            "diskstats",
            "filesystem",
            "meminfo",
            "netdev",
            "netstat",
            "vmstat",
        ] {
            x.add(
                "node_scrape_collector_duration_seconds",
                &[("collector", c)],
                Kind::Float {
                    mean: 0.002,
                    sd: 0.001,
                },
            );
        }
        for (r, mean, sd) in [
            ("cpu_waiting", 20_000.0, 15_000.0),
            ("io_waiting", 5_000.0, 5_000.0),
            ("io_stalled", 3_000.0, 3_000.0),
            ("memory_waiting", 100.0, 300.0),
            ("memory_stalled", 50.0, 150.0),
        ] {
            x.counter(
                &format!("node_pressure_{r}_seconds_total"),
                &[],
                6,
                mean,
                sd,
            );
        }
        x.add(
            "node_uname_info",
            &[("release", "6.8.0-45-generic"), ("machine", "x86_64")],
            Kind::Const(1.0),
        );
        x.add(
            "node_os_info",
            &[("id", "ubuntu"), ("version_id", "24.04")],
            Kind::Const(1.0),
        );
        assert_eq!(x.out.len() - start, super::SERIES_PER_HOST);
    }

    /// Scrape timestamps of one host: every second, a fixed offset per host
    /// and 0–4 ms of jitter.
    pub fn timestamps(h: usize, n: usize) -> Vec<i64> {
        let mut r = Rng::new(1000 + h as u64);
        (0..n as i64)
            .map(|i| super::T0 + h as i64 * 37 + i * 1000 + (r.u64() % 5) as i64)
            .collect()
    }
}

/// All series with their generators, host by host.
fn all_series(hosts: usize) -> Vec<data::Series> {
    let mut v = Vec::with_capacity(hosts * SERIES_PER_HOST);
    for h in 0..hosts {
        data::host(h, &mut v);
    }
    v
}

/// Every series' full hour: (timestamps, values).
fn series_columns(hosts: usize) -> Vec<(Vec<i64>, Vec<f64>)> {
    let mut out = Vec::new();
    for (i, mut s) in all_series(hosts).into_iter().enumerate() {
        let ts = data::timestamps(i / SERIES_PER_HOST, SECONDS);
        let vals = ts.iter().map(|&t| s.next(t)).collect();
        out.push((ts, vals));
    }
    out
}

/// Compares codecs on 2 hosts (1000 series × 1 h): bytes per sample of
/// the timestamp and value columns, and full-decode time per sample, at
/// several chunk sizes. (In the store, series scraped together share their
/// timestamp columns, so values are what counts per series.)
fn report_codecs() {
    let cols = series_columns(2);
    let samples: usize = cols.iter().map(|c| c.0.len()).sum();
    println!(
        "\ncodec comparison, {} series × {} s ({} samples), data bytes only:",
        cols.len(),
        SECONDS,
        samples
    );
    println!(
        "{:<32} {:>6} {:>9} {:>9} {:>14}",
        "codec", "chunk", "ts B/smp", "val B/smp", "decode ns/smp"
    );
    let row = |name: &str, chunk: usize, ts: usize, vals: usize, ns: f64| {
        let n = samples as f64;
        println!(
            "{:<32} {:>6} {:>9.3} {:>9.3} {:>14.2}",
            name,
            chunk,
            ts as f64 / n,
            vals as f64 / n,
            ns
        );
    };
    for chunk in [64, 128, 256, 512] {
        for xor in [false, true] {
            let mut codec = Codec::new();
            let mut enc = Vec::new();
            let (mut tb, mut vb) = (0, 0);
            for (ts, vals) in &cols {
                for (t, v) in ts.chunks(chunk).zip(vals.chunks(chunk)) {
                    let (mut bt, mut bv) = (Vec::new(), Vec::new());
                    codec.encode_ts(t, &mut bt);
                    if xor {
                        codec.encode_values_xor(v, &mut bv);
                    } else {
                        codec.encode_values(v, &mut bv);
                    }
                    tb += bt.len();
                    vb += bv.len();
                    enc.push((t[0], t.len(), bt, bv));
                }
            }
            let ns = best_of(3, || {
                for (mint, n, bt, bv) in &enc {
                    black_box(codec.decode_ts(bt, *mint, *n).unwrap());
                    black_box(codec.decode_values(bv, *n).unwrap());
                }
            }) * 1e9
                / samples as f64;
            let name = if xor {
                "FOR ts + Gorilla XOR values"
            } else {
                "hourglass (FOR/decimal/XOR)"
            };
            row(name, chunk, tb, vb, ns);
        }
    }
    for chunk in [128, 256, 1024, 3600] {
        let cfg = pco::ChunkConfig::default();
        let mut enc = Vec::new();
        let (mut tb, mut vb) = (0, 0);
        for (ts, vals) in &cols {
            for (t, v) in ts.chunks(chunk).zip(vals.chunks(chunk)) {
                let bt = pco::standalone::simple_compress(t, &cfg).unwrap();
                let bv = pco::standalone::simple_compress(v, &cfg).unwrap();
                tb += bt.len();
                vb += bv.len();
                enc.push((t.len(), bt, bv));
            }
        }
        let (mut dt, mut dv) = (vec![0i64; 3600], vec![0f64; 3600]);
        let ns = best_of(3, || {
            for (n, bt, bv) in &enc {
                pco::standalone::simple_decompress_into(bt, &mut dt[..*n]).unwrap();
                pco::standalone::simple_decompress_into(bv, &mut dv[..*n]).unwrap();
                black_box((&dt, &dv));
            }
        }) * 1e9
            / samples as f64;
        row("pco 1.1 (level 8)", chunk, tb, vb, ns);
    }
    println!();
}

/// The shortest of `n` runs, in seconds: the machine is shared and noisy.
fn best_of(n: usize, mut f: impl FnMut()) -> f64 {
    (0..n)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

/// Builds the store of `hosts` × 500 series over `seconds`, scrape by
/// scrape as the scrape loops would (cached refs, one timestamp per host
/// and scrape). Returns the store, the last timestamp and the time spent
/// appending (generation excluded).
// Scrape-major order: every second, every series.
#[allow(clippy::needless_range_loop)]
fn build_store(hosts: usize, seconds: usize) -> (Store, i64, f64) {
    // `HG_CHUNK=<samples>` tries another chunk size.
    let chunk = std::env::var("HG_CHUNK").map_or(hourglass::store::DEFAULT_CHUNK_SAMPLES, |c| {
        c.parse().unwrap()
    });
    let store = Store::with_chunk_samples(StoreConfig::default(), chunk);
    let mut series = all_series(hosts);
    let refs: Vec<SeriesRef> = series
        .iter()
        .map(|s| store.get_or_create(&s.labels).unwrap())
        .collect();
    let ts: Vec<Vec<i64>> = (0..hosts).map(|h| data::timestamps(h, seconds)).collect();
    let mut batch = vec![0f64; series.len()];
    let mut appending = 0f64;
    for sec in 0..seconds {
        for (i, s) in series.iter_mut().enumerate() {
            batch[i] = s.next(ts[i / SERIES_PER_HOST][sec]);
        }
        let start = Instant::now();
        for (i, (&r, &v)) in refs.iter().zip(&batch).enumerate() {
            store.append(r, ts[i / SERIES_PER_HOST][sec], v).unwrap();
        }
        appending += start.elapsed().as_secs_f64();
    }
    let last = ts.iter().map(|t| t[seconds - 1]).max().unwrap();
    (store, last, appending)
}

/// Builds the full store, prints what it holds and returns it.
fn report_memory(hosts: usize, seconds: usize) -> (Store, i64) {
    let before = LIVE.load(Ordering::Relaxed);
    let (store, last, secs) = build_store(hosts, seconds);
    // The generator's state is freed by now; what remains is the store.
    let live = LIVE.load(Ordering::Relaxed) - before;
    let st = store.stats();
    let n = st.samples as f64;
    println!(
        "store of {} series × {} s = {} samples (chunk of {} samples):",
        st.series,
        seconds,
        st.samples,
        hourglass::store::DEFAULT_CHUNK_SAMPLES
    );
    println!(
        "  stats().bytes       {:>12}  = {:.3} bytes/sample all-in",
        st.bytes,
        st.bytes as f64 / n
    );
    println!(
        "    chunk data        {:>12}  = {:.3} bytes/sample",
        st.chunk_bytes,
        st.chunk_bytes as f64 / n
    );
    println!(
        "    index and labels  {:>12}  = {:.3} bytes/sample",
        st.index_bytes,
        st.index_bytes as f64 / n
    );
    println!(
        "    other (heads, chunk tables, slack)  = {:.3} bytes/sample",
        (st.bytes - st.chunk_bytes - st.index_bytes) as f64 / n
    );
    println!(
        "  allocator: live     {:>12}  = {:.3} bytes/sample (requested sizes, no malloc overhead)",
        live,
        live as f64 / n
    );
    println!(
        "  chunks {}, append during build: {:.2} M samples/s (one thread)",
        st.chunks,
        n / secs / 1e6
    );
    println!();
    (store, last)
}

fn bench_append(c: &mut Criterion, hosts: usize, seconds: usize) {
    // Pre-generated values; each iteration appends them to a fresh store
    // with the series already created, as a scrape loop with cached refs.
    let mut series = all_series(hosts);
    let ts: Vec<Vec<i64>> = (0..hosts).map(|h| data::timestamps(h, seconds)).collect();
    let cols: Vec<Vec<f64>> = series
        .iter_mut()
        .enumerate()
        .map(|(i, s)| ts[i / SERIES_PER_HOST].iter().map(|&t| s.next(t)).collect())
        .collect();
    let n = series.len() * seconds;
    let mut g = c.benchmark_group("append");
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(10);
    g.bench_function(format!("{}_series_x_{}s", series.len(), seconds), |b| {
        b.iter_batched(
            || {
                let store = Store::new(StoreConfig::default());
                let refs: Vec<SeriesRef> = series
                    .iter()
                    .map(|s| store.get_or_create(&s.labels).unwrap())
                    .collect();
                (store, refs)
            },
            |(store, refs)| {
                for sec in 0..seconds {
                    for (i, &r) in refs.iter().enumerate() {
                        store
                            .append(r, ts[i / SERIES_PER_HOST][sec], cols[i][sec])
                            .unwrap();
                    }
                }
                store
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn bench_select(c: &mut Criterion, store: &Store, last: i64) {
    let job = Matcher::new(MatchOp::Equal, "job", "node");
    let cpu = Matcher::new(MatchOp::Equal, "__name__", "node_cpu_seconds_total");
    let cases: [(&str, Vec<Matcher>, i64); 3] = [
        ("all_series_5m", vec![job.clone()], 300_000),
        ("cpu_seconds_5m", vec![cpu], 300_000),
        ("all_series_1m", vec![job], 60_000),
    ];
    let mut g = c.benchmark_group("select");
    g.sample_size(20);
    for (name, ms, window) in &cases {
        let (mint, maxt) = (last - window, last);
        let set = store.select(ms, mint, maxt);
        println!(
            "select {name}: {} series, {} samples",
            set.series.len(),
            set.ts.len()
        );
        g.throughput(Throughput::Elements(set.ts.len() as u64));
        // A fresh result each time, as `select` returns: for millions of
        // samples mostly the kernel mapping fresh pages for the result.
        g.bench_function(format!("{name}/select"), |b| {
            b.iter(|| black_box(store.select(ms, mint, maxt)))
        });
        // The same into a reused result.
        let mut out = hourglass::store::SeriesSet::default();
        g.bench_function(format!("{name}/select_into"), |b| {
            b.iter(|| {
                store.select_into(ms, mint, maxt, &mut out);
                black_box(out.ts.len())
            })
        });
        // Series by series through a small buffer, summing each as a
        // consumer like rate() would read it.
        g.bench_function(format!("{name}/select_each"), |b| {
            b.iter(|| {
                let mut sum = 0.0;
                store.select_each(ms, mint, maxt, |_, _, v| sum += v[v.len() - 1] - v[0]);
                black_box(sum)
            })
        });
    }
    g.finish();
}

/// `HG_PROFILE=<hosts>`: only build a store of that many hosts and run
/// `select_into` and `select_each` over 5 minutes in a loop, printing the
/// best times; for profiling with perf without criterion's machinery.
fn profile(hosts: usize) {
    let (store, last, secs) = build_store(hosts, SECONDS);
    let st = store.stats();
    println!(
        "append: {:.2} M samples/s, {:.3} bytes/sample",
        st.samples as f64 / secs / 1e6,
        st.bytes as f64 / st.samples as f64
    );
    let ms = [Matcher::new(MatchOp::Equal, "job", "node")];
    // `HG_WINDOW=<ms>` for another window than 5 minutes.
    let w: i64 = std::env::var("HG_WINDOW").map_or(300_000, |w| w.parse().unwrap());
    let mut out = hourglass::store::SeriesSet::default();
    let t = best_of(100, || store.select_into(&ms, last - w, last, &mut out));
    println!(
        "select_into {} series: best {:.3} ms, {} samples",
        out.series.len(),
        t * 1e3,
        out.ts.len()
    );
    let t = best_of(300, || {
        let mut n = 0;
        store.select_each(&ms, last - w, last, |_, t, _| n += t.len());
        black_box(n);
    });
    println!(
        "select_each {} series: best {:.3} ms",
        out.series.len(),
        t * 1e3
    );
}

fn main() {
    if let Ok(h) = std::env::var("HG_PROFILE") {
        return profile(h.parse().expect("HG_PROFILE=<hosts>"));
    }
    // `cargo bench` passes --bench; without it (`cargo test --benches`)
    // criterion runs each benchmark once: keep the data small then too.
    let quick = !std::env::args().any(|a| a == "--bench");
    let (hosts, seconds) = if quick { (1, 300) } else { (HOSTS, SECONDS) };
    if !quick {
        report_codecs();
    }
    let (store, last) = report_memory(hosts, seconds);
    let mut c = Criterion::default().configure_from_args();
    bench_append(&mut c, hosts, if quick { 30 } else { 300 });
    bench_select(&mut c, &store, last);
    c.final_summary();
}
