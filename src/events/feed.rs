//! The events thread and its hand-over to the sampler.
//!
//! The thread receives from the connector and reads each exec'd process *at once*,
//! on its own thread, through the caller's reader (the scan's own per-process code): a
//! process that lives 200 ms must be read while it lives, whatever the sampler is doing
//! (a scan of a large node takes longer than that). What it read goes into an
//! [`Inbox`], bounded, that the sampler drains in batches: one fold and one publish per
//! batch, never one per event.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::connector::{Connector, Stats};
use super::proto::{Message, ProcEvent};

/// How many read processes may wait for the sampler. Past it, further execs are not
/// read (the inbox records the overflow and the sampler scans instead): memory stays
/// bounded whatever the exec rate.
pub const MAX_PENDING: usize = 4096;

/// One exec, with what was read of the process right after it.
#[derive(Debug, Clone)]
pub struct Exec<T> {
    /// The process (thread-group ID).
    pub pid: u32,
    /// When the kernel reported it, `CLOCK_MONOTONIC` nanoseconds (`ktime_get_ns`).
    pub kernel_ns: u64,
    /// When this thread received it.
    pub received: Instant,
    /// What the reader made of it; `None` when it could not be read (gone already).
    pub read: Option<T>,
}

/// What waits for the sampler.
#[derive(Debug)]
pub struct Pending<T> {
    pub execs: Vec<Exec<T>>,
    /// Processes (thread-group leaders) that exited, with the kernel's time of it.
    pub exits: Vec<(u64, u32)>,
    /// Events lost since the last batch: sequence gaps, overruns, and execs past
    /// [`MAX_PENDING`] (not handled is as good as lost).
    pub lost: u64,
    /// Some events are gone (lost, or past [`MAX_PENDING`]): only a scan can tell what
    /// they were.
    pub needs_scan: bool,
    /// The connector's counts, as of the latest datagram.
    pub stats: Stats,
    /// The events thread stopped (it failed or was told to).
    pub ended: bool,
}

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Pending {
            execs: Vec::new(),
            exits: Vec::new(),
            lost: 0,
            needs_scan: false,
            stats: Stats::default(),
            ended: false,
        }
    }
}

impl<T> Pending<T> {
    /// Whether there is anything for the sampler to act on.
    pub fn is_empty(&self) -> bool {
        self.execs.is_empty() && self.exits.is_empty() && self.lost == 0 && !self.needs_scan
    }
}

/// What [`Inbox::wait`] woke for.
#[derive(Debug, PartialEq, Eq)]
pub enum Wake {
    /// The deadline passed with nothing pending.
    Deadline,
    /// Something is pending.
    Work,
    /// [`Inbox::stop`] was called.
    Stop,
}

/// The hand-over between the events thread (and whoever stops the sampler) and the
/// sampler: a mutex around what is pending and a condition variable to wake on.
#[derive(Debug)]
pub struct Inbox<T> {
    state: Mutex<(Pending<T>, bool)>,
    cv: Condvar,
}

impl<T> Default for Inbox<T> {
    fn default() -> Self {
        Inbox {
            state: Mutex::new((Pending::default(), false)),
            cv: Condvar::new(),
        }
    }
}

