//! The socket side of the proc connector: subscribe, receive, count what was lost, and
//! say plainly why it cannot be had when it cannot.
//!
//! The calls go through `rustix`, which wraps every one of them (`socket` with
//! `NETLINK_CONNECTOR`, `bind` to a group, `sendto`, `recvfrom`, the buffer options)
//! without `unsafe` here; `nix` has no `NETLINK_CONNECTOR` protocol.

use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::{
    bind, recvfrom, sendto, socket_with, sockopt, AddressFamily, RecvFlags, SendFlags, SocketFlags,
    SocketType,
};

use super::proto::{
    messages, subscription, Message, ProcEvent, Sequences, CN_IDX_PROC, PROC_CN_MCAST_IGNORE,
    PROC_CN_MCAST_LISTEN,
};
use crate::model::{HostRef, HostSource, NsSet, NsType};
use crate::scan::hostref::FIXED_INITIAL;

/// Why process events cannot be had. The `Display` text is the one log line that says
/// what is missing.
#[derive(Debug)]
pub enum Unavailable {
    /// The kernel serves the proc connector only to the initial user and PID namespaces,
    /// and its socket exists only in the initial network namespace.
    Namespaces(Vec<NsType>),
    /// The kernel refused the subscription for want of a capability.
    Permission { step: &'static str },
    /// The kernel has no proc connector (`CONFIG_PROC_EVENTS` off).
    Unsupported,
    /// The kernel did not answer the subscription: it ignores requests from outside the
    /// initial user and PID namespaces without a word.
    NoAnswer(Duration),
    /// Anything else, with the step that failed.
    Io {
        step: &'static str,
        error: io::Error,
    },
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unavailable::Namespaces(types) => {
                let names: Vec<&str> = types.iter().map(|t| t.name()).collect();
                write!(
                    f,
                    "nsexporter is not in the host's initial {} namespace{}: the kernel gives \
                     process events only to the initial user and PID namespaces, in the \
                     initial network namespace (run it with hostPID and hostNetwork, in the \
                     host user namespace)",
                    names.join(", "),
                    if names.len() > 1 { "s" } else { "" }
                )
            }
            Unavailable::Permission { step } => write!(
                f,
                "the kernel refused the proc connector subscription ({step}: EPERM): \
                 CAP_NET_ADMIN is missing"
            ),
            Unavailable::Unsupported => f.write_str(
                "the kernel has no proc connector (NETLINK_CONNECTOR: EPROTONOSUPPORT; \
                 CONFIG_PROC_EVENTS is off)",
            ),
            Unavailable::NoAnswer(after) => write!(
                f,
                "the kernel did not answer the proc connector subscription within {after:?}: \
                 it ignores subscribers outside the initial user and PID namespaces"
            ),
            Unavailable::Io { step, error } => write!(f, "proc connector {step} failed: {error}"),
        }
    }
}

impl std::error::Error for Unavailable {}

/// The namespaces the kernel wants a subscriber in that `own` is not in. User and PID
/// are checked against the kernel's fixed inodes of the initial namespaces; the network
/// namespace, which has no fixed inode, against the host reference (when it has one
/// that did not come from the fixed inodes).
pub fn missing_namespaces(own: &NsSet, host: &HostRef) -> Vec<NsType> {
    let mut missing = Vec::new();
    for t in [NsType::User, NsType::Pid] {
        let initial = FIXED_INITIAL.iter().find(|(ft, _)| *ft == t).map(|f| f.1);
        if let (Some(mine), Some(init)) = (own.get(t), initial) {
            if mine != init {
                missing.push(t);
            }
        }
    }
    if host.source != HostSource::Fixed && !own.shares(&host.ns, NsType::Net) {
        if let (Some(_), Some(_)) = (own.get(NsType::Net), host.ns.get(NsType::Net)) {
            missing.push(NsType::Net);
        }
    }
    missing
}

