//! Admission: which connections the server holds, and which scrapes it answers at once,
//! per source address and in all, so that no one client can crowd out the others.
//!
//! # Connections
//! Every accepted connection gets a [`Ticket`] from the [`ConnTable`], or is closed at
//! once. A source address may hold [`Limits::max_connections_per_source`] connections.
//! When the server holds [`Limits::max_connections`], a new connection makes room by
//! evicting the connection that has waited longest without completing a request (one
//! that connected and sent nothing, sent half a header, or never finished its TLS
//! handshake); if there is none, the one idle longest between requests; if every
//! connection is busy answering a request, the new one is closed.
//!
//! A connection moves through phases, each with its own deadline:
//! - `Opening`: accepted, no complete request head yet. The TLS handshake and the whole
//!   first request head must arrive within [`Limits::header_timeout`] of the accept.
//! - `Busy`: a request is being answered. No read deadline; writes have their own
//!   (`conn.rs`).
//! - `Idle`: a request was answered, the next has not started: kept for
//!   [`Limits::idle_timeout`] so a scraper can reuse it.
//! - `Reading`: the first byte of a later request arrived; its head must be complete
//!   within [`Limits::header_timeout`].
//!
//! # Scrapes
//! [`ScrapeSlots`] bounds the scrapes of the metrics path being answered at once
//! (`--web.max-requests`), and what one source address may hold of them (a quarter), so
//! clients that pipeline requests and never read the answers cannot take them all.
//!
//! Source addresses are compared as IPv4 when they are IPv4-mapped IPv6 (a dual-stack
//! socket reports `::ffff:a.b.c.d`), and whole: two pods sharing a /64 are two sources.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::Limits;

/// The address a client's connections are counted under.
pub(super) fn source_of(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Opening,
    Busy,
    Idle,
    Reading,
}

#[derive(Debug)]
struct Entry {
    source: IpAddr,
    phase: Phase,
    /// When the phase began.
    since: Instant,
    signal: Arc<Signal>,
}

/// What the table tells a connection's task, which waits on `wake`.
#[derive(Debug, Default)]
pub(super) struct Signal {
    /// Set when the connection was evicted to make room: the task closes it.
    evicted: AtomicBool,
    /// Mirrors `Phase::Idle`, so the read path checks it without the table's lock.
    idle: AtomicBool,
    /// Rung on eviction and when a deadline moves earlier.
    pub(super) wake: Notify,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// Its source address holds `max_connections_per_source` already.
    SourceFull,
    /// The server is full and every connection is busy answering a request.
    Full,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    conns: HashMap<u64, Entry>,
    per_source: HashMap<IpAddr, usize>,
    /// Refusals and evictions since the last log line, and when that was.
    unreported: [u64; 3],
    last_report: Option<Instant>,
}

/// How often refusals and evictions are summed up in the log, at most.
const REPORT_EVERY: Duration = Duration::from_secs(60);

/// The connections the server holds; see the module docs.
#[derive(Debug)]
pub(super) struct ConnTable {
    max: usize,
    per_source_max: usize,
    header_timeout: Duration,
    idle_timeout: Duration,
    inner: Mutex<Inner>,
}

