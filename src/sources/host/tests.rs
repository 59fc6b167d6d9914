//! Tests of the host source: against this machine's /proc, and against
//! fixture files for the cases a live machine does not show (offline CPUs,
//! partitions, escaped mount points, missing files).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use super::filesystem::*;
use super::parse::*;
use super::*;

fn ctx() -> ScrapeCtx {
    ScrapeCtx {
        timestamp_ms: 0,
        timeout: Duration::from_secs(1),
    }
}

/// Samples as `name{labels}` → value, labels in emitted order.
fn collect_map(c: &mut HostCollector) -> BTreeMap<String, f64> {
    let mut out = SampleBuf::new();
    c.collect(ctx(), &mut out).expect("collect");
    to_map(&out)
}

fn to_map(out: &SampleBuf) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    for s in out.iter() {
        let labels: Vec<String> = s.labels().map(|(k, v)| format!("{k}={v}")).collect();
        let key = format!("{}{{{}}}", s.name(), labels.join(","));
        assert!(
            m.insert(key.clone(), s.value).is_none(),
            "duplicate series {key}"
        );
    }
    m
}

fn proc_field(file: &str, key: &str) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(key))
        .unwrap();
    line.split_whitespace().skip(1).map(str::to_owned).collect()
}

#[test]
fn live_values_equal_proc() {
    let mut c = HostCollector::new();
    let before_stat = proc_field("/proc/stat", "cpu0");
    let before_load = std::fs::read_to_string("/proc/loadavg").unwrap();
    let m = collect_map(&mut c);
    let after_stat = proc_field("/proc/stat", "cpu0");
    let after_load = std::fs::read_to_string("/proc/loadavg").unwrap();

    let mem_total_kb: u64 = proc_field("/proc/meminfo", "MemTotal:")[0].parse().unwrap();
    assert_eq!(
        m["node_memory_MemTotal_bytes{}"],
        (mem_total_kb * 1024) as f64
    );
    let swap_total_kb: u64 = proc_field("/proc/meminfo", "SwapTotal:")[0]
        .parse()
        .unwrap();
    assert_eq!(
        m["node_memory_SwapTotal_bytes{}"],
        (swap_total_kb * 1024) as f64
    );
    for f in ["MemAvailable", "MemFree", "Cached", "Buffers", "SwapFree"] {
        assert!(m.contains_key(&format!("node_memory_{f}_bytes{{}}")), "{f}");
    }

    // The load average moves every 5 s; the scrape saw one of the two reads.
    let load = (m["node_load1{}"], m["node_load5{}"], m["node_load15{}"]);
    let parse = |s: &str| {
        let v: Vec<f64> = s
            .split_whitespace()
            .take(3)
            .map(|v| v.parse().unwrap())
            .collect();
        (v[0], v[1], v[2])
    };
    assert!(
        load == parse(&before_load) || load == parse(&after_load),
        "{load:?}"
    );

    let tps = rustix::param::clock_ticks_per_second() as f64;
    for (i, mode) in ["user", "nice", "system", "idle"].iter().enumerate() {
        let v = m[&format!("node_cpu_seconds_total{{cpu=0,mode={mode}}}")];
        let lo = before_stat[i].parse::<f64>().unwrap() / tps;
        let hi = after_stat[i].parse::<f64>().unwrap() / tps;
        assert!(lo <= v && v <= hi, "cpu0 {mode}: {lo} <= {v} <= {hi}");
    }
    let cpus = m
        .keys()
        .filter(|k| k.starts_with("node_cpu_seconds_total") && k.contains("mode=idle"));
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let cpu_lines = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    assert_eq!(cpus.count(), cpu_lines);

    let btime: f64 = proc_field("/proc/stat", "btime")[0].parse().unwrap();
    assert_eq!(m["node_boot_time_seconds{}"], btime);
    assert!(m.contains_key("node_procs_running{}"));
    assert!(m.contains_key("node_network_receive_bytes_total{device=lo}"));

    // The agent's own process.
    assert!(m["process_resident_memory_bytes{}"] > 0.0);
    assert!(m["process_cpu_seconds_total{}"] >= 0.0);
    assert!(m["process_open_fds{}"] >= 3.0);
    let start = m["process_start_time_seconds{}"];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(start > btime && start <= now + 1.0, "{start}");

    // Counters, and only counters, end in _total.
    for k in m.keys() {
        let name = &k[..k.find('{').unwrap()];
        let counter = name.starts_with("node_cpu_seconds")
            || name.starts_with("node_disk_")
            || name.starts_with("node_network_")
            || matches!(
                name,
                "node_context_switches_total" | "node_forks_total" | "process_cpu_seconds_total"
            );
        assert_eq!(name.ends_with("_total"), counter, "{name}");
    }
}