/// How to subscribe.
#[derive(Debug, Clone)]
pub struct Options {
    /// The socket's receive buffer: events arriving while it is full are lost.
    pub recv_buffer: usize,
    /// How long [`Connector::recv`] waits for a datagram before returning `None`, so the
    /// caller can look at other things.
    pub poll: Duration,
    /// How long to wait for the kernel's answer to the subscription.
    pub answer_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            // A burst of execs comes with forks and exits: 8 MiB hold some 10,000 events
            // (an event costs about 800 bytes of socket memory).
            recv_buffer: 8 << 20,
            poll: Duration::from_millis(200),
            answer_timeout: Duration::from_secs(1),
        }
    }
}

/// Counts since the subscription.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Process events received (acks left out).
    pub events: u64,
    /// Exec events among them.
    pub execs: u64,
    /// Events known lost: sequence gaps, and at least one per overrun whose gap has not
    /// shown yet.
    pub lost: u64,
    /// `ENOBUFS`: the receive buffer overflowed.
    pub overruns: u64,
    /// Datagrams that did not parse, and datagrams not from the kernel.
    pub malformed: u64,
}

/// What one [`Connector::recv`] brought.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Received {
    /// Events lost before these (sequence gaps, or an overrun).
    pub lost: u64,
    /// The receive buffer overflowed: some events of any CPU are gone, so whatever
    /// they would have told must be found by a scan.
    pub overrun: bool,
}

/// A subscribed proc connector socket. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Connector {
    fd: OwnedFd,
    seqs: Sequences,
    buf: Vec<u8>,
    stats: Stats,
    /// Events already counted as lost for an overrun, not yet matched by a gap.
    overrun_credit: u64,
}

/// The largest datagram the connector sends is a few hundred bytes; this leaves room
/// for anything a later kernel adds.
const DATAGRAM_MAX: usize = 64 << 10;

/// The errno behind an I/O error, if any.
fn errno(e: &io::Error) -> Option<i32> {
    e.raw_os_error()
}

fn classify(step: &'static str, e: rustix::io::Errno) -> Unavailable {
    let error = io::Error::from(e);
    match errno(&error) {
        Some(libc::EPERM) | Some(libc::EACCES) => Unavailable::Permission { step },
        Some(libc::EPROTONOSUPPORT) | Some(libc::EAFNOSUPPORT) => Unavailable::Unsupported,
        // The connector's kernel socket exists only in the initial network namespace:
        // from any other, a message to the kernel finds no one to take it.
        Some(libc::ECONNREFUSED) => Unavailable::Namespaces(vec![NsType::Net]),
        _ => Unavailable::Io { step, error },
    }
}

impl Connector {
    /// Subscribe to process events. `own` are the caller's own namespaces and `host`
    /// the host reference: when they show the caller outside the initial user, PID or
    /// network namespace, the kernel would not serve it, and this says so without
    /// trying. Otherwise the kernel's own answer decides.
    pub fn subscribe(own: &NsSet, host: &HostRef, opts: &Options) -> Result<Self, Unavailable> {
        let missing = missing_namespaces(own, host);
        if !missing.is_empty() {
            return Err(Unavailable::Namespaces(missing));
        }
        Self::subscribe_unchecked(opts)
    }

