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

use crate::model::{ContainerRef, Names, NsSet, NsType, ProcRecord};

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
    /// The names its runtime's files give its container (empty when unknown).
    pub names: Names,
}

impl ExecRecord {
    /// The record of `r` if it is a container process in at least one host namespace
    /// among `types` (`host` being the host's namespaces), and not the runtime setting
    /// its container up (see [`runtime_setup`]).
    pub fn of(
        r: ProcRecord,
        host: &NsSet,
        types: &[NsType],
        at: SystemTime,
        by_event: bool,
        names: Names,
    ) -> Option<ExecRecord> {
        let container = r.container?;
        let host_ns: Vec<NsType> = types
            .iter()
            .copied()
            .filter(|t| r.ns.shares(host, *t))
            .collect();
        if host_ns.is_empty() || runtime_setup(&r.comm, host_ns.contains(&NsType::Mnt)) {
            return None;
        }
        Some(ExecRecord {
            at,
            container,
            pid: r.pid,
            comm: r.comm,
            host_ns,
            by_event,
            names,
        })
    }
}

/// Whether a process in a container's cgroup is the OCI runtime setting that container
/// up rather than the container's own: runc starts `runc init` (its own binary, `exe`
/// while it still runs from `/proc/self/exe`), moves it into the container's cgroup
/// while it is still in every host namespace, and only then does it make (or join) the
/// container's namespaces, as `runc:[0:PARENT]`, `runc:[1:CHILD]`, `runc:[2:INIT]`. A
/// read right after its exec finds it there, and would count every container start as
/// an exec in the host's net, pid and ipc namespaces. A container's own processes are
/// never in the host's mount namespace: runtimes always give a container its own.
/// These are the names Falco's rules give runc's stages too. A container process that
/// entered the host's mount namespace and named itself like runc is not counted here,
/// but the next scan still shows it in the gauges.
pub fn runtime_setup(comm: &str, in_host_mount_ns: bool) -> bool {
    in_host_mount_ns
        && (matches!(comm, "runc" | "exe" | "docker-runc" | "docker-runc-cur")
            || comm.starts_with("runc:["))
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
        if !rec.names.is_empty() {
            entry.names.clone_from(&rec.names);
        }
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
            names: Names::default(),
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
    fn names_come_with_a_record_and_stay_when_later_ones_have_none() {
        let t0 = Instant::now();
        let mut l = Ledger::new(Duration::from_secs(600));
        let names = Names {
            namespace: "shop".into(),
            pod: "web-0".into(),
            container: "app".into(),
        };
        l.record(
            ExecRecord {
                names: names.clone(),
                ..rec("a", 1, &[NsType::Net])
            },
            t0,
        );
        // A later exec read when the runtime's files were gone knows no names.
        l.record(rec("a", 2, &[NsType::Net]), t0);
        assert_eq!(l.containers()[&c("a")].names, names);
    }

    fn proc_record(comm: &str, ns: NsSet) -> ProcRecord {
        ProcRecord {
            pid: 7,
            start_time: 1,
            comm: comm.into(),
            ns,
            host_euid: 0,
            container: Some(c("a")),
        }
    }

    #[test]
    fn the_runtime_setting_a_container_up_is_not_counted() {
        let mut host = NsSet::default();
        for t in NsType::ALL {
            host.set(t, Some(100 + t.index() as u64));
        }
        let mut own_mnt = host;
        own_mnt.set(NsType::Mnt, Some(1));
        let of = |comm: &str, ns: NsSet| {
            ExecRecord::of(
                proc_record(comm, ns),
                &host,
                &NsType::ALL,
                SystemTime::UNIX_EPOCH,
                true,
                Names::default(),
            )
        };
        // runc's init, in every host namespace: not the container's exec.
        for comm in ["runc", "runc:[0:PARENT]", "runc:[2:INIT]", "exe"] {
            assert_eq!(of(comm, host), None, "{comm}");
        }
        // The container's own process in the host's namespaces (but its own mount
        // namespace) is counted, whatever it is called.
        let r = of("runc:[2:INIT]", own_mnt).expect("counted");
        assert!(r.host_ns.contains(&NsType::Net) && !r.host_ns.contains(&NsType::Mnt));
        // Any other name in the host's mount namespace (a lab process, an escape) is.
        assert!(of("sleep", host).is_some());
        // A process in no host namespace, or in no container, is not.
        let mut private = NsSet::default();
        for t in NsType::ALL {
            private.set(t, Some(1 + t.index() as u64));
        }
        assert_eq!(of("sleep", private), None);
        let mut no_container = proc_record("sleep", host);
        no_container.container = None;
        assert_eq!(
            ExecRecord::of(
                no_container,
                &host,
                &NsType::ALL,
                SystemTime::UNIX_EPOCH,
                true,
                Names::default()
            ),
            None
        );
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
