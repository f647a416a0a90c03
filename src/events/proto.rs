//! The proc connector's wire format, as pure functions over bytes: the subscription
//! request, the datagrams the kernel sends (`nlmsghdr`, `cn_msg`, `proc_event`) and the
//! per-CPU sequence numbers that tell when events were lost.
//!
//! Layouts, from `include/uapi/linux/netlink.h`, `connector.h` and `cn_proc.h`; every
//! field is in the host's byte order (netlink never leaves the machine):
//!
//! ```text
//! nlmsghdr   len u32 | type u16 | flags u16 | seq u32 | pid u32            16 bytes
//! cn_msg     idx u32 | val u32 | seq u32 | ack u32 | len u16 | flags u16    20 bytes
//! proc_event what u32 | cpu u32 | timestamp_ns u64 | event_data (union)    16 + n
//!   fork     parent_pid, parent_tgid, child_pid, child_tgid                 i32 each
//!   exec     process_pid, process_tgid
//!   exit     process_pid, process_tgid, exit_code, exit_signal[, parent_pid, parent_tgid]
//!   comm     process_pid, process_tgid, comm[16]
//!   none     err u32 (the answer to a subscription)
//! ```
//!
//! The connector numbers its events per CPU (`cn_msg.seq` comes from a per-CPU counter
//! taken under the same local lock that queues the message), so a gap in one CPU's
//! sequence is events that never reached this socket. The answer to a subscription (an
//! ack) is numbered the same way on current kernels, but older ones gave it the
//! requester's own `seq`: an ack is taken into a CPU's sequence only when it continues
//! it, and otherwise neither counts a gap nor moves the baseline.

/// `NLMSG_DONE`: the type the connector gives every message, both ways.
const NLMSG_DONE: u16 = 3;
/// `NLMSG_ERROR`: the kernel refused a request.
const NLMSG_ERROR: u16 = 2;
/// `NLMSG_NOOP` and `NLMSG_OVERRUN` carry nothing for us.
const NLMSG_NOOP: u16 = 1;
const NLMSG_HDRLEN: usize = 16;
const CN_MSG_LEN: usize = 20;
/// `proc_event` up to its union.
const PROC_EVENT_HDR: usize = 16;

/// `CN_IDX_PROC`, `CN_VAL_PROC`: the connector id of process events; `CN_IDX_PROC` is
/// also the multicast group to join.
pub const CN_IDX_PROC: u32 = 1;
pub const CN_VAL_PROC: u32 = 1;

/// `enum proc_cn_mcast_op`.
pub const PROC_CN_MCAST_LISTEN: u32 = 1;
pub const PROC_CN_MCAST_IGNORE: u32 = 2;

/// `enum what` of `struct proc_event`.
const PROC_EVENT_NONE: u32 = 0;
const PROC_EVENT_FORK: u32 = 0x0000_0001;
const PROC_EVENT_EXEC: u32 = 0x0000_0002;
const PROC_EVENT_COMM: u32 = 0x0000_0200;
const PROC_EVENT_EXIT: u32 = 0x8000_0000;

/// What one `proc_event` says. Only the kinds nsexporter acts on are spelled out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcEvent {
    /// The kernel's answer to a subscription request: 0, or an errno (`EPERM`).
    Ack {
        err: u32,
    },
    Fork {
        parent_tgid: u32,
        child_pid: u32,
        child_tgid: u32,
    },
    /// `execve` succeeded: thread `pid` of process `tgid` runs a new program. After
    /// an exec from a non-leader thread the kernel has already made it the leader, so
    /// `pid == tgid` then too.
    Exec {
        pid: u32,
        tgid: u32,
    },
    /// The task changed its `comm` (`prctl(PR_SET_NAME)`, a write to `comm`).
    Comm {
        pid: u32,
        tgid: u32,
        comm: [u8; 16],
    },
    Exit {
        pid: u32,
        tgid: u32,
        exit_code: u32,
    },
    /// uid, gid, sid, ptrace, coredump and any kind added later.
    Other {
        what: u32,
    },
}