    /// Subscribe without the namespace check: the kernel's errors (or its silence)
    /// alone decide. For tests that show what the kernel does.
    pub fn subscribe_unchecked(opts: &Options) -> Result<Self, Unavailable> {
        let fd = socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            Some(netlink::CONNECTOR),
        )
        .map_err(|e| classify("socket", e))?;
        // A bigger buffer than the system's rmem_max needs CAP_NET_ADMIN
        // (SO_RCVBUFFORCE); without it the largest the system allows is taken.
        if sockopt::set_socket_recv_buffer_size_force(&fd, opts.recv_buffer).is_err() {
            let _ = sockopt::set_socket_recv_buffer_size(&fd, opts.recv_buffer);
        }
        sockopt::set_socket_timeout(&fd, sockopt::Timeout::Recv, Some(opts.poll))
            .map_err(|e| classify("setsockopt(SO_RCVTIMEO)", e))?;
        bind(&fd, &SocketAddrNetlink::new(0, CN_IDX_PROC))
            .map_err(|e| classify("bind to the CN_IDX_PROC group", e))?;
        let mut c = Connector {
            fd,
            seqs: Sequences::default(),
            buf: vec![0; DATAGRAM_MAX],
            stats: Stats::default(),
            overrun_credit: 0,
        };
        c.listen(opts.answer_timeout)?;
        // Counting starts now: what came before the answer was not ours to miss.
        c.stats = Stats::default();
        c.seqs.reset();
        Ok(c)
    }

    /// Send `PROC_CN_MCAST_LISTEN` and wait for the kernel's answer to it.
    fn listen(&mut self, timeout: Duration) -> Result<(), Unavailable> {
        // The answer goes to every subscriber; its `ack` (ours plus one) tells ours from
        // theirs. Its `seq` is the kernel's own count on current kernels.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let tag = std::process::id() ^ (nanos << 8);
        let (seq, ack) = (tag, tag.wrapping_mul(2654435761));
        let req = subscription(PROC_CN_MCAST_LISTEN, seq, ack);
        sendto(
            &self.fd,
            &req,
            SendFlags::empty(),
            &SocketAddrNetlink::new(0, 0),
        )
        .map_err(|e| classify("subscribe (PROC_CN_MCAST_LISTEN)", e))?;
        let deadline = Instant::now() + timeout;
        let mut msgs = Vec::new();
        while Instant::now() < deadline {
            msgs.clear();
            match self.recv(&mut msgs) {
                Ok(_) => {}
                Err(e) if errno(&e) == Some(libc::ENOBUFS) => continue,
                Err(e) => {
                    return Err(Unavailable::Io {
                        step: "waiting for the subscription's answer",
                        error: e,
                    })
                }
            }
            for m in &msgs {
                if let ProcEvent::Ack { err } = m.event {
                    if m.ack == ack.wrapping_add(1) {
                        return match err as i32 {
                            0 => Ok(()),
                            libc::EPERM | libc::EACCES => Err(Unavailable::Permission {
                                step: "subscribe (PROC_CN_MCAST_LISTEN)",
                            }),
                            e => Err(Unavailable::Io {
                                step: "subscribe (PROC_CN_MCAST_LISTEN)",
                                error: io::Error::from_raw_os_error(e),
                            }),
                        };
                    }
                }
            }
        }
        Err(Unavailable::NoAnswer(timeout))
    }

    /// Wait up to the poll interval for one datagram and append its process events to
    /// `out`. `Ok(None)` when nothing came. An overrun (`ENOBUFS`) is not an error: it
    /// is reported in [`Received::overrun`] and counted.
    pub fn recv(&mut self, out: &mut Vec<Message>) -> io::Result<Option<Received>> {
        let (n, from) = match recvfrom(&self.fd, &mut self.buf[..], RecvFlags::empty()) {
            Ok((_, n, from)) => (n, from),
            Err(e) if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::INTR => {
                return Ok(None)
            }
            Err(e) if e == rustix::io::Errno::NOBUFS => {
                self.stats.overruns += 1;
                self.stats.lost += 1;
                self.overrun_credit += 1;
                return Ok(Some(Received {
                    lost: 1,
                    overrun: true,
                }));
            }
            Err(e) => return Err(e.into()),
        };
        // Only the kernel (port 0) speaks for the connector; anything else on this
        // socket is not an event.
        let from_kernel = from
            .and_then(|a| SocketAddrNetlink::try_from(a).ok())
            .is_some_and(|a| a.pid() == 0);
        if !from_kernel || n > self.buf.len() {
            self.stats.malformed += 1;
            return Ok(Some(Received::default()));
        }
        let mut got = Received::default();
        for m in messages(&self.buf[..n]) {
            match m {
                Ok(m) => {
                    let gap = self.seqs.observe(&m);
                    // An overrun already counted one event lost; the gap it left
                    // shows how many really were.
                    let covered = gap.min(self.overrun_credit);
                    self.overrun_credit -= covered;
                    self.stats.lost += gap - covered;
                    got.lost += gap - covered;
                    if !matches!(m.event, ProcEvent::Ack { .. }) {
                        self.stats.events += 1;
                        if matches!(m.event, ProcEvent::Exec { .. }) {
                            self.stats.execs += 1;
                        }
                    }
                    out.push(m);
                }
                Err(e) => {
                    self.stats.malformed += 1;
                    tracing::debug!(error = %e, "malformed proc connector datagram");
                }
            }
        }
        Ok(Some(got))
    }

    /// Counts since the subscription.
    pub fn stats(&self) -> Stats {
        self.stats
    }
}

