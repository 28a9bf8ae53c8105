//! Seeded randomness: a seed per test that can be replayed, and a generator
//! of decisions, incompressible bytes, compressible text and file times.

use std::path::Path;

use super::files::{all_paths, set_times};

/// Seed for a test: `REWIND_TEST_SEED` if set, else a fixed value derived
/// from the test's name. Printed, so a failure can be replayed.
pub fn seed(test: &str) -> u64 {
    let seed = match std::env::var("REWIND_TEST_SEED") {
        Ok(s) => s.parse().expect("REWIND_TEST_SEED must be a u64"),
        Err(_) => u64::from_le_bytes(
            blake3::hash(test.as_bytes()).as_bytes()[..8]
                .try_into()
                .unwrap(),
        ),
    };
    eprintln!("{test}: seed {seed} (set REWIND_TEST_SEED={seed} to replay)");
    seed
}

/// SplitMix64 for decisions, BLAKE3 in XOF mode for bulk bytes (fast even in
/// an unoptimized test build).
pub struct Rng {
    state: u64,
    streams: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng {
            state: seed,
            streams: 0,
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo)
    }

    /// `len` incompressible bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        self.streams += 1;
        key[8..16].copy_from_slice(&self.streams.to_le_bytes());
        let mut out = vec![0u8; len];
        blake3::Hasher::new_keyed(&key)
            .finalize_xof()
            .fill(&mut out);
        out
    }

    /// About `len` bytes of log-like text that compresses well.
    pub fn text(&mut self, len: usize) -> Vec<u8> {
        const WORDS: &[&str] = &[
            "INFO",
            "WARN",
            "request",
            "served",
            "user",
            "GET",
            "/index.html",
            "200",
            "404",
            "latency",
            "ms",
            "backend",
            "cache",
            "miss",
            "hit",
            "session",
            "closed",
        ];
        let mut out = Vec::with_capacity(len + 100);
        let mut line = 0u64;
        while out.len() < len {
            line += 1;
            out.extend_from_slice(
                format!("2024-06-01T02:{:02}:{:02}Z ", line / 60 % 60, line % 60).as_bytes(),
            );
            for _ in 0..self.range(4, 12) {
                out.extend_from_slice(WORDS[self.below(WORDS.len() as u64) as usize].as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(format!("id={}\n", self.below(100_000)).as_bytes());
        }
        out.truncate(len);
        out
    }

    /// `lines` compressible lines of text.
    pub fn lines(&mut self, lines: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..lines {
            out.extend_from_slice(
                format!("line {i}: value {} status ok\n", self.below(1000)).as_bytes(),
            );
        }
        out
    }

    /// Random times with nanoseconds for every entry under `root` and
    /// `root` itself, children first so that directory times stick.
    pub fn set_all_times(&mut self, root: &Path) {
        let mut all = all_paths(root);
        all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for path in all {
            let mut t = || {
                (
                    1_000_000_000 + self.below(700_000_000) as i64,
                    self.below(1_000_000_000) as i64,
                )
            };
            let (a, m) = (t(), t());
            set_times(&path, a, m);
        }
    }
}
