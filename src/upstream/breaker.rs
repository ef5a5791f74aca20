//! Per-upstream circuit breaker: after `circuitBreakerThreshold` faults in a row (refused
//! connections, timeouts, stalled bodies, 5xx, 429) the upstream is not asked for
//! `circuitBreakerResetMs`, then one trial request goes through; a failed trial doubles the
//! wait, up to a minute. A body that stalls or breaks off comes after an answer that looked
//! fine, so such faults are counted in a run of their own, which only a body delivered
//! whole ends (known when the next answer with a body comes and no fault came before it):
//! an upstream that answers its HEADs but stalls every body opens it too. State lives in the isolate, so it survives between the requests one
//! isolate serves; each isolate learns on its own.

use std::cell::RefCell;
use std::collections::HashMap;

use super::config::Resilience;

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// `failures` in a row before any answer; `body_failures` of answers' bodies in a row;
    /// `body_pending`: an answer with a body came and no fault of its body yet.
    Closed { failures: u32, body_failures: u32, body_pending: bool },
    /// Calls are refused until `until_ms`; `reset_ms` doubles on every failed trial.
    Open { until_ms: f64, reset_ms: u64 },
    /// One trial request is out.
    HalfOpen { reset_ms: u64 },
}

thread_local! {
    static BREAKERS: RefCell<HashMap<String, State>> = RefCell::new(HashMap::new());
    /// Upstreams that let a client's deadline pass, or failed, since they last answered:
    /// until when (ms) a client with a cached copy is answered from it at once.
    static LAGGING: RefCell<HashMap<String, f64>> = RefCell::new(HashMap::new());
}

/// The upstream kept a client waiting past its deadline, or failed: until it answers again
/// (or `for_ms` pass), clients with a cached copy get it without waiting. A breaker needs
/// `circuitBreakerThreshold` faults, and a hung upstream gives its first one only after its
/// timeout: meanwhile every document would cost a client the whole deadline, one after the
/// other for a client that resolves dependencies one by one. Cold misses still ask.
pub fn lagging(key: &str, now_ms: f64, for_ms: u64) {
    LAGGING.with(|l| l.borrow_mut().insert(key.to_string(), now_ms + for_ms as f64));
}

/// Whether a client with a cached copy should not wait for this upstream now.
pub fn is_lagging(key: &str, now_ms: f64) -> bool {
    LAGGING.with(|l| l.borrow().get(key).is_some_and(|until| now_ms < *until))
}

/// Longest the open period grows to by doubling: an upstream that came back is tried again
/// within a minute.
pub const MAX_RESET_MS: u64 = 60 * 1000;

const CLOSED: State = State::Closed { failures: 0, body_failures: 0, body_pending: false };