#[test]
fn kept_open_files_give_fresh_values() {
    let mut c = HostCollector::new();
    let first = collect_map(&mut c)["process_cpu_seconds_total{}"];
    // Burn CPU until the kernel's tick accounting shows it.
    let t0 = Instant::now();
    let mut x = 0u64;
    while t0.elapsed() < Duration::from_millis(100) {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
    }
    std::hint::black_box(x);
    let second = collect_map(&mut c)["process_cpu_seconds_total{}"];
    assert!(second > first, "{first} then {second}");

    let dir = fixture(&[("loadavg", "1 2 3 1/1 1\n")]);
    let mut c = HostCollector::with_proc_root(dir.path());
    assert_eq!(collect_map(&mut c)["node_load1{}"], 1.0);
    std::fs::write(dir.path().join("loadavg"), "4 5 6 1/1 1\n").unwrap();
    assert_eq!(collect_map(&mut c)["node_load1{}"], 4.0);
}

#[test]
fn live_filesystems_match_statvfs() {
    let mut c = HostCollector::new();
    let m = collect_map(&mut c);
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let reported: Vec<&String> = m
        .keys()
        .filter(|k| k.starts_with("node_filesystem_size_bytes"))
        .collect();
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let key = format!(
            "node_filesystem_size_bytes{{device={},fstype={},mountpoint={}}}",
            f[0], f[2], f[1]
        );
        if f[1] == "/" && !ignored_fstype(f[2]) {
            let st = rustix::fs::statvfs("/").unwrap();
            assert_eq!(m[&key], (st.f_blocks * st.f_frsize) as f64);
        }
        if ignored_fstype(f[2]) || ignored_mount_point(f[1]) {
            assert!(!reported.contains(&&key), "{key} should be excluded");
        }
    }
}

