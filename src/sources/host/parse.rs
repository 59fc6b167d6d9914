//! Parsers of the /proc files the host source reads. Each takes the file's
//! text and appends node_exporter-named samples, skipping lines it cannot
//! parse: a kernel that adds or drops a field costs a series, not a scrape.

use crate::sources::SampleBuf;

/// The first `N` whitespace-separated fields of a line, if it has them.
pub(super) fn fields<const N: usize>(line: &str) -> Option<[&str; N]> {
    let mut out = [""; N];
    let mut it = line.split_ascii_whitespace();
    for slot in &mut out {
        *slot = it.next()?;
    }
    Some(out)
}

const CPU_MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

/// /proc/stat: per-CPU times (ticks / USER_HZ, as node_exporter), boot time,
/// process counts. Returns the boot time for `process_start_time_seconds`.
pub(super) fn parse_stat(text: &str, ticks_per_second: f64, out: &mut SampleBuf) -> Option<u64> {
    let mut btime = None;
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let Some(key) = f.next() else { continue };
        if let Some(cpu) = key.strip_prefix("cpu") {
            // The bare `cpu` line is the sum over CPUs; node_exporter leaves it out.
            if !cpu.is_empty() {
                for (mode, ticks) in CPU_MODES.iter().zip(f) {
                    let Ok(ticks) = ticks.parse::<u64>() else {
                        break;
                    };
                    let v = ticks as f64 / ticks_per_second;
                    out.push("node_cpu_seconds_total", &[("cpu", cpu), ("mode", mode)], v);
                }
            }
            continue;
        }
        let name = match key {
            "btime" => "node_boot_time_seconds",
            "procs_running" => "node_procs_running",
            "procs_blocked" => "node_procs_blocked",
            "ctxt" => "node_context_switches_total",
            "processes" => "node_forks_total",
            _ => continue,
        };
        let Some(Ok(v)) = f.next().map(str::parse::<u64>) else {
            continue;
        };
        if key == "btime" {
            btime = Some(v);
        }
        out.push(name, &[], v as f64);
    }
    btime
}

const MEMINFO: [(&str, &str); 7] = [
    ("MemTotal:", "node_memory_MemTotal_bytes"),
    ("MemFree:", "node_memory_MemFree_bytes"),
    ("MemAvailable:", "node_memory_MemAvailable_bytes"),
    ("Buffers:", "node_memory_Buffers_bytes"),
    ("Cached:", "node_memory_Cached_bytes"),
    ("SwapTotal:", "node_memory_SwapTotal_bytes"),
    ("SwapFree:", "node_memory_SwapFree_bytes"),
];

/// /proc/meminfo: the "kB" there are KiB, hence ×1024 (as node_exporter).
pub(super) fn parse_meminfo(text: &str, out: &mut SampleBuf) {
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(key), Some(value)) = (f.next(), f.next()) else {
            continue;
        };
        let Some(&(_, name)) = MEMINFO.iter().find(|(k, _)| *k == key) else {
            continue;
        };
        let Ok(v) = value.parse::<u64>() else {
            continue;
        };
        let bytes = match f.next() {
            Some("kB") => v.saturating_mul(1024),
            None => v,
            Some(_) => continue,
        };
        out.push(name, &[], bytes as f64);
    }
}

/// /proc/loadavg: "0.52 0.58 0.59 1/234 5678".
pub(super) fn parse_loadavg(text: &str, out: &mut SampleBuf) {
    let names = ["node_load1", "node_load5", "node_load15"];
    for (name, v) in names.iter().zip(text.split_ascii_whitespace()) {
        if let Ok(v) = v.parse::<f64>() {
            out.push(name, &[], v);
        }
    }
}

/// /proc/diskstats fields (0-based, after major, minor, name) and how each
/// becomes a node_exporter metric: sectors are 512 bytes whatever the
/// device's block size, times are milliseconds.
const DISKSTATS: [(usize, &str, f64); 7] = [
    (3, "node_disk_reads_completed_total", 1.0),
    (5, "node_disk_read_bytes_total", 512.0),
    (6, "node_disk_read_time_seconds_total", 0.001),
    (7, "node_disk_writes_completed_total", 1.0),
    (9, "node_disk_written_bytes_total", 512.0),
    (10, "node_disk_write_time_seconds_total", 0.001),
    (12, "node_disk_io_time_seconds_total", 0.001),
];

