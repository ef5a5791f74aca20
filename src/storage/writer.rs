//! Writing a stream of unknown length (a document rewritten on the fly) to one object while
//! holding at most one part in memory: a single put when it all fits in one part, else a
//! multipart upload of equal parts, as R2 requires.

use std::rc::Rc;

use crate::http::Body;
use crate::platform::{ObjectMeta, ObjectStore, PutOptions, PutOutcome, StoreError, StoreResult, UploadedPart};

pub struct ObjectWriter {
    store: Rc<dyn ObjectStore>,
    key: String,
    opts: PutOptions,
    part_size: usize,
    buf: Vec<u8>,
    upload: Option<String>,
    parts: Vec<UploadedPart>,
}

impl ObjectWriter {
    pub fn new(store: Rc<dyn ObjectStore>, key: &str, opts: PutOptions) -> ObjectWriter {
        ObjectWriter::with_part_size(store, key, opts, super::STREAM_PART_SIZE)
    }

    pub fn with_part_size(store: Rc<dyn ObjectStore>, key: &str, opts: PutOptions, part_size: usize) -> ObjectWriter {
        ObjectWriter { store, key: key.to_string(), opts, part_size, buf: Vec::new(), upload: None, parts: Vec::new() }
    }

    pub async fn write(&mut self, mut data: &[u8]) -> StoreResult<()> {
        while !data.is_empty() {
            let room = self.part_size - self.buf.len();
            let take = room.min(data.len());
            // Grow by doubling, but never past one part (plain doubling would reach 8 MiB for
            // a 5 MiB part, and concurrent fills add up in a 128 MB isolate).
            let needed = self.buf.len() + take;
            if needed > self.buf.capacity() {
                let target = (self.buf.capacity() * 2).max(needed).min(self.part_size);
                self.buf.reserve_exact(target - self.buf.len());
            }
            let (now, later) = data.split_at(take);
            self.buf.extend_from_slice(now);
            data = later;
            // A full part goes out only once more bytes follow: the last part may be short,
            // never empty.
            if self.buf.len() == self.part_size && !data.is_empty() {
                self.flush_part().await?;
            }
        }
        Ok(())
    }

    async fn flush_part(&mut self) -> StoreResult<()> {
        if self.upload.is_none() {
            let id = self.store.create_multipart(&self.key, self.opts.clone()).await?;
            self.upload = Some(id);
        }
        let id = self.upload.clone().unwrap_or_default();
        let part = std::mem::take(&mut self.buf);
        let number = self.parts.len() as u16 + 1;
        let uploaded = self.store.upload_part(&self.key, &id, number, Body::Bytes(part)).await?;
        self.parts.push(uploaded);
        Ok(())
    }

    pub async fn finish(mut self) -> StoreResult<ObjectMeta> {
        let Some(id) = self.upload.clone() else {
            let body = std::mem::take(&mut self.buf);
            return match self.store.put(&self.key, Body::Bytes(body), self.opts.clone()).await? {
                PutOutcome::Stored(meta) => Ok(meta),
                other => Err(StoreError::Backend(format!("write of {} refused: {other:?}", self.key))),
            };
        };
        if !self.buf.is_empty() {
            self.flush_part().await?;
        }
        let parts = std::mem::take(&mut self.parts);
        self.store.complete_multipart(&self.key, &id, parts).await
    }

    /// Gives up: nothing becomes visible under the key.
    pub async fn abort(self) {
        if let Some(id) = &self.upload {
            let _ = self.store.abort_multipart(&self.key, id).await;
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::storage::STREAM_PART_SIZE;
    use crate::platform::memory::{ManualClock, MemoryObjectStore};

    fn store() -> Rc<MemoryObjectStore> {
        Rc::new(MemoryObjectStore::new(Rc::new(ManualClock::new(0.0))))
    }

    async fn read(s: &MemoryObjectStore, key: &str) -> Vec<u8> {
        s.get(key, None).await.unwrap().unwrap().body.read_capped(u64::MAX).await.unwrap()
    }

    #[test]
    fn small_and_multipart_writes_round_trip() {
        futures::executor::block_on(async {
            const P: usize = STREAM_PART_SIZE;
            for (total, piece) in [(0usize, 1usize), (10, 3), (P, 1 << 20), (P + 1, 999_999), (2 * P, P), (2 * P + 5, 3_333_333)] {
                let s = store();
                let data: Vec<u8> = (0..total).map(|i| (i * 7 % 251) as u8).collect();
                let mut w = ObjectWriter::new(s.clone(), "k", PutOptions::default());
                for c in data.chunks(piece) {
                    w.write(c).await.unwrap();
                }
                w.finish().await.unwrap();
                assert_eq!(read(&s, "k").await, data, "total {total} piece {piece}");
                assert_eq!(s.open_uploads(), 0);
            }
        });
    }

    #[test]
    fn the_buffer_never_grows_past_one_part() {
        futures::executor::block_on(async {
            let s = store();
            let mut w = ObjectWriter::new(s.clone(), "k", PutOptions::default());
            for _ in 0..(STREAM_PART_SIZE / 4096 + 10) {
                w.write(&[3u8; 4096]).await.unwrap();
                assert!(w.buf.capacity() <= STREAM_PART_SIZE, "capacity {}", w.buf.capacity());
            }
            w.finish().await.unwrap();
        });
    }

    #[test]
    fn abort_leaves_nothing() {
        futures::executor::block_on(async {
            let s = store();
            let mut w = ObjectWriter::new(s.clone(), "k", PutOptions::default());
            w.write(&vec![1; STREAM_PART_SIZE + 10]).await.unwrap();
            w.abort().await;
            assert!(s.get("k", None).await.unwrap().is_none());
            assert_eq!(s.open_uploads(), 0);
        });
    }
}
