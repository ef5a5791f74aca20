//! The platform's byte stream, carried opaquely by `Body::Stream`.
//!
//! In the Worker it is a JS `ReadableStream` that goes from R2, a request or an upstream
//! response to its destination without entering wasm. Natively it stands in for one with a
//! byte buffer, or a stream of pieces once gated, so the same handler paths run under
//! `cargo test` and a reader sees a body that failed verification fail as a client does.

use crate::http::BodyError;

#[cfg(not(target_arch = "wasm32"))]
pub struct PlatformStream {
    source: Source,
    length: Option<u64>,
}

/// Bytes already in memory, or pieces still to come (a gated stream, or a tee of one).
#[cfg(not(target_arch = "wasm32"))]
enum Source {
    Bytes(Vec<u8>),
    Chunks(crate::http::Chunks),
}

/// What a reader gets instead of the last piece of a body that failed verification.
pub const FAILED_VERIFICATION: &str = "upstream content failed verification";

#[cfg(not(target_arch = "wasm32"))]
impl PlatformStream {
    pub fn from_bytes(data: Vec<u8>) -> Self {
        let length = Some(data.len() as u64);
        PlatformStream { source: Source::Bytes(data), length }
    }

    pub fn length(&self) -> Option<u64> {
        self.length
    }

    /// The pieces as they come, `length` bytes in all when known: a body that may stall or
    /// break mid-way, as a network's does.
    pub fn from_pieces(pieces: crate::http::Chunks, length: Option<u64>) -> Self {
        PlatformStream { source: Source::Chunks(pieces), length }
    }

    /// Natively the bytes come in 64 KiB pieces, so chunk boundaries get exercised.
    pub fn into_chunks(self) -> crate::http::Chunks {
        use futures::StreamExt;
        match self.source {
            Source::Bytes(data) => {
                let pieces: Vec<Result<Vec<u8>, BodyError>> = data.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
                futures::stream::iter(pieces).boxed_local()
            }
            Source::Chunks(chunks) => chunks,
        }
    }

    pub async fn read_capped(self, limit: u64) -> Result<Vec<u8>, BodyError> {
        use futures::StreamExt;
        let mut chunks = match self.source {
            Source::Bytes(data) if data.len() as u64 > limit => return Err(BodyError::TooLarge { limit }),
            Source::Bytes(data) => return Ok(data),
            Source::Chunks(chunks) => chunks,
        };
        let mut out = Assembler::new(self.length, limit);
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            out.push_with(chunk.len(), |dest| dest.copy_from_slice(&chunk))?;
        }
        Ok(out.finish())
    }

    /// Two streams with the same pieces, read independently (what one side has not read yet
    /// waits in its queue).
    pub fn tee(self) -> (PlatformStream, PlatformStream) {
        let length = self.length;
        match self.source {
            Source::Bytes(data) => (PlatformStream::from_bytes(data.clone()), PlatformStream::from_bytes(data)),
            Source::Chunks(chunks) => {
                let (a, b) = tee::split(chunks);
                (PlatformStream { source: Source::Chunks(a), length }, PlatformStream { source: Source::Chunks(b), length })
            }
        }
    }

    /// Passes the pieces through but holds the last one back until `verdict` resolves: on
    /// `false` the stream fails instead, so a reader never receives a complete body that
    /// failed verification on the way into the cache (as the Worker's gate does).
    pub fn gate(self, verdict: futures::future::LocalBoxFuture<'static, bool>) -> PlatformStream {
        use futures::StreamExt;
        let length = self.length;
        let state = Some((self.into_chunks(), None::<Vec<u8>>, verdict));
        let gated = futures::stream::unfold(state, |state| async move {
            let (mut chunks, mut held, verdict) = state?;
            loop {
                match chunks.next().await {
                    Some(Ok(piece)) if piece.is_empty() => {}
                    Some(Ok(piece)) => {
                        if let Some(previous) = held.replace(piece) {
                            return Some((Ok(previous), Some((chunks, held, verdict))));
                        }
                    }
                    Some(Err(e)) => return Some((Err(e), None)),
                    None if verdict.await => return held.map(|last| (Ok(last), None)),
                    None => return Some((Err(BodyError::Io(FAILED_VERIFICATION.into())), None)),
                }
            }
        });
        PlatformStream { source: Source::Chunks(gated.boxed_local()), length }
    }

    /// Gathers the pieces at once (natively a made stream knows its length).
    pub async fn from_chunks(mut chunks: crate::http::Chunks) -> Result<PlatformStream, BodyError> {
        use futures::StreamExt;
        let mut data = Vec::new();
        while let Some(c) = chunks.next().await {
            data.extend_from_slice(&c?);
        }
        Ok(PlatformStream::from_bytes(data))
    }
}

