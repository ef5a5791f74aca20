//! Structured logs: one JSON object per line (`wrangler tail` and Logpush parse them).
//! Never pass secrets or tokens here.

use serde_json::json;

pub fn log(level: &str, message: &str) {
    let line = json!({"level": level, "msg": message}).to_string();
    #[cfg(target_arch = "wasm32")]
    worker::console_log!("{}", line);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("{line}");
}

pub fn error(message: &str) {
    log("error", message);
}

pub fn info(message: &str) {
    log("info", message);
}

/// One structured event: `{"level", "event", ...fields}` on one line, for `wrangler tail`,
/// Logpush or any log pipeline to filter on.
pub fn event(level: &str, event: &str, fields: serde_json::Value) {
    let mut line = json!({"level": level, "event": event});
    if let (Some(l), Some(f)) = (line.as_object_mut(), fields.as_object()) {
        l.extend(f.clone());
    }
    #[cfg(target_arch = "wasm32")]
    worker::console_log!("{}", line);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("{line}");
}
