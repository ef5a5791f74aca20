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
        wasm_streams::ReadableStream::from_raw(self.raw.unchecked_into())
            .into_stream()
            .map(|chunk| {
                let chunk = chunk.map_err(|e| BodyError::Io(format!("{e:?}")))?;
                Ok(js_sys::Uint8Array::new(&chunk).to_vec())
            })
            .boxed_local()
    }

    /// Pulls the stream into wasm, chunk by chunk, stopping as soon as it passes `limit`.
    pub async fn read_capped(self, limit: u64) -> Result<Vec<u8>, BodyError> {
        use futures::StreamExt;
        use wasm_bindgen::JsCast;
        let mut chunks = wasm_streams::ReadableStream::from_raw(self.raw.unchecked_into()).into_stream();
        let mut out = Vec::with_capacity(self.length.unwrap_or(0).min(limit) as usize);
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| BodyError::Io(format!("{e:?}")))?;
            let array = js_sys::Uint8Array::new(&chunk);
            if out.len() as u64 + array.length() as u64 > limit {
                return Err(BodyError::TooLarge { limit });
            }
            let start = out.len();
            out.resize(start + array.length() as usize, 0);
            array.copy_to(&mut out[start..]);
        }
        Ok(out)
    }
}