/// A native tee of a piece stream: whichever side reads first pulls the next piece from the
/// source and queues a copy for the other.
#[cfg(not(target_arch = "wasm32"))]
mod tee {
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::rc::Rc;
    use std::task::{Poll, Waker};

    use futures::StreamExt;

    use crate::http::{BodyError, Chunks};

    struct Shared {
        source: Chunks,
        queues: [VecDeque<Result<Vec<u8>, BodyError>>; 2],
        /// The side waiting on the source, woken when the other side pulls a piece for it.
        waiting: [Option<Waker>; 2],
        ended: bool,
    }

    pub(super) fn split(source: Chunks) -> (Chunks, Chunks) {
        let shared = Rc::new(RefCell::new(Shared { source, queues: Default::default(), waiting: Default::default(), ended: false }));
        (side(shared.clone(), 0), side(shared, 1))
    }

    fn side(shared: Rc<RefCell<Shared>>, me: usize) -> Chunks {
        let other = 1 - me;
        futures::stream::poll_fn(move |cx| {
            let mut s = shared.borrow_mut();
            let Shared { source, queues, waiting, ended } = &mut *s;
            let (mine, theirs) = match queues {
                [a, b] if me == 0 => (a, b),
                [a, b] => (b, a),
            };
            if let Some(item) = mine.pop_front() {
                return Poll::Ready(Some(item));
            }
            if *ended {
                return Poll::Ready(None);
            }
            let polled = source.poll_next_unpin(cx);
            match &polled {
                Poll::Pending => {
                    if let Some(slot) = waiting.get_mut(me) {
                        *slot = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Some(item)) => theirs.push_back(item.clone()),
                Poll::Ready(None) => *ended = true,
            }
            if let Some(w) = waiting.get_mut(other).and_then(Option::take) {
                w.wake();
            }
            polled
        })
        .boxed_local()
    }
}

#[cfg(target_arch = "wasm32")]
pub struct PlatformStream {
    pub raw: web_sys::ReadableStream,
    length: Option<u64>,
}

#[cfg(target_arch = "wasm32")]
impl PlatformStream {
    pub fn new(raw: web_sys::ReadableStream, length: Option<u64>) -> Self {
        PlatformStream { raw, length }
    }

    pub fn length(&self) -> Option<u64> {
        self.length
    }

    pub fn into_chunks(self) -> crate::http::Chunks {
        use futures::StreamExt;
        use wasm_bindgen::JsCast;
        // In pieces of up to 256 KiB: each crossing into wasm has a fixed cost.
        wasm_streams::ReadableStream::from_raw(js::pieces(&self.raw, piece_size(self.length)).unchecked_into())
            .into_stream()
            .map(|chunk| {
                let chunk = chunk.map_err(|e| BodyError::Io(crate::platform::error_line(&format!("{e:?}"))))?;
                Ok(js_sys::Uint8Array::new(&chunk).to_vec())
            })
            .boxed_local()
    }