impl Drop for Connector {
    fn drop(&mut self) {
        // The kernel counts subscribers, not sockets: without this, closing the socket
        // would leave it sending events to no one.
        let req = subscription(PROC_CN_MCAST_IGNORE, 0, 0);
        let _ = sendto(
            &self.fd,
            &req,
            SendFlags::empty(),
            &SocketAddrNetlink::new(0, 0),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(NsType, u64)]) -> NsSet {
        let mut s = NsSet::default();
        for &(t, i) in pairs {
            s.set(t, Some(i));
        }
        s
    }

    const USER0: u64 = 4026531837;
    const PID0: u64 = 4026531836;

    #[test]
    fn namespaces_the_kernel_wants() {
        let host = HostRef {
            source: HostSource::Kthread,
            ns: set(&[
                (NsType::Net, 4026531840),
                (NsType::User, USER0),
                (NsType::Pid, PID0),
            ]),
        };
        let at_home = set(&[
            (NsType::Net, 4026531840),
            (NsType::User, USER0),
            (NsType::Pid, PID0),
        ]);
        assert_eq!(missing_namespaces(&at_home, &host), []);
        let pod = set(&[
            (NsType::Net, 4026532999),
            (NsType::User, USER0),
            (NsType::Pid, 4026533000),
        ]);
        assert_eq!(missing_namespaces(&pod, &host), [NsType::Pid, NsType::Net]);
        let userns = set(&[
            (NsType::Net, 4026531840),
            (NsType::User, 4026533001),
            (NsType::Pid, PID0),
        ]);
        assert_eq!(missing_namespaces(&userns, &host), [NsType::User]);
        // User and PID have fixed initial inodes whatever the host reference says (a
        // procfs of the pod's own would make the pod its own "host").
        let own_view = HostRef {
            source: HostSource::Pid1,
            ns: pod,
        };
        assert_eq!(missing_namespaces(&pod, &own_view), [NsType::Pid]);
        // A host reference from the fixed inodes has no network namespace: the
        // kernel's answer decides that one.
        let fixed = HostRef {
            source: HostSource::Fixed,
            ns: set(&[(NsType::User, USER0), (NsType::Pid, PID0)]),
        };
        assert_eq!(missing_namespaces(&pod, &fixed), [NsType::Pid]);
    }

    #[test]
    fn kernel_errors_name_what_is_missing() {
        use rustix::io::Errno;
        assert!(matches!(
            classify("bind", Errno::PERM),
            Unavailable::Permission { step: "bind" }
        ));
        assert!(matches!(
            classify("socket", Errno::PROTONOSUPPORT),
            Unavailable::Unsupported
        ));
        assert!(
            matches!(classify("send", Errno::CONNREFUSED), Unavailable::Namespaces(t) if t == [NsType::Net])
        );
        assert!(matches!(
            classify("send", Errno::NOMEM),
            Unavailable::Io { step: "send", .. }
        ));
        let text = Unavailable::Permission { step: "bind" }.to_string();
        assert!(text.contains("CAP_NET_ADMIN is missing"), "{text}");
        let text = Unavailable::Unsupported.to_string();
        assert!(text.contains("CONFIG_PROC_EVENTS"), "{text}");
        let text = Unavailable::Namespaces(vec![NsType::User, NsType::Pid]).to_string();
        assert!(text.contains("initial user, pid namespaces"), "{text}");
    }
}
