//! Content-defined chunking (FastCDC): boundaries follow content, so an
//! insertion early in a file changes only the chunks around it.

use std::io::Read;

use fastcdc::v2020::{FastCDC, Normalization, StreamCDC};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The chunker's sizes, stored in the repository's config: the same
/// parameters (and seed) cut the same data into the same chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams {
            min_size: 256 * 1024,
            avg_size: 1024 * 1024,
            max_size: 4 * 1024 * 1024,
        }
    }
}

impl ChunkerParams {
    /// Bounds that the FastCDC implementation accepts; checked on open so a
    /// damaged config gives an error, not a panic.
    pub fn validate(&self) -> Result<()> {
        use fastcdc::v2020::{
            AVERAGE_MAX, AVERAGE_MIN, MAXIMUM_MAX, MAXIMUM_MIN, MINIMUM_MAX, MINIMUM_MIN,
        };
        let ok = (MINIMUM_MIN..=MINIMUM_MAX).contains(&self.min_size)
            && (AVERAGE_MIN..=AVERAGE_MAX).contains(&self.avg_size)
            && (MAXIMUM_MIN..=MAXIMUM_MAX).contains(&self.max_size)
            && self.min_size <= self.avg_size
            && self.avg_size <= self.max_size;
        if ok {
            Ok(())
        } else {
            Err(Error::corrupt(format!(
                "chunker parameters out of range: {self:?}"
            )))
        }
    }
}

pub struct Chunker {
    params: ChunkerParams,
    seed: u64,
}

impl Chunker {
    /// `params` must have passed `ChunkerParams::validate`.
    pub fn new(params: ChunkerParams, seed: u64) -> Chunker {
        Chunker { params, seed }
    }

    /// Splits a stream into chunks, calling `sink` with each in order.
    pub fn chunk<R: Read>(&self, source: R, sink: impl FnMut(Vec<u8>) -> Result<()>) -> Result<()> {
        self.chunk_sized(source, None, sink)
    }

    /// Like `chunk`, for a source of about `expected_len` bytes: one no
    /// larger than a chunk can be is read whole and cut in memory, which
    /// spares small files the streaming chunker's chunk-sized buffer.
    pub fn chunk_sized<R: Read>(
        &self,
        mut source: R,
        expected_len: Option<u64>,
        sink: impl FnMut(Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        let max = self.params.max_size as u64;
        if let Some(len) = expected_len.filter(|len| *len <= max) {
            let mut data = Vec::with_capacity(len as usize);
            // One byte past the expected end tells a file that grew.
            (&mut source)
                .take(max + 1)
                .read_to_end(&mut data)
                .map_err(|e| Error::io("read failed", e))?;
            if data.len() as u64 <= max {
                return self.cut(data, sink);
            }
            // It grew past a chunk: what was read so far leads the stream.
            return self.stream(std::io::Cursor::new(data).chain(source), sink);
        }
        self.stream(source, sink)
    }

    fn cut(&self, data: Vec<u8>, mut sink: impl FnMut(Vec<u8>) -> Result<()>) -> Result<()> {
        if data.len() <= self.params.min_size as usize {
            return if data.is_empty() { Ok(()) } else { sink(data) };
        }
        let cuts: Vec<(usize, usize)> = FastCDC::with_level_and_seed(
            &data,
            self.params.min_size,
            self.params.avg_size,
            self.params.max_size,
            Normalization::Level1,
            self.seed,
        )
        .map(|c| (c.offset, c.length))
        .collect();
        if cuts.len() == 1 {
            return sink(data);
        }
        for (offset, length) in cuts {
            sink(data[offset..offset + length].to_vec())?;
        }
        Ok(())
    }

    fn stream<R: Read>(
        &self,
        source: R,
        mut sink: impl FnMut(Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        let stream = StreamCDC::with_level_and_seed(
            source,
            self.params.min_size,
            self.params.avg_size,
            self.params.max_size,
            Normalization::Level1,
            self.seed,
        );
        for chunk in stream {
            let chunk = chunk.map_err(|e| match e {
                fastcdc::v2020::Error::IoError(io) => Error::io("read failed", io),
                other => Error::io("read failed", std::io::Error::other(other.to_string())),
            })?;
            sink(chunk.data)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn cut(data: &[u8], seed: u64) -> Vec<Vec<u8>> {
        let mut chunks = Vec::new();
        Chunker::new(ChunkerParams::default(), seed)
            .chunk(data, |c| {
                chunks.push(c);
                Ok(())
            })
            .unwrap();
        chunks
    }

    #[test]
    fn deterministic_and_complete() {
        let data = pseudo_random(12 << 20, 1);
        let a = cut(&data, 9);
        assert_eq!(a, cut(&data, 9));
        assert_eq!(a.concat(), data);
        let p = ChunkerParams::default();
        assert!(a[..a.len() - 1]
            .iter()
            .all(|c| c.len() >= p.min_size as usize && c.len() <= p.max_size as usize));
        assert!(a.len() > 4, "about 1 MiB chunks expected, got {}", a.len());
    }

    #[test]
    fn shifted_data_keeps_most_chunks() {
        let data = pseudo_random(16 << 20, 2);
        let mut shifted = b"inserted at the front".to_vec();
        shifted.extend_from_slice(&data);
        let before = cut(&data, 0);
        let after = cut(&shifted, 0);
        let shared = after.iter().filter(|c| before.contains(c)).count();
        assert!(
            shared + 2 >= before.len(),
            "only {shared} of {} chunks survived a shift",
            before.len()
        );
    }

    #[test]
    fn sized_sources_cut_like_streams() {
        let chunker = Chunker::new(ChunkerParams::default(), 4);
        for len in [
            0usize,
            10,
            300_000,
            3 << 20,
            4 << 20,
            (4 << 20) + 1,
            9 << 20,
        ] {
            let data = pseudo_random(len, len as u64);
            let mut streamed = Vec::new();
            chunker
                .chunk(data.as_slice(), |c| {
                    streamed.push(c);
                    Ok(())
                })
                .unwrap();
            for hint in [len as u64, 1, 0] {
                let mut sized = Vec::new();
                chunker
                    .chunk_sized(data.as_slice(), Some(hint), |c| {
                        sized.push(c);
                        Ok(())
                    })
                    .unwrap();
                assert_eq!(sized, streamed, "length {len}, hint {hint}");
            }
        }
    }

    #[test]
    fn seed_moves_boundaries() {
        let data = pseudo_random(8 << 20, 3);
        assert_ne!(cut(&data, 1), cut(&data, 2));
    }
}
