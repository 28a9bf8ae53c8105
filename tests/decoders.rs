//! Property tests: every decoder reachable from the public API, fed
//! arbitrary bytes or damaged valid encodings, returns an error or a valid
//! value, and never panics. Where a damaged input still decodes, what comes
//! out must be right (a blob that opens is the blob it claims to be).
//!
//! Runs are seeded (see `common::seed`); a failure prints the seed and the
//! smallest input proptest found.

mod common;

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};

use common::*;
use rewind::format::{crypto, crypto::Keys, crypto::SALT_LEN};
use rewind::format::{pack, pack::FOOTER_MAGIC, pack::HEADER_LEN, pack::MAGIC};
use rewind::format::{BlobKind, ChunkerParams, Config, IndexFile, KeyFile, PackWriter, PackedBlob};
use rewind::LocalBackend;
use rewind::{Encryption, Id, Repository};
use rewind::{Extent, NodeKind, Timestamp, Tree};

/// A deterministic runner for `cases` cases, seeded from the test's name.
fn runner(test: &str, cases: u32) -> TestRunner {
    let seed = seed(test);
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    TestRunner::new_with_rng(
        RunnerConfig {
            cases,
            failure_persistence: None,
            ..RunnerConfig::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &key),
    )
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> + Clone {
    prop::collection::vec(any::<u8>(), 0..max)
}

/// Byte flips (position, non-zero xor) and an optional truncation.
#[derive(Debug, Clone)]
struct Damage {
    flips: Vec<(Index, u8)>,
    truncate: Option<Index>,
}

fn damage() -> impl Strategy<Value = Damage> {
    (
        prop::collection::vec((any::<Index>(), 1u8..=255), 1..6),
        prop::option::weighted(0.2, any::<Index>()),
    )
        .prop_map(|(flips, truncate)| Damage { flips, truncate })
}

impl Damage {
    fn apply(&self, data: &[u8]) -> Vec<u8> {
        let mut out = data.to_vec();
        if out.is_empty() {
            return out;
        }
        for (at, xor) in &self.flips {
            let i = at.index(out.len());
            out[i] ^= xor;
        }
        if let Some(at) = &self.truncate {
            out.truncate(at.index(out.len()));
        }
        out
    }
}

fn unencrypted_keys() -> Keys {
    Keys::unencrypted(&Id([7; 32]))
}

fn encrypted_keys() -> Keys {
    Keys::from_master(&[9; 64])
}

fn sample_tree() -> Tree {
    let mut file = node(b"file \xff\n", NodeKind::File);
    file.size = 10;
    file.xattrs = vec![(b"user.a".to_vec(), b"\x00\x01".to_vec())];
    file.content = vec![
        Extent::Data {
            id: Id([1; 32]),
            len: 4,
        },
        Extent::Hole { len: 6 },
    ];
    file.user = Some("alice".into());
    file.mtime = Timestamp {
        sec: -5,
        nsec: 999_999_999,
    };
    let mut link = node(b"link", NodeKind::Symlink);
    link.link_target = b"../elsewhere".to_vec();
    let mut dev = node(b"dev", NodeKind::BlockDevice);
    dev.rdev = 0x0700;
    let mut tree = Tree::whole(vec![file, link, dev, dir_node(b"dir", Id([2; 32]))]);
    tree.sort();
    tree
}

// ------------------------------------------------------------------ trees

#[test]
fn tree_decode_never_panics_on_arbitrary_bytes() {
    let strategy = prop_oneof![
        bytes(2048),
        // Behind a valid version byte, so postcard sees the rest.
        bytes(2048).prop_map(|b| [&[rewind::format::TREE_VERSION][..], &b].concat()),
    ];
    runner("tree_decode_never_panics_on_arbitrary_bytes", 3000)
        .run(&strategy, |data| {
            let _ = Tree::decode(&data);
            Ok(())
        })
        .unwrap();
}

#[test]
fn damaged_tree_decodes_to_an_error_or_a_stable_tree() {
    let encoded = sample_tree().encode();
    assert_eq!(Tree::decode(&encoded).unwrap(), sample_tree());
    runner("damaged_tree_decodes_to_an_error_or_a_stable_tree", 3000)
        .run(&damage(), |d| {
            if let Ok(tree) = Tree::decode(&d.apply(&encoded)) {
                // Whatever decodes, re-encodes to the same tree.
                prop_assert_eq!(Tree::decode(&tree.encode()).unwrap(), tree.clone());
                for n in &tree.nodes {
                    let _ = (n.name_is_safe(), n.name_lossy(), n.is_hardlinked());
                }
            }
            Ok(())
        })
        .unwrap();
}

// ------------------------------------------------------------------ packs

/// A pack-shaped input: a valid header and footer around arbitrary middle
/// bytes, the trailer length pointing into them; with unencrypted keys the
/// trailer may also be an arbitrary list of blobs, to reach the bounds checks.
fn pack_like() -> impl Strategy<Value = Vec<u8>> {
    let blob = (
        any::<bool>(),
        any::<[u8; 32]>(),
        prop_oneof![0u32..200, any::<u32>()],
        prop_oneof![0u32..200, any::<u32>()],
        any::<u32>(),
    )
        .prop_map(|(tree, id, offset, stored_len, raw_len)| PackedBlob {
            kind: if tree { BlobKind::Tree } else { BlobKind::Data },
            id: Id(id),
            offset,
            stored_len,
            raw_len,
        });
    let trailer = prop_oneof![
        bytes(200),
        prop::collection::vec(blob, 0..5).prop_map(|blobs| {
            let mut t = vec![0u8]; // stored uncompressed
            t.extend(postcard::to_stdvec(&blobs).unwrap());
            t
        }),
    ];
    (
        any::<[u8; SALT_LEN]>(),
        bytes(300),
        trailer,
        prop::option::of(any::<u32>()),
    )
        .prop_map(|(salt, middle, trailer, wrong_len)| {
            let mut p = MAGIC.to_vec();
            p.extend_from_slice(&[pack::VERSION, 0, 0, 0]);
            p.extend_from_slice(&salt);
            p.extend_from_slice(&middle);
            p.extend_from_slice(&trailer);
            let len = wrong_len.unwrap_or(trailer.len() as u32);
            p.extend_from_slice(&len.to_le_bytes());
            p.extend_from_slice(FOOTER_MAGIC);
            p
        })
}

/// What a successful `read_trailer` promises: every blob lies inside the
/// pack, so slicing it is safe; and opening any of them never panics.
fn check_trailer(keys: &Keys, data: &[u8]) -> Result<(), TestCaseError> {
    if let Ok((salt, blobs)) = pack::read_trailer(keys, data) {
        for b in &blobs {
            let end = b.offset as usize + b.stored_len as usize;
            prop_assert!(b.offset as usize >= HEADER_LEN && end <= data.len());
            if let Ok(plain) = pack::open_blob(
                keys,
                &salt,
                data[b.offset as usize..end].to_vec(),
                b.claim(),
                &ChunkerParams::default(),
            ) {
                prop_assert_eq!(keys.blob_id(&plain), b.id);
            }
        }
    }
    Ok(())
}

#[test]
fn read_trailer_never_panics() {
    let strategy = prop_oneof![bytes(600), pack_like()];
    for (name, keys) in [
        ("unencrypted", unencrypted_keys()),
        ("encrypted", encrypted_keys()),
    ] {
        runner(&format!("read_trailer_never_panics/{name}"), 2000)
            .run(&strategy, |data| check_trailer(&keys, &data))
            .unwrap();
    }
}

#[test]
fn open_blob_never_panics_and_never_returns_another_blob() {
    let strategy = (
        any::<[u8; SALT_LEN]>(),
        prop_oneof![
            bytes(400),
            bytes(400).prop_map(|b| [&[0u8][..], &b].concat()),
            bytes(400).prop_map(|b| crypto::compress(&b, 3).unwrap()),
            bytes(400).prop_map(|b| [&[1u8][..], &b].concat()),
        ],
        any::<[u8; 32]>(),
        prop_oneof![0u32..1000, any::<u32>()],
        prop_oneof![
            Just(BlobKind::Data),
            Just(BlobKind::Tree),
            Just(BlobKind::Snapshot)
        ],
    );
    for (name, keys) in [
        ("unencrypted", unencrypted_keys()),
        ("encrypted", encrypted_keys()),
    ] {
        runner(&format!("open_blob_never_panics/{name}"), 2000)
            .run(&strategy, |(salt, stored, id, raw_len, kind)| {
                let claim = pack::BlobClaim {
                    id: &Id(id),
                    kind,
                    raw_len,
                };
                let chunker = ChunkerParams::default();
                if let Ok(plain) = pack::open_blob(&keys, &salt, stored.clone(), claim, &chunker) {
                    prop_assert_eq!(keys.blob_id(&plain), Id(id));
                    prop_assert_eq!(plain.len(), raw_len as usize);
                    prop_assert!(raw_len <= pack::max_raw_len(kind, &chunker));
                }
                Ok(())
            })
            .unwrap();
    }
}

/// A real pack with a damaged byte or two: its trailer reads or fails, and
/// every blob either opens to exactly its original bytes or fails.
#[test]
fn damaged_pack_yields_errors_never_wrong_bytes() {
    let mut rng = common::Rng::new(seed("damaged_pack_yields_errors_never_wrong_bytes/data"));
    let blobs: Vec<Vec<u8>> = vec![
        rng.bytes(3000),
        rng.text(5000),
        Vec::new(),
        sample_tree().encode(),
    ];
    for (name, keys) in [
        ("unencrypted", unencrypted_keys()),
        ("encrypted", encrypted_keys()),
    ] {
        let mut writer = PackWriter::new(&keys, 1 << 20).unwrap();
        for (i, b) in blobs.iter().enumerate() {
            let kind = if i == 3 {
                BlobKind::Tree
            } else {
                BlobKind::Data
            };
            writer.add(kind, keys.blob_id(b), b, 3).unwrap();
        }
        let pack = writer.finish().unwrap();
        check_trailer(&keys, &pack.bytes).unwrap();
        runner(
            &format!("damaged_pack_yields_errors_never_wrong_bytes/{name}"),
            1500,
        )
        .run(&damage(), |d| {
            let damaged = d.apply(&pack.bytes);
            check_trailer(&keys, &damaged)?;
            for (b, original) in pack.blobs.iter().zip(&blobs) {
                let end = (b.offset + b.stored_len) as usize;
                let Some(stored) = damaged.get(b.offset as usize..end) else {
                    continue;
                };
                let chunker = ChunkerParams::default();
                if let Ok(plain) =
                    pack::open_blob(&keys, &pack.salt, stored.to_vec(), b.claim(), &chunker)
                {
                    prop_assert!(&plain == original, "a damaged blob opened to other bytes");
                }
            }
            Ok(())
        })
        .unwrap();
    }
}

#[test]
fn decompress_never_panics() {
    let strategy = (
        prop_oneof![
            bytes(500),
            bytes(2000).prop_map(|b| crypto::compress(&b.repeat(3), 3).unwrap()),
        ],
        damage(),
        0usize..10_000,
    );
    runner("decompress_never_panics", 2000)
        .run(&strategy, |(data, d, limit)| {
            if let Ok(out) = crypto::decompress(&d.apply(&data), limit) {
                prop_assert!(out.len() <= limit);
            }
            Ok(())
        })
        .unwrap();
}

// --------------------------------------------------------- config and keys

fn valid_config() -> Config {
    Config::new(Id([3; 32]), Encryption::Aes256Gcm)
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::json;
    prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(|b| json!(b)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        (0u64..5_000_000_000).prop_map(|n| json!(n)),
        (u32::MAX - (1 << 28)..=u32::MAX).prop_map(|n| json!(n)),
        (-5i64..30).prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        ".{0,20}".prop_map(|s| json!(s)),
        Just(json!("rewind")),
        Just(json!("none")),
        Just(json!([])),
        Just(json!({})),
    ]
}

#[test]
fn config_from_bytes_never_panics() {
    let fields = [
        "format",
        "version",
        "id",
        "encryption",
        "compression_level",
        "pack_size",
        "chunker.min_size",
        "chunker.avg_size",
        "chunker.max_size",
        "extra",
    ];
    let valid = serde_json::to_value(valid_config()).unwrap();
    let edited =
        prop::collection::vec((0..fields.len(), json_value()), 1..4).prop_map(move |edits| {
            let mut v = valid.clone();
            for (field, value) in edits {
                match fields[field].split_once('.') {
                    Some((outer, inner)) => v[outer][inner] = value,
                    None => v[fields[field]] = value,
                }
            }
            serde_json::to_vec(&v).unwrap()
        });
    let good = valid_config().to_bytes();
    let strategy = prop_oneof![
        bytes(400),
        edited,
        damage().prop_map(move |d| d.apply(&good))
    ];
    runner("config_from_bytes_never_panics", 3000)
        .run(&strategy, |data| {
            if let Ok(config) = Config::from_bytes(&data, "test") {
                // What opens can be used: valid chunker bounds, and packs
                // whose blob offsets fit the format's 32-bit fields.
                prop_assert!(config.chunker.validate().is_ok());
                prop_assert!(
                    config.pack_size as u64 + 2 * pack::MAX_BLOB_LEN as u64 <= u32::MAX as u64,
                    "pack_size {} lets blob offsets overflow 32 bits",
                    config.pack_size
                );
            }
            Ok(())
        })
        .unwrap();
}

/// A key file with cheap Argon2 parameters, built independently of the library.
fn cheap_key_file(master: &[u8; 64], password: &[u8]) -> KeyFile {
    use aes_gcm::aead::{Aead, KeyInit};
    let salt = b"0123456789abcdef".to_vec();
    let params = argon2::Params::new(8, 1, 1, Some(32)).unwrap();
    let mut kek = [0u8; 32];
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(password, &salt, &mut kek)
        .unwrap();
    let nonce = [5u8; 12];
    let wrapped = aes_gcm::Aes256Gcm::new(&kek.into())
        .encrypt(aes_gcm::Nonce::from_slice(&nonce), master.as_slice())
        .unwrap();
    let json = serde_json::json!({
        "version": 1,
        "created": "2024-06-01T02:00:00Z",
        "host": "test",
        "kdf": {"algorithm": "argon2id", "memory_kib": 8, "iterations": 1, "parallelism": 1, "salt": hex::encode(salt)},
        "nonce": hex::encode(nonce),
        "wrapped": hex::encode(wrapped),
    });
    KeyFile::from_bytes(&serde_json::to_vec(&json).unwrap()).unwrap()
}

#[test]
fn key_files_never_panic_and_never_open_to_a_wrong_key() {
    let master = [0x5a; 64];
    let good = cheap_key_file(&master, b"pw");
    assert_eq!(good.unwrap_master(b"pw").unwrap(), master);
    assert_eq!(
        good.unwrap_master(b"wrong").unwrap_err().kind(),
        rewind::ErrorKind::WrongPassword
    );
    let encoded = good.to_bytes();
    let structured = (
        prop_oneof![Just("argon2id".to_string()), ".{0,10}"],
        0u32..80,
        0u32..3,
        0u32..3,
        bytes(24),
        bytes(16),
        bytes(100),
    )
        .prop_map(
            |(algorithm, memory_kib, iterations, parallelism, salt, nonce, wrapped)| {
                serde_json::to_vec(&serde_json::json!({
                "version": 1, "created": "", "host": "",
                "kdf": {"algorithm": algorithm, "memory_kib": memory_kib, "iterations": iterations,
                        "parallelism": parallelism, "salt": hex::encode(salt)},
                "nonce": hex::encode(nonce), "wrapped": hex::encode(wrapped),
            }))
            .unwrap()
            },
        );
    let strategy = prop_oneof![
        bytes(400),
        structured,
        damage().prop_map(move |d| d.apply(&encoded)),
    ];
    runner("key_files_never_panic_and_never_open_to_a_wrong_key", 1500)
        .run(&strategy, |data| {
            if let Ok(key) = KeyFile::from_bytes(&data) {
                if let Ok(opened) = key.unwrap_master(b"pw") {
                    prop_assert_eq!(opened, master);
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn user_input_parsers_never_panic() {
    let strategy = prop_oneof![
        ".{0,40}",
        "@[0-9T:Z+\\-.]{0,30}(:/.{0,5})?",
        "[0-9a-fA-F]{0,70}(:.{0,5})?",
        "[0-9/%.]{0,8}",
    ];
    runner("user_input_parsers_never_panic", 5000)
        .run(&strategy, |text| {
            let _ = rewind::split_selector(&text);
            let _ = rewind::Selector::parse(&text);
            let _ = rewind::parse_time_prefix(text.trim_start_matches('@'));
            let _ = rewind::Subset::parse(&text);
            let _ = Id::from_hex(&text);
            Ok(())
        })
        .unwrap();
}

// ----------------------------------------- metadata files in a repository

/// A small real repository, backed up with the binary.
struct Fixture {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    repo: Repo,
    tree: Id,
    snapshot_json: Vec<u8>,
    index_content: Vec<u8>,
}

fn fixture(encryption: Encryption) -> Fixture {
    let (tmp, dir) = tempdir();
    let src = dir.join("src");
    write_tree(
        &src,
        &[
            ("a", b"alpha".to_vec()),
            ("b", b"bravo".repeat(1000)),
            ("c", Vec::new()),
        ],
    );
    let repo = Repo::init(&dir.join("repo"), encryption);
    repo.backup([arg(&src)]);
    let lib = repo.open();
    let snapshot = lib.snapshots().unwrap().remove(0);
    let snapshot_json = serde_json::to_vec(&snapshot).unwrap();
    let index_name = lib
        .stored_files()
        .list(rewind::format::FileType::Index)
        .unwrap()[0]
        .clone();
    let index = lib.read_index_file(&index_name).unwrap();
    let mut index_content = vec![rewind::format::index::INDEX_VERSION];
    index_content.extend(postcard::to_stdvec(&index).unwrap());
    Fixture {
        _tmp: tmp,
        dir,
        repo,
        tree: snapshot.tree,
        snapshot_json,
        index_content,
    }
}

/// Stores `payload` as an unencrypted repository would (salt, then
/// `payload`, which starts with its compression byte), named by its hash.
fn store_named(repo_dir: &Path, kind: &str, payload: &[u8], raw: bool) -> std::path::PathBuf {
    let bytes = if raw {
        payload.to_vec()
    } else {
        [&[0u8; SALT_LEN][..], payload].concat()
    };
    let path = repo_dir.join(kind).join(Id::of_bytes(&bytes).to_hex());
    write(&path, &bytes);
    path
}

/// Snapshot and index files overwritten with garbage or damaged versions of
/// real ones: opening, listing, checking and restoring return errors or
/// right results, never a panic and never a wrong byte on disk.
#[test]
fn damaged_index_and_snapshot_files_never_panic_or_restore_wrong_bytes() {
    let f = fixture(Encryption::None);
    let uncompressed = |b: Vec<u8>| [&[0u8][..], &b].concat();
    let snapshot_json = f.snapshot_json.clone();
    let index_content = f.index_content.clone();
    let strategy = (
        prop_oneof![Just("index"), Just("snapshots")],
        any::<bool>(),
        prop_oneof![
            bytes(300),
            bytes(300).prop_map(uncompressed),
            bytes(300).prop_map(|b| uncompressed(
                [&[rewind::format::index::INDEX_VERSION][..], &b].concat()
            )),
            damage().prop_map(move |d| uncompressed(d.apply(&snapshot_json))),
            damage().prop_map(move |d| uncompressed(d.apply(&index_content))),
            damage().prop_map(
                |d| d.apply(&crypto::compress(&b"{\"version\":1}".repeat(50), 3).unwrap())
            ),
        ],
    );
    let source: Vec<(&str, Vec<u8>)> = vec![
        ("a", b"alpha".to_vec()),
        ("b", b"bravo".repeat(1000)),
        ("c", vec![]),
    ];
    let case = std::sync::atomic::AtomicUsize::new(0);
    runner("damaged_index_and_snapshot_files", 300)
        .run(&strategy, |(kind, raw, payload)| {
            let case = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let planted = store_named(&f.repo.path, kind, &payload, raw);
            let result = (|| {
                let repo =
                    Repository::open(Arc::new(LocalBackend::new(&f.repo.path)), || Ok(vec![]))
                        .map_err(|e| TestCaseError::fail(format!("open: {e}")))?;
                let _ = repo.snapshots_with_errors().unwrap();
                let _ = rewind::check(
                    &repo,
                    Some(rewind::Subset::All),
                    &rewind::Progress::default(),
                )
                .unwrap();
                let (repo, _) = repo.load_index().unwrap();
                let target = f.dir.join(format!("restore-{case}"));
                let options = rewind::RestoreOptions {
                    threads: 1,
                    ..Default::default()
                };
                let _ = rewind::restore(&repo, &f.tree, "", &target, &options);
                for (name, content) in &source {
                    let restored = under(&target, &f.dir.join("src")).join(name);
                    if let Ok(got) = std::fs::read(&restored) {
                        prop_assert!(
                            &got == content,
                            "{} was restored with wrong bytes",
                            restored.display()
                        );
                    }
                }
                let _ = std::fs::remove_dir_all(&target);
                Ok(())
            })();
            std::fs::remove_file(&planted).unwrap();
            result
        })
        .unwrap();
    // The repository itself was never harmed.
    f.repo.run(["check", "--read-data"]).assert_ok();
}

/// Key and config files of a real repository, damaged: opening fails with
/// an error or succeeds with the right key, never panics.
#[test]
fn damaged_key_and_config_files_never_panic() {
    let f = fixture(Encryption::Aes256Gcm);
    let key_dir = f.repo.path.join("keys");
    let key_name = list_dir(&key_dir).remove(0);
    let key_path = key_dir.join(std::str::from_utf8(&key_name).unwrap());
    let key = std::fs::read(&key_path).unwrap();
    let config_path = f.repo.path.join("config");
    let config = std::fs::read(&config_path).unwrap();
    let strategy = (any::<bool>(), damage());
    let open = || {
        Repository::open(Arc::new(LocalBackend::new(&f.repo.path)), || {
            Ok(PASSWORD.as_bytes().to_vec())
        })
    };
    let right = open().unwrap().blob_id(b"probe");
    // Few cases: each opening of an intact key file derives a real Argon2 key.
    runner("damaged_key_and_config_files_never_panic", 24)
        .run(&strategy, |(damage_key, d)| {
            if damage_key {
                write(&key_path, &d.apply(&key));
            } else {
                write(&config_path, &d.apply(&config));
            }
            if let Ok(repo) = open() {
                prop_assert_eq!(repo.blob_id(b"probe"), right);
            }
            write(&key_path, &key);
            write(&config_path, &config);
            Ok(())
        })
        .unwrap();
}

#[test]
fn index_file_decoding_never_panics() {
    // The index decoder the repository uses, on its own: arbitrary bytes.
    runner("index_file_decoding_never_panics", 3000)
        .run(&bytes(600), |data| {
            if let Ok(file) = postcard::from_bytes::<IndexFile>(&data) {
                let again: IndexFile =
                    postcard::from_bytes(&postcard::to_stdvec(&file).unwrap()).unwrap();
                prop_assert_eq!(again, file);
            }
            Ok(())
        })
        .unwrap();
}

// ---------------------------------------------------------------- parity

#[test]
fn parity_files_never_panic_and_never_repair_to_wrong_bytes() {
    use rewind::format::{parity, parity::Outcome};
    let data = common::Rng::new(seed("parity_files/data")).bytes(20_000);
    let good = parity::compute(&data, 10).unwrap();
    let damaged_parity = damage().prop_map({
        let good = good.clone();
        move |d| d.apply(&good)
    });
    let damaged_data = damage().prop_map({
        let data = data.clone();
        move |d| d.apply(&data)
    });
    let strategy = prop_oneof![
        (bytes(300), bytes(600)),
        (Just(data.clone()), damaged_parity),
        (damaged_data, Just(good.clone())),
    ];
    runner(
        "parity_files_never_panic_and_never_repair_to_wrong_bytes",
        1500,
    )
    .run(&strategy, |(file, parity_file)| {
        let sound = parity::is_sound(&file, &parity_file);
        let genuine = parity_file == good;
        match parity::repair(&file, &parity_file) {
            // Against the genuine parity, what is intact or repaired
            // is the very file it protects.
            Ok(Outcome::Intact) => prop_assert!(!genuine || file == data),
            Ok(Outcome::Repaired { data: repaired, .. }) => {
                prop_assert!(!sound);
                prop_assert!(!genuine || repaired == data, "repaired to other bytes");
            }
            Err(_) => prop_assert!(!sound),
        }
        Ok(())
    })
    .unwrap();
}

// ------------------------------------------------------ snapshot manifests

#[test]
fn snapshot_manifest_decoding_never_panics() {
    let f = fixture(Encryption::None);
    let manifest = f.snapshot_json.clone();
    let strategy = prop_oneof![bytes(400), damage().prop_map(move |d| d.apply(&manifest)),];
    runner("snapshot_manifest_decoding_never_panics", 3000)
        .run(&strategy, |data| {
            if let Ok(snapshot) = serde_json::from_slice::<rewind::Snapshot>(&data) {
                let _ = (snapshot.time_label(), snapshot.same_paths(&snapshot.paths));
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn any_decoded_index_file_loads_into_an_index() {
    runner("any_decoded_index_file_loads_into_an_index", 3000)
        .run(&bytes(600), |data| {
            if let Ok(file) = postcard::from_bytes::<IndexFile>(&data) {
                // Built at once, as a load does, and blob by blob, as a
                // backup adds.
                let loaded = rewind::format::Index::from_packs(file.packs.iter());
                let mut added = rewind::format::Index::new();
                added.add_file(&file);
                added.compact();
                for index in [&loaded, &added] {
                    for blob in file.packs.iter().flat_map(|p| &p.blobs) {
                        let location = index.get(&blob.id);
                        prop_assert!(location.is_some(), "a loaded blob is not found");
                        let _ = index.pack(location.unwrap().pack());
                    }
                }
            }
            Ok(())
        })
        .unwrap();
}
