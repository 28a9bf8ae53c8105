//! Issue 10, findings 5 and 9: decompression bombs in a repository cost an
//! error, not memory (restore, cat and a real mount); and a backup stores
//! what it read, no zero padding, warning when a file changed under it.

mod common;
mod mount_util;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use rewind::format::{crypto, crypto::SALT_LEN};
use rewind::format::{keys_of, BlobKind, FinishedPack, PackedBlob};
use rewind::format::{pack, pack::FOOTER_MAGIC, pack::MAGIC};
use rewind::{Encryption, Id, PackSaver, Repository};
use rewind::{Extent, NodeKind};

/// What any of these commands may use at its peak, bombs or not.
const MAX_RSS_KIB: u64 = 200 * 1024;

// ------------------------------------------------------------ crafting bombs

/// `len` zero bytes as one zstd frame (RFC 8878) of RLE blocks: 4 bytes per
/// 128 KiB, so 4 GiB fit in 131 KB. The frame header declares `len` as its
/// content size, or no size at all.
fn zero_frame(len: u64, declare_size: bool) -> Vec<u8> {
    const BLOCK: u64 = 128 * 1024;
    const WINDOW_128_KIB: u8 = 7 << 3; // 2^(10 + 7)
    let mut frame = 0xFD2F_B528u32.to_le_bytes().to_vec();
    if declare_size {
        frame.push(0b1100_0000); // an 8-byte content size, a window descriptor
        frame.push(WINDOW_128_KIB);
        frame.extend_from_slice(&len.to_le_bytes());
    } else {
        frame.push(0);
        frame.push(WINDOW_128_KIB);
    }
    let mut left = len;
    while left > 0 {
        let n = left.min(BLOCK);
        left -= n;
        let last = u32::from(left == 0);
        let rle = 1 << 1;
        let header = last | rle | ((n as u32) << 3);
        frame.extend_from_slice(&header.to_le_bytes()[..3]);
        frame.push(0);
    }
    frame
}

/// A blob to put in a crafted pack: its payload (compression byte first)
/// stored as given, and the `raw_len` its records claim.
struct CraftedBlob {
    id: Id,
    payload: Vec<u8>,
    raw_len: u32,
}

/// A pack built by hand after rewind-format.5 (PACK FILES), so that its
/// payloads and records can say anything; stored and indexed.
fn store_crafted_pack(repo: &Repository, blobs: &[CraftedBlob]) {
    let salt = [0x5a; SALT_LEN];
    let sealer = keys_of(repo).sealer(&salt);
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&[pack::VERSION, 0, 0, 0]);
    bytes.extend_from_slice(&salt);
    let mut records = Vec::new();
    for blob in blobs {
        let stored = sealer.seal(blob.payload.clone()).unwrap();
        records.push(PackedBlob {
            kind: BlobKind::Data,
            id: blob.id,
            offset: bytes.len() as u32,
            stored_len: stored.len() as u32,
            raw_len: blob.raw_len,
        });
        bytes.extend_from_slice(&stored);
    }
    let trailer = postcard::to_stdvec(&records).unwrap();
    let trailer = sealer.seal(crypto::compress(&trailer, 3).unwrap()).unwrap();
    bytes.extend_from_slice(&trailer);
    bytes.extend_from_slice(&(trailer.len() as u32).to_le_bytes());
    bytes.extend_from_slice(FOOTER_MAGIC);
    let pack = FinishedPack {
        id: Id::of_bytes(&bytes),
        salt,
        bytes,
        blobs: records.clone(),
    };
    let saver = PackSaver::new(repo.clone());
    saver.save(pack).unwrap();
    saver.finish().unwrap();
}

fn file_of_one_chunk(name: &str, id: Id, len: u32) -> rewind::Node {
    let mut file = node(name.as_bytes(), NodeKind::File);
    file.size = len as u64;
    file.content = vec![Extent::Data { id, len }];
    file
}

/// The bombs, each a file of one chunk in the snapshot's root, by name.
const BOMBS: [&str; 3] = ["claims-4-gib", "no-size-1-gib", "second-frame"];