    /// Two streams with the same bytes (and the same known length), read independently: one
    /// for the client, one for R2.
    pub fn tee(self) -> (PlatformStream, PlatformStream) {
        let pair = self.raw.tee();
        use wasm_bindgen::JsCast;
        let a: web_sys::ReadableStream = pair.get(0).unchecked_into();
        let b: web_sys::ReadableStream = pair.get(1).unchecked_into();
        (PlatformStream::new(a, self.length), PlatformStream::new(b, self.length))
    }

    /// Passes the chunks through untouched but holds the last one back until `verdict`
    /// resolves: on `false` the stream errors instead, so a client never receives a complete
    /// body that failed verification on the way into the cache. The bytes never enter wasm and
    /// are read natively in 256 KiB pieces: a gate that handled each ~4 KiB network read (in
    /// Rust or in JavaScript) held a 512 MiB pass-through at ~95 MB/s locally; this one ~950.
    pub fn gate(self, verdict: futures::future::LocalBoxFuture<'static, bool>) -> PlatformStream {
        use futures::FutureExt;
        use wasm_bindgen::JsValue;
        let length = self.length;
        let verdict = wasm_bindgen_futures::future_to_promise(verdict.map(|ok| Ok(JsValue::from_bool(ok))));
        let gated = js::gate(&self.raw, piece_size(length), &verdict);
        PlatformStream::new(fixed_length(gated, length), length)
    }

    /// A stream made in Rust; its length is unknown.
    pub async fn from_chunks(chunks: crate::http::Chunks) -> Result<PlatformStream, BodyError> {
        use futures::StreamExt;
        use wasm_bindgen::{JsCast, JsValue};
        let js = chunks.map(|c| {
            c.map(|bytes| JsValue::from(js_sys::Uint8Array::from(bytes.as_slice())))
                .map_err(|e| JsValue::from_str(&e.to_string()))
        });
        let raw = wasm_streams::ReadableStream::from_stream(js).into_raw().unchecked_into();
        Ok(PlatformStream::new(raw, None))
    }

    /// Pulls the stream into wasm, chunk by chunk, stopping as soon as it passes `limit`; a
    /// body refused half-way is cancelled (the client is told to stop sending).
    pub async fn read_capped(self, limit: u64) -> Result<Vec<u8>, BodyError> {
        use futures::StreamExt;
        use wasm_bindgen::JsCast;
        let mut chunks = wasm_streams::ReadableStream::from_raw(self.raw.unchecked_into()).into_stream();
        let mut out = Assembler::new(self.length, limit);
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| BodyError::Io(crate::platform::error_line(&format!("{e:?}"))))?;
            let array = js_sys::Uint8Array::new(&chunk);
            out.push_with(array.length() as usize, |dest| array.copy_to(dest))?;
        }
        Ok(out.finish())
    }
}

/// How much to read at a time: 256 KiB, or the whole body when it is known to be smaller (a
/// buffer of that size is allocated per read).
#[cfg(target_arch = "wasm32")]
fn piece_size(length: Option<u64>) -> u32 {
    const PIECE: u64 = 256 * 1024;
    length.unwrap_or(PIECE).clamp(1, PIECE) as u32
}

#[cfg(target_arch = "wasm32")]
mod js {
    use wasm_bindgen::prelude::wasm_bindgen;

