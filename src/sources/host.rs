//! The host source: node_exporter's metric names and labels, with the values
//! the kernel reports.
//!
//! Everything comes straight from /proc (plus `statvfs` for filesystems),
//! parsed by the small functions below rather than through sysinfo or the
//! procfs crate, because that is both exact and cheap:
//! - exact: CPU labels come from the `cpuN` line itself (procfs numbers CPUs
//!   by position, which is wrong once a CPU is offline); load averages are
//!   parsed as f64 (procfs uses f32); sysinfo exposes neither CPU jiffies nor
//!   free filesystem blocks, and filters mounts by rules other than
//!   node_exporter's.
//! - cheap: each file is read once into a reused buffer and parsed in place;
//!   label values are slices of that buffer, so a scrape allocates next to
//!   nothing (procfs builds a `String` per line and maps per file).
//!
//! Filtering follows node_exporter's defaults: filesystems of types
//! `autofs binfmt_misc bpf cgroup cgroup2 configfs debugfs devpts devtmpfs
//! erofs fusectl hugetlbfs iso9660 mqueue nsfs overlay proc procfs pstore
//! rpc_pipefs securityfs selinuxfs squashfs sysfs tracefs` and mount points
//! under `/dev`, `/proc`, `/sys`, `/run/credentials/*`, `/var/lib/docker/*`,
//! `/var/lib/containers/storage/*` are skipped (tmpfs is kept, as there);
//! disks named `ram*`, `zram*`, `loop*`, `fd*` and partitions (`sda1`,
//! `vda1`, `xvda1`, `nvme0n1p1`) are skipped. Mounts come from
//! /proc/self/mounts: the agent's own mount namespace is the one `statvfs`
//! resolves paths in.
//!
//! A file that cannot be read skips its metric family (debug log); the
//! scrape fails only when nothing at all can be read. `statvfs` on a network
//! filesystem can hang, so it runs on a helper thread with a deadline, and a
//! mount that missed it is skipped until its call returns (node_exporter's
//! "stuck mounts").

use std::borrow::Cow;
use std::collections::HashSet;
use std::fs::File;
use std::hash::{BuildHasher, RandomState};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::{BlockingSource, Collect, SampleBuf, ScrapeCtx, SourceError};

/// The host source, ready for the scrape loop.
pub fn source() -> BlockingSource<HostCollector> {
    BlockingSource::new(HostCollector::new)
}

/// Reads the host's metrics from /proc. Keeps its buffers across scrapes.
pub struct HostCollector {
    root: PathBuf,
    paths: Paths,
    raw: Vec<u8>,
    /// Unescaped device and mount point of the mount being reported.
    scratch: (String, String),
    ticks_per_second: f64,
    page_size: f64,
    seen_mounts: HashSet<u64>,
    hasher: RandomState,
    /// Mount points whose `statvfs` has not returned yet.
    stuck_mounts: Arc<Mutex<HashSet<String>>>,
}

struct Paths {
    stat: ProcFile,
    meminfo: ProcFile,
    loadavg: ProcFile,
    diskstats: ProcFile,
    net_dev: ProcFile,
    self_stat: ProcFile,
    self_mounts: ProcFile,
    self_fd: PathBuf,
}

impl Default for HostCollector {
    fn default() -> Self {
        HostCollector::new()
    }
}

impl HostCollector {
    pub fn new() -> HostCollector {
        HostCollector::with_proc_root("/proc")
    }