fn fixture(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

const STAT: &str = "cpu  300 10 200 5000 40 5 6 7 0 0
cpu0 100 5 100 2500 20 2 3 4 0 0
cpu2 200 5 100 2500 20 3 3 3 0 0
intr 12345 1 2 3 4
ctxt 987654
btime 1700000000
processes 4242
procs_running 3
procs_blocked 1
softirq 1 2 3
";

#[test]
fn fixture_cpu_labels_follow_the_kernel_numbering() {
    let dir = fixture(&[("stat", STAT)]);
    let mut c = HostCollector::with_proc_root(dir.path());
    c.ticks_per_second = 100.0;
    let m = collect_map(&mut c);
    assert_eq!(m["node_cpu_seconds_total{cpu=0,mode=user}"], 1.0);
    assert_eq!(m["node_cpu_seconds_total{cpu=0,mode=steal}"], 0.04);
    // cpu1 is offline: cpu2 keeps its own number.
    assert_eq!(m["node_cpu_seconds_total{cpu=2,mode=idle}"], 25.0);
    assert_eq!(m["node_cpu_seconds_total{cpu=2,mode=irq}"], 0.03);
    assert!(!m.keys().any(|k| k.contains("cpu=1") || k.contains("cpu=,")));
    assert_eq!(m.keys().filter(|k| k.starts_with("node_cpu")).count(), 16);
    assert_eq!(m["node_boot_time_seconds{}"], 1.7e9);
    assert_eq!(m["node_procs_running{}"], 3.0);
    assert_eq!(m["node_procs_blocked{}"], 1.0);
    assert_eq!(m["node_context_switches_total{}"], 987654.0);
    assert_eq!(m["node_forks_total{}"], 4242.0);
}

#[test]
fn fixture_memory_load_disks_network_and_process() {
    let dir = fixture(&[
        (
            "meminfo",
            "MemTotal:       16318392 kB\nMemFree:  100 kB\nMemAvailable: 200 kB\n\
             Buffers: 1 kB\nCached: 2 kB\nSwapCached: 9 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n\
             HugePages_Total: 0\n",
        ),
        ("loadavg", "0.52 1.58 10.59 1/234 5678\n"),
        (
            "diskstats",
            "   8       0 sda 10 0 20 30 40 0 50 60 0 70 80 0 0 0 0\n\
                8       1 sda1 1 0 2 3 4 0 5 6 0 7 8\n\
                7       0 loop0 1 0 2 3 4 0 5 6 0 7 8\n\
              259       0 nvme0n1 1 0 2 3 4 0 5 6 0 7 8\n\
              259       1 nvme0n1p1 1 0 2 3 4 0 5 6 0 7 8\n\
              253       0 dm-0 1 0 2 3 4 0 5 6 0 7 8\n\
              252       0 zram0 1 0 2 3 4 0 5 6 0 7 8\n",
        ),
        (
            "net/dev",
            "Inter-|   Receive |  Transmit\n face |bytes packets|bytes packets\n\
                 lo:   50515     653    0    0    0     0          0         0    50515     653    0    0    0     0       0          0\n\
               eth0:1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",
        ),
        ("self/stat", "4242 (a (weird) name) S 1 2 3 0 -1 4194560 10 0 0 0 150 50 0 0 20 0 8 0 12345 1000000 250 18446744073709551615\n"),
    ]);
    let mut c = HostCollector::with_proc_root(dir.path());
    c.ticks_per_second = 100.0;
    c.page_size = 4096.0;
    let m = collect_map(&mut c);

    assert_eq!(m["node_memory_MemTotal_bytes{}"], 16318392.0 * 1024.0);
    assert_eq!(m["node_memory_MemAvailable_bytes{}"], 204800.0);
    assert_eq!(m["node_memory_SwapFree_bytes{}"], 0.0);
    assert_eq!(m.keys().filter(|k| k.starts_with("node_memory")).count(), 7);

    assert_eq!(
        (m["node_load1{}"], m["node_load5{}"], m["node_load15{}"]),
        (0.52, 1.58, 10.59)
    );

    assert_eq!(m["node_disk_reads_completed_total{device=sda}"], 10.0);
    assert_eq!(m["node_disk_read_bytes_total{device=sda}"], 20.0 * 512.0);
    assert_eq!(m["node_disk_read_time_seconds_total{device=sda}"], 0.03);
    assert_eq!(m["node_disk_writes_completed_total{device=sda}"], 40.0);
    assert_eq!(m["node_disk_written_bytes_total{device=sda}"], 50.0 * 512.0);
    assert_eq!(m["node_disk_write_time_seconds_total{device=sda}"], 0.06);
    assert_eq!(m["node_disk_io_time_seconds_total{device=sda}"], 0.07);
    let disks: Vec<&str> = m
        .keys()
        .filter(|k| k.starts_with("node_disk_read_bytes_total"))
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        disks,
        vec![
            "node_disk_read_bytes_total{device=dm-0}",
            "node_disk_read_bytes_total{device=nvme0n1}",
            "node_disk_read_bytes_total{device=sda}",
        ]
    );

    assert_eq!(m["node_network_receive_bytes_total{device=lo}"], 50515.0);
    assert_eq!(m["node_network_transmit_packets_total{device=lo}"], 653.0);
    assert_eq!(m["node_network_receive_bytes_total{device=eth0}"], 1.0);
    assert_eq!(m["node_network_receive_drop_total{device=eth0}"], 4.0);
    assert_eq!(m["node_network_transmit_bytes_total{device=eth0}"], 9.0);
    assert_eq!(
        m["node_network_transmit_compressed_total{device=eth0}"],
        16.0
    );
    assert_eq!(
        m.keys().filter(|k| k.starts_with("node_network")).count(),
        32
    );

    assert_eq!(m["process_cpu_seconds_total{}"], 2.0);
    assert_eq!(m["process_virtual_memory_bytes{}"], 1e6);
    assert_eq!(m["process_resident_memory_bytes{}"], 250.0 * 4096.0);
    // No /proc/stat in this fixture, so no boot time to add the start to.
    assert!(!m.contains_key("process_start_time_seconds{}"));
}