    #[wasm_bindgen(inline_js = "
// Reads a byte stream in large pieces: a BYOB reader fills each buffer natively, so the code
// that handles the pieces (JavaScript here, or wasm) runs once per 256 KiB rather than once
// per network read (~4 KiB).
function piecewise(readable, size) {
  try {
    const reader = readable.getReader({ mode: 'byob' });
    const read = typeof reader.readAtLeast === 'function'
      ? () => reader.readAtLeast(size, new Uint8Array(size))
      : () => reader.read(new Uint8Array(size));
    return { read, cancel: (reason) => reader.cancel(reason) };
  } catch {
    // Not a byte stream: chunk by chunk, as it comes.
    const reader = readable.getReader();
    return { read: () => reader.read(), cancel: (reason) => reader.cancel(reason) };
  }
}

export function pieces(readable, size) {
  const source = piecewise(readable, size);
  return new ReadableStream({
    async pull(controller) {
      for (;;) {
        const { value, done } = await source.read();
        if (value !== undefined && value.byteLength > 0) { controller.enqueue(value); return; }
        if (done) { controller.close(); return; }
      }
    },
    cancel(reason) { return source.cancel(reason); },
  });
}

export function gate(readable, size, verdict) {
  const source = piecewise(readable, size);
  let held = null;
  return new ReadableStream({
    async pull(controller) {
      for (;;) {
        const { value, done } = await source.read();
        if (value !== undefined && value.byteLength > 0) {
          const previous = held;
          held = value;
          if (previous !== null) { controller.enqueue(previous); return; }
        }
        if (done) {
          if (!(await verdict)) {
            controller.error(new Error('upstream content failed verification'));
          } else {
            if (held !== null) controller.enqueue(held);
            controller.close();
          }
          return;
        }
      }
    },
    cancel(reason) { return source.cancel(reason); },
  });
}
")]
    extern "C" {
        /// `readable` re-read in pieces of `size` bytes, the last one held until `verdict` (a
        /// Promise of a boolean) resolves; on `false` the stream errors instead of releasing it.
        pub fn gate(readable: &web_sys::ReadableStream, size: u32, verdict: &js_sys::Promise) -> web_sys::ReadableStream;
        /// `readable` re-read in pieces of `size` bytes (the last one shorter).
        pub fn pieces(readable: &web_sys::ReadableStream, size: u32) -> web_sys::ReadableStream;
    }
}

/// Pipes a stream made in wasm or JavaScript through the runtime's `FixedLengthStream`, so the response
/// carries a Content-Length (and R2 accepts it) when the length is known.
#[cfg(target_arch = "wasm32")]
fn fixed_length(raw: web_sys::ReadableStream, length: Option<u64>) -> web_sys::ReadableStream {
    use js_sys::{Array, Function, Reflect};
    use wasm_bindgen::{JsCast, JsValue};
    let Some(length) = length else { return raw };
    let attempt = || -> Result<web_sys::ReadableStream, JsValue> {
        let ctor: Function = Reflect::get(&js_sys::global(), &"FixedLengthStream".into())?.dyn_into()?;
        let fixed = Reflect::construct(&ctor, &Array::of1(&JsValue::from_f64(length as f64)))?;
        let writable = Reflect::get(&fixed, &"writable".into())?;
        let readable: web_sys::ReadableStream = Reflect::get(&fixed, &"readable".into())?.dyn_into()?;
        let pipe_to: Function = Reflect::get(raw.as_ref(), &"pipeTo".into())?.dyn_into()?;
        // The pipe's own promise only reports what the readable side reports anyway.
        let promise: js_sys::Promise = pipe_to.call1(raw.as_ref(), &writable)?.dyn_into()?;
        wasm_bindgen_futures::spawn_local(async move {
            let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
        });
        Ok(readable)
    };
    match attempt() {
        Ok(r) => r,
        Err(e) => {
            crate::logging::error(&format!("FixedLengthStream unavailable: {e:?}"));
            raw
        }
    }
}

/// A capped body gathered into one buffer. With a known length that is one allocation of
/// exactly that size. Without one, a growing `Vec` would double: each step copies and leaves
/// the old buffer behind as a hole a larger one cannot reuse, so a 32 MiB body took 66 MiB of
/// the isolate's heap. Instead the bytes gather in 1 MiB pieces and are joined once at the end
/// (twice the body at that moment, in blocks the next request can reuse).
pub struct Assembler {
    limit: u64,
    total: u64,
    exact: Option<Vec<u8>>,
    pieces: Vec<Vec<u8>>,
}

