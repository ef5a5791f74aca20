//! Failed-login limit: after [`MAX_FAILURES`] wrong passwords for one user from one client
//! within [`WINDOW_MS`], further password attempts from that client are refused (429) until
//! the window ends, right or wrong. The counter lives in a session record (a Durable Object
//! in the Worker), which is consistent across isolates and locations.

use serde_json::json;

use super::AuthError;
use crate::platform::{Cleanup, Platform};
use crate::util::sha256_hex;

pub const MAX_FAILURES: u64 = 10;
pub const WINDOW_MS: f64 = 15.0 * 60.0 * 1000.0;

pub struct LoginLimiter<'a> {
    platform: &'a Platform,
    id: String,
}

impl<'a> LoginLimiter<'a> {
    pub fn new(platform: &'a Platform, user: &str, client: Option<&str>) -> Self {
        // Hashed: user names and addresses stay out of object names and logs.
        let id = format!("login-limit/{}", sha256_hex(format!("{user}\n{}", client.unwrap_or("-")).as_bytes()));
        LoginLimiter { platform, id }
    }

    /// The failures in the current window and the record's version.
    async fn current(&self) -> Result<Option<(u64, f64, u64)>, AuthError> {
        let Some((record, version)) = self.platform.sessions.get(&self.id).await? else {
            return Ok(None);
        };
        let failures = record.get("failures").and_then(|v| v.as_u64()).unwrap_or(0);
        let since = record.get("since").and_then(|v| v.as_f64()).unwrap_or(0.0);
        Ok(Some((failures, since, version)))
    }

    /// Refuses while the limit is reached.
    pub async fn check(&self) -> Result<(), AuthError> {
        let now = self.platform.now_ms();
        match self.current().await? {
            Some((failures, since, _)) if failures >= MAX_FAILURES && now - since < WINDOW_MS => {
                Err(AuthError::RateLimited { retry_after_secs: ((since + WINDOW_MS - now) / 1000.0).ceil().max(1.0) as u64 })
            }
            _ => Ok(()),
        }
    }

    /// Counts one failure (compare-and-set, retried when a concurrent failure won).
    pub async fn failed(&self) -> Result<(), AuthError> {
        let now = self.platform.now_ms();
        for _ in 0..4 {
            let updated = match self.current().await? {
                None => {
                    let record = json!({"failures": 1, "since": now});
                    self.platform.sessions.create(&self.id, &record, &Cleanup::default(), WINDOW_MS).await?;
                    true
                }
                Some((failures, since, version)) => {
                    let (failures, since) = if now - since >= WINDOW_MS { (1, now) } else { (failures + 1, since) };
                    let record = json!({"failures": failures, "since": since});
                    self.platform.sessions.update(&self.id, version, &record, &Cleanup::default(), WINDOW_MS).await?
                }
            };
            if updated {
                return Ok(());
            }
        }
        Ok(())
    }
}
