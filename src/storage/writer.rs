//! Writing a stream of unknown length (a document rewritten on the fly) to one object while
//! holding at most one part: a single put when it all fits in one part, else a multipart
//! upload of equal parts, as R2 requires. The part is held outside wasm memory (in the Worker,
//! as JavaScript arrays joined natively when it goes out), so concurrent fills of big
//! documents do not add up in the wasm memory.

use std::rc::Rc;

use crate::http::Body;
use crate::platform::digest::{joined, Piece};
use crate::platform::{ObjectMeta, ObjectStore, PutOptions, PutOutcome, StoreError, StoreResult, UploadedPart};

pub struct ObjectWriter {
    store: Rc<dyn ObjectStore>,
    key: String,
    opts: PutOptions,
    part_size: usize,
    /// The part being filled, and its length.
    pieces: Vec<Piece>,
    buffered: usize,
    upload: Option<String>,
    parts: Vec<UploadedPart>,
}

impl ObjectWriter {
    pub fn new(store: Rc<dyn ObjectStore>, key: &str, opts: PutOptions) -> ObjectWriter {
        ObjectWriter::with_part_size(store, key, opts, super::STREAM_PART_SIZE)
    }

    pub fn with_part_size(store: Rc<dyn ObjectStore>, key: &str, opts: PutOptions, part_size: usize) -> ObjectWriter {
        ObjectWriter { store, key: key.to_string(), opts, part_size, pieces: Vec::new(), buffered: 0, upload: None, parts: Vec::new() }
    }

    pub async fn write(&mut self, mut data: &[u8]) -> StoreResult<()> {
        while !data.is_empty() {
            let take = (self.part_size - self.buffered).min(data.len());
            let (now, later) = data.split_at(take);
            self.pieces.push(Piece::copied(now));
            self.buffered += take;
            data = later;
            // A full part goes out only once more bytes follow: the last part may be short,
            // never empty.
            if self.buffered == self.part_size && !data.is_empty() {
                self.flush_part().await?;
            }
        }
        Ok(())
    }

    fn take_part(&mut self) -> Body {
        self.buffered = 0;
        joined(std::mem::take(&mut self.pieces))
    }

    async fn flush_part(&mut self) -> StoreResult<()> {
        if self.upload.is_none() {
            let id = self.store.create_multipart(&self.key, self.opts.clone()).await?;
            self.upload = Some(id);
        }
        let id = self.upload.clone().unwrap_or_default();
        let part = self.take_part();
        let number = self.parts.len() as u16 + 1;
        let uploaded = self.store.upload_part(&self.key, &id, number, part).await?;
        self.parts.push(uploaded);
        Ok(())
    }

    pub async fn finish(mut self) -> StoreResult<ObjectMeta> {
        let Some(id) = self.upload.clone() else {
            let body = self.take_part();
            return match self.store.put(&self.key, body, self.opts.clone()).await? {
                PutOutcome::Stored(meta) => Ok(meta),
                other => Err(StoreError::Backend(format!("write of {} refused: {other:?}", self.key))),
            };
        };
        if self.buffered > 0 {
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
                assert!(w.buffered <= STREAM_PART_SIZE, "buffered {}", w.buffered);
                assert_eq!(w.buffered, w.pieces.iter().map(Piece::len).sum::<usize>());
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
