//! The FUSE ceiling: a trivial in-memory filesystem serving one file of
//! the requested size, mounted the way `rewind mount` mounts (read-only,
//! multi-threaded, clone_fd, FOPEN_KEEP_CACHE, long TTLs, 1 MiB read-ahead).
//! benches/mount.sh reads it beside the rewind mount: rewind's sequential
//! read is reported as a share of this ceiling, measured in the same run.
//!
//! Usage: cargo bench --bench fuse_ceiling -- MOUNTPOINT SIZE_MIB
//! Serves MOUNTPOINT/file until the mount is unmounted (`umount MOUNTPOINT`).

use std::ffi::OsStr;
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    KernelConfig, LockOwner, MountOption, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyEntry, ReplyOpen, Request,
};

const TTL: Duration = Duration::from_secs(86_400);

struct Memory {
    data: Vec<u8>,
}

fn attr(ino: u64, size: u64, kind: FileType) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind,
        perm: if kind == FileType::Directory {
            0o555
        } else {
            0o444
        },
        nlink: 1,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

impl Filesystem for Memory {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_readahead(1 << 20);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if parent.0 == 1 && name == "file" {
            reply.entry(
                &TTL,
                &attr(2, self.data.len() as u64, FileType::RegularFile),
                Generation(0),
            );
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match ino.0 {
            1 => reply.attr(&TTL, &attr(1, 0, FileType::Directory)),
            2 => reply.attr(
                &TTL,
                &attr(2, self.data.len() as u64, FileType::RegularFile),
            ),
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE);
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let start = (offset as usize).min(self.data.len());
        let end = (start + size as usize).min(self.data.len());
        // A copy per read, as any real filesystem that decodes data makes one.
        #[allow(clippy::unnecessary_to_owned)]
        reply.data(&self.data[start..end].to_vec());
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = [
            (1, FileType::Directory, "."),
            (1, FileType::Directory, ".."),
            (2, FileType::RegularFile, "file"),
        ];
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*ino), (i + 1) as u64, *kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [mountpoint, size_mib] = args.as_slice() else {
        // `cargo test --all-targets` and a plain `cargo bench` run every
        // bench without arguments: this one only serves when benches/mount.sh
        // gives it a mountpoint.
        eprintln!("fuse_ceiling: nothing to do (usage: fuse_ceiling MOUNTPOINT SIZE_MIB; see benches/mount.sh)");
        return;
    };
    let size: usize = size_mib.parse::<usize>().expect("SIZE_MIB is a number") << 20;
    let data: Vec<u8> = (0..size)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(9) as u8)
        .collect();
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::FSName("fuse-ceiling".into()),
        MountOption::Subtype("ceiling".into()),
        MountOption::RO,
        MountOption::DefaultPermissions,
        MountOption::NoSuid,
        MountOption::NoDev,
    ];
    config.n_threads = Some(
        std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .max(2)
            * 2,
    );
    config.clone_fd = true;
    let session = fuser::Session::new(Memory { data }, mountpoint, &config).expect("mount");
    // Serve before touching the mountpoint: the stat below needs an answer
    // from the kernel's first requests, and only the session gives it.
    let serving = std::thread::spawn(move || session.run());
    // The same read-ahead window rewind sets.
    if let Ok(meta) = std::fs::metadata(mountpoint) {
        use std::os::unix::fs::MetadataExt;
        let dev = meta.dev() as libc::dev_t;
        let _ = std::fs::write(
            format!(
                "/sys/class/bdi/{}:{}/read_ahead_kb",
                libc::major(dev),
                libc::minor(dev)
            ),
            "1024",
        );
    }
    println!("ready");
    serving.join().expect("the session thread").expect("serve");
}
