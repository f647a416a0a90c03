//! One Alertmanager's outbox: the alerts waiting to be sent to it, in batches, with
//! retry and exponential backoff. Pure state, no I/O and no clock of its own (every
//! call is given `now`), so the state machine is tested without a network.
//!
//! # Bounded memory
//! Alerts are keyed by their label set. A newer state of an alert that is still waiting
//! replaces the older one in place (it keeps its turn), so resends of the same active
//! alerts while an Alertmanager is down do not grow the queue: it holds at most one
//! entry per distinct alert. Beyond `capacity` entries the oldest is dropped and
//! counted. A batch in flight is out of the queue; when its send fails, its alerts go
//! back to the front unless a newer state of them arrived in the meantime.
//!
//! # Failed, or rejected
//! A send that fails for a reason that says nothing against the alerts (no answer, 5xx,
//! 401/403 while credentials rotate, 429) is tried again, the same batch first. A batch
//! the Alertmanager refuses as invalid (400, 422) is dropped and counted instead:
//! sending the same alerts again cannot help, and retrying it in front would hold back
//! every alert behind it forever. Alertmanager has already stored the valid alerts of
//! a batch it answers 400 (it validates each alert and keeps the good ones), and the
//! firing ones are sent again at the next resend anyway. Prometheus' notifier does not
//! retry a failed batch at all.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::{Labels, Notice};

/// When a failed send is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Wait after the first failure.
    pub initial: Duration,
    /// The wait doubles per failure in a row, up to this.
    pub max: Duration,
}

impl Backoff {
    /// The wait after `failures` failures in a row (1 = the first), before jitter.
    pub fn delay(&self, failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(20);
        self.initial.saturating_mul(1 << shift).min(self.max)
    }
}

/// Sends to one Alertmanager: the waiting alerts, the batch in flight and the backoff.
#[derive(Debug)]
pub struct Outbox {
    capacity: usize,
    batch_max: usize,
    backoff: Backoff,
    /// Keys in send order (oldest first); each is in `pending`.
    order: VecDeque<Labels>,
    pending: HashMap<Labels, Notice>,
    in_flight: Vec<Notice>,
    failures_in_row: u32,
    not_before: Option<Instant>,
    /// Alerts dropped because the queue was full.
    dropped_full: u64,
    /// Alerts of batches the Alertmanager rejected as invalid.
    dropped_rejected: u64,
}

impl Outbox {
    pub fn new(capacity: usize, batch_max: usize, backoff: Backoff) -> Outbox {
        Outbox {
            capacity: capacity.max(1),
            batch_max: batch_max.max(1),
            backoff,
            order: VecDeque::new(),
            pending: HashMap::new(),
            in_flight: Vec::new(),
            failures_in_row: 0,
            not_before: None,
            dropped_full: 0,
            dropped_rejected: 0,
        }
    }

