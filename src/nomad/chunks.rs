//! Decoding a response body while it arrives: the async side sends the body's chunks
//! over a small channel, and a blocking task reads them as one [`std::io::Read`].
//!
//! A list of 10,000 allocations is many megabytes of JSON; held whole (and copied into
//! one buffer) it would set the operator's peak memory. Streamed, only a few chunks
//! and the decoded items are held at once.

use std::io::{self, Read};

use bytes::{Buf, Bytes};
use tokio::sync::mpsc;

/// Chunks in flight between the connection and the decoder.
pub(crate) const CHUNKS_IN_FLIGHT: usize = 4;

/// The receiving end: a blocking reader over the chunks sent to it. It ends (reads 0)
/// when the sender is dropped.
pub(crate) struct ChunkReader {
    chunks: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl ChunkReader {
    /// A reader of the chunks that arrive on `chunks`.
    pub(crate) fn new(chunks: mpsc::Receiver<Bytes>) -> Self {
        Self {
            chunks,
            current: Bytes::new(),
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_the_chunks_in_order_across_boundaries_then_ends() {
        let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let decoder = tokio::task::spawn_blocking(move || {
            serde_json::from_reader::<_, Vec<u32>>(io::BufReader::new(ChunkReader::new(rx)))
        });
        for chunk in ["[1,", "", "2", "3,4", "]"] {
            tx.send(Bytes::from(chunk)).await.expect("send");
        }
        drop(tx);
        let decoded = decoder.await.expect("join").expect("decode");
        assert_eq!(decoded, [1, 23, 4]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_body_cut_short_is_a_decode_error() {
        let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let decoder = tokio::task::spawn_blocking(move || {
            serde_json::from_reader::<_, Vec<u32>>(ChunkReader::new(rx))
        });
        tx.send(Bytes::from("[1,2")).await.expect("send");
        drop(tx);
        assert!(decoder.await.expect("join").is_err());
    }
}
