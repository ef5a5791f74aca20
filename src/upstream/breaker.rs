//! Per-upstream circuit breaker: after `circuitBreakerThreshold` faults in a row (refused
//! connections, timeouts, stalled bodies, 5xx, 429) the upstream is not asked for
//! `circuitBreakerResetMs`, then one trial request goes through; a failed trial doubles the
//! wait, up to a minute. State lives in the isolate, so it survives between the requests one
//! isolate serves; each isolate learns on its own.

use std::cell::RefCell;
use std::collections::HashMap;

use super::config::Resilience;

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Closed { failures: u32 },
    /// Calls are refused until `until_ms`; `reset_ms` doubles on every failed trial.
    Open { until_ms: f64, reset_ms: u64 },
    /// One trial request is out.
    HalfOpen { reset_ms: u64 },
}

thread_local! {
    static BREAKERS: RefCell<HashMap<String, State>> = RefCell::new(HashMap::new());
}

/// Longest the open period grows to by doubling: an upstream that came back is tried again
/// within a minute.
pub const MAX_RESET_MS: u64 = 60 * 1000;

fn with<R>(key: &str, f: impl FnOnce(&mut State) -> R) -> R {
    BREAKERS.with(|b| {
        let mut map = b.borrow_mut();
        let state = map.entry(key.to_string()).or_insert(State::Closed { failures: 0 });
        f(state)
    })
}

/// May a request go to this upstream now? Moves an expired open breaker to half-open and
/// lets exactly that one trial through.
pub fn allow(key: &str, now_ms: f64) -> bool {
    with(key, |s| match *s {
        State::Closed { .. } => true,
        State::Open { until_ms, reset_ms } if now_ms >= until_ms => {
            *s = State::HalfOpen { reset_ms };
            true
        }
        State::Open { .. } | State::HalfOpen { .. } => false,
    })
}

pub fn success(key: &str) {
    with(key, |s| *s = State::Closed { failures: 0 });
}

pub fn failure(key: &str, now_ms: f64, cfg: &Resilience) {
    with(key, |s| {
        *s = match *s {
            State::Closed { failures } if failures + 1 >= cfg.circuit_breaker_threshold.max(1) => {
                State::Open { until_ms: now_ms + cfg.circuit_breaker_reset_ms as f64, reset_ms: cfg.circuit_breaker_reset_ms }
            }
            State::Closed { failures } => State::Closed { failures: failures + 1 },
            State::HalfOpen { reset_ms } | State::Open { reset_ms, .. } => {
                let reset_ms = (reset_ms * 2).min(MAX_RESET_MS.max(cfg.circuit_breaker_reset_ms));
                State::Open { until_ms: now_ms + reset_ms as f64, reset_ms }
            }
        }
    })
}

/// "closed", "open" or "half-open", for logs and response headers.
pub fn describe(key: &str) -> &'static str {
    with(key, |s| match s {
        State::Closed { .. } => "closed",
        State::Open { .. } => "open",
        State::HalfOpen { .. } => "half-open",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_then_half_opens_and_backs_off() {
        let cfg = Resilience { circuit_breaker_threshold: 3, circuit_breaker_reset_ms: 1000, ..Default::default() };
        let k = "test-breaker-1";
        for _ in 0..2 {
            assert!(allow(k, 0.0));
            failure(k, 0.0, &cfg);
        }
        assert_eq!(describe(k), "closed");
        failure(k, 0.0, &cfg);
        assert_eq!(describe(k), "open");
        assert!(!allow(k, 999.0));
        assert!(allow(k, 1000.0), "one trial after the reset time");
        assert!(!allow(k, 1000.0), "only one trial at a time");
        failure(k, 1000.0, &cfg);
        assert!(!allow(k, 2999.0), "reset time doubled");
        assert!(allow(k, 3000.0));
        success(k);
        assert_eq!(describe(k), "closed");
        assert!(allow(k, 3000.0));
    }
}
