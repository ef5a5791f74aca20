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
