//! The thin `fuser::Filesystem` adapter over `vfs::Vfs`: translates
//! requests, answers every write with EROFS, and sets the caching flags
//! that immutable snapshot content allows.
//!
//! Files and directories are opened by the kernel alone: the first OPEN
//! (OPENDIR) is answered with ENOSYS, which tells the kernel never to send
//! OPEN and RELEASE (OPENDIR and RELEASEDIR) again, and to keep file pages
//! (directory listings) cached. Two round trips fewer per file and per
//! directory is what makes `tar`, `rsync` or `cp -a` of a snapshot fast.
//!
//! Lookups are counted as the kernel counts them (a LOOKUP reply, every
//! READDIRPLUS entry but `.` and `..`) and FORGETs honoured, so that the
//! inodes inside snapshots live only while the kernel holds them; and
//! `forgetting` has the kernel drop the least recently used names when it
//! holds more than the mount's budget.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::Duration;

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyDirectoryPlus,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyXattr, Request,
};

use crate::vfs::{Attr, Caching, EntryKind, Vfs};

mod busy_poll;
mod forgetting;
use busy_poll::BusyPoll;
use forgetting::Forgetting;

struct RewindFs {
    vfs: Arc<Vfs>,
    busy_poll: Arc<BusyPoll>,
}

fn errno(code: i32) -> Errno {
    Errno::from_i32(code)
}

fn file_type(kind: EntryKind) -> FileType {
    match kind {
        EntryKind::Dir => FileType::Directory,
        EntryKind::File => FileType::RegularFile,
        EntryKind::Symlink => FileType::Symlink,
        EntryKind::Fifo => FileType::NamedPipe,
        EntryKind::CharDevice => FileType::CharDevice,
        EntryKind::BlockDevice => FileType::BlockDevice,
        EntryKind::Socket => FileType::Socket,
    }
}

fn file_attr(attr: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(attr.ino),
        size: attr.size,
        blocks: attr.blocks,
        atime: attr.atime,
        mtime: attr.mtime,
        ctime: attr.ctime,
        crtime: attr.mtime,
        kind: file_type(attr.kind),
        perm: attr.perm,
        nlink: attr.nlink,
        uid: attr.uid,
        gid: attr.gid,
        rdev: attr.rdev,
        blksize: 4096,
        flags: 0,
    }
}

fn ttl(attr: &Attr) -> Duration {
    match attr.caching {
        Caching::Forever => Duration::from_secs(24 * 3600),
        Caching::Briefly => Duration::from_secs(1),
        Caching::Never => Duration::ZERO,
    }
}

fn xattr_reply(value: Vec<u8>, size: u32, reply: ReplyXattr) {
    if size == 0 {
        reply.size(value.len() as u32);
    } else if value.len() > size as usize {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(&value);
    }
}