    /// Reads from another procfs mount (a container's view of the host's, or
    /// a test fixture).
    pub fn with_proc_root(root: impl AsRef<Path>) -> HostCollector {
        let root = root.as_ref().to_path_buf();
        let file = |rel: &str| ProcFile {
            path: root.join(rel),
            file: None,
        };
        let paths = Paths {
            stat: file("stat"),
            meminfo: file("meminfo"),
            loadavg: file("loadavg"),
            diskstats: file("diskstats"),
            net_dev: file("net/dev"),
            self_stat: file("self/stat"),
            self_mounts: file("self/mounts"),
            self_fd: root.join("self/fd"),
        };
        HostCollector {
            root,
            paths,
            raw: Vec::with_capacity(16 * 1024),
            scratch: Default::default(),
            // USER_HZ: the unit of every tick count in /proc (100 on all
            // mainstream architectures; asked rather than assumed).
            ticks_per_second: rustix::param::clock_ticks_per_second().max(1) as f64,
            page_size: rustix::param::page_size() as f64,
            seen_mounts: HashSet::new(),
            hasher: RandomState::new(),
            stuck_mounts: Arc::default(),
        }
    }
}

impl Collect for HostCollector {
    fn collect(&mut self, ctx: ScrapeCtx, out: &mut SampleBuf) -> Result<(), SourceError> {
        let tps = self.ticks_per_second;
        let mut read_any = false;
        let mut btime = None;
        if let Some(text) = self.paths.stat.read(&mut self.raw) {
            btime = parse_stat(&text, tps, out);
            read_any = true;
        }
        if let Some(text) = self.paths.meminfo.read(&mut self.raw) {
            parse_meminfo(&text, out);
            read_any = true;
        }
        if let Some(text) = self.paths.loadavg.read(&mut self.raw) {
            parse_loadavg(&text, out);
            read_any = true;
        }
        if let Some(text) = self.paths.diskstats.read(&mut self.raw) {
            parse_diskstats(&text, out);
            read_any = true;
        }
        if let Some(text) = self.paths.net_dev.read(&mut self.raw) {
            parse_net_dev(&text, out);
            read_any = true;
        }
        if let Some(text) = self.paths.self_stat.read(&mut self.raw) {
            parse_self_stat(&text, tps, self.page_size, btime, out);
            read_any = true;
        }
        read_any |= self.collect_fds(out);
        let mount_timeout =
            (ctx.timeout / 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
        read_any |= self.collect_filesystems(mount_timeout, out);
        if read_any {
            Ok(())
        } else {
            Err(SourceError::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no host metrics readable under {}", self.root.display()),
            )))
        }
    }
}

/// A /proc file kept open across scrapes. Reading it again from offset 0
/// makes the kernel generate fresh content, and saves an open and a close
/// per file per scrape, which is most of a scrape's cost. (A `self/...` file
/// opened by the agent stays the agent's: "self" is resolved at open.)
struct ProcFile {
    path: PathBuf,
    file: Option<File>,
}

impl ProcFile {
    /// The whole file, read into `raw`. /proc text is ASCII in practice; a
    /// mount point or device name that is not UTF-8 is replaced lossily (and
    /// then fails `statvfs`, skipping just that mount) rather than losing
    /// the whole family.
    fn read<'a>(&mut self, raw: &'a mut Vec<u8>) -> Option<Cow<'a, str>> {
        raw.clear();
        if self.file.is_none() {
            match File::open(&self.path) {
                Ok(f) => self.file = Some(f),
                Err(e) => {
                    let path = self.path.display();
                    tracing::debug!(%path, error = %e, "cannot open; skipping its metrics");
                    return None;
                }
            }
        }
        let file = self.file.as_ref()?;
        match read_all_at(file, raw) {
            Ok(()) => Some(String::from_utf8_lossy(raw)),
            Err(e) => {
                let path = self.path.display();
                tracing::debug!(%path, error = %e, "cannot read; skipping its metrics");
                // Reopen next time: the file may have been replaced.
                self.file = None;
                None
            }
        }
    }
}

