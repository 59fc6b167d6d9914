//! The host source: node_exporter's metric names and labels, with the values
//! the kernel reports.
//!
//! Everything comes straight from /proc (plus `statvfs` for filesystems),
//! parsed by the small functions in `parse.rs` rather than through sysinfo or the
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
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{BlockingSource, Collect, SampleBuf, ScrapeCtx, SourceError};

mod filesystem;
mod parse;

use filesystem::Filesystems;
use parse::{
    parse_diskstats, parse_loadavg, parse_meminfo, parse_net_dev, parse_self_stat, parse_stat,
};

/// The host source, ready for the scrape loop.
pub fn source() -> BlockingSource<HostCollector> {
    BlockingSource::new(HostCollector::new)
}

/// Reads the host's metrics from /proc. Keeps its buffers across scrapes.
pub struct HostCollector {
    root: PathBuf,
    paths: Paths,
    raw: Vec<u8>,
    ticks_per_second: f64,
    page_size: f64,
    filesystems: Filesystems,
}

struct Paths {
    stat: ProcFile,
    meminfo: ProcFile,
    loadavg: ProcFile,
    diskstats: ProcFile,
    net_dev: ProcFile,
    self_stat: ProcFile,
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
            self_fd: root.join("self/fd"),
        };
        HostCollector {
            filesystems: Filesystems::new(file("self/mounts")),
            root,
            paths,
            raw: Vec::with_capacity(16 * 1024),
            // USER_HZ: the unit of every tick count in /proc (100 on all
            // mainstream architectures; asked rather than assumed).
            ticks_per_second: rustix::param::clock_ticks_per_second().max(1) as f64,
            page_size: rustix::param::page_size() as f64,
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
        read_any |= self.filesystems.collect(&mut self.raw, mount_timeout, out);
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
pub(super) struct ProcFile {
    path: PathBuf,
    file: Option<File>,
}

impl ProcFile {
    /// The whole file, read into `raw`. /proc text is ASCII in practice; a
    /// mount point or device name that is not UTF-8 is replaced lossily (and
    /// then fails `statvfs`, skipping just that mount) rather than losing
    /// the whole family.
    pub(super) fn read<'a>(&mut self, raw: &'a mut Vec<u8>) -> Option<Cow<'a, str>> {
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
}

#[cfg(test)]
mod tests;