impl ConnTable {
    pub(super) fn new(limits: &Limits) -> Arc<Self> {
        Arc::new(ConnTable {
            max: limits.max_connections.max(1),
            per_source_max: limits.max_connections_per_source.max(1),
            header_timeout: limits.header_timeout,
            idle_timeout: limits.idle_timeout,
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Admit a connection from `ip`, evicting another when full (see the module docs).
    pub(super) fn admit(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<Ticket, Refused> {
        let source = source_of(ip);
        let mut inner = self.lock();
        let result = self.admit_locked(&mut inner, source, now);
        let slot = match &result {
            Ok((_, true)) => Some(2),
            Ok((_, false)) => None,
            Err(Refused::SourceFull) => Some(0),
            Err(Refused::Full) => Some(1),
        };
        if let Some(i) = slot {
            inner.unreported[i] += 1;
            let due = inner
                .last_report
                .is_none_or(|t| now.duration_since(t) >= REPORT_EVERY);
            if due {
                let [source_full, full, evicted] = std::mem::take(&mut inner.unreported);
                inner.last_report = Some(now);
                tracing::warn!(
                    refused_source_full = source_full,
                    refused_full = full,
                    evicted,
                    last_source = %source,
                    connections = inner.conns.len(),
                    max_connections = self.max,
                    max_per_source = self.per_source_max,
                    "connection limits in action (counts since the last such line, at most one a minute)"
                );
            }
        }
        result.map(|(t, _)| t)
    }

    /// The ticket, and whether another connection was evicted for it.
    fn admit_locked(
        self: &Arc<Self>,
        inner: &mut Inner,
        source: IpAddr,
        now: Instant,
    ) -> Result<(Ticket, bool), Refused> {
        if inner.per_source.get(&source).copied().unwrap_or(0) >= self.per_source_max {
            return Err(Refused::SourceFull);
        }
        let mut evicted = false;
        if inner.conns.len() >= self.max {
            let victim = oldest(inner, Phase::Opening).or_else(|| oldest(inner, Phase::Idle));
            let Some(id) = victim else {
                return Err(Refused::Full);
            };
            if let Some(e) = remove(inner, id) {
                e.signal.evicted.store(true, Ordering::Release);
                e.signal.wake.notify_one();
                evicted = true;
            }
        }
        inner.next_id += 1;
        let id = inner.next_id;
        let signal = Arc::new(Signal::default());
        inner.conns.insert(
            id,
            Entry {
                source,
                phase: Phase::Opening,
                since: now,
                signal: signal.clone(),
            },
        );
        *inner.per_source.entry(source).or_default() += 1;
        Ok((
            Ticket {
                table: self.clone(),
                id,
                signal,
            },
            evicted,
        ))
    }

    /// Connections held now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().conns.len()
    }
}

/// The connection in `phase` whose phase began first. `Reading` counts with `Idle`: both
/// completed a request before.
fn oldest(inner: &Inner, phase: Phase) -> Option<u64> {
    inner
        .conns
        .iter()
        .filter(|(_, e)| e.phase == phase || (phase == Phase::Idle && e.phase == Phase::Reading))
        .min_by_key(|(id, e)| (e.since, **id))
        .map(|(id, _)| *id)
}

fn remove(inner: &mut Inner, id: u64) -> Option<Entry> {
    let e = inner.conns.remove(&id)?;
    if let Some(n) = inner.per_source.get_mut(&e.source) {
        *n -= 1;
        if *n == 0 {
            inner.per_source.remove(&e.source);
        }
    }
    Some(e)
}

/// What a connection's deadline check found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Deadline {
    /// Close it: it was evicted.
    Evicted,
    /// Close it if it has not moved on by then.
    At(Instant),
    /// No read deadline: a request is being answered.
    None,
}

/// A connection's place in the table; dropping it frees the place.
#[derive(Debug)]
pub(super) struct Ticket {
    table: Arc<ConnTable>,
    id: u64,
    pub(super) signal: Arc<Signal>,
}

impl Ticket {
    fn set(&self, from: &[Phase], to: Phase, now: Instant) {
        let mut inner = self.table.lock();
        if let Some(e) = inner.conns.get_mut(&self.id) {
            if from.contains(&e.phase) {
                e.phase = to;
                e.since = now;
                self.signal.idle.store(to == Phase::Idle, Ordering::Release);
            }
        }
    }

    /// A request head is complete and being answered.
    pub(super) fn request_started(&self) {
        self.set(
            &[Phase::Opening, Phase::Idle, Phase::Reading],
            Phase::Busy,
            Instant::now(),
        );
    }

    /// The response has been handed to the connection in full.
    pub(super) fn request_finished(&self) {
        self.set(&[Phase::Busy], Phase::Idle, Instant::now());
    }

    /// Bytes arrived. On an idle connection they begin the next request, whose head now
    /// has `header_timeout`: a deadline earlier than the idle one, so the task is woken.
    pub(super) fn bytes_read(&self) {
        if self.signal.idle.load(Ordering::Acquire) {
            self.set(&[Phase::Idle], Phase::Reading, Instant::now());
            self.signal.wake.notify_one();
        }
    }

    /// When the connection must be closed unless it moves on.
    pub(super) fn deadline(&self) -> Deadline {
        if self.signal.evicted.load(Ordering::Acquire) {
            return Deadline::Evicted;
        }
        let inner = self.table.lock();
        let Some(e) = inner.conns.get(&self.id) else {
            return Deadline::Evicted;
        };
        match e.phase {
            Phase::Opening | Phase::Reading => Deadline::At(e.since + self.table.header_timeout),
            Phase::Idle => Deadline::At(e.since + self.table.idle_timeout),
            Phase::Busy => Deadline::None,
        }
    }

    /// A guard that calls [`Ticket::request_finished`] when dropped (with the response
    /// body).
    pub(super) fn request_guard(self: &Arc<Self>) -> RequestGuard {
        RequestGuard(self.clone())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut inner = self.table.lock();
        remove(&mut inner, self.id);
    }
}

/// Marks the request answered when dropped; held by the response body.
#[derive(Debug)]
pub(crate) struct RequestGuard(Arc<Ticket>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// Scrapes of the metrics path being answered (`--web.max-requests`): at most `max` in
/// all, and at most a quarter of them (at least one) per source address.
#[derive(Debug)]
pub(super) struct ScrapeSlots {
    max: usize,
    per_source_max: usize,
    inner: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

impl ScrapeSlots {
    pub(super) fn new(max: usize) -> Arc<Self> {
        Arc::new(ScrapeSlots {
            max,
            per_source_max: max.div_ceil(4).max(1),
            inner: Mutex::new((0, HashMap::new())),
        })
    }

    fn lock(&self) -> MutexGuard<'_, (usize, HashMap<IpAddr, usize>)> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Most slots one source may hold.
    pub(super) fn per_source_max(&self) -> usize {
        self.per_source_max
    }

    /// A slot for a scrape from `ip`, held until dropped.
    pub(super) fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ScrapeSlot, Refused> {
        let source = source_of(ip);
        let mut g = self.lock();
        let (total, per_source) = &mut *g;
        if per_source.get(&source).copied().unwrap_or(0) >= self.per_source_max {
            return Err(Refused::SourceFull);
        }
        if *total >= self.max {
            return Err(Refused::Full);
        }
        *per_source.entry(source).or_default() += 1;
        *total += 1;
        Ok(ScrapeSlot {
            slots: self.clone(),
            source,
        })
    }

    /// Slots held now, in all.
    #[cfg(test)]
    pub(super) fn in_use(&self) -> usize {
        self.lock().0
    }
}

/// One scrape's slot; dropping it returns the slot.
#[derive(Debug)]
pub(crate) struct ScrapeSlot {
    slots: Arc<ScrapeSlots>,
    source: IpAddr,
}

impl Drop for ScrapeSlot {
    fn drop(&mut self) {
        let mut g = self.slots.lock();
        let (total, per_source) = &mut *g;
        *total -= 1;
        if let Some(n) = per_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                per_source.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn table(max: usize, per_source: usize) -> Arc<ConnTable> {
        ConnTable::new(&Limits {
            max_connections: max,
            max_connections_per_source: per_source,
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(90),
            ..Limits::default()
        })
    }

    #[test]
    fn a_source_holds_at_most_its_share_and_gets_it_back() {
        let t = table(100, 3);
        let now = Instant::now();
        let held: Vec<Ticket> = (0..3)
            .map(|_| t.admit(ip("10.0.0.1"), now).unwrap())
            .collect();
        assert_eq!(
            t.admit(ip("10.0.0.1"), now).unwrap_err(),
            Refused::SourceFull
        );
        // The same address over a dual-stack socket is the same source.
        assert_eq!(
            t.admit(ip("::ffff:10.0.0.1"), now).unwrap_err(),
            Refused::SourceFull
        );
        // Another source is not affected, and a /64 neighbour is another source.
        let _b = t.admit(ip("10.0.0.2"), now).unwrap();
        let _v6a = t.admit(ip("2001:db8::1"), now).unwrap();
        let _v6b = t.admit(ip("2001:db8::2"), now).unwrap();
        drop(held);
        assert_eq!(t.len(), 3);
        let _again = t.admit(ip("10.0.0.1"), now).unwrap();
    }

    #[test]
    fn when_full_the_oldest_connection_without_a_request_is_evicted_then_the_longest_idle() {
        let t = table(3, 10);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let busy = t.admit(ip("10.0.0.1"), at(0)).unwrap();
        busy.request_started();
        let old_silent = t.admit(ip("10.0.0.2"), at(1)).unwrap();
        let new_silent = t.admit(ip("10.0.0.3"), at(2)).unwrap();
        // Full: the oldest silent one goes, whoever connects.
        let fourth = t.admit(ip("10.0.0.4"), at(3)).unwrap();
        assert_eq!(old_silent.deadline(), Deadline::Evicted);
        assert_eq!(
            new_silent.deadline(),
            Deadline::At(at(2) + Duration::from_secs(5))
        );
        assert_eq!(busy.deadline(), Deadline::None);
        // Once every connection has completed a request, the longest idle one goes.
        new_silent.request_started();
        new_silent.request_finished();
        fourth.request_started();
        fourth.request_finished();
        assert_eq!(t.admit(ip("10.0.0.5"), at(4)).map(|_| ()), Ok(()));
        let evicted = [&new_silent, &fourth]
            .iter()
            .filter(|c| c.deadline() == Deadline::Evicted)
            .count();
        assert_eq!(evicted, 1, "exactly one idle connection evicted");
        // Every connection busy: the newcomer is refused, nobody evicted.
        let t = table(1, 10);
        let only = t.admit(ip("10.0.0.1"), at(0)).unwrap();
        only.request_started();
        assert_eq!(t.admit(ip("10.0.0.2"), at(1)).unwrap_err(), Refused::Full);
        assert_eq!(only.deadline(), Deadline::None);
    }

    #[test]
    fn deadlines_follow_the_phase() {
        let t = table(10, 10);
        let c = Arc::new(t.admit(ip("10.0.0.1"), Instant::now()).unwrap());
        let Deadline::At(first) = c.deadline() else {
            panic!("an opening connection has a deadline")
        };
        c.request_started();
        assert_eq!(c.deadline(), Deadline::None);
        drop(c.request_guard());
        let Deadline::At(idle) = c.deadline() else {
            panic!("an idle connection has a deadline")
        };
        assert!(
            idle >= first + Duration::from_secs(80),
            "idle: the keep-alive time"
        );
        c.bytes_read();
        let Deadline::At(reading) = c.deadline() else {
            panic!("a connection reading a head has a deadline")
        };
        assert!(reading < idle, "the next head has the short deadline");
        // Bytes during a request (a body, pipelined heads) change nothing.
        c.request_started();
        c.bytes_read();
        assert_eq!(c.deadline(), Deadline::None);
    }

    #[test]
    fn scrape_slots_per_source_and_in_all() {
        let s = ScrapeSlots::new(8);
        assert_eq!(s.per_source_max(), 2);
        let a: Vec<_> = (0..2)
            .map(|_| s.try_acquire(ip("10.0.0.1")).unwrap())
            .collect();
        assert_eq!(
            s.try_acquire(ip("10.0.0.1")).unwrap_err(),
            Refused::SourceFull
        );
        let more: Vec<_> = (2..8)
            .map(|i| s.try_acquire(ip(&format!("10.0.1.{i}"))).unwrap())
            .collect();
        assert_eq!(s.try_acquire(ip("10.0.0.9")).unwrap_err(), Refused::Full);
        drop(a);
        drop(more);
        assert_eq!(s.in_use(), 0);
        assert_eq!(ScrapeSlots::new(1).per_source_max(), 1);
    }
}