/// Reads from offset 0 to the end. Loops until a read returns 0, because a
/// /proc read may return less than a full buffer before the end.
fn read_all_at(file: &File, raw: &mut Vec<u8>) -> std::io::Result<()> {
    loop {
        let len = raw.len();
        raw.resize(len + 4096.max(raw.capacity() - len), 0);
        match file.read_at(&mut raw[len..], len as u64) {
            Ok(0) => {
                raw.truncate(len);
                return Ok(());
            }
            Ok(n) => raw.truncate(len + n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => raw.truncate(len),
            Err(e) => {
                raw.truncate(len);
                return Err(e);
            }
        }
    }
}

/// The first `N` whitespace-separated fields of a line, if it has them.
fn fields<const N: usize>(line: &str) -> Option<[&str; N]> {
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
fn parse_stat(text: &str, ticks_per_second: f64, out: &mut SampleBuf) -> Option<u64> {
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
fn parse_meminfo(text: &str, out: &mut SampleBuf) {
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
fn parse_loadavg(text: &str, out: &mut SampleBuf) {
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

fn parse_diskstats(text: &str, out: &mut SampleBuf) {
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
fn ignored_disk(name: &str) -> bool {
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
fn parse_net_dev(text: &str, out: &mut SampleBuf) {
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
fn parse_self_stat(text: &str, tps: f64, page_size: f64, btime: Option<u64>, out: &mut SampleBuf) {
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

impl HostCollector {
    /// `process_open_fds` (entries of /proc/self/fd, the listing's own
    /// descriptor included, as client_golang counts) and `process_max_fds`.
    /// Returns whether /proc/self/fd could be listed.
    fn collect_fds(&mut self, out: &mut SampleBuf) -> bool {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        if let Some(max) = limit.current {
            out.push("process_max_fds", &[], max as f64);
        }
        match std::fs::read_dir(&self.paths.self_fd) {
            Ok(dir) => {
                out.push("process_open_fds", &[], dir.count() as f64);
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot list open fds");
                false
            }
        }
    }

    /// Returns whether the mount table could be read.
    fn collect_filesystems(&mut self, mount_timeout: Duration, out: &mut SampleBuf) -> bool {
        let HostCollector {
            paths,
            raw,
            scratch: (dev_buf, mnt_buf),
            seen_mounts,
            hasher,
            stuck_mounts,
            ..
        } = self;
        let Some(text) = paths.self_mounts.read(raw) else {
            return false;
        };
        seen_mounts.clear();
        // A later mount on the same point hides the earlier one, and
        // `statvfs` sees only the topmost, so walk backwards and report each
        // mount point once.
        for line in text.lines().rev() {
            let Some([device, mount_point, fstype]) = fields::<3>(line) else {
                continue;
            };
            if ignored_fstype(fstype) {
                continue;
            }
            let mount_point = unescape(mount_point, mnt_buf);
            if ignored_mount_point(mount_point) || !seen_mounts.insert(hasher.hash_one(mount_point))
            {
                continue;
            }
            let st = if may_block(fstype) {
                statvfs_with_deadline(mount_point, mount_timeout, stuck_mounts)
            } else {
                rustix::fs::statvfs(mount_point)
                    .map_err(|e| tracing::debug!(mount_point, error = %e, "statfs failed"))
                    .ok()
            };
            let Some(st) = st else { continue };
            let device = unescape(device, dev_buf);
            let labels = [
                ("device", device),
                ("fstype", fstype),
                ("mountpoint", mount_point),
            ];
            let bs = st.f_frsize as f64;
            out.push(
                "node_filesystem_size_bytes",
                &labels,
                st.f_blocks as f64 * bs,
            );
            out.push(
                "node_filesystem_free_bytes",
                &labels,
                st.f_bfree as f64 * bs,
            );
            out.push(
                "node_filesystem_avail_bytes",
                &labels,
                st.f_bavail as f64 * bs,
            );
            out.push("node_filesystem_files", &labels, st.f_files as f64);
            out.push("node_filesystem_files_free", &labels, st.f_ffree as f64);
        }
        true
    }
}

/// node_exporter's default `fs-types-exclude`.
fn ignored_fstype(fstype: &str) -> bool {
    matches!(
        fstype,
        "autofs"
            | "binfmt_misc"
            | "bpf"
            | "cgroup"
            | "cgroup2"
            | "configfs"
            | "debugfs"
            | "devpts"
            | "devtmpfs"
            | "erofs"
            | "fusectl"
            | "hugetlbfs"
            | "iso9660"
            | "mqueue"
            | "nsfs"
            | "overlay"
            | "proc"
            | "procfs"
            | "pstore"
            | "rpc_pipefs"
            | "securityfs"
            | "selinuxfs"
            | "squashfs"
            | "sysfs"
            | "tracefs"
    )
}

/// node_exporter's default `mount-points-exclude`,
/// `^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)`.
fn ignored_mount_point(m: &str) -> bool {
    let Some(rest) = m.strip_prefix('/') else {
        return false;
    };
    let at_or_under = |p: &str| {
        rest.strip_prefix(p)
            .is_some_and(|r| r.is_empty() || r.starts_with('/'))
    };
    let strictly_under = |p: &str| {
        rest.strip_prefix(p)
            .and_then(|r| r.strip_prefix('/'))
            .is_some_and(|r| !r.is_empty())
    };
    at_or_under("dev")
        || at_or_under("proc")
        || at_or_under("sys")
        || strictly_under("run/credentials")
        || strictly_under("var/lib/docker")
        || strictly_under("var/lib/containers/storage")
}

/// Filesystems whose `statvfs` waits on a server or a user-space daemon and
/// can therefore hang (a `hard` NFS mount whose server is gone).
fn may_block(fstype: &str) -> bool {
    fstype.starts_with("nfs")
        || fstype.starts_with("fuse")
        || matches!(
            fstype,
            "cifs"
                | "smb3"
                | "smbfs"
                | "9p"
                | "ceph"
                | "glusterfs"
                | "afs"
                | "lustre"
                | "gpfs"
                | "davfs"
        )
}

/// `statvfs` on a helper thread, given up on after `timeout`. A mount point
/// whose call is still outstanding is skipped without a new thread, so a
/// dead server costs one blocked thread per mount, not one per scrape.
fn statvfs_with_deadline(
    mount_point: &str,
    timeout: Duration,
    stuck: &Arc<Mutex<HashSet<String>>>,
) -> Option<rustix::fs::StatVfs> {
    if !stuck.lock().insert(mount_point.to_owned()) {
        tracing::debug!(
            mount_point,
            "skipping mount whose previous statfs has not returned"
        );
        return None;
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let path = mount_point.to_owned();
    let stuck_in_thread = stuck.clone();
    let spawned = std::thread::Builder::new()
        .name("hourglass-statfs".into())
        .spawn(move || {
            let res = rustix::fs::statvfs(path.as_str());
            stuck_in_thread.lock().remove(&path);
            let _ = tx.send(res);
        });
    if let Err(e) = spawned {
        stuck.lock().remove(mount_point);
        tracing::debug!(mount_point, error = %e, "cannot start statfs thread");
        return None;
    }
    match rx.recv_timeout(timeout) {
        Ok(Ok(st)) => Some(st),
        Ok(Err(e)) => {
            tracing::debug!(mount_point, error = %e, "statfs failed");
            None
        }
        Err(_) => {
            tracing::warn!(
                mount_point,
                ?timeout,
                "mount did not answer statfs; skipped until it does"
            );
            None
        }
    }
}

/// The kernel writes space, tab, newline and backslash in mount fields as
/// `\ooo` octal escapes. Borrows when there is nothing to unescape.
fn unescape<'a>(raw: &'a str, buf: &'a mut String) -> &'a str {
    if !raw.contains('\\') {
        return raw;
    }
    buf.clear();
    let mut rest = raw;
    while let Some(i) = rest.find('\\') {
        buf.push_str(&rest[..i]);
        let esc = rest.get(i + 1..i + 4);
        match esc
            .and_then(|o| u8::from_str_radix(o, 8).ok())
            .filter(u8::is_ascii)
        {
            Some(b) => {
                buf.push(char::from(b));
                rest = &rest[i + 4..];
            }
            None => {
                buf.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    buf.push_str(rest);
    buf
}

#[cfg(test)]
#[path = "host_tests.rs"]
mod tests;