const ASSEMBLER_PIECE: usize = 1024 * 1024;

impl Assembler {
    pub fn new(length: Option<u64>, limit: u64) -> Assembler {
        let exact = length.filter(|n| *n <= limit).map(|n| Vec::with_capacity(n as usize));
        Assembler { limit, total: 0, exact, pieces: Vec::new() }
    }

    /// Appends `len` bytes that `fill` writes into the slice it is given.
    pub fn push_with(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> Result<(), BodyError> {
        if self.total.saturating_add(len as u64) > self.limit {
            return Err(BodyError::TooLarge { limit: self.limit });
        }
        self.total += len as u64;
        // Straight into the buffer when it has room (always, with a known length; within a
        // piece, mostly); staged only across a piece boundary.
        let target = match &mut self.exact {
            Some(v) => Some(v),
            None => self.pieces.last_mut().filter(|p| p.capacity() - p.len() >= len),
        };
        if let Some(v) = target {
            let start = v.len();
            v.resize(start + len, 0);
            if let Some(dest) = v.get_mut(start..) {
                fill(dest);
            }
            return Ok(());
        }
        let mut staged = vec![0; len];
        fill(&mut staged);
        self.push(&staged);
        Ok(())
    }

    fn push(&mut self, mut data: &[u8]) {
        if let Some(v) = &mut self.exact {
            v.extend_from_slice(data);
            return;
        }
        while !data.is_empty() {
            let room = self.pieces.last().map(|p| p.capacity() - p.len()).unwrap_or(0);
            if room == 0 {
                // Never a piece larger than the cap allows (a 16 KiB login body gets 16 KiB).
                let held: usize = self.pieces.iter().map(Vec::len).sum();
                let left = (self.limit as usize).saturating_sub(held).max(data.len());
                self.pieces.push(Vec::with_capacity(ASSEMBLER_PIECE.min(left)));
                continue;
            }
            let (now, later) = data.split_at(room.min(data.len()));
            if let Some(p) = self.pieces.last_mut() {
                p.extend_from_slice(now);
            }
            data = later;
        }
    }

    pub fn finish(self) -> Vec<u8> {
        if let Some(v) = self.exact {
            return v;
        }
        if self.pieces.len() == 1 {
            return self.pieces.into_iter().next().unwrap_or_default();
        }
        let mut out = Vec::with_capacity(self.total as usize);
        for p in self.pieces {
            out.extend_from_slice(&p);
        }
        out
    }
}

#[cfg(test)]
mod assembler_tests {
    use super::*;

