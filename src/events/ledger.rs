//! The exec ledger: what short-lived processes leave behind for a 15–60 s scrape.
//!
//! - Per container and namespace type, how many of its processes were found in the
//!   host namespace of that type: every exec event, and once each process that a scan
//!   found first (so the counter means the same with events off, only coarser).
//! - Each counted container stays named (its counter and its `comm`) for the retention
//!   after its last process is gone, then is dropped. Gauges describe the present; this
//!   is the trace a 200 ms container leaves.
//! - The latest exec records, bounded, for consumers that want each one (`watch`, an
//!   alert evaluator).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::model::{ContainerRef, Names, NsType};

/// One exec (or one process first found by a scan) of a container process in at least
/// one host namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecRecord {
    /// When it was seen: the event's receipt, or the scan's start.
    #[serde(serialize_with = "unix_seconds")]
    pub at: SystemTime,
    pub container: ContainerRef,
    pub pid: u32,
    pub comm: String,
    /// The host namespaces it is in, in label order.
    pub host_ns: Vec<NsType>,
    /// An exec event (true) or a process first found by a scan (false).
    pub by_event: bool,
}

fn unix_seconds<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    s.serialize_f64(secs)
}

/// How many records the ledger keeps for consumers.
pub const RECENT: usize = 1024;

/// A container the ledger keeps named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retained {
    /// The `comm` it was last named by.
    pub comm: String,
    /// The names its runtime's files gave it, while it was present (empty if unknown).
    pub names: Names,
    /// Execs counted, by namespace type.
    pub execs: [u64; 8],
    /// When a process of it was last seen (a scan, or an exec).
    pub last_seen: Instant,
}

/// The ledger. Time is passed in, so tests control it.
#[derive(Debug, Clone)]
pub struct Ledger {
    retention: Duration,
    containers: BTreeMap<ContainerRef, Retained>,
    recent: VecDeque<ExecRecord>,
    /// Records ever added, so a consumer can tell which it has not seen yet.
    added: u64,
}

impl Ledger {
    pub fn new(retention: Duration) -> Self {
        Ledger {
            retention,
            containers: BTreeMap::new(),
            recent: VecDeque::new(),
            added: 0,
        }
    }

    /// Count `rec` (a container process in the host namespaces `rec.host_ns`).
    pub fn record(&mut self, rec: ExecRecord, now: Instant) {
        if rec.host_ns.is_empty() {
            return;
        }
        let entry = match self.containers.get_mut(&rec.container) {
            Some(e) => e,
            None => self
                .containers
                .entry(rec.container.clone())
                .or_insert(Retained {
                    comm: String::new(),
                    names: Names::default(),
                    execs: [0; 8],
                    last_seen: now,
                }),
        };
        for t in &rec.host_ns {
            entry.execs[t.index()] += 1;
        }
        entry.comm.clone_from(&rec.comm);
        entry.last_seen = now;
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(rec);
        self.added += 1;
    }

    /// A container that still has processes: it stays, and keeps the name its oldest
    /// process gives it now, and the names its runtime's files give it.
    pub fn seen(&mut self, container: &ContainerRef, comm: &str, names: &Names, now: Instant) {
        if let Some(e) = self.containers.get_mut(container) {
            e.last_seen = now;
            if e.comm != comm {
                e.comm = comm.to_string();
            }
            if e.names != *names {
                e.names.clone_from(names);
            }
        }
    }

    /// Drop the containers not seen for longer than the retention.
    pub fn prune(&mut self, now: Instant) {
        let keep = self.retention;
        self.containers
            .retain(|_, e| now.saturating_duration_since(e.last_seen) <= keep);
    }

    pub fn containers(&self) -> &BTreeMap<ContainerRef, Retained> {
        &self.containers
    }

    /// The latest records, oldest first, and how many were ever added (the number of
    /// the last one).
    pub fn recent(&self) -> (&VecDeque<ExecRecord>, u64) {
        (&self.recent, self.added)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Runtime;

    fn c(id: &str) -> ContainerRef {
        ContainerRef {
            runtime: Runtime::Docker,
            id: id.into(),
            pod_uid: String::new(),
            owner_uid: None,
        }
    }

    fn rec(id: &str, pid: u32, types: &[NsType]) -> ExecRecord {
        ExecRecord {
            at: SystemTime::UNIX_EPOCH,
            container: c(id),
            pid,
            comm: format!("comm{pid}"),
            host_ns: types.to_vec(),
            by_event: true,
        }
    }

    #[test]
    fn counts_by_type_and_retains_after_the_last_process() {
        let t0 = Instant::now();
        let mut l = Ledger::new(Duration::from_secs(600));
        l.record(rec("a", 1, &[NsType::Net, NsType::User]), t0);
        l.record(rec("a", 2, &[NsType::Net]), t0);
        // A process in no host namespace leaves nothing.
        l.record(rec("b", 3, &[]), t0);
        let a = &l.containers()[&c("a")];
        assert_eq!(a.execs[NsType::Net.index()], 2);
        assert_eq!(a.execs[NsType::User.index()], 1);
        assert_eq!(a.comm, "comm2");
        assert!(!l.containers().contains_key(&c("b")));
        // Still there 9 minutes later; gone after 10.
        l.prune(t0 + Duration::from_secs(540));
        assert!(l.containers().contains_key(&c("a")));
        // Seen again (a scan found a process): the retention starts over.
        l.seen(
            &c("a"),
            "renamed",
            &Names::default(),
            t0 + Duration::from_secs(540),
        );
        l.prune(t0 + Duration::from_secs(1100));
        assert_eq!(l.containers()[&c("a")].comm, "renamed");
        l.prune(t0 + Duration::from_secs(1141));
        assert!(l.containers().is_empty());
        // Records stay for consumers, bounded.
        assert_eq!(l.recent().1, 2);
    }

    #[test]
    fn recent_records_are_bounded() {
        let t0 = Instant::now();
        let mut l = Ledger::new(Duration::from_secs(1));
        for pid in 0..(RECENT as u32 + 50) {
            l.record(rec("a", pid, &[NsType::Pid]), t0);
        }
        let (recent, added) = l.recent();
        assert_eq!(recent.len(), RECENT);
        assert_eq!(added, RECENT as u64 + 50);
        assert_eq!(recent.back().map(|r| r.pid), Some(RECENT as u32 + 49));
        assert_eq!(
            l.containers()[&c("a")].execs[NsType::Pid.index()],
            RECENT as u64 + 50
        );
    }
}