#[test]
fn fixture_filesystems_follow_node_exporter_excludes() {
    let mounts = "/dev/vda / ext4 rw 0 0
proc /proc proc rw 0 0
tmpfs /dev/shm tmpfs rw 0 0
overlay /var/lib/docker/overlay2/x/merged overlay rw 0 0
tmpfs /var/lib/docker/containers/x/mounts/shm tmpfs rw 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw 0 0
/dev/vdb /no\\040such\\040dir ext4 rw 0 0
tmpfs /tmp tmpfs rw 0 0
/dev/vdc /tmp xfs rw 0 0
/dev/vdd /var ext4 rw 0 0
overlay /var overlay rw 0 0
";
    let dir = fixture(&[("self/mounts", mounts)]);
    let mut c = HostCollector::with_proc_root(dir.path());
    let m = collect_map(&mut c);
    let fs: Vec<&str> = m
        .keys()
        .filter(|k| k.starts_with("node_filesystem_avail_bytes"))
        .map(|k| k.as_str())
        .collect();
    // /tmp is reported once, as its topmost mount; /var not at all, as its
    // topmost mount is an excluded type; the unescaped path does not exist
    // here, so statvfs fails and it is skipped.
    assert_eq!(
        fs,
        vec![
            "node_filesystem_avail_bytes{device=/dev/vda,fstype=ext4,mountpoint=/}",
            "node_filesystem_avail_bytes{device=/dev/vdc,fstype=xfs,mountpoint=/tmp}",
        ]
    );
    let st = rustix::fs::statvfs("/").unwrap();
    let root = "{device=/dev/vda,fstype=ext4,mountpoint=/}";
    assert_eq!(
        m[&format!("node_filesystem_size_bytes{root}")],
        (st.f_blocks * st.f_frsize) as f64
    );
    assert_eq!(
        m[&format!("node_filesystem_files{root}")],
        st.f_files as f64
    );
}

#[test]
fn missing_files_skip_families_and_nothing_readable_fails() {
    let dir = fixture(&[("loadavg", "1 2 3 1/1 1\n")]);
    let mut c = HostCollector::with_proc_root(dir.path());
    let m = collect_map(&mut c);
    let names: Vec<&str> = m.keys().map(|k| k.as_str()).collect();
    // process_max_fds comes from getrlimit, not from the missing files.
    assert_eq!(
        names,
        vec![
            "node_load15{}",
            "node_load1{}",
            "node_load5{}",
            "process_max_fds{}"
        ]
    );

    let empty = tempfile::tempdir().unwrap();
    let mut c = HostCollector::with_proc_root(empty.path().join("nope"));
    assert!(c.collect(ctx(), &mut SampleBuf::new()).is_err());
}

#[test]
fn malformed_lines_are_skipped_not_fatal() {
    let mut out = SampleBuf::new();
    parse_stat(
        "cpu0 1 x 3\nbtime\nprocs_running nope\ncpu\n",
        100.0,
        &mut out,
    );
    parse_meminfo("MemTotal: lots kB\nMemFree: 5 MB\nCached:\n", &mut out);
    parse_loadavg("", &mut out);
    parse_diskstats("8 0 sda 1 2\n", &mut out);
    parse_net_dev("h\nh\nnocolon 1 2\neth0: 1 2\n", &mut out);
    parse_self_stat("1 (x S 1", 100.0, 4096.0, None, &mut out);
    assert_eq!(
        to_map(&out).into_keys().collect::<Vec<_>>(),
        vec!["node_cpu_seconds_total{cpu=0,mode=user}"]
    );
}

