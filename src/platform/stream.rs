//! The platform's byte stream, carried opaquely by `Body::Stream`.
//!
//! In the Worker it is a JS `ReadableStream` that goes from R2, a request or an upstream
//! response to its destination without entering wasm. Natively it is a byte buffer standing
//! in for one, so the same handler paths run under `cargo test`.

use crate::http::BodyError;

#[cfg(not(target_arch = "wasm32"))]
pub struct PlatformStream {
    data: Vec<u8>,
}

#[cfg(not(target_arch = "wasm32"))]
impl PlatformStream {
    pub fn from_bytes(data: Vec<u8>) -> Self {
        PlatformStream { data }
    }

    pub fn length(&self) -> Option<u64> {
        Some(self.data.len() as u64)
    }

    /// Natively the bytes come in 64 KiB pieces, so chunk boundaries get exercised.
    pub fn into_chunks(self) -> crate::http::Chunks {
        use futures::StreamExt;
        let pieces: Vec<Result<Vec<u8>, BodyError>> = self.data.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
        futures::stream::iter(pieces).boxed_local()
    }

    pub async fn read_capped(self, limit: u64) -> Result<Vec<u8>, BodyError> {
        if self.data.len() as u64 > limit {
            return Err(BodyError::TooLarge { limit });
        }
        Ok(self.data)
    }

    pub fn tee(self) -> (PlatformStream, PlatformStream) {
        (PlatformStream { data: self.data.clone() }, self)
    }

    /// Natively the bytes are all there already; the verdict is checked by the tests through
    /// what got stored.
    pub fn gate(self, _verdict: futures::future::LocalBoxFuture<'static, bool>) -> PlatformStream {
        self
    }

    pub async fn from_chunks(mut chunks: crate::http::Chunks) -> Result<PlatformStream, BodyError> {
        use futures::StreamExt;
        let mut data = Vec::new();
        while let Some(c) = chunks.next().await {
            data.extend_from_slice(&c?);
        }
        Ok(PlatformStream { data })
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
