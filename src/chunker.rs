//! Content-defined chunking (FastCDC): boundaries follow content, so an
//! insertion early in a file changes only the chunks around it.

use std::io::Read;

use fastcdc::v2020::{Normalization, StreamCDC};

use crate::error::{Error, Result};
use crate::repo::ChunkerParams;

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
    pub fn chunk<R: Read>(
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
    fn seed_moves_boundaries() {
        let data = pseudo_random(8 << 20, 3);
        assert_ne!(cut(&data, 1), cut(&data, 2));
    }
}