/// A repository whose one snapshot holds the bombs and a sound file of
/// `max_size` bytes (the largest chunk there can be), which must still read.
/// Returns the repository and the blob id of each bomb, by name.
fn bomb_repository(dir: &Path) -> (Repo, Vec<(&'static str, Id)>) {
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    let lib = repo.open();
    let max_size = lib.config().chunker.max_size;
    let id = |name: &str| lib.blob_id(name.as_bytes());
    // The audit's bomb: 4 GiB of zeros in 131 KB, raw_len saying as much.
    let claims = CraftedBlob {
        id: id(BOMBS[0]),
        payload: [&[1u8][..], &zero_frame(u32::MAX as u64, true)].concat(),
        raw_len: u32::MAX,
    };
    // No content size in the frame: nothing to refuse up front.
    let no_size = CraftedBlob {
        id: id(BOMBS[1]),
        payload: [&[1u8][..], &zero_frame(1 << 30, false)].concat(),
        raw_len: 1 << 30,
    };
    // A claim within the limit, then a second frame with the bomb.
    let second_frame = CraftedBlob {
        id: id(BOMBS[2]),
        payload: [
            &[1u8][..],
            &zero_frame(1024, true),
            &zero_frame(1 << 30, true),
        ]
        .concat(),
        raw_len: max_size,
    };
    let bombs = [claims, no_size, second_frame];
    store_crafted_pack(&lib, &bombs);
    let mut nodes: Vec<_> = BOMBS
        .iter()
        .zip(&bombs)
        .map(|(name, b)| file_of_one_chunk(name, b.id, b.raw_len))
        .collect();
    nodes.push(file_node(&lib, b"sound", &vec![7u8; max_size as usize]));
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let tree = store_tree(&lib, nodes);
    save_snapshot(&lib, tree, &["/"]);
    let ids = BOMBS.iter().zip(&bombs).map(|(n, b)| (*n, b.id)).collect();
    (repo, ids)
}

// --------------------------------------------------------- measuring memory

/// Runs `command` to its end under `/usr/bin/time`, and its peak resident
/// memory in KiB. (wait4's own figure would count the test process too: a
/// child's peak includes what it shared with its parent before exec.)
fn run_measured(command: &Command, scratch: &Path) -> (Run, u64) {
    let report = scratch.join("peak-rss");
    let mut timed = Command::new("/usr/bin/time");
    timed
        .args(["--format", "%M", "--output"])
        .arg(&report)
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => timed.env(key, value),
            None => timed.env_remove(key),
        };
    }
    let run = run(&mut timed);
    // After "Command exited with non-zero status N", if it did.
    let report = std::fs::read_to_string(&report).unwrap();
    let peak = report.lines().last().unwrap().trim().parse().unwrap();
    (run, peak)
}

/// A process's peak resident memory so far, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[track_caller]
fn assert_bounded(what: &str, peak_kib: u64) {
    assert!(
        peak_kib < MAX_RSS_KIB,
        "{what} peaked at {} MiB of memory (bound: {} MiB)",
        peak_kib / 1024,
        MAX_RSS_KIB / 1024
    );
}

// ------------------------------------------------------------- finding 5

#[test]
fn cat_refuses_every_bomb_with_a_corrupt_error_in_bounded_memory() {
    let (_tmp, dir) = tempdir();
    let (repo, bombs) = bomb_repository(&dir);
    for (name, id) in &bombs {
        let mut cat = repo.command();
        cat.args(["cat", &format!("latest:/{name}")]);
        let (run, peak) = run_measured(&cat, &dir);
        let run = run.assert_one_line_error(&[&id.short(), "pack"]);
        assert!(run.stdout.is_empty(), "cat {name} wrote bytes");
        assert_bounded(&run.what, peak);
    }
    let sound = repo.run(["cat", "latest:/sound"]).assert_ok();
    assert!(sound.stdout.iter().all(|&b| b == 7) && !sound.stdout.is_empty());
}

#[test]
fn restore_refuses_every_bomb_and_restores_the_rest_in_bounded_memory() {
    let (_tmp, dir) = tempdir();
    let (repo, bombs) = bomb_repository(&dir);
    let target = dir.join("target");
    let mut restore = repo.command();
    restore.args(["restore", "latest", "--target"]).arg(&target);
    let (run, peak) = run_measured(&restore, &dir);
    let run = run.assert_failed();
    assert_bounded(&run.what, peak);
    for (name, id) in &bombs {
        assert!(
            run.stderr.contains(&id.short()) && run.stderr.contains(name),
            "restore should name the bomb {name} and its blob {}:\n{}",
            id.short(),
            run.stderr
        );
        assert!(!target.join(name).exists(), "{name} was restored");
    }
    let sound = std::fs::read(target.join("sound")).unwrap();
    assert!(sound.iter().all(|&b| b == 7) && !sound.is_empty());
}