/// One `proc_event` with the header fields that place it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message {
    /// The CPU whose counter numbered it.
    pub cpu: u32,
    /// `cn_msg.seq`: per CPU, one more for each message (see the module docs for acks).
    pub seq: u32,
    /// `cn_msg.ack`: only meaningful on an [`ProcEvent::Ack`], where it is the
    /// requester's `ack` plus one.
    pub ack: u32,
    /// `ktime_get_ns()` when the event happened (monotonic, nanoseconds since boot).
    pub timestamp_ns: u64,
    pub event: ProcEvent,
}

/// Why a datagram did not parse. The rest of that datagram is skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("netlink message header truncated: {0} bytes left")]
    ShortHeader(usize),
    #[error("netlink message length {len} does not fit the {left} bytes left")]
    BadLength { len: u32, left: usize },
    #[error("netlink error message: errno {0}")]
    Netlink(i32),
    #[error("connector message truncated: {0} bytes")]
    ShortCnMsg(usize),
    #[error("connector payload of {len} bytes does not fit the {left} bytes left")]
    BadPayload { len: u16, left: usize },
    #[error("proc_event of kind {what:#x} truncated: {len} bytes")]
    ShortEvent { what: u32, len: usize },
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_ne_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_ne_bytes(a)
}

/// The subscription request (or, with [`PROC_CN_MCAST_IGNORE`], its end): one netlink
/// message holding one `cn_msg` whose payload is the operation. `seq` and `ack` come
/// back in the kernel's answer, which tells it from the answers to other subscribers.
pub fn subscription(op: u32, seq: u32, ack: u32) -> [u8; NLMSG_HDRLEN + CN_MSG_LEN + 4] {
    let mut m = [0u8; NLMSG_HDRLEN + CN_MSG_LEN + 4];
    let total = m.len() as u32;
    m[0..4].copy_from_slice(&total.to_ne_bytes());
    m[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
    // flags 0, seq 0, pid 0 (the kernel does not look at them for the connector)
    let c = NLMSG_HDRLEN;
    m[c..c + 4].copy_from_slice(&CN_IDX_PROC.to_ne_bytes());
    m[c + 4..c + 8].copy_from_slice(&CN_VAL_PROC.to_ne_bytes());
    m[c + 8..c + 12].copy_from_slice(&seq.to_ne_bytes());
    m[c + 12..c + 16].copy_from_slice(&ack.to_ne_bytes());
    m[c + 16..c + 18].copy_from_slice(&4u16.to_ne_bytes());
    m[c + CN_MSG_LEN..].copy_from_slice(&op.to_ne_bytes());
    m
}

/// The messages of one datagram, in order. Messages of other connectors are skipped; a
/// malformed message yields one error and ends the iteration (its length can no longer
/// be trusted to find the next one).
pub fn messages(datagram: &[u8]) -> Messages<'_> {
    Messages {
        rest: datagram,
        done: false,
    }
}

/// Iterator returned by [`messages`].
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    rest: &'a [u8],
    done: bool,
}

