//! What npm asks of its upstream without caching it: search results merged after the hosted
//! ones, and `npm audit` passed through (npm registry API, "Search" and the audit endpoints).

use super::proxy::NpmAdapter;
use crate::error::{Error, Result};
use crate::http::{Headers, Method, Request, Response};
use crate::platform::Platform;
use crate::upstream::client::{fetch_one, Failures, Outcome, UpstreamRequest};
use crate::upstream::engine::Adapter;
use crate::upstream::{mark, CacheStatus, ProtocolUpstreams};

/// Appends the first upstream's search results for names not hosted here (and that the
/// upstream may serve) to `result`, up to `size` objects. The upstream failing (no
/// answer, an error status, a body that is not a search result) is an
/// [`Kind::Upstream`](crate::error::Kind::Upstream) error and leaves `result` as it is;
/// the caller decides whether the hosted results alone answer.
pub async fn merge_search(platform: &Platform, upstreams: &ProtocolUpstreams, result: &mut serde_json::Value, text: &str, size: usize, from: usize, hosted: &std::collections::BTreeSet<String>) -> crate::error::Result<()> {
    let Some(mut upstream) = upstreams.first() else { return Ok(()) };
    // Search is a nicety: one quick try, no retries, rather than a slow answer.
    upstream.resilience.max_retries = 0;
    upstream.resilience.timeout_ms = upstream.resilience.timeout_ms.min(5000);
    let have = result["objects"].as_array().map(Vec::len).unwrap_or(0);
    if have >= size {
        return Ok(());
    }
    let hosted_total = result["total"].as_u64().unwrap_or(0) as usize;
    // Past the hosted results, the upstream's pages continue where they left off.
    let upstream_from = from.saturating_sub(hosted_total);
    let q = |v: &str| percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string();
    let url = format!("{}/-/v1/search?text={}&size={}&from={upstream_from}", upstream.url, q(text), size - have);
    let mut headers = Headers::new();
    headers.set("Accept", "application/json");
    let request = UpstreamRequest { method: Method::Get, url, headers, body: None };
    let failed = |why: String| crate::error::Error::upstream(format!("the search of upstream {} failed: {why}", upstream.id));
    let resp = match fetch_one(platform, &upstream, "-search", request).await {
        Outcome::Answer(resp) => resp,
        Outcome::NotFound => return Err(failed("it has no search".into())),
        Outcome::Rejected(r) => return Err(failed(format!("status {}", r.status))),
        Outcome::Failed(e) => return Err(failed(e.to_string())),
    };
    let bytes = resp.body.read_capped(8 * 1024 * 1024).await.map_err(|e| failed(e.to_string()))?;
    let found = serde_json::from_slice::<serde_json::Value>(&bytes).map_err(|e| failed(format!("unreadable answer: {e}")))?;
    let extra: Vec<serde_json::Value> = found
        .get("objects")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter(|o| {
            let name = o.pointer("/package/name").and_then(serde_json::Value::as_str).unwrap_or_default();
            !name.is_empty() && !hosted.contains(name) && upstream.admits(name)
        })
        .take(size - have)
        .cloned()
        .collect();
    if let Some(objects) = result.get_mut("objects").and_then(serde_json::Value::as_array_mut) {
        objects.extend(extra);
    }
    let upstream_total = found.get("total").and_then(serde_json::Value::as_u64).unwrap_or(0) as usize;
    if let Some(fields) = result.as_object_mut() {
        fields.insert("total".into(), serde_json::json!(hosted_total.saturating_add(upstream_total)));
    }
    Ok(())
}

/// Passes `/-/npm/v1/security/*` to the first upstream (nothing is cached). What the
/// upstream answers, client errors included, goes back to the client as it is.
pub async fn audit(platform: &Platform, upstreams: &ProtocolUpstreams, req: Request, path: &str) -> Result<Response> {
    let upstream = upstreams.first().ok_or_else(|| Error::not_found("no upstream for audits"))?;
    let mut headers = Headers::new();
    for h in ["content-type", "content-encoding", "accept", "npm-command"] {
        if let Some(v) = req.header(h) {
            headers.set(h, v.to_string());
        }
    }
    let method = req.method;
    let body = req.body.read_capped(8 * 1024 * 1024).await?;
    let request = UpstreamRequest { method, url: format!("{}{path}", upstream.url), headers, body: Some(body) };
    match fetch_one(platform, &upstream, "-audit", request).await {
        Outcome::Answer(r) | Outcome::Rejected(r) => {
            let mut out = Response::new(r.status);
            for h in ["content-type", "content-encoding"] {
                if let Some(v) = r.headers.get(h) {
                    out = out.with_header(h, v);
                }
            }
            out.body = r.body;
            Ok(mark(out, CacheStatus::Miss, &upstream.id))
        }
        Outcome::NotFound => Err(NpmAdapter.not_found(path)),
        Outcome::Failed(e) => Err(NpmAdapter.failed(&Failures::one(&upstream.id, e))),
    }
}
