//! `ObjectStore` on an R2 bucket binding. Bodies stay JS streams end to end.

use std::collections::HashMap;

use async_trait::async_trait;
use worker::{Bucket, Conditional, Data, HttpMetadata, Include, ResponseBody};

use crate::http::Body;
use crate::platform::stream::PlatformStream;
use crate::platform::*;

pub struct R2Store {
    bucket: Bucket,
}

impl R2Store {
    pub fn new(bucket: Bucket) -> Self {
        R2Store { bucket }
    }
}

fn err(e: worker::Error) -> StoreError {
    StoreError::Backend(format!("R2: {}", crate::platform::error_line(&e.to_string())))
}

fn meta(o: &worker::Object) -> ObjectMeta {
    ObjectMeta {
        key: o.key(),
        size: o.size(),
        etag: o.etag(),
        content_type: o.http_metadata().content_type,
        custom: o.custom_metadata().unwrap_or_default().into_iter().collect(),
        uploaded_ms: o.uploaded().as_millis() as f64,
    }
}

/// A body as R2 takes it: streams pass through untouched (their length must be known).
pub(super) fn data(body: Body) -> Data {
    match body {
        Body::Empty => Data::Empty,
        Body::Bytes(b) => Data::Bytes(b),
        Body::Stream(s) => Data::ReadableStream(s.raw),
    }
}

fn condition(c: &Condition) -> Conditional {
    match c {
        Condition::EtagMatches(e) => Conditional { etag_matches: Some(e.clone()), ..Default::default() },
        Condition::DoesNotExist => Conditional { etag_does_not_match: Some("*".into()), ..Default::default() },
    }
}

fn http_metadata(content_type: Option<String>) -> HttpMetadata {
    HttpMetadata { content_type, ..Default::default() }
}

impl R2Store {
    /// A ranged read through the raw binding: the SDK's range object carries `undefined`
    /// members that the local R2 simulator trips over (the request hangs).
    async fn ranged_get(&self, key: &str, range: ByteRange) -> StoreResult<Option<Object>> {
        use js_sys::{Function, Object as JsObject, Reflect};
        use wasm_bindgen::{JsCast, JsValue};
        let jerr = |e: JsValue| StoreError::Backend(format!("R2 ranged get: {}", crate::platform::error_line(&format!("{e:?}"))));
        let bucket: &JsValue = self.bucket.as_ref();
        let r = JsObject::new();
        let set = |o: &JsObject, k: &str, v: JsValue| Reflect::set(o, &k.into(), &v).map(|_| ()).map_err(jerr);
        match range {
            ByteRange::Slice { offset, length } => {
                set(&r, "offset", (offset as f64).into())?;
                set(&r, "length", (length as f64).into())?;
            }
            ByteRange::From { offset } => set(&r, "offset", (offset as f64).into())?,
            ByteRange::Suffix { length } => set(&r, "suffix", (length as f64).into())?,
        }
        let opts = JsObject::new();
        set(&opts, "range", r.into())?;
        let get: Function = Reflect::get(bucket, &"get".into()).map_err(jerr)?.unchecked_into();
        let promise: js_sys::Promise = get.call2(bucket, &key.into(), &opts).map_err(jerr)?.unchecked_into();
        let obj = wasm_bindgen_futures::JsFuture::from(promise).await.map_err(jerr)?;
        if obj.is_null() || obj.is_undefined() {
            return Ok(None);
        }
        let field = |k: &str| Reflect::get(&obj, &k.into()).unwrap_or(JsValue::UNDEFINED);
        let num = |v: JsValue| v.as_f64().unwrap_or(0.0) as u64;
        let size = num(field("size"));
        let custom = field("customMetadata");
        let mut custom_map = std::collections::BTreeMap::new();
        if custom.is_object() {
            for entry in JsObject::entries(custom.unchecked_ref()).iter() {
                let pair: js_sys::Array = entry.unchecked_into();
                custom_map.insert(pair.get(0).as_string().unwrap_or_default(), pair.get(1).as_string().unwrap_or_default());
            }
        }
        let served = field("range");
        let offset = num(Reflect::get(&served, &"offset".into()).unwrap_or(JsValue::UNDEFINED));
        let length = Reflect::get(&served, &"length".into()).ok().and_then(|v| v.as_f64()).map(|l| l as u64).unwrap_or(size - offset);
        let meta = ObjectMeta {
            key: key.to_string(),
            size,
            etag: field("etag").as_string().unwrap_or_default(),
            content_type: Reflect::get(&field("httpMetadata"), &"contentType".into()).ok().and_then(|v| v.as_string()),
            custom: custom_map,
            uploaded_ms: js_sys::Date::from(field("uploaded")).get_time(),
        };
        let body = match field("body").dyn_into::<web_sys::ReadableStream>() {
            Ok(s) => Body::Stream(PlatformStream::new(s, Some(length))),
            Err(_) => Body::Empty,
        };
        Ok(Some(Object { meta, body, range: Some((offset, length)) }))
    }
}