pub(super) fn parse_diskstats(text: &str, out: &mut SampleBuf) {
    for line in text.lines() {
        let Some(f) = fields::<13>(line) else {
            continue;
        };
        let device = f[2];
        if ignored_disk(device) {
            continue;
        }
        for (i, name, scale) in DISKSTATS {
            if let Ok(v) = f[i].parse::<u64>() {
                out.push(name, &[("device", device)], v as f64 * scale);
            }
        }
    }
}

/// node_exporter's default device exclusion,
/// `^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$`, without a regex.
pub(super) fn ignored_disk(name: &str) -> bool {
    fn digits(s: &str) -> bool {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
    }
    fn skip_digits(s: &str) -> Option<&str> {
        let rest = s.trim_start_matches(|c: char| c.is_ascii_digit());
        (rest.len() < s.len()).then_some(rest)
    }
    let prefixed = ["ram", "zram", "loop", "fd"]
        .iter()
        .any(|p| name.strip_prefix(p).is_some_and(digits));
    let partition = ["hd", "sd", "vd", "xvd"].iter().any(|p| {
        name.strip_prefix(p).is_some_and(|rest| {
            let mut c = rest.chars();
            c.next().is_some_and(|c| c.is_ascii_lowercase()) && digits(c.as_str())
        })
    });
    let nvme_partition = || -> Option<bool> {
        let rest = skip_digits(name.strip_prefix("nvme")?)?.strip_prefix('n')?;
        Some(digits(skip_digits(rest)?.strip_prefix('p')?))
    };
    prefixed || partition || nvme_partition().unwrap_or(false)
}

const NET_DEV: [&str; 16] = [
    "node_network_receive_bytes_total",
    "node_network_receive_packets_total",
    "node_network_receive_errs_total",
    "node_network_receive_drop_total",
    "node_network_receive_fifo_total",
    "node_network_receive_frame_total",
    "node_network_receive_compressed_total",
    "node_network_receive_multicast_total",
    "node_network_transmit_bytes_total",
    "node_network_transmit_packets_total",
    "node_network_transmit_errs_total",
    "node_network_transmit_drop_total",
    "node_network_transmit_fifo_total",
    "node_network_transmit_colls_total",
    "node_network_transmit_carrier_total",
    "node_network_transmit_compressed_total",
];

/// /proc/net/dev: two header lines, then `dev: 8 receive and 8 transmit counters`.
pub(super) fn parse_net_dev(text: &str, out: &mut SampleBuf) {
    for line in text.lines().skip(2) {
        // Counters hold no ':', so the last one ends the device name.
        let Some((device, counters)) = line.rsplit_once(':') else {
            continue;
        };
        let device = device.trim();
        let Some(f) = fields::<16>(counters) else {
            continue;
        };
        for (name, v) in NET_DEV.iter().zip(f) {
            if let Ok(v) = v.parse::<u64>() {
                out.push(name, &[("device", device)], v as f64);
            }
        }
    }
}

/// /proc/self/stat: the agent's own CPU time, memory and start time, as the
/// Prometheus client libraries report them.
pub(super) fn parse_self_stat(
    text: &str,
    tps: f64,
    page_size: f64,
    btime: Option<u64>,
    out: &mut SampleBuf,
) {
    // The command name is in parentheses and may contain anything, so fields
    // are counted from the last ')'. Field n of proc(5) is f[n - 3].
    let Some((_, rest)) = text.rsplit_once(')') else {
        return;
    };
    let Some(f) = fields::<22>(rest) else { return };
    let num = |i: usize| f[i].parse::<u64>().ok();
    if let (Some(utime), Some(stime)) = (num(11), num(12)) {
        let cpu = utime.saturating_add(stime) as f64 / tps;
        out.push("process_cpu_seconds_total", &[], cpu);
    }
    if let (Some(start), Some(btime)) = (num(19), btime) {
        out.push(
            "process_start_time_seconds",
            &[],
            btime as f64 + start as f64 / tps,
        );
    }
    if let Some(vsize) = num(20) {
        out.push("process_virtual_memory_bytes", &[], vsize as f64);
    }
    if let Some(rss) = num(21) {
        out.push("process_resident_memory_bytes", &[], rss as f64 * page_size);
    }
}