    /// Queue `n` to be sent. A waiting state of the same alert is replaced in place.
    pub fn push(&mut self, n: Notice) {
        if let Some(slot) = self.pending.get_mut(&n.labels) {
            *slot = n;
            return;
        }
        self.order.push_back(n.labels.clone());
        self.pending.insert(n.labels.clone(), n);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.pending.remove(&old);
                self.dropped_full += 1;
            }
        }
    }

    /// The next batch to send, oldest first, unless one is in flight, nothing waits, or
    /// the backoff after a failure has not passed.
    pub fn take_batch(&mut self, now: Instant) -> Option<Vec<Notice>> {
        if !self.in_flight.is_empty() || self.order.is_empty() {
            return None;
        }
        if self.not_before.is_some_and(|t| now < t) {
            return None;
        }
        let n = self.batch_max.min(self.order.len());
        let batch: Vec<Notice> = self
            .order
            .drain(..n)
            .filter_map(|k| self.pending.remove(&k))
            .collect();
        self.in_flight = batch.clone();
        Some(batch)
    }

    /// The batch in flight was accepted.
    pub fn sent(&mut self) {
        self.in_flight.clear();
        self.failures_in_row = 0;
        self.not_before = None;
    }

    /// The Alertmanager refused the batch in flight as invalid: it is dropped, counted,
    /// and the next batch goes at once (the Alertmanager answers; it is not down).
    /// Returns how many alerts were dropped.
    pub fn rejected(&mut self) -> usize {
        let n = std::mem::take(&mut self.in_flight).len();
        self.dropped_rejected += n as u64;
        self.failures_in_row = 0;
        self.not_before = None;
        n
    }

    /// The batch in flight failed: it goes back to the front (alerts that have a newer
    /// state waiting are not put back) and the next try waits `delay(failures)` scaled
    /// by `jitter` (e.g. 0.8..1.2, so that a fleet of nodes does not retry in step).
    /// Returns the wait.
    pub fn failed(&mut self, now: Instant, jitter: f64) -> Duration {
        let batch = std::mem::take(&mut self.in_flight);
        for n in batch.into_iter().rev() {
            if self.pending.contains_key(&n.labels) {
                continue;
            }
            self.order.push_front(n.labels.clone());
            self.pending.insert(n.labels.clone(), n);
        }
        while self.order.len() > self.capacity {
            // Over capacity now: the newest are dropped, since the front holds the batch
            // being retried, and it is older.
            if let Some(k) = self.order.pop_back() {
                self.pending.remove(&k);
                self.dropped_full += 1;
            }
        }
        self.failures_in_row = self.failures_in_row.saturating_add(1);
        let wait = self
            .backoff
            .delay(self.failures_in_row)
            .mul_f64(jitter.clamp(0.5, 1.5));
        self.not_before = Some(now + wait);
        wait
    }

    /// When a batch could next be taken: `None` while nothing waits or a batch is in
    /// flight; `now` or earlier when one can be taken at once.
    pub fn ready_at(&self) -> Option<Instant> {
        if !self.in_flight.is_empty() || self.order.is_empty() {
            return None;
        }
        Some(self.not_before.unwrap_or_else(Instant::now))
    }

    /// Alerts waiting or in flight.
    pub fn len(&self) -> usize {
        self.order.len() + self.in_flight.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Alerts dropped since the start: (the queue was full, the batch was rejected).
    pub fn dropped(&self) -> (u64, u64) {
        (self.dropped_full, self.dropped_rejected)
    }

    /// Failed sends in a row (0 after a success).
    pub fn failures_in_row(&self) -> u32 {
        self.failures_in_row
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::SystemTime;

    fn notice(name: &str, resolved: bool) -> Notice {
        let mut l = std::collections::BTreeMap::new();
        l.insert("alertname".to_string(), name.to_string());
        Notice {
            labels: Arc::new(l),
            annotations: Arc::default(),
            starts_at: SystemTime::UNIX_EPOCH,
            ends_at: resolved.then_some(SystemTime::UNIX_EPOCH + Duration::from_secs(1)),
        }
    }

    fn names(b: &[Notice]) -> Vec<String> {
        b.iter().map(|n| n.labels["alertname"].clone()).collect()
    }

    const BACKOFF: Backoff = Backoff {
        initial: Duration::from_millis(500),
        max: Duration::from_secs(8),
    };

    #[test]
    fn batches_are_oldest_first_and_bounded() {
        let mut q = Outbox::new(100, 2, BACKOFF);
        let now = Instant::now();
        for n in ["a", "b", "c"] {
            q.push(notice(n, false));
        }
        let b = q.take_batch(now).unwrap();
        assert_eq!(names(&b), ["a", "b"]);
        // One batch in flight at a time.
        assert!(q.take_batch(now).is_none());
        assert_eq!(q.len(), 3);
        q.sent();
        assert_eq!(names(&q.take_batch(now).unwrap()), ["c"]);
        q.sent();
        assert!(q.is_empty() && q.take_batch(now).is_none());
    }

    #[test]
    fn a_newer_state_replaces_the_waiting_one_in_place() {
        let mut q = Outbox::new(100, 10, BACKOFF);
        q.push(notice("a", false));
        q.push(notice("b", false));
        q.push(notice("a", true));
        assert_eq!(q.len(), 2);
        let b = q.take_batch(Instant::now()).unwrap();
        assert_eq!(names(&b), ["a", "b"]);
        assert!(
            b[0].ends_at.is_some(),
            "the resolve replaced the firing state"
        );
    }

    #[test]
    fn failure_backs_off_exponentially_and_retries_the_same_batch() {
        let mut q = Outbox::new(100, 10, BACKOFF);
        let t0 = Instant::now();
        q.push(notice("a", false));
        q.take_batch(t0).unwrap();
        let mut waits = Vec::new();
        let mut now = t0;
        for _ in 0..6 {
            let w = q.failed(now, 1.0);
            waits.push(w);
            // Not before the wait is over.
            assert!(q.take_batch(now + w - Duration::from_millis(1)).is_none());
            now += w;
            assert_eq!(q.ready_at(), Some(now));
            assert_eq!(names(&q.take_batch(now).unwrap()), ["a"]);
        }
        let ms: Vec<u128> = waits.iter().map(|w| w.as_millis()).collect();
        assert_eq!(ms, [500, 1000, 2000, 4000, 8000, 8000]);
        assert_eq!(q.failures_in_row(), 6);
        q.sent();
        assert_eq!(q.failures_in_row(), 0);
        // After a success the next alert goes out at once.
        q.push(notice("b", false));
        assert!(q.take_batch(now).is_some());
        // Jitter scales the wait.
        let w = q.failed(now, 1.2);
        assert_eq!(w.as_millis(), 600);
    }

    #[test]
    fn a_failed_batch_does_not_overwrite_a_newer_state() {
        let mut q = Outbox::new(100, 10, BACKOFF);
        let now = Instant::now();
        q.push(notice("a", false));
        q.push(notice("b", false));
        q.take_batch(now).unwrap();
        // While in flight, "a" resolves.
        q.push(notice("a", true));
        q.failed(now, 1.0);
        assert_eq!(q.len(), 2);
        let b = q.take_batch(now + Duration::from_secs(1)).unwrap();
        // "b" went back to the front; "a" keeps its newer (resolved) state.
        assert_eq!(names(&b), ["b", "a"]);
        assert!(b[1].ends_at.is_some());
    }

    #[test]
    fn memory_stays_bounded_while_down_and_drops_are_counted() {
        let mut q = Outbox::new(5, 2, BACKOFF);
        let mut now = Instant::now();
        // The same active alerts resent many times: no growth.
        for _ in 0..1000 {
            for n in ["a", "b", "c"] {
                q.push(notice(n, false));
            }
        }
        assert_eq!((q.len(), q.dropped()), (3, (0, 0)));
        // Many distinct alerts: the oldest go, counted.
        for i in 0..10 {
            q.push(notice(&format!("x{i}"), true));
        }
        assert_eq!((q.len(), q.dropped()), (5, (8, 0)));
        assert_eq!(names(&q.take_batch(now).unwrap()), ["x5", "x6"]);
        // Full while a batch is in flight, then the batch fails: still bounded.
        for i in 10..20 {
            q.push(notice(&format!("x{i}"), true));
        }
        now += q.failed(now, 1.0);
        assert_eq!(q.len(), 5);
        // 3 waiting + 10 new over a capacity of 5: 8 more dropped; then the 2 put
        // back push out the 2 newest.
        assert_eq!(q.dropped(), (8 + 8 + 2, 0));
        // The retried batch is first.
        assert_eq!(names(&q.take_batch(now).unwrap()), ["x5", "x6"]);
    }

    #[test]
    fn a_rejected_batch_is_dropped_and_does_not_hold_back_the_rest() {
        let mut q = Outbox::new(100, 2, BACKOFF);
        let now = Instant::now();
        for n in ["bad", "x", "y"] {
            q.push(notice(n, false));
        }
        q.take_batch(now).unwrap();
        // A failure before: the rejection still lets the next batch go at once.
        q.failed(now, 1.0);
        q.take_batch(now + Duration::from_secs(1)).unwrap();
        assert_eq!(q.rejected(), 2);
        assert_eq!((q.len(), q.dropped(), q.failures_in_row()), (1, (0, 2), 0));
        assert_eq!(names(&q.take_batch(now).unwrap()), ["y"]);
        q.sent();
        assert!(q.is_empty());
    }

    #[test]
    fn backoff_delay_saturates() {
        assert_eq!(BACKOFF.delay(0), Duration::from_millis(500));
        assert_eq!(BACKOFF.delay(1), Duration::from_millis(500));
        assert_eq!(BACKOFF.delay(u32::MAX), Duration::from_secs(8));
    }
}
