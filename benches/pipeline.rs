//! The backup data path, one stage at a time and end to end, on one thread:
//! chunk (FastCDC) → id (keyed BLAKE3) → compress (zstd) → seal (AES-256-GCM)
//! → pack. The input is 64 MiB of mixed data: half incompressible random
//! bytes, half log-like text, as a real backup sees both.
//!
//! Run: `cargo bench --bench pipeline` (add `-- --quick` for a fast pass).
//! Each stage reports its throughput in bytes of plaintext per second, so the
//! numbers compare directly: the end-to-end figure is bounded by the slowest
//! stage, and the archiver runs these stages on every core in parallel.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rewind::format::Chunker;
use rewind::format::{BlobKind, ChunkerParams, Keys, PackWriter};

const MIB: usize = 1024 * 1024;
/// Total input per iteration.
const INPUT_LEN: usize = 64 * MIB;
/// zstd level and pack size of a new repository (see repo/config.rs).
const LEVEL: i32 = 3;
const PACK_SIZE: usize = 16 * MIB;
/// The small-file case: 2,000 files of 8 KiB (about the median size of
/// /usr/include and /usr/share), each chunked as its own stream.
const SMALL_FILE: usize = 8 * 1024;
const SMALL_FILES: usize = 2000;

/// xorshift64: fast, deterministic, incompressible enough for zstd.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Lines like a web server or database log: repetitive structure, varying
/// numbers, so zstd compresses it several-fold, as it does real logs.
fn log_text(len: usize, seed: u64) -> Vec<u8> {
    const LEVELS: [&str; 4] = ["INFO", "WARN", "DEBUG", "ERROR"];
    const PATHS: [&str; 6] = [
        "/api/v1/users",
        "/api/v1/orders",
        "/static/app.js",
        "/login",
        "/api/v2/search?q=backup",
        "/healthz",
    ];
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = Vec::with_capacity(len + 256);
    let mut t = 1_717_200_000u64;
    while out.len() < len {
        let r = next();
        t += r % 3;
        let line = format!(
            "2024-06-01T{:02}:{:02}:{:02}.{:03}Z {} [worker-{}] {} {} status={} bytes={} dur_ms={} req={:016x}\n",
            (t / 3600) % 24,
            (t / 60) % 60,
            t % 60,
            r % 1000,
            LEVELS[(r >> 10) as usize % LEVELS.len()],
            (r >> 14) % 16,
            if r & (1 << 20) == 0 { "GET" } else { "POST" },
            PATHS[(r >> 21) as usize % PATHS.len()],
            [200, 200, 200, 304, 404, 500][(r >> 24) as usize % 6],
            (r >> 28) % 100_000,
            (r >> 45) % 2000,
            next(),
        );
        out.extend_from_slice(line.as_bytes());
    }
    out.truncate(len);
    out
}

/// Random and text interleaved in 8 MiB runs, so chunks of both kinds occur
/// throughout, as in a corpus of mixed files.
fn mixed_input() -> Vec<u8> {
    let random = random_bytes(INPUT_LEN / 2, 0x5eed);
    let text = log_text(INPUT_LEN / 2, 0x7e47);
    let run = 8 * MIB;
    let mut out = Vec::with_capacity(INPUT_LEN);
    for (r, t) in random.chunks(run).zip(text.chunks(run)) {
        out.extend_from_slice(r);
        out.extend_from_slice(t);
    }
    out
}

fn keys() -> Keys {
    let mut master = [0u8; 64];
    for (i, b) in master.iter_mut().enumerate() {
        *b = i as u8 ^ 0xa5;
    }
    Keys::from_master(&master)
}

fn chunks_of(data: &[u8], chunker: &Chunker) -> Vec<Vec<u8>> {
    let mut chunks = Vec::new();
    chunker
        .chunk(data, |c| {
            chunks.push(c);
            Ok(())
        })
        .expect("chunking a slice cannot fail");
    chunks
}

/// Compresses, seals and packs chunks whose ids are known; returns the bytes
/// stored, so nothing is optimised away.
fn pack_all(keys: &Keys, chunks: &[(rewind::Id, &[u8])]) -> usize {
    let mut stored = 0;
    let mut writer = PackWriter::new(keys, PACK_SIZE).unwrap();
    for (id, data) in chunks {
        writer.add(BlobKind::Data, *id, data, LEVEL).unwrap();
        if writer.len() >= PACK_SIZE {
            let full = std::mem::replace(&mut writer, PackWriter::new(keys, PACK_SIZE).unwrap());
            stored += full.finish().unwrap().bytes.len();
        }
    }
    if !writer.is_empty() {
        stored += writer.finish().unwrap().bytes.len();
    }
    stored
}