    #[test]
    fn gathers_known_and_unknown_lengths_and_refuses_past_the_limit() {
        for length in [Some(3_000_000), None] {
            let mut a = Assembler::new(length, 3_000_000);
            let mut want = Vec::new();
            for i in 0..300u32 {
                let chunk: Vec<u8> = (0..10_000u32).map(|j| (i * 7 + j) as u8).collect();
                want.extend_from_slice(&chunk);
                a.push_with(chunk.len(), |d| d.copy_from_slice(&chunk)).unwrap();
            }
            assert_eq!(a.push_with(1, |_| {}), Err(BodyError::TooLarge { limit: 3_000_000 }));
            let got = a.finish();
            assert_eq!(got, want);
            assert_eq!(got.capacity(), want.len(), "one exact buffer");
        }
        assert!(Assembler::new(None, 10).finish().is_empty());
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod native_tests {
    use futures::executor::block_on;
    use futures::{FutureExt, StreamExt};

    use super::*;

    fn body(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn a_gate_holds_the_last_piece_until_the_verdict_and_fails_on_false() {
        let data = body(200_000);
        let (tx, rx) = futures::channel::oneshot::channel::<bool>();
        let gated = PlatformStream::from_bytes(data.clone()).gate(async move { rx.await.unwrap_or(false) }.boxed_local());
        assert_eq!(gated.length(), Some(200_000));
        let mut chunks = gated.into_chunks();
        let mut got = Vec::new();
        // Every piece but the last arrives before the verdict; then the stream waits.
        loop {
            match chunks.next().now_or_never() {
                Some(Some(piece)) => got.extend_from_slice(&piece.unwrap()),
                Some(None) => panic!("the stream ended before its verdict"),
                None => break,
            }
        }
        assert_eq!(got.len(), 3 * 64 * 1024, "all but the last 64 KiB piece");
        tx.send(false).unwrap();
        assert_eq!(block_on(chunks.next()), Some(Err(BodyError::Io(FAILED_VERIFICATION.into()))));
        assert_eq!(block_on(chunks.next()), None);
    }

    #[test]
    fn a_gated_body_reads_whole_on_true_and_fails_whole_reads_on_false() {
        let data = body(150_000);
        let pass = PlatformStream::from_bytes(data.clone()).gate(async { true }.boxed_local());
        assert_eq!(block_on(pass.read_capped(u64::MAX)).unwrap(), data);
        let fail = PlatformStream::from_bytes(data.clone()).gate(async { false }.boxed_local());
        assert_eq!(block_on(fail.read_capped(u64::MAX)), Err(BodyError::Io(FAILED_VERIFICATION.into())));
        let empty = PlatformStream::from_bytes(Vec::new()).gate(async { false }.boxed_local());
        assert!(block_on(empty.read_capped(u64::MAX)).is_err(), "even an empty body fails");
        let capped = PlatformStream::from_bytes(data).gate(async { true }.boxed_local());
        assert_eq!(block_on(capped.read_capped(1000)), Err(BodyError::TooLarge { limit: 1000 }));
    }

    #[test]
    fn a_pull_through_body_that_fails_its_checksum_fails_for_the_reader_and_is_not_cached() {
        use sha2::Digest;
        let mem = crate::platform::memory::MemoryPlatform::new();
        let data = body(200_000);
        for (key, sum) in [("good", sha2::Sha256::digest(&data)), ("bad", sha2::Sha256::digest(b"other"))] {
            let opts = crate::platform::PutOptions { checksum: Some(crate::platform::Checksum::Sha256(sum.to_vec())), ..Default::default() };
            let stream = PlatformStream::from_bytes(data.clone());
            let engine = crate::upstream::engine::Engine::new(mem.platform.clone(), Default::default());
            let blob = crate::upstream::engine::Blob { key: key.into(), checksum: None, marker: None, label: key.into() };
            let gated = engine.cache_while_streaming(blob, stream, opts);
            // The cache fill runs in the background while the reader waits for its verdict.
            let read = block_on(mem.background.run_until(gated.read_capped(u64::MAX)));
            match key {
                "good" => assert_eq!(read.unwrap(), data),
                _ => assert_eq!(read, Err(BodyError::Io(FAILED_VERIFICATION.into()))),
            }
        }
        assert_eq!(mem.store.keys(), ["good"]);
    }

    #[test]
    fn a_tee_of_a_gated_stream_gives_both_sides_every_piece() {
        let data = body(300_000);
        let (a, b) = PlatformStream::from_bytes(data.clone()).gate(async { true }.boxed_local()).tee();
        assert_eq!((a.length(), b.length()), (Some(300_000), Some(300_000)));
        let (a, b) = block_on(futures::future::join(a.read_capped(u64::MAX), b.read_capped(u64::MAX)));
        assert_eq!(a.unwrap(), data);
        assert_eq!(b.unwrap(), data);
        let (a, b) = PlatformStream::from_bytes(data).gate(async { false }.boxed_local()).tee();
        assert!(block_on(a.read_capped(u64::MAX)).is_err());
        assert!(block_on(b.read_capped(u64::MAX)).is_err(), "the side read second sees the failure too");
    }
}