fn with<R>(key: &str, f: impl FnOnce(&mut State) -> R) -> R {
    BREAKERS.with(|b| {
        let mut map = b.borrow_mut();
        let state = map.entry(key.to_string()).or_insert(CLOSED);
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

/// An answer came (`with_body`: a body still to be read): the faults in a row are over; and
/// when the last answer's body came whole, so are the bodies' faults.
pub fn success(key: &str, with_body: bool) {
    LAGGING.with(|l| l.borrow_mut().remove(key));
    with(key, |s| {
        *s = match *s {
            State::Closed { body_failures, body_pending, .. } => {
                let body_failures = if with_body && body_pending { 0 } else { body_failures };
                State::Closed { failures: 0, body_failures, body_pending: with_body || body_pending }
            }
            _ => State::Closed { failures: 0, body_failures: 0, body_pending: with_body },
        }
    });
}

/// A fault before any answer (refused, timed out, 5xx, 429).
pub fn failure(key: &str, now_ms: f64, cfg: &Resilience) {
    fail(key, now_ms, cfg, false);
}

/// A fault of an answer's body (stalled, broken off).
pub fn body_failure(key: &str, now_ms: f64, cfg: &Resilience) {
    fail(key, now_ms, cfg, true);
}

fn fail(key: &str, now_ms: f64, cfg: &Resilience, of_body: bool) {
    lagging(key, now_ms, cfg.timeout_ms);
    with(key, |s| {
        *s = match *s {
            State::Closed { failures, body_failures, body_pending } => {
                let (failures, body_failures) = if of_body { (failures, body_failures + 1) } else { (failures + 1, body_failures) };
                if failures.max(body_failures) >= cfg.circuit_breaker_threshold.max(1) {
                    State::Open { until_ms: now_ms + cfg.circuit_breaker_reset_ms as f64, reset_ms: cfg.circuit_breaker_reset_ms }
                } else {
                    State::Closed { failures, body_failures, body_pending: body_pending && !of_body }
                }
            }
            // The trial failed: wait twice as long.
            State::HalfOpen { reset_ms } => {
                let reset_ms = (reset_ms * 2).min(MAX_RESET_MS.max(cfg.circuit_breaker_reset_ms));
                State::Open { until_ms: now_ms + reset_ms as f64, reset_ms }
            }
            // A request that set out before the breaker opened: it says nothing new, and
            // must not push the next trial further away (dozens of hung requests ending at
            // once would otherwise keep a recovered upstream shut out).
            open @ State::Open { .. } => open,
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
    fn an_upstream_lags_until_it_answers_or_the_time_passes() {
        let k = "test-breaker-lagging";
        assert!(!is_lagging(k, 0.0));
        lagging(k, 0.0, 1000);
        assert!(is_lagging(k, 999.0) && !is_lagging(k, 1000.0));
        lagging(k, 0.0, 1000);
        success(k, true);
        assert!(!is_lagging(k, 1.0), "an answer ends it");
        failure(k, 0.0, &Resilience { timeout_ms: 50, ..Default::default() });
        assert!(is_lagging(k, 49.0) && !is_lagging(k, 50.0), "a fault starts it");
    }

    #[test]
    fn failures_of_requests_older_than_the_opening_do_not_extend_it() {
        let cfg = Resilience { circuit_breaker_threshold: 2, circuit_breaker_reset_ms: 1000, ..Default::default() };
        let k = "test-breaker-stragglers";
        failure(k, 0.0, &cfg);
        failure(k, 0.0, &cfg);
        assert_eq!(describe(k), "open");
        for t in [100.0, 500.0, 900.0] {
            failure(k, t, &cfg);
        }
        assert!(allow(k, 1000.0), "the trial comes when it was due");
        failure(k, 1000.0, &cfg);
        assert!(!allow(k, 2999.0) && allow(k, 3000.0), "a failed trial doubles the wait");
    }

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
        success(k, false);
        assert_eq!(describe(k), "closed");
        assert!(allow(k, 3000.0));
    }

    #[test]
    fn bodies_that_fail_in_a_row_open_it_whatever_answers_come_between() {
        let cfg = Resilience { circuit_breaker_threshold: 3, circuit_breaker_reset_ms: 1000, ..Default::default() };
        let k = "test-breaker-2";
        for _ in 0..2 {
            success(k, false);
            success(k, true);
            body_failure(k, 0.0, &cfg);
        }
        assert_eq!(describe(k), "closed");
        success(k, false);
        success(k, true);
        body_failure(k, 0.0, &cfg);
        assert_eq!(describe(k), "open", "three stalled bodies in a row, each after a good answer to a HEAD");
        assert!(allow(k, 1000.0));
        success(k, false);
        // A body delivered whole in between ends the run.
        for _ in 0..2 {
            success(k, true);
            body_failure(k, 1000.0, &cfg);
        }
        success(k, true);
        success(k, true);
        body_failure(k, 1000.0, &cfg);
        assert_eq!(describe(k), "closed", "{:?}", with(k, |s| *s));
        // Faults before any answer keep their own run: two of each do not open it.
        failure(k, 1000.0, &cfg);
        failure(k, 1000.0, &cfg);
        assert_eq!(describe(k), "closed");
    }
}