impl Iterator for Messages<'_> {
    type Item = Result<Message, ProtoError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done && !self.rest.is_empty() {
            match self.step() {
                Ok(Some(m)) => return Some(Ok(m)),
                Ok(None) => continue,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

impl Messages<'_> {
    /// Consume one netlink message; `None` when it carries no process event.
    fn step(&mut self) -> Result<Option<Message>, ProtoError> {
        let b = self.rest;
        if b.len() < NLMSG_HDRLEN {
            return Err(ProtoError::ShortHeader(b.len()));
        }
        let len = u32_at(b, 0);
        let ty = u16_at(b, 4);
        let bad_len = || ProtoError::BadLength { len, left: b.len() };
        let ulen = usize::try_from(len).map_err(|_| bad_len())?;
        if ulen < NLMSG_HDRLEN || ulen > b.len() {
            return Err(bad_len());
        }
        // NLMSG_ALIGN: the next message starts on a 4-byte boundary (the last one may
        // end without its padding).
        let next = ulen.div_ceil(4).saturating_mul(4).min(b.len());
        self.rest = &b[next..];
        let body = &b[NLMSG_HDRLEN..ulen];
        match ty {
            NLMSG_ERROR => {
                let errno = if body.len() >= 4 {
                    u32_at(body, 0) as i32
                } else {
                    0
                };
                // An error message with errno 0 is an acknowledgment.
                if errno == 0 {
                    return Ok(None);
                }
                return Err(ProtoError::Netlink(errno.wrapping_neg()));
            }
            NLMSG_NOOP => return Ok(None),
            _ => {}
        }
        if body.len() < CN_MSG_LEN {
            return Err(ProtoError::ShortCnMsg(body.len()));
        }
        let (idx, val) = (u32_at(body, 0), u32_at(body, 4));
        let seq = u32_at(body, 8);
        let ack = u32_at(body, 12);
        let plen = u16_at(body, 16);
        let payload = &body[CN_MSG_LEN..];
        if usize::from(plen) > payload.len() {
            return Err(ProtoError::BadPayload {
                len: plen,
                left: payload.len(),
            });
        }
        if (idx, val) != (CN_IDX_PROC, CN_VAL_PROC) {
            return Ok(None);
        }
        parse_proc_event(&payload[..usize::from(plen)], seq, ack).map(Some)
    }
}

/// One `proc_event` (the `cn_msg` payload).
fn parse_proc_event(p: &[u8], seq: u32, ack: u32) -> Result<Message, ProtoError> {
    if p.len() < PROC_EVENT_HDR {
        return Err(ProtoError::ShortEvent {
            what: if p.len() >= 4 { u32_at(p, 0) } else { 0 },
            len: p.len(),
        });
    }
    let what = u32_at(p, 0);
    let cpu = u32_at(p, 4);
    let timestamp_ns = u64_at(p, 8);
    let d = &p[PROC_EVENT_HDR..];
    let need = |n: usize| {
        if d.len() < n {
            Err(ProtoError::ShortEvent { what, len: p.len() })
        } else {
            Ok(())
        }
    };
    let event = match what {
        PROC_EVENT_NONE => {
            need(4)?;
            ProcEvent::Ack { err: u32_at(d, 0) }
        }
        PROC_EVENT_FORK => {
            need(16)?;
            ProcEvent::Fork {
                parent_tgid: u32_at(d, 4),
                child_pid: u32_at(d, 8),
                child_tgid: u32_at(d, 12),
            }
        }
        PROC_EVENT_EXEC => {
            need(8)?;
            ProcEvent::Exec {
                pid: u32_at(d, 0),
                tgid: u32_at(d, 4),
            }
        }
        PROC_EVENT_COMM => {
            need(24)?;
            let mut comm = [0u8; 16];
            comm.copy_from_slice(&d[8..24]);
            ProcEvent::Comm {
                pid: u32_at(d, 0),
                tgid: u32_at(d, 4),
                comm,
            }
        }
        PROC_EVENT_EXIT => {
            need(12)?;
            ProcEvent::Exit {
                pid: u32_at(d, 0),
                tgid: u32_at(d, 4),
                exit_code: u32_at(d, 8),
            }
        }
        other => ProcEvent::Other { what: other },
    };
    Ok(Message {
        cpu,
        seq,
        ack,
        timestamp_ns,
        event,
    })
}

/// The datagram the kernel would send for `m`: the inverse of [`messages`], for tests
/// and benchmarks. The union is padded to the kernel's size (24 bytes) as it is.
pub fn encode(m: &Message) -> Vec<u8> {
    let words = |w: &[u32]| -> Vec<u8> { w.iter().flat_map(|v| v.to_ne_bytes()).collect() };
    let (what, mut data) = match m.event {
        ProcEvent::Ack { err } => (PROC_EVENT_NONE, words(&[err])),
        ProcEvent::Fork {
            parent_tgid,
            child_pid,
            child_tgid,
        } => (
            PROC_EVENT_FORK,
            words(&[parent_tgid, parent_tgid, child_pid, child_tgid]),
        ),
        ProcEvent::Exec { pid, tgid } => (PROC_EVENT_EXEC, words(&[pid, tgid])),
        ProcEvent::Comm { pid, tgid, comm } => {
            let mut d = words(&[pid, tgid]);
            d.extend_from_slice(&comm);
            (PROC_EVENT_COMM, d)
        }
        ProcEvent::Exit {
            pid,
            tgid,
            exit_code,
        } => (PROC_EVENT_EXIT, words(&[pid, tgid, exit_code, 17, 1, 1])),
        ProcEvent::Other { what } => (what, Vec::new()),
    };
    if data.len() < 24 {
        data.resize(24, 0);
    }
    frame(what, m.cpu, m.seq, m.ack, m.timestamp_ns, &data)
}

/// One netlink message holding one `cn_msg` of process events with `data` as the
/// `proc_event` union.
fn frame(what: u32, cpu: u32, seq: u32, ack: u32, timestamp_ns: u64, data: &[u8]) -> Vec<u8> {
    let plen = PROC_EVENT_HDR + data.len();
    let total = NLMSG_HDRLEN + CN_MSG_LEN + plen;
    let mut m = Vec::with_capacity(total);
    m.extend_from_slice(&(total as u32).to_ne_bytes());
    m.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
    m.extend_from_slice(&[0; 10]); // flags, seq, pid
    m.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
    m.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&ack.to_ne_bytes());
    m.extend_from_slice(&(plen as u16).to_ne_bytes());
    m.extend_from_slice(&[0; 2]);
    m.extend_from_slice(&what.to_ne_bytes());
    m.extend_from_slice(&cpu.to_ne_bytes());
    m.extend_from_slice(&timestamp_ns.to_ne_bytes());
    m.extend_from_slice(data);
    m
}