#[test]
fn a_mount_answers_eio_for_every_bomb_in_bounded_memory() {
    mount_util::require_root();
    let (_tmp, dir) = tempdir();
    let (repo, bombs) = bomb_repository(&dir);
    let mountpoint = dir.join("mnt");
    let mount = mount_util::Mount::start_with(repo.command(), &mountpoint, &[]);
    for (name, id) in &bombs {
        let file = mount.path(&format!("latest/{name}"));
        let head = run(Command::new("head").arg("-c").arg("10").arg(&file));
        let head = head.assert_fails_with("Input/output error");
        assert!(head.stdout.is_empty(), "the mount served bytes of {name}");
        let log = mount.log_text();
        assert!(
            log.contains(&id.short()),
            "the mount's log should name the blob {} of {name}:\n{log}",
            id.short()
        );
    }
    let sound = std::fs::read(mount.path("latest/sound")).unwrap();
    assert!(sound.iter().all(|&b| b == 7) && !sound.is_empty());
    assert_bounded("the mount daemon", peak_rss_kib(mount.pid));
}

// ------------------------------------------------------------- finding 9

/// The file at `path` in the latest snapshot, as `rewind cat` gives it, and
/// its size as `rewind ls` records it.
fn stored(repo: &Repo, path: &Path) -> (Vec<u8>, u64) {
    let spec = spec("latest", path);
    let content = repo.run(["cat", &spec]).assert_ok().stdout;
    let entries = repo.ls(&spec);
    let size = entries[path.to_str().unwrap()]["size"].as_u64().unwrap();
    (content, size)
}

#[test]
fn a_sysfs_file_is_stored_as_read_not_padded_to_its_stat_size() {
    // Files whose stat size (4096) is not their content's.
    let candidates = [
        "/sys/kernel/mm/transparent_hugepage/enabled",
        "/sys/power/state",
        "/sys/kernel/uevent_seqnum",
    ];
    let path = candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| {
            let stat_size = std::fs::metadata(p).map_or(0, |m| m.len());
            std::fs::read(p).is_ok_and(|c| (c.len() as u64) < stat_size)
        })
        .expect("no /sys file whose stat size exceeds its content");
    let (_tmp, dir) = tempdir();
    let repo = Repo::init(&dir.join("repo"), Encryption::None);
    let snapshot = repo.backup([arg(&path)]);
    assert_eq!(snapshot["warnings"], serde_json::json!([]), "{snapshot:#}");
    let (content, size) = stored(&repo, &path);
    assert_eq!(content, std::fs::read(&path).unwrap(), "{}", path.display());
    assert_eq!(size, content.len() as u64);
    assert!(!content.contains(&0), "zero padding in {}", path.display());
}

#[test]
fn a_procfs_file_of_stat_size_zero_is_stored_with_its_content() {
    let path = Path::new("/proc/version");
    assert_eq!(std::fs::metadata(path).unwrap().len(), 0);
    let (_tmp, dir) = tempdir();
    let repo = Repo::init(&dir.join("repo"), Encryption::None);
    let snapshot = repo.backup([arg(path)]);
    assert_eq!(snapshot["warnings"], serde_json::json!([]), "{snapshot:#}");
    let (content, size) = stored(&repo, path);
    assert_eq!(content, std::fs::read(path).unwrap());
    assert!(!content.is_empty());
    assert_eq!(size, content.len() as u64);
}

/// Backs up `file` (of `len` bytes), stopping the backup (SIGSTOP) while it
/// has read part of the file, to run `change` on the file meanwhile.
/// Returns the backup's run.
fn back_up_while_changing(repo: &Repo, file: &Path, len: u64, change: impl FnOnce()) -> Run {
    let backup = repo
        .command()
        .args(["backup", "--json"])
        .arg(file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = backup.id();
    let position = wait_for(std::time::Duration::from_secs(60), || {
        read_position(pid, file).is_some_and(|p| p > 0)
    });
    assert!(
        position.is_some(),
        "the backup never read {}",
        file.display()
    );
    kill(pid, libc::SIGSTOP);
    let read_so_far = read_position(pid, file);
    assert!(
        read_so_far.is_some_and(|p| p < len),
        "the backup read all of {} before it could be changed; make it larger",
        file.display()
    );
    change();
    kill(pid, libc::SIGCONT);
    let out = backup.wait_with_output().unwrap();
    Run {
        what: format!("rewind backup {}", file.display()),
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// How far process `pid` has read `file`, if it has it open.
fn read_position(pid: u32, file: &Path) -> Option<u64> {
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        if std::fs::read_link(fd.path()).is_ok_and(|target| target == file) {
            let info =
                std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_str()?))
                    .ok()?;
            let pos = info.lines().find_map(|l| l.strip_prefix("pos:"))?;
            return pos.trim().parse().ok();
        }
    }
    None
}