#[async_trait(?Send)]
impl ObjectStore for R2Store {
    async fn head(&self, key: &str) -> StoreResult<Option<ObjectMeta>> {
        Ok(self.bucket.head(key).await.map_err(err)?.map(|o| meta(&o)))
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> StoreResult<Option<Object>> {
        if let Some(r) = range {
            return self.ranged_get(key, r).await;
        }
        let Some(o) = self.bucket.get(key).execute().await.map_err(err)? else {
            return Ok(None);
        };
        let meta = meta(&o);
        let length = meta.size;
        let body = match o.body() {
            Some(b) => match b.response_body().map_err(err)? {
                ResponseBody::Stream(s) => Body::Stream(PlatformStream::new(s, Some(length))),
                ResponseBody::Body(v) => Body::Bytes(v),
                ResponseBody::Empty => Body::Empty,
            },
            None => Body::Empty,
        };
        Ok(Some(Object { meta, body, range: None }))
    }

    async fn put(&self, key: &str, body: Body, opts: PutOptions) -> StoreResult<PutOutcome> {
        let mut req = self
            .bucket
            .put(key, data(body))
            .http_metadata(http_metadata(opts.content_type))
            .custom_metadata(opts.custom.into_iter().collect::<HashMap<_, _>>());
        req = match opts.checksum {
            None => req,
            Some(Checksum::Sha1(b)) => req.sha1(b),
            Some(Checksum::Sha256(b)) => req.sha256(b),
            Some(Checksum::Sha512(b)) => req.sha512(b),
            Some(Checksum::Md5(b)) => req.md5(b),
        };
        if let Some(c) = &opts.condition {
            req = req.only_if(condition(c));
        }
        match req.execute().await {
            Ok(Some(o)) => Ok(PutOutcome::Stored(meta(&o))),
            Ok(None) => Ok(PutOutcome::ConditionFailed),
            // R2 refuses a body whose digest differs from the one given, writing nothing.
            Err(e) if e.to_string().to_lowercase().contains("digest") || e.to_string().to_lowercase().contains("checksum") => {
                Ok(PutOutcome::ChecksumMismatch)
            }
            Err(e) => Err(err(e)),
        }
    }

    async fn delete(&self, keys: &[String]) -> StoreResult<()> {
        for chunk in keys.chunks(1000) {
            self.bucket.delete_multiple(chunk.to_vec()).await.map_err(err)?;
        }
        Ok(())
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> StoreResult<ListPage> {
        let mut req = self
            .bucket
            .list()
            .prefix(prefix)
            .include(vec![Include::HttpMetadata, Include::CustomMetadata]);
        if let Some(c) = opts.cursor {
            req = req.cursor(c);
        }
        if let Some(l) = opts.limit {
            req = req.limit(l);
        }
        if let Some(d) = opts.delimiter {
            req = req.delimiter(d);
        }
        if let Some(s) = opts.start_after {
            req = req.start_after(s);
        }
        let page = req.execute().await.map_err(err)?;
        Ok(ListPage {
            objects: page.objects().iter().map(meta).collect(),
            prefixes: page.delimited_prefixes(),
            cursor: if page.truncated() { page.cursor() } else { None },
        })
    }

    async fn create_multipart(&self, key: &str, opts: PutOptions) -> StoreResult<String> {
        let upload = self
            .bucket
            .create_multipart_upload(key)
            .http_metadata(http_metadata(opts.content_type))
            .custom_metadata(opts.custom.into_iter().collect::<HashMap<_, _>>())
            .execute()
            .await
            .map_err(err)?;
        Ok(upload.upload_id().await)
    }

    async fn upload_part(&self, key: &str, upload_id: &str, part_number: u16, body: Body) -> StoreResult<UploadedPart> {
        let upload = self.bucket.resume_multipart_upload(key, upload_id).map_err(err)?;
        let part = upload.upload_part(part_number, data(body)).await.map_err(err)?;
        Ok(UploadedPart { part_number: part.part_number(), etag: part.etag() })
    }

    async fn complete_multipart(&self, key: &str, upload_id: &str, parts: Vec<UploadedPart>) -> StoreResult<ObjectMeta> {
        let upload = self.bucket.resume_multipart_upload(key, upload_id).map_err(err)?;
        let parts = parts.into_iter().map(|p| worker::UploadedPart::new(p.part_number, p.etag));
        let o = upload.complete(parts).await.map_err(err)?;
        Ok(meta(&o))
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> StoreResult<()> {
        let upload = self.bucket.resume_multipart_upload(key, upload_id).map_err(err)?;
        upload.abort().await.map_err(err)
    }
}