/// CPUs beyond this are not tracked (the kernel's `NR_CPUS` tops out at 8192): a
/// message naming one is counted as received, with no gap check, so that a corrupt
/// `cpu` cannot make the tracker grow without bound.
pub const MAX_CPUS: usize = 8192;

/// The last sequence number seen from each CPU; tells how many events a new one shows
/// to be missing.
#[derive(Debug, Clone, Default)]
pub struct Sequences {
    last: Vec<Option<u32>>,
}

impl Sequences {
    /// Record `m` and return how many events of its CPU were skipped before it. The
    /// first message from a CPU sets its baseline. A number that goes back (or jumps
    /// forward by more than half the range, the same thing modulo 2^32) cannot come
    /// from one CPU's counter: it re-baselines without counting, rather than count four
    /// billion lost events.
    pub fn observe(&mut self, m: &Message) -> u64 {
        let ack = matches!(m.event, ProcEvent::Ack { .. });
        let Ok(cpu) = usize::try_from(m.cpu) else {
            return 0;
        };
        if cpu >= MAX_CPUS {
            return 0;
        }
        if self.last.len() <= cpu {
            self.last.resize(cpu + 1, None);
        }
        if ack {
            if self.last[cpu].is_some_and(|p| p.wrapping_add(1) == m.seq) {
                self.last[cpu] = Some(m.seq);
            }
            return 0;
        }
        let prev = self.last[cpu].replace(m.seq);
        match prev {
            None => 0,
            Some(p) => {
                let gap = m.seq.wrapping_sub(p).wrapping_sub(1);
                if gap < 1 << 31 {
                    u64::from(gap)
                } else {
                    0
                }
            }
        }
    }