/// Large enough that a backup is still reading it when the test looks.
const CHANGING_FILE_LEN: usize = 256 << 20;

#[test]
fn a_file_truncated_while_read_is_stored_as_read_with_a_warning() {
    let (_tmp, dir) = tempdir();
    let repo = Repo::init(&dir.join("repo"), Encryption::None);
    let file = dir.join("shrinking.bin");
    let original = Rng::new(seed("a_file_truncated_while_read")).bytes(CHANGING_FILE_LEN);
    write(&file, &original);
    let run = back_up_while_changing(&repo, &file, original.len() as u64, || {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(4096)
            .unwrap();
    });
    let run = run.assert_code(3);
    let snapshot = run.json();
    assert!(
        snapshot["warnings"]
            .to_string()
            .contains("changed while it was read"),
        "{snapshot:#}"
    );
    assert_eq!(snapshot["summary"]["errors"], 0, "the file is not missing");
    let (content, size) = stored(&repo, &file);
    assert_eq!(size, content.len() as u64);
    assert!(
        content.len() < original.len(),
        "the shrunk file was stored at its old size"
    );
    assert!(
        content[..] == original[..content.len()],
        "bytes stored that the file never held"
    );
}

#[test]
fn a_file_that_grows_while_read_is_stored_to_its_end_with_a_warning() {
    let (_tmp, dir) = tempdir();
    let repo = Repo::init(&dir.join("repo"), Encryption::None);
    let file = dir.join("growing.log");
    let mut rng = Rng::new(seed("a_file_that_grows_while_read"));
    let original = rng.bytes(CHANGING_FILE_LEN);
    let appended = rng.bytes(100_000);
    write(&file, &original);
    let run = back_up_while_changing(&repo, &file, original.len() as u64, || {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap()
            .write_all(&appended)
            .unwrap();
    });
    let run = run.assert_code(3);
    assert!(
        run.json()["warnings"]
            .to_string()
            .contains("changed while it was read"),
        "{}",
        run.stdout_text()
    );
    let (content, size) = stored(&repo, &file);
    assert_eq!(size, content.len() as u64);
    assert!(
        content == [original, appended].concat(),
        "not stored to its end"
    );
}

// ------------------------------- found while writing the parity fuzz target

/// A parity file (rewind-format.5, PARITY FILES) whose header claims 65536
/// data shards of 64 KiB for a 4 GiB file, with a valid header checksum:
/// its shard layout is not the one that length implies, so it is refused
/// before a reader allocates and hashes 4 GiB of shards.
#[test]
fn a_parity_header_with_a_forged_shard_layout_is_refused() {
    let (shard_len, data_shards, parity_shards) = (64u32 * 1024, 65_536u32, 2u32);
    let data_len = shard_len as u64 * data_shards as u64;
    let mut parity = b"RWPR".to_vec();
    parity.extend_from_slice(&[1, 0, 0, 0]);
    parity.extend_from_slice(&data_len.to_le_bytes());
    for field in [shard_len, data_shards, parity_shards] {
        parity.extend_from_slice(&field.to_le_bytes());
    }
    parity.resize(
        parity.len() + (data_shards + parity_shards) as usize * 16,
        0,
    );
    let checksum = blake3::hash(&parity);
    parity.extend_from_slice(checksum.as_bytes());
    parity.resize(parity.len() + (parity_shards * shard_len) as usize, 0);
    let started = std::time::Instant::now();
    assert!(!rewind::format::parity::is_sound(&[], &parity));
    let err = rewind::format::parity::repair(&[], &parity).unwrap_err();
    assert_eq!(err.kind(), rewind::ErrorKind::Corrupt);
    assert!(err.to_string().contains("impossible shard counts"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}