impl<T> Inbox<T> {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Pending<T>, bool)> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Change what is pending, and wake the sampler when there was nothing pending
    /// before: once it has work it lets the batch gather until its own deadline, and
    /// a wake-up per datagram in the meantime would only cost it a context switch
    /// (thousands a second in a burst).
    pub fn update(&self, f: impl FnOnce(&mut Pending<T>)) {
        let mut g = self.lock();
        let was_empty = g.0.is_empty();
        f(&mut g.0);
        let wake = was_empty && !g.0.is_empty();
        drop(g);
        if wake {
            self.cv.notify_all();
        }
    }

    /// Tell the sampler (and the events thread) to stop.
    pub fn stop(&self) {
        self.lock().1 = true;
        self.cv.notify_all();
    }

    pub fn stopped(&self) -> bool {
        self.lock().1
    }

    /// Wait until something is pending, [`Inbox::stop`] is called, or `deadline`.
    pub fn wait(&self, deadline: Instant) -> Wake {
        let mut g = self.lock();
        loop {
            if g.1 {
                return Wake::Stop;
            }
            if !g.0.is_empty() {
                return Wake::Work;
            }
            let now = Instant::now();
            if now >= deadline {
                return Wake::Deadline;
            }
            g = self
                .cv
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Sleep until `until` unless stopped first (coalescing: let a burst gather).
    /// Returns false when stopped.
    pub fn sleep_until(&self, until: Instant) -> bool {
        let mut g = self.lock();
        loop {
            if g.1 {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            g = self
                .cv
                .wait_timeout(g, until - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Take everything pending (the connector's counts stay, as the latest known).
    pub fn take(&self) -> Pending<T> {
        let mut g = self.lock();
        let stats = g.0.stats;
        let ended = g.0.ended;
        let mut out = std::mem::take(&mut g.0);
        g.0.stats = stats;
        g.0.ended = ended;
        out.stats = stats;
        out
    }
}

/// Fold one received datagram's messages into `pending`, reading each exec'd process
/// with `read`. `lost` and `overrun` are what the connector said of this datagram.
pub fn absorb<T>(
    pending: &mut Pending<T>,
    msgs: &[Message],
    received: Instant,
    read: &mut impl FnMut(u32) -> Option<T>,
) {
    for m in msgs {
        match m.event {
            ProcEvent::Exec { tgid, .. } => {
                if pending.execs.len() >= MAX_PENDING {
                    // Not handled: as good as lost.
                    pending.lost += 1;
                    pending.needs_scan = true;
                    continue;
                }
                pending.execs.push(Exec {
                    pid: tgid,
                    kernel_ns: m.timestamp_ns,
                    received,
                    read: read(tgid),
                });
            }
            // Only the leader's exit ends the process; a thread's exit ends a thread.
            ProcEvent::Exit { pid, tgid, .. } if pid == tgid => {
                if pending.exits.len() >= MAX_PENDING {
                    pending.needs_scan = true;
                    continue;
                }
                pending.exits.push((m.timestamp_ns, tgid));
            }
            _ => {}
        }
    }
}

/// Run the events thread's loop until the inbox is stopped: receive, read every
/// exec'd process with `read` (outside the inbox's lock), and hand over. A receive
/// error other than an overrun ends the loop, marking the inbox `ended` and asking for
/// a scan: the sampler goes on with scans alone.
pub fn run<T>(mut conn: Connector, inbox: Arc<Inbox<T>>, mut read: impl FnMut(u32) -> Option<T>) {
    let mut msgs: Vec<Message> = Vec::with_capacity(16);
    let mut local: Pending<T> = Pending::default();
    while !inbox.stopped() {
        msgs.clear();
        let got = match conn.recv(&mut msgs) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                tracing::error!(error = %e, "receiving process events failed; nsexporter goes on with scans alone");
                inbox.update(|p| {
                    p.ended = true;
                    p.needs_scan = true;
                    p.stats = conn.stats();
                });
                return;
            }
        };
        let received = Instant::now();
        local.lost += got.lost;
        local.needs_scan |= got.overrun || got.lost > 0;
        absorb(&mut local, &msgs, received, &mut read);
        if local.is_empty() {
            continue;
        }
        let stats = conn.stats();
        inbox.update(|p| {
            p.stats = stats;
            p.lost += local.lost;
            p.needs_scan |= local.needs_scan;
            let room = MAX_PENDING.saturating_sub(p.execs.len());
            if local.execs.len() > room {
                p.lost += (local.execs.len() - room) as u64;
                p.needs_scan = true;
            }
            p.execs.extend(local.execs.drain(..).take(room));
            let room = MAX_PENDING.saturating_sub(p.exits.len());
            if local.exits.len() > room {
                p.needs_scan = true;
            }
            p.exits.extend(local.exits.drain(..).take(room));
        });
        local.execs.clear();
        local.exits.clear();
        local.lost = 0;
        local.needs_scan = false;
    }
}

/// How long the sampler lets a burst gather after the first event of a batch: reads
/// are already done by then, so this only bounds how often a new state is published.
pub const COALESCE: Duration = Duration::from_millis(100);

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(tgid: u32) -> Message {
        Message {
            cpu: 0,
            seq: 0,
            ack: 0,
            timestamp_ns: 7,
            event: ProcEvent::Exec { pid: tgid, tgid },
        }
    }

    #[test]
    fn absorb_reads_execs_and_keeps_leader_exits() {
        let mut p: Pending<String> = Pending::default();
        let msgs = [
            exec(10),
            exec(11),
            Message {
                event: ProcEvent::Exit {
                    pid: 12,
                    tgid: 10,
                    exit_code: 0,
                },
                ..exec(0)
            },
            Message {
                event: ProcEvent::Exit {
                    pid: 11,
                    tgid: 11,
                    exit_code: 0,
                },
                ..exec(0)
            },
        ];
        let now = Instant::now();
        absorb(&mut p, &msgs, now, &mut |pid| {
            (pid == 10).then(|| format!("read {pid}"))
        });
        assert_eq!(p.execs.len(), 2);
        assert_eq!(p.execs[0].read.as_deref(), Some("read 10"));
        assert_eq!(p.execs[1].read, None);
        assert_eq!(p.execs[0].kernel_ns, 7);
        assert_eq!(p.exits, [(7, 11)]);
        assert!(!p.needs_scan);
    }

    #[test]
    fn a_flood_is_bounded_and_asks_for_a_scan() {
        let mut p: Pending<()> = Pending::default();
        let msgs: Vec<Message> = (0..MAX_PENDING as u32 + 10).map(exec).collect();
        let mut reads = 0;
        absorb(&mut p, &msgs, Instant::now(), &mut |_| {
            reads += 1;
            Some(())
        });
        assert_eq!(p.execs.len(), MAX_PENDING);
        // Processes past the bound are not even read.
        assert_eq!(reads, MAX_PENDING);
        assert!(p.needs_scan);
        // Those not handled count as lost.
        assert_eq!(p.lost, 10);
    }

    #[test]
    fn inbox_wakes_for_work_stop_and_deadline() {
        let inbox: Arc<Inbox<u32>> = Inbox::new();
        let soon = Instant::now() + Duration::from_millis(20);
        assert_eq!(inbox.wait(soon), Wake::Deadline);
        let i2 = inbox.clone();
        let t = std::thread::spawn(move || {
            i2.update(|p| p.exits.push((1, 5)));
        });
        assert_eq!(
            inbox.wait(Instant::now() + Duration::from_secs(30)),
            Wake::Work
        );
        t.join().unwrap();
        inbox.update(|p| p.stats.execs = 3);
        let batch = inbox.take();
        assert_eq!(batch.exits, [(1, 5)]);
        assert_eq!(batch.stats.execs, 3);
        // Counts stay; the work is gone.
        assert!(inbox.take().is_empty());
        assert_eq!(inbox.take().stats.execs, 3);
        inbox.stop();
        assert_eq!(
            inbox.wait(Instant::now() + Duration::from_secs(30)),
            Wake::Stop
        );
        assert!(!inbox.sleep_until(Instant::now() + Duration::from_secs(30)));
    }
}