#[test]
fn disk_filter_matches_node_exporter_regex() {
    for d in [
        "ram0",
        "zram1",
        "loop12",
        "fd0",
        "sda1",
        "hdb2",
        "vda10",
        "xvda1",
        "nvme0n1p1",
        "nvme10n2p33",
    ] {
        assert!(ignored_disk(d), "{d}");
    }
    for d in [
        "sda", "vdb", "xvdf", "nvme0n1", "dm-0", "md0", "sr0", "sdaa1", "loop", "mmcblk0",
        "nvme0n1p",
    ] {
        assert!(!ignored_disk(d), "{d}");
    }
}

#[test]
fn mount_point_filter_matches_node_exporter_regex() {
    for m in [
        "/dev",
        "/dev/shm",
        "/proc",
        "/proc/sys/fs/binfmt_misc",
        "/sys",
        "/sys/fs/cgroup",
        "/run/credentials/x.service",
        "/var/lib/docker/overlay2/a",
        "/var/lib/containers/storage/o",
    ] {
        assert!(ignored_mount_point(m), "{m}");
    }
    for m in [
        "/",
        "/devices",
        "/home",
        "/run",
        "/run/credentials",
        "/var/lib/docker",
        "/tmp",
        "/system",
    ] {
        assert!(!ignored_mount_point(m), "{m}");
    }
    assert!(ignored_fstype("cgroup2") && ignored_fstype("overlay") && !ignored_fstype("tmpfs"));
    assert!(may_block("nfs4") && may_block("fuse.sshfs") && !may_block("ext4"));
}

#[test]
fn mount_fields_are_unescaped() {
    let mut buf = String::new();
    assert_eq!(unescape("/plain", &mut buf), "/plain");
    assert_eq!(unescape("/a\\040b\\011c\\134d", &mut buf), "/a b\tc\\d");
    assert_eq!(unescape("/trailing\\", &mut buf), "/trailing\\");
    assert_eq!(unescape("/bad\\09x", &mut buf), "/bad\\09x");
}

#[test]
fn statvfs_with_deadline_answers_and_releases_the_mount() {
    let stuck = Arc::new(Mutex::new(HashSet::new()));
    let st = statvfs_with_deadline("/", Duration::from_secs(5), &stuck);
    assert!(st.is_some_and(|st| st.f_blocks > 0));
    // The thread removes its entry just before answering; wait for it.
    let t0 = Instant::now();
    while !stuck.lock().is_empty() && t0.elapsed() < Duration::from_secs(5) {
        std::thread::yield_now();
    }
    assert!(stuck.lock().is_empty());
    // A mount still marked stuck is skipped without a call.
    stuck.lock().insert("/".to_owned());
    assert!(statvfs_with_deadline("/", Duration::from_secs(5), &stuck).is_none());
}

/// `cargo test --release --lib sources::host -- --ignored --nocapture`
/// prints the cost of one host scrape on this machine.
#[test]
#[ignore]
fn print_scrape_cost() {
    let mut c = HostCollector::new();
    let mut out = SampleBuf::new();
    let n = 2000;
    let cpu0 = proc_self_cpu();
    let t0 = Instant::now();
    for _ in 0..n {
        out.clear();
        c.collect(ctx(), &mut out).unwrap();
    }
    let wall = t0.elapsed() / n;
    let cpu = (proc_self_cpu() - cpu0) / n as f64;
    println!(
        "host scrape: {} samples, {wall:?} wall, {:.1} µs cpu",
        out.len(),
        cpu * 1e6
    );
}

fn proc_self_cpu() -> f64 {
    let mut out = SampleBuf::new();
    let text = std::fs::read_to_string("/proc/self/stat").unwrap();
    parse_self_stat(
        &text,
        rustix::param::clock_ticks_per_second() as f64,
        4096.0,
        None,
        &mut out,
    );
    to_map(&out)["process_cpu_seconds_total{}"]
}