impl Filesystem for RewindFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_readahead(1 << 20);
        // READDIRPLUS for every batch of a listing, not only the first (as
        // READDIRPLUS_AUTO would): attributes cost us nothing, and each entry
        // listed without them costs a LOOKUP round trip when tar or rsync
        // stats it (24,800 of them in a tar of the benchmark corpus).
        // AUTO_INVAL_DATA: a file whose mtime changed (the status file's)
        // loses its cached pages, and a directory whose mtime changed (those
        // above the snapshots, when snapshots come and go) its cached
        // listing, which opens without a round trip would otherwise keep.
        // CACHE_SYMLINKS: no link ever changes its target (see `Inode::Link`).
        let wanted = InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_AUTO_INVAL_DATA
            | InitFlags::FUSE_CACHE_SYMLINKS;
        let _ = config.add_capabilities(wanted & config.capabilities());
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.busy_poll.request(0);
        match self.vfs.lookup(parent.0, name.as_bytes()) {
            Ok(attr) => reply.entry(&ttl(&attr), &file_attr(&attr), Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.vfs.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.busy_poll.request(0);
        match self.vfs.getattr(ino.0) {
            Ok(attr) => reply.attr(&ttl(&attr), &file_attr(&attr)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.busy_poll.request(0);
        match self.vfs.readlink(ino.0) {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn open(&self, _req: &Request, _ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.0 & libc::O_ACCMODE != libc::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        // "Open it yourself, from now on": see the module documentation.
        reply.error(Errno::ENOSYS);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.busy_poll.request(size);
        match self.vfs.read(ino.0, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // As for files: the kernel opens directories itself from now on,
        // and keeps their listings cached (see `Vfs::read_dir`).
        reply.error(Errno::ENOSYS);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        self.busy_poll.request(0);
        let listed = self.vfs.read_dir(ino.0, offset, |next, entry| {
            reply.add(
                INodeNo(entry.ino),
                next,
                file_type(entry.kind),
                OsStr::from_bytes(&entry.name),
            )
        });
        match listed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        self.busy_poll.request(0);
        let listed = self.vfs.read_dir_plus(ino.0, offset, |next, entry, attr| {
            reply.add(
                INodeNo(entry.ino),
                next,
                OsStr::from_bytes(&entry.name),
                &ttl(attr),
                &file_attr(attr),
                Generation(0),
            )
        });
        match listed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(0, 0, 0, 0, 0, 4096, 255, 4096);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        self.busy_poll.request(0);
        match self.vfs.getxattr(ino.0, name.as_bytes()) {
            Ok(value) => xattr_reply(value, size, reply),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.busy_poll.request(0);
        match self.vfs.listxattr(ino.0) {
            Ok(names) => xattr_reply(names, size, reply),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        // default_permissions makes the kernel check modes; only writes are ours to refuse.
        if mask.contains(AccessFlags::W_OK) {
            reply.error(Errno::EROFS);
        } else {
            reply.ok();
        }
    }
}

/// How the FUSE session is set up.
#[derive(Debug, Clone)]
pub struct FuseOptions {
    /// Let other users in (the kernel still enforces the original modes).
    pub allow_other: bool,
    /// Forbid running programs from the mount (mount(8)'s `noexec`, which
    /// fstab's `user` option implies).
    pub no_exec: bool,
    /// The source the mount tables show; by default `rewind:LOCATION`.
    /// A mount from /etc/fstab shows fstab's source, by which `mount -a`
    /// knows the line is mounted.
    pub source_name: Option<String>,
    /// Threads answering the kernel.
    pub threads: usize,
    /// How long one thread keeps polling the device after a short request
    /// (see `busy_poll`); zero, or a single CPU, never polls.
    pub busy_poll: Duration,
}

impl Default for FuseOptions {
    /// What `rewind mount` uses unless told otherwise: two threads per CPU
    /// (at least four), 5 ms of polling, the owner alone let in.
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        FuseOptions {
            allow_other: false,
            no_exec: false,
            source_name: None,
            threads: cpus.max(2) * 2,
            busy_poll: Duration::from_millis(5),
        }
    }
}

/// A mounted filesystem, served on background threads until unmounted.
pub struct Mounted {
    unmounter: fuser::SessionUnmounter,
    serving: std::thread::JoinHandle<std::io::Result<()>>,
}

/// Mounts `vfs` read-only at `mountpoint` and serves it on threads. `on_end`
/// runs when the kernel ends the session (for example after `umount`).
pub fn mount(
    vfs: Arc<Vfs>,
    mountpoint: &std::path::Path,
    options: &FuseOptions,
    on_end: impl FnOnce() + Send + 'static,
) -> crate::error::Result<Mounted> {
    use fuser::MountOption;
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::FSName(
            options
                .source_name
                .clone()
                .unwrap_or_else(|| format!("rewind:{}", vfs.location())),
        ),
        MountOption::Subtype("rewind".into()),
        MountOption::RO,
        MountOption::DefaultPermissions,
        MountOption::NoSuid,
        MountOption::NoDev,
    ];
    // fuser gives the subtype to fusermount3 only; root mounts without it,
    // so the kernel is told directly. The type is then `fuse.rewind`, as
    // an fstab line names it, either way.
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        config
            .mount_options
            .push(MountOption::CUSTOM("subtype=rewind".into()));
    }
    if options.no_exec {
        config.mount_options.push(MountOption::NoExec);
    }
    config.acl = if options.allow_other {
        fuser::SessionACL::All
    } else {
        fuser::SessionACL::Owner
    };
    config.n_threads = Some(options.threads.max(1));
    config.clone_fd = true;
    let busy_poll = Arc::new(BusyPoll::new(options.busy_poll));
    let filesystem = RewindFs {
        vfs: Arc::clone(&vfs),
        busy_poll: Arc::clone(&busy_poll),
    };
    let mut session = fuser::Session::new(filesystem, mountpoint, &config).map_err(|e| {
        crate::error::Error::io(format!("cannot mount at {}", mountpoint.display()), e)
    })?;
    if let Err(e) = busy_poll.attach(&session) {
        crate::log::info(&format!(
            "cannot poll the FUSE device ({e}); every request wakes a thread"
        ));
    }
    let forgetting = Forgetting::start(vfs, session.notifier())
        .map_err(|e| crate::error::Error::io("cannot start the FUSE threads", e))?;
    let unmounter = session.unmount_callable();
    let serving = std::thread::Builder::new()
        .name("rewind-fuse".into())
        .spawn(move || {
            let result = session.run();
            busy_poll.stop();
            forgetting.stop();
            on_end();
            result
        })
        .map_err(|e| crate::error::Error::io("cannot start the FUSE threads", e))?;
    raise_read_ahead(mountpoint);
    Ok(Mounted { unmounter, serving })
}

impl Mounted {
    /// Unmounts and waits for the serving threads to end.
    pub fn unmount(mut self) -> crate::error::Result<()> {
        self.unmounter
            .unmount()
            .map_err(|e| crate::error::Error::io("cannot unmount", e))?;
        self.wait()
    }

    /// Waits until the session ends (an unmount from anywhere).
    pub fn wait(self) -> crate::error::Result<()> {
        match self.serving.join() {
            Ok(result) => result.map_err(|e| crate::error::Error::io("the FUSE session failed", e)),
            Err(_) => Err(crate::error::Error::internal("a FUSE thread panicked")),
        }
    }
}

/// Lets the kernel send 1 MiB reads instead of 128 KiB: the mount's
/// read-ahead window is a property of its backing device info.
fn raise_read_ahead(mountpoint: &std::path::Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(mountpoint) else {
        return;
    };
    let dev = meta.dev() as libc::dev_t;
    let path = format!(
        "/sys/class/bdi/{}:{}/read_ahead_kb",
        libc::major(dev),
        libc::minor(dev)
    );
    if let Err(e) = std::fs::write(&path, "1024") {
        crate::log::info(&format!(
            "cannot raise the read-ahead window ({path}: {e}); reads stay at 128 KiB"
        ));
    }
}

/// Clears a mount left behind by a daemon that was killed: its mountpoint
/// answers "transport endpoint is not connected". Returns whether it did.
pub fn clear_stale_mount(mountpoint: &std::path::Path) -> crate::error::Result<bool> {
    let c = std::ffi::CString::new(mountpoint.as_os_str().as_bytes())
        .map_err(|_| crate::error::Error::usage("the mountpoint contains a NUL byte"))?;
    // statfs always reaches the filesystem; stat may be answered from the
    // kernel's cached attributes for a second after the daemon died.
    // SAFETY: c is a valid path and buf a properly sized out-parameter.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut buf) } == 0
        || std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOTCONN)
    {
        return Ok(false);
    }
    // SAFETY: c is a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(crate::error::Error::io(
            format!(
                "{} holds a stale mount that cannot be cleared",
                mountpoint.display()
            ),
            std::io::Error::last_os_error(),
        )
        .with_hint("run `umount -l` on it as root"));
    }
    Ok(true)
}