fn pipeline(c: &mut Criterion) {
    let input = mixed_input();
    let keys = keys();
    let chunker = Chunker::new(ChunkerParams::default(), keys.chunker_seed());
    let chunks = chunks_of(&input, &chunker);
    let identified: Vec<(rewind::Id, &[u8])> = chunks
        .iter()
        .map(|c| (keys.blob_id(c), c.as_slice()))
        .collect();
    {
        let stored = pack_all(&keys, &identified);
        eprintln!(
            "input {} MiB in {} chunks (mean {} KiB); stored {} MiB ({:.1}% of the input)",
            input.len() / MIB,
            chunks.len(),
            input.len() / chunks.len() / 1024,
            stored / MIB,
            100.0 * stored as f64 / input.len() as f64
        );
    }

    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(10));

    group.bench_function("chunk", |b| {
        b.iter(|| {
            let mut n = 0usize;
            chunker
                .chunk(black_box(input.as_slice()), |c| {
                    n += c.len();
                    Ok(())
                })
                .unwrap();
            n
        })
    });
    group.bench_function("hash", |b| {
        b.iter(|| {
            chunks
                .iter()
                .map(|c| keys.blob_id(black_box(c)).0[0] as usize)
                .sum::<usize>()
        })
    });
    group.bench_function("compress+seal+pack", |b| {
        b.iter(|| pack_all(&keys, black_box(&identified)))
    });
    group.bench_function("chunk+hash+compress+seal+pack", |b| {
        b.iter(|| {
            let mut stored = 0usize;
            let mut writer = PackWriter::new(&keys, PACK_SIZE).unwrap();
            chunker
                .chunk(black_box(input.as_slice()), |data| {
                    let id = keys.blob_id(&data);
                    writer.add(BlobKind::Data, id, &data, LEVEL)?;
                    if writer.len() >= PACK_SIZE {
                        let full =
                            std::mem::replace(&mut writer, PackWriter::new(&keys, PACK_SIZE)?);
                        stored += full.finish()?.bytes.len();
                    }
                    Ok(())
                })
                .unwrap();
            stored + writer.finish().unwrap().bytes.len()
        })
    });
    group.finish();

    // Many small files, each chunked on its own as the archiver does (with
    // the size from stat): the cost per call of the chunker shows here and
    // not above. `chunk_stream` is the same without a size, as for standard
    // input, through the streaming chunker.
    let files: Vec<&[u8]> = input.chunks(SMALL_FILE).take(SMALL_FILES).collect();
    let mut group = c.benchmark_group("small_files");
    group.throughput(Throughput::Bytes((SMALL_FILE * SMALL_FILES) as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    for (name, sized) in [("chunk_sized", true), ("chunk_stream", false)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut n = 0usize;
                for file in &files {
                    let sink = |c: Vec<u8>| {
                        n += c.len();
                        Ok(())
                    };
                    let file = black_box(*file);
                    if sized {
                        chunker.chunk_sized(file, Some(file.len() as u64), sink)
                    } else {
                        chunker.chunk(file, sink)
                    }
                    .unwrap();
                }
                n
            })
        });
    }
    group.bench_function("chunk_sized+hash+compress+seal+pack", |b| {
        b.iter(|| {
            let mut writer = PackWriter::new(&keys, PACK_SIZE).unwrap();
            for file in &files {
                let file = black_box(*file);
                chunker
                    .chunk_sized(file, Some(file.len() as u64), |data| {
                        writer
                            .add(BlobKind::Data, keys.blob_id(&data), &data, LEVEL)
                            .map(drop)
                    })
                    .unwrap();
            }
            writer.finish().unwrap().bytes.len()
        })
    });
    group.finish();

    // Compression alone, per kind of data: where zstd level 3 spends its time.
    let mut group = c.benchmark_group("compress_level3");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    let half = INPUT_LEN / 2;
    for (name, data) in [
        ("random", random_bytes(half, 1)),
        ("text", log_text(half, 2)),
    ] {
        let pieces = chunks_of(&data, &chunker);
        let ids: Vec<_> = pieces
            .iter()
            .map(|c| (keys.blob_id(c), c.as_slice()))
            .collect();
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_with_input(BenchmarkId::new("pack", name), &ids, |b, ids| {
            b.iter(|| pack_all(&keys, black_box(ids)))
        });
    }
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
