//! `node_filesystem_*`: the mount table, node_exporter's exclusions, and
//! `statvfs` with a deadline for filesystems that can hang.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::parse::fields;
use super::ProcFile;
use crate::sources::SampleBuf;

/// Reads /proc/self/mounts and reports each filesystem once.
pub(super) struct Filesystems {
    mounts: ProcFile,
    /// Unescaped device and mount point of the mount being reported.
    scratch: (String, String),
    /// Hashes of the mount points reported in this scrape.
    seen_mounts: HashSet<u64>,
    hasher: RandomState,
    /// Mount points whose `statvfs` has not returned yet.
    stuck_mounts: Arc<Mutex<HashSet<String>>>,
}

impl Filesystems {
    pub(super) fn new(mounts: ProcFile) -> Filesystems {
        Filesystems {
            mounts,
            scratch: Default::default(),
            seen_mounts: HashSet::new(),
            hasher: RandomState::new(),
            stuck_mounts: Arc::default(),
        }
    }

    /// `node_filesystem_*` of every mounted filesystem that node_exporter
    /// would report. Returns whether the mount table could be read.
    pub(super) fn collect(
        &mut self,
        raw: &mut Vec<u8>,
        mount_timeout: Duration,
        out: &mut SampleBuf,
    ) -> bool {
        let Filesystems {
            mounts,
            scratch: (dev_buf, mnt_buf),
            seen_mounts,
            hasher,
            stuck_mounts,
        } = self;
        let Some(text) = mounts.read(raw) else {
            return false;
        };
        seen_mounts.clear();
        // A later mount on the same point hides the earlier one, and
        // `statvfs` sees only the topmost, so walk backwards: the first line
        // seen for a point decides whether and how it is reported.
        for line in text.lines().rev() {
            let Some([device, mount_point, fstype]) = fields::<3>(line) else {
                continue;
            };
            let mount_point = unescape(mount_point, mnt_buf);
            let topmost = seen_mounts.insert(hasher.hash_one(mount_point));
            if !topmost || ignored_fstype(fstype) || ignored_mount_point(mount_point) {
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
pub(super) fn ignored_fstype(fstype: &str) -> bool {
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
pub(super) fn ignored_mount_point(m: &str) -> bool {
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
pub(super) fn may_block(fstype: &str) -> bool {
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
pub(super) fn statvfs_with_deadline(
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
pub(super) fn unescape<'a>(raw: &'a str, buf: &'a mut String) -> &'a str {
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