    /// Forget every baseline: after an overrun the kernel may have dropped messages of
    /// any CPU, and the next ones are counted from scratch.
    pub fn reset(&mut self) {
        self.last.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A datagram as the kernel builds it (`cn_netlink_send_mult`): one netlink
    /// message, type `NLMSG_DONE`, holding one `cn_msg` and one `proc_event`.
    fn datagram(what: u32, cpu: u32, seq: u32, data: &[u8]) -> Vec<u8> {
        frame(what, cpu, seq, 0, 123_456_789, data)
    }

    fn words(w: &[u32]) -> Vec<u8> {
        w.iter().flat_map(|v| v.to_ne_bytes()).collect()
    }

    fn one(d: &[u8]) -> Result<Message, ProtoError> {
        let mut it = messages(d);
        let m = it.next().expect("one message");
        assert!(it.next().is_none());
        m
    }

    #[test]
    fn each_kind() {
        // The kernel's exec event is 40 bytes of proc_event: the union is sized by its
        // largest member, so data beyond what a kind uses is there and ignored.
        let mut exec = words(&[4242, 4242]);
        exec.resize(24, 0);
        let m = one(&datagram(PROC_EVENT_EXEC, 1, 77, &exec)).unwrap();
        assert_eq!(
            m,
            Message {
                cpu: 1,
                seq: 77,
                ack: 0,
                timestamp_ns: 123_456_789,
                event: ProcEvent::Exec {
                    pid: 4242,
                    tgid: 4242
                }
            }
        );
        let fork = one(&datagram(PROC_EVENT_FORK, 0, 1, &words(&[10, 10, 11, 11])))
            .unwrap()
            .event;
        assert_eq!(
            fork,
            ProcEvent::Fork {
                parent_tgid: 10,
                child_pid: 11,
                child_tgid: 11
            }
        );
        // Exit: newer kernels add the parent's pid and tgid; both sizes parse.
        for data in [words(&[7, 5, 256, 17]), words(&[7, 5, 256, 17, 1, 1])] {
            let e = one(&datagram(PROC_EVENT_EXIT, 0, 2, &data)).unwrap().event;
            assert_eq!(
                e,
                ProcEvent::Exit {
                    pid: 7,
                    tgid: 5,
                    exit_code: 256
                }
            );
        }
        let mut comm = words(&[9, 9]);
        comm.extend_from_slice(b"kworker\0\0\0\0\0\0\0\0\0");
        let c = one(&datagram(PROC_EVENT_COMM, 0, 3, &comm)).unwrap().event;
        assert!(
            matches!(c, ProcEvent::Comm { pid: 9, tgid: 9, comm } if comm.starts_with(b"kworker\0"))
        );
        let ack = one(&datagram(PROC_EVENT_NONE, 0, 99, &words(&[1]))).unwrap();
        assert_eq!(ack.event, ProcEvent::Ack { err: 1 });
        // uid change (PROC_EVENT_UID): reported, not interpreted.
        let uid = one(&datagram(4, 0, 4, &words(&[1, 1, 0, 0])))
            .unwrap()
            .event;
        assert_eq!(uid, ProcEvent::Other { what: 4 });
    }

    #[test]
    fn malformed() {
        let good = datagram(PROC_EVENT_EXEC, 0, 1, &words(&[1, 1]));
        // Truncated anywhere: an error, never a panic or a made-up event.
        for cut in 1..good.len() {
            let r: Vec<_> = messages(&good[..cut]).collect();
            assert_eq!(r.len(), 1, "cut at {cut}");
            assert!(r[0].is_err(), "cut at {cut}: {r:?}");
        }
        // A length shorter than the header cannot be stepped over.
        let mut short = good.clone();
        short[0..4].copy_from_slice(&8u32.to_ne_bytes());
        assert!(matches!(
            one(&short),
            Err(ProtoError::BadLength { len: 8, .. })
        ));
        // A kind too short for its fields.
        let d = datagram(PROC_EVENT_FORK, 0, 1, &words(&[1, 2]));
        assert!(matches!(
            one(&d),
            Err(ProtoError::ShortEvent { what: 1, .. })
        ));
        // NLMSG_ERROR with an errno.
        let mut err = vec![0u8; 36];
        err[0..4].copy_from_slice(&36u32.to_ne_bytes());
        err[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        err[16..20].copy_from_slice(&(-1i32).to_ne_bytes());
        assert_eq!(one(&err), Err(ProtoError::Netlink(1)));
        // ... and without one: an acknowledgment, nothing to report.
        err[16..20].copy_from_slice(&0i32.to_ne_bytes());
        assert_eq!(messages(&err).count(), 0);
    }

    #[test]
    fn several_per_datagram_and_other_connectors() {
        let mut d = datagram(PROC_EVENT_EXEC, 0, 1, &words(&[1, 1]));
        // Another connector's message (idx 2) in between is skipped.
        let mut other = datagram(PROC_EVENT_EXEC, 0, 2, &words(&[2, 2]));
        other[16..20].copy_from_slice(&2u32.to_ne_bytes());
        // Lengths not a multiple of 4 are padded to the next message.
        let odd = datagram(PROC_EVENT_EXEC, 0, 3, &[3, 0, 0, 0, 3, 0, 0, 0, 0]);
        for part in [&other, &odd] {
            while !d.len().is_multiple_of(4) {
                d.push(0);
            }
            d.extend_from_slice(part);
        }
        let seqs: Vec<u32> = messages(&d).map(|m| m.unwrap().seq).collect();
        assert_eq!(seqs, [1, 3]);
    }

    #[test]
    fn encode_is_the_inverse() {
        let comm = *b"sleep\0\0\0\0\0\0\0\0\0\0\0";
        for event in [
            ProcEvent::Exec { pid: 9, tgid: 8 },
            ProcEvent::Ack { err: 0 },
            ProcEvent::Fork {
                parent_tgid: 1,
                child_pid: 2,
                child_tgid: 2,
            },
            ProcEvent::Comm {
                pid: 3,
                tgid: 3,
                comm,
            },
            ProcEvent::Exit {
                pid: 4,
                tgid: 4,
                exit_code: 9,
            },
            ProcEvent::Other { what: 0x40 },
        ] {
            let m = Message {
                cpu: 3,
                seq: 41,
                ack: 7,
                timestamp_ns: 5,
                event,
            };
            assert_eq!(one(&encode(&m)), Ok(m));
        }
    }

    #[test]
    fn subscription_round_trips_through_the_parser() {
        let req = subscription(PROC_CN_MCAST_LISTEN, 5, 6);
        assert_eq!(req.len(), 40);
        assert_eq!(u32_at(&req, 0), 40);
        assert_eq!(u32_at(&req, 16), CN_IDX_PROC);
        assert_eq!(u32_at(&req, 24), 5);
        assert_eq!(u16_at(&req, 32), 4);
        assert_eq!(u32_at(&req, 36), PROC_CN_MCAST_LISTEN);
        // 4 bytes of payload are too few for a proc_event: the parser says so.
        assert!(matches!(one(&req), Err(ProtoError::ShortEvent { .. })));
    }

    fn ev(cpu: u32, seq: u32) -> Message {
        Message {
            cpu,
            seq,
            ack: 0,
            timestamp_ns: 0,
            event: ProcEvent::Exec { pid: 1, tgid: 1 },
        }
    }

    #[test]
    fn sequence_gaps_per_cpu() {
        let mut s = Sequences::default();
        let table: &[(u32, u32, u64)] = &[
            (0, 10, 0), // baseline
            (1, 500, 0),
            (0, 11, 0),
            (1, 501, 0),
            (0, 15, 3), // 12, 13, 14 lost
            (1, 502, 0),
            (0, u32::MAX, 0), // backwards by far: re-baseline, not 4e9 lost
            (0, 1, 1),        // wraps past 0: seq 0 lost
            (0, 1, 0),        // a repeat goes back by one: re-baseline
            (3, 7, 0),
            (3, 9, 1),
        ];
        for &(cpu, seq, lost) in table {
            assert_eq!(s.observe(&ev(cpu, seq)), lost, "cpu {cpu} seq {seq}");
        }
        // An ack that continues the sequence takes its place in it (current kernels)...
        let mut ack = ev(0, 2);
        ack.event = ProcEvent::Ack { err: 0 };
        assert_eq!(s.observe(&ack), 0);
        assert_eq!(s.observe(&ev(0, 3)), 0);
        // ... one with the requester's number (older kernels) is never a gap.
        ack.seq = 1_000_000;
        assert_eq!(s.observe(&ack), 0);
        assert_eq!(s.observe(&ev(0, 4)), 0);
        // A CPU number no machine has is not tracked (bounded memory).
        assert_eq!(s.observe(&ev(u32::MAX, 1)), 0);
        assert_eq!(s.observe(&ev(u32::MAX, 9)), 0);
        assert!(s.last.len() <= MAX_CPUS);
        s.reset();
        assert_eq!(s.observe(&ev(0, 100)), 0);
    }
}
