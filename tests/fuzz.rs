//! Property tests ("fuzzing" that runs in `cargo test`) for every parser of /proc
//! content (the settings loader's are in `fuzz_config.rs`). The properties: no panic; no allocation beyond
//! a small multiple of the input (checked by a counting allocator, on inputs up to a few
//! MB); work linear in the input (CPU time on two sizes compared, never wall time
//! against a limit); and an error value rather than garbage: a generated valid input parses back to
//! the generated values, and any other input either fails or parses to something
//! consistent with its text.
//!
//! Cases per property: `PROPTEST_CASES` (default 256). Inputs that ever broke a
//! property are kept below as plain regression tests.
//!
//! Why one file of about 900 lines: one property per /proc parser, over the same
//! generators and counting allocator (a test binary has one global allocator); the
//! regression inputs sit beside their property.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use nsexporter::cgroup::{attribute_path, Attribution};
use nsexporter::model::{NsType, Runtime, UidMapLine};
use nsexporter::procfs::parse::{
    self, parse_cgroup, parse_mountinfo_nsfs, parse_ns_link, parse_schedstat, parse_stat_view,
    parse_status_euid, parse_sysctl_u64, parse_uid_map, ParseError, CGROUP_MAX_LINES,
    UID_MAP_MAX_LINES,
};
use proptest::prelude::*;

mod fuzzkit;
use fuzzkit::{check, proc_bytes};

// ---------------------------------------------------------------------------------
// A counting allocator: the peak of bytes live on the current thread.

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only bookkeeping is added, in const-init
// thread locals that never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        track(l.size() as isize);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        track(-(l.size() as isize));
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        track(new as isize - l.size() as isize);
        System.realloc(p, l, new)
    }
}

fn track(d: isize) {
    let _ = LIVE.try_with(|live| {
        let v = live.get() + d;
        live.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Run `f` and return its result with the peak of extra bytes it had allocated.
fn peak_alloc<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    let peak = PEAK.with(Cell::get) - base;
    (out, peak.max(0) as usize)
}

/// The bound every parser keeps: twice the input plus 64 KiB.
fn alloc_bound(input_len: usize) -> usize {
    2 * input_len + (64 << 10)
}

fn proc_text(max: usize) -> impl Strategy<Value = String> {
    proc_bytes(max).prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn ns_type() -> impl Strategy<Value = NsType> {
    prop::sample::select(NsType::ALL.to_vec())
}

/// Insert, delete or replace one byte of `s` at a chosen place.
fn mutate(s: &[u8], at: usize, op: u8, byte: u8) -> Vec<u8> {
    let mut v = s.to_vec();
    if v.is_empty() {
        v.push(byte);
        return v;
    }
    let i = at % v.len();
    match op % 3 {
        0 => v.insert(i, byte),
        1 => {
            v.remove(i);
        }
        _ => v[i] = byte,
    }
    v
}

// ---------------------------------------------------------------------------------
// ns links

#[test]
fn ns_link_round_trip_and_strictness() {
    check((ns_type(), ns_type(), any::<u64>()), |(t, other, ino)| {
        let text = format!("{t}:[{ino}]");
        prop_assert_eq!(parse_ns_link(text.as_bytes(), t), Ok(ino));
        if other != t {
            prop_assert!(parse_ns_link(text.as_bytes(), other).is_err());
        }
        Ok(())
    });
    check(
        (
            ns_type(),
            any::<u64>(),
            any::<usize>(),
            any::<u8>(),
            any::<u8>(),
        ),
        |(t, ino, at, op, byte)| {
            let text = mutate(format!("{t}:[{ino}]").as_bytes(), at, op, byte);
            if let Ok(v) = parse_ns_link(&text, t) {
                // Only an inode written in digits, in exactly that frame, parses.
                let inner = text
                    .strip_prefix(format!("{t}:[").as_bytes())
                    .and_then(|r| r.strip_suffix(b"]"));
                prop_assert!(inner.is_some(), "{:?}", String::from_utf8_lossy(&text));
                let digits = std::str::from_utf8(inner.unwrap_or_default()).unwrap_or("x");
                prop_assert_eq!(digits.parse::<u64>().ok(), Some(v));
            }
            Ok(())
        },
    );
    check((proc_bytes(300), ns_type()), |(b, t)| {
        let _ = parse_ns_link(&b, t);
        Ok(())
    });
}

// ---------------------------------------------------------------------------------
// uid_map

fn uid_line() -> impl Strategy<Value = UidMapLine> {
    (any::<u32>(), any::<u32>(), 1..=u32::MAX).prop_map(|(inside, outside, length)| UidMapLine {
        inside,
        outside,
        length,
    })
}

fn spaces() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec![' ', '\t']), 1..12)
        .prop_map(|v| v.into_iter().collect())
}

/// A uid_map's non-blank lines must each be three numbers equal to the parsed line.
fn consistent_uid_map(text: &str, lines: &[UidMapLine]) -> Result<(), TestCaseError> {
    let src: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    prop_assert_eq!(src.len(), lines.len());
    for (s, l) in src.iter().zip(lines) {
        let f: Vec<u64> = s
            .split_ascii_whitespace()
            .map(|x| x.parse::<u64>().unwrap_or(u64::MAX))
            .collect();
        prop_assert_eq!(
            f,
            vec![
                u64::from(l.inside),
                u64::from(l.outside),
                u64::from(l.length)
            ]
        );
    }
    Ok(())
}

#[test]
fn uid_map_round_trip_and_consistency() {
    let map = prop::collection::vec((uid_line(), spaces(), spaces(), spaces()), 0..=40);
    check(map, |lines| {
        let text: String = lines
            .iter()
            .map(|(l, a, b, c)| format!("{a}{}{b}{}{c}{}\n", l.inside, l.outside, l.length))
            .collect();
        let want: Vec<UidMapLine> = lines.iter().map(|(l, ..)| *l).collect();
        prop_assert_eq!(parse_uid_map(&text).map(|m| m.0), Ok(want));
        Ok(())
    });
    let one = prop::collection::vec(uid_line(), 1..6);
    check(
        (one, any::<usize>(), any::<u8>(), any::<u8>()),
        |(lines, at, op, byte)| {
            let text: String = lines
                .iter()
                .map(|l| format!("{:>10} {:>10} {:>10}\n", l.inside, l.outside, l.length))
                .collect();
            let text = String::from_utf8_lossy(&mutate(text.as_bytes(), at, op, byte)).into_owned();
            if let Ok(m) = parse_uid_map(&text) {
                consistent_uid_map(&text, &m.0)?;
            }
            Ok(())
        },
    );
    check(proc_text(2000), |text| {
        if let Ok(m) = parse_uid_map(&text) {
            prop_assert!(m.0.len() <= UID_MAP_MAX_LINES);
            consistent_uid_map(&text, &m.0)?;
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------
// stat

#[test]
fn stat_round_trip_with_any_comm() {
    let comm = prop::collection::vec(any::<u8>(), 0..64);
    let state = prop::sample::select(b"RSDZTtXIPK".to_vec());
    check(
        (
            comm,
            state,
            any::<u32>(),
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
        ),
        |(comm, state, pid, ppid, flags, minflt, threads, start)| {
            let mut b = format!("{pid} (").into_bytes();
            b.extend_from_slice(&comm);
            b.extend_from_slice(
                format!(
                    ") {} {ppid} {pid} {pid} 0 -1 {flags} {minflt} 0 0 0 1 1 0 0 20 0 {threads} 0 {start} 1000000 100 18446744073709551615 1 1 0 0\n",
                    state as char
                )
                .as_bytes(),
            );
            let s = parse_stat_view(&b).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(s.comm, &comm[..]);
            prop_assert_eq!(s.state, state);
            prop_assert_eq!(s.ppid, u64::from(ppid));
            prop_assert_eq!(s.kernel_thread, flags & parse::PF_KTHREAD != 0);
            prop_assert_eq!(s.minflt, minflt);
            prop_assert_eq!(s.threads, threads);
            prop_assert_eq!(s.start_time, start);
            Ok(())
        },
    );
    check(proc_bytes(600), |b| {
        if let Ok(s) = parse_stat_view(&b) {
            // comm is what lies between the first '(' and the last ')'.
            let open = b.iter().position(|&c| c == b'(').unwrap_or(0);
            prop_assert!(b[open + 1..].starts_with(s.comm));
            prop_assert_eq!(
                b.iter().rposition(|&c| c == b')'),
                Some(open + 1 + s.comm.len())
            );
            // The state is the first byte of the first field after it.
            let after = &b[open + 2 + s.comm.len()..];
            let first = after
                .split(|c| *c == b' ' || *c == b'\n')
                .find(|f| !f.is_empty());
            prop_assert_eq!(first.and_then(|f| f.first().copied()), Some(s.state));
        }
        Ok(())
    });
    // Mutations of a real line: parsed consistently or refused, never a panic.
    let real = b"4242 (sleep) S 4241 4242 1 0 -1 4194560 101 0 0 0 0 0 0 0 20 0 1 0 123456 2306048 128 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
    check(
        prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..6),
        |edits| {
            let mut b = real.to_vec();
            for (at, op, byte) in edits {
                b = mutate(&b, at, op, byte);
            }
            if let Ok(s) = parse_stat_view(&b) {
                prop_assert!(s.comm.len() < b.len());
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------
// schedstat

#[test]
fn schedstat_round_trip_and_strictness() {
    check(
        (any::<u64>(), any::<u64>(), any::<u64>(), spaces()),
        |(runtime, delay, pcount, sep)| {
            let text = format!("{runtime}{sep}{delay} {pcount}\n");
            prop_assert_eq!(parse_schedstat(text.as_bytes()), Some((runtime, pcount)));
            Ok(())
        },
    );
    check(proc_bytes(200), |b| {
        if let Some((runtime, pcount)) = parse_schedstat(&b) {
            // The first and third whitespace-separated fields, both plain decimals.
            let f: Vec<&[u8]> = b
                .split(|c| c.is_ascii_whitespace())
                .filter(|f| !f.is_empty())
                .collect();
            prop_assert!(f.len() >= 3);
            let dec = |f: &[u8]| std::str::from_utf8(f).ok()?.parse::<u64>().ok();
            prop_assert!(
                f[0].iter().all(u8::is_ascii_digit) && f[2].iter().all(u8::is_ascii_digit)
            );
            prop_assert_eq!(dec(f[0]), Some(runtime));
            prop_assert_eq!(dec(f[2]), Some(pcount));
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------
// status

#[test]
fn status_euid_round_trip() {
    check(
        (proc_text(40), any::<[u32; 4]>(), spaces()),
        |(name, uids, sep)| {
            // The kernel escapes `\n` in Name; the generator does too.
            let name = name.replace('\n', "\\n");
            let text = format!(
                "Name:\t{name}\nUmask:\t0022\nState:\tS (sleeping)\nUid:{sep}{}\t{}\t{}\t{}\nGid:\t1\t1\t1\t1\n",
                uids[0], uids[1], uids[2], uids[3]
            );
            prop_assert_eq!(parse_status_euid(text.as_bytes()), Ok(uids[1]));
            Ok(())
        },
    );
    check(proc_bytes(600), |b| {
        if let Ok(euid) = parse_status_euid(&b) {
            let line = b
                .split(|c| *c == b'\n')
                .find(|l| l.starts_with(b"Uid:"))
                .map(|l| String::from_utf8_lossy(l).into_owned());
            prop_assert!(line.is_some());
            let second = line
                .as_deref()
                .unwrap_or("")
                .trim_start_matches("Uid:")
                .split([' ', '\t'])
                .filter(|f| !f.is_empty())
                .nth(1)
                .and_then(|f| f.parse::<u32>().ok());
            prop_assert_eq!(second, Some(euid));
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------
// cgroup

fn cgroup_path() -> impl Strategy<Value = String> {
    // Any bytes but NUL and newline (the kernel refuses `\n` in cgroup names).
    let comp = prop::collection::vec(
        prop_oneof![
            3 => prop::sample::select(b"abcdef0123456789-_.:@ )(".to_vec()),
            1 => (1u8..=255).prop_filter("no newline or slash", |b| *b != b'\n' && *b != b'/'),
        ],
        1..20,
    )
    .prop_map(|v| String::from_utf8_lossy(&v).into_owned());
    prop::collection::vec(comp, 0..6).prop_map(|c| format!("/{}", c.join("/")))
}

#[test]
fn cgroup_round_trip_and_no_duplicate_hierarchy() {
    let line = (
        prop::sample::select(vec!["", "pids", "memory", "name=systemd", "cpu,cpuacct"]),
        cgroup_path(),
    );
    check(
        prop::collection::btree_map(0u32..64, line, 0..12),
        |lines| {
            let text: String = lines
                .iter()
                .rev()
                .map(|(h, (c, p))| format!("{h}:{c}:{p}\n"))
                .collect();
            let got = parse_cgroup(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let got: Vec<(u32, String, String)> = got
                .iter()
                .map(|l| (l.hierarchy, l.controllers.to_string(), l.path.to_string()))
                .collect();
            let want: Vec<(u32, String, String)> = lines
                .iter()
                .rev()
                .map(|(h, (c, p))| (*h, c.to_string(), p.clone()))
                .collect();
            prop_assert_eq!(got, want);
            Ok(())
        },
    );
    check(proc_text(1500), |text| {
        if let Ok(lines) = parse_cgroup(&text) {
            prop_assert!(lines.len() <= CGROUP_MAX_LINES);
            let mut seen = std::collections::HashSet::new();
            for l in &lines {
                prop_assert!(seen.insert(l.hierarchy), "hierarchy {} twice", l.hierarchy);
                prop_assert!(l.path.starts_with('/'));
                let line = format!("{}:{}:{}", l.hierarchy, l.controllers, l.path);
                prop_assert!(text.split('\n').any(|s| s.ends_with(&line)));
            }
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------
// attribution

fn hex64() -> impl Strategy<Value = String> {
    "[0-9a-f]{64}"
}

#[test]
fn attribution_never_invents_ids_and_delegated_subtrees_are_always_marked() {
    let suffix = prop::collection::vec(
        prop_oneof![
            hex64(),
            hex64().prop_map(|h| format!("docker-{h}.scope")),
            hex64().prop_map(|h| format!("cri-containerd-{h}.scope")),
            hex64().prop_map(|h| format!("libpod-{h}")),
            hex64().prop_map(|h| format!("x.slice:crio:{h}")),
            Just("docker".to_string()),
            Just("kubepods".to_string()),
            Just("pod26ab26cd-6409-443f-a13c-fd6c231207c8".to_string()),
            Just("kubepods-podeb052b63_ea96_4728_ab4a_64ab3babccd7.slice".to_string()),
            Just("app.slice".to_string()),
            Just("user@0.service".to_string()),
            "[a-z@.:_-]{1,12}",
        ],
        0..6,
    );
    check((0u32..100_000, suffix), |(uid, comps)| {
        let path = format!(
            "/user.slice/user-{uid}.slice/user@{uid}.service/{}",
            comps.join("/")
        );
        if let Attribution::Container(c) = attribute_path(&path, Runtime::Containerd) {
            prop_assert_eq!(c.owner_uid, Some(uid), "{}", path);
            prop_assert_eq!(c.pod_uid.as_str(), "");
            let marker = format!("://user-{uid}/");
            prop_assert!(c.container_id().contains(&marker));
        }
        Ok(())
    });
    check(cgroup_path(), |path| {
        match attribute_path(&path, Runtime::Containerd) {
            Attribution::Container(c) => {
                prop_assert_eq!(c.id.len(), 64);
                prop_assert!(c
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
                prop_assert!(path.contains(&c.id));
                prop_assert!(
                    c.pod_uid.is_empty() || c.pod_uid.len() == 32 || c.pod_uid.len() == 36
                );
                prop_assert!(c
                    .pod_uid
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b'-'));
            }
            Attribution::Monitor | Attribution::Host => {}
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------
// mountinfo

fn escape_mount_point(p: &str) -> String {
    let mut out = String::new();
    for c in p.chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\\' => out.push_str("\\134"),
            c => out.push(c),
        }
    }
    out
}

#[test]
fn mountinfo_round_trip_and_bounds() {
    let mp = "/[a-z0-9 \t\n\\\\_.-]{1,30}";
    check(
        prop::collection::vec((ns_type(), 1u64..u64::MAX, mp), 0..10),
        |mounts| {
            let mut text = String::from("22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/root rw\n");
            for (i, (t, ino, mp)) in mounts.iter().enumerate() {
                text.push_str(&format!(
                    "{} 25 0:4 {t}:[{ino}] {} rw shared:3 - nsfs nsfs rw\n",
                    600 + i,
                    escape_mount_point(mp)
                ));
            }
            let (got, bad) = parse_mountinfo_nsfs(&text);
            prop_assert_eq!(bad, 0);
            let got: Vec<(NsType, u64, String)> = got
                .into_iter()
                .map(|m| (m.ns_type, m.inode, m.mount_point))
                .collect();
            prop_assert_eq!(got, mounts);
            Ok(())
        },
    );
    check(proc_text(2000), |text| {
        let (mounts, bad) = parse_mountinfo_nsfs(&text);
        let nsfs_lines = text.lines().filter(|l| l.contains(" - nsfs")).count();
        prop_assert!(mounts.len() as u64 + bad <= nsfs_lines as u64);
        Ok(())
    });
}

// ---------------------------------------------------------------------------------
// sysctl

#[test]
fn sysctl_round_trip() {
    check((any::<u64>(), "[ \t\n]{0,3}"), |(v, ws)| {
        prop_assert_eq!(parse_sysctl_u64(&format!("{ws}{v}{ws}\n")), Some(v));
        Ok(())
    });
    check(proc_text(60), |text| {
        if let Some(v) = parse_sysctl_u64(&text) {
            let t = text.trim();
            prop_assert!(t.bytes().all(|b| b.is_ascii_digit()), "{:?}", t);
            prop_assert_eq!(t.parse::<u64>().ok(), Some(v));
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------
// Big inputs: bounded allocation, and work linear in the input, for every parser.

/// Inputs of `size` bytes, shaped to be worst cases for each parser.
fn big_inputs(size: usize) -> Vec<(&'static str, Vec<u8>)> {
    let rep = |unit: &[u8]| unit.repeat(size / unit.len());
    vec![
        ("newlines", vec![b'\n'; size]),
        ("colons", vec![b':'; size]),
        ("parens", rep(b"()")),
        ("open-parens", vec![b'('; size]),
        ("uid-lines", rep(b"0 0 1\n")),
        ("cgroup-lines", rep(b"0::/\n")),
        ("cgroup-distinct", {
            let mut v = Vec::new();
            let mut h = 0u32;
            while v.len() < size {
                v.extend_from_slice(format!("{h}:pids:/a\n").as_bytes());
                h += 1;
            }
            v
        }),
        (
            "nsfs-lines",
            rep(b"1 2 0:4 net:[1] /r\\040x rw - nsfs nsfs rw\n"),
        ),
        ("nsfs-bad", rep(b"1 2 0:4 bogus /x rw - nsfs nsfs rw\n")),
        ("uid-prefix", rep(b"Uid:\t")),
        ("digits", vec![b'9'; size]),
        ("high-bytes", vec![0xff; size]),
    ]
}

/// One parser run over an input, given as bytes and as (lossy) text.
type Parser = fn(&[u8], &str);

/// Every parser of /proc content, its result kept from the optimiser.
fn parsers() -> [(&'static str, Parser); 9] {
    use std::hint::black_box;
    [
        ("ns_link", |b, _| {
            black_box(parse_ns_link(b, NsType::Net).is_ok());
        }),
        ("uid_map", |_, t| {
            black_box(parse_uid_map(t).is_ok());
        }),
        ("stat", |b, _| {
            black_box(parse_stat_view(b).is_ok());
        }),
        ("schedstat", |b, _| {
            black_box(parse_schedstat(b).is_some());
        }),
        ("status", |b, _| {
            black_box(parse_status_euid(b).is_ok());
        }),
        ("cgroup", |_, t| {
            black_box(parse_cgroup(t).is_ok());
        }),
        ("mountinfo", |_, t| {
            black_box(parse_mountinfo_nsfs(t).0.len());
        }),
        ("sysctl", |_, t| {
            black_box(parse_sysctl_u64(t));
        }),
        ("attribute", |_, t| {
            black_box(attribute_path(t, Runtime::Containerd));
        }),
    ]
}

#[test]
fn every_parser_on_multi_megabyte_input_is_bounded() {
    for (name, input) in big_inputs(4 << 20) {
        let text = String::from_utf8_lossy(&input).into_owned();
        let bound = alloc_bound(input.len());
        for (parser, run) in parsers() {
            let peak = peak_alloc(|| run(&input, &text)).1;
            assert!(
                peak <= bound,
                "{parser} on {name} ({} bytes) allocated {peak} bytes, over {bound}",
                input.len()
            );
        }
    }
}

/// CPU time the calling thread spent in `f`: the least of five runs. CPU time, not
/// wall time, so that others' load on the machine does not count (it can only add a
/// little, through caches, which the least of five runs mostly removes).
fn thread_cpu(f: impl Fn()) -> std::time::Duration {
    let now = || {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: plain syscall filling a timespec this function owns.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
        std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    };
    (0..5)
        .map(|_| {
            let t0 = now();
            f();
            now() - t0
        })
        .min()
        .expect("five runs")
}

/// Whether `run` does at most linear work from `small` to `big` (four times larger):
/// at most ten times the CPU time (quadratic work takes sixteen). Runs shorter than
/// half a millisecond are too short to compare and count as that long.
fn linear(run: impl Fn(&[u8], &str), small: &[u8], big: &[u8]) -> Result<(), String> {
    const FLOOR: std::time::Duration = std::time::Duration::from_micros(500);
    let ratio = big.len() as f64 / small.len() as f64;
    assert!(
        (3.9..4.1).contains(&ratio),
        "sizes {} and {}",
        small.len(),
        big.len()
    );
    let small_text = String::from_utf8_lossy(small).into_owned();
    let big_text = String::from_utf8_lossy(big).into_owned();
    let a = thread_cpu(|| run(small, &small_text));
    let b = thread_cpu(|| run(big, &big_text));
    if b <= 10 * a.max(FLOOR) {
        Ok(())
    } else {
        Err(format!(
            "{a:?} of CPU for {} bytes, {b:?} for {}: more than linear",
            small.len(),
            big.len()
        ))
    }
}

/// No parser does more than linear work on big inputs. A bound on how work grows, not
/// on how long anything takes: two sizes run back to back on the same thread. The
/// check itself catches a quadratic scan.
#[test]
fn every_parser_does_linear_work_on_big_input() {
    const SMALL: usize = 64 << 10;
    for ((name, small), (_, big)) in big_inputs(SMALL).into_iter().zip(big_inputs(4 * SMALL)) {
        for (parser, run) in parsers() {
            if let Err(e) = linear(run, &small, &big) {
                panic!("{parser} on {name}: {e}");
            }
        }
    }
    // A scan that looks back to the start at every line (the classic quadratic
    // parser) does not pass.
    let quadratic = |b: &[u8], _: &str| {
        let mut n = 0usize;
        for i in 0..b.len() {
            if b[i] == b'\n' {
                n += std::hint::black_box(&b[..i])
                    .iter()
                    .filter(|c| **c == b'\n')
                    .count();
            }
        }
        std::hint::black_box(n);
    };
    assert!(linear(quadratic, &[b'\n'; 2 << 10], &[b'\n'; 8 << 10]).is_err());
}

// ---------------------------------------------------------------------------------
// Regression tests: inputs that once broke, or would break, a property.

#[test]
fn regression_forged_second_cgroup_line_is_an_error() {
    // What a `\n` in a cgroup name would print on a kernel that allowed it.
    let id = "4d1f6c6e2c7a8b9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70";
    let text = format!("0::/user.slice/user-1000.slice/user@1000.service/a\n0::/docker/{id}\n");
    assert_eq!(parse_cgroup(&text), Err(ParseError::CgroupDuplicate(0)));
}

#[test]
fn regression_huge_cgroup_file_is_refused_not_scanned_quadratically() {
    // Garbage after the cap: the parser refuses at the cap without reading the rest
    // (it would report the garbage if it got there), so its work is bounded by the cap,
    // not by the file.
    let mut text: String = (0..=CGROUP_MAX_LINES)
        .map(|h| format!("{h}:pids:/\n"))
        .collect();
    text.push_str(&"garbage\n".repeat(100_000));
    assert_eq!(
        parse_cgroup(&text),
        Err(ParseError::CgroupTooLong(CGROUP_MAX_LINES))
    );
}

#[test]
fn regression_stat_with_only_parentheses() {
    assert!(parse_stat_view(b")(").is_err());
    assert!(parse_stat_view(b"()").is_err());
    assert!(matches!(
        parse_stat_view(b"1 ()) S"),
        Err(parse::ParseError::Stat(_))
    ));
}

// ---------------------------------------------------------------------------------
// proc connector datagrams

mod proc_events {
    use super::*;
    use nsexporter::events::proto::{encode, messages, Message, ProcEvent, Sequences};

    fn event() -> impl Strategy<Value = ProcEvent> {
        prop_oneof![
            any::<u32>().prop_map(|err| ProcEvent::Ack { err }),
            (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(p, c, t)| ProcEvent::Fork {
                parent_tgid: p,
                child_pid: c,
                child_tgid: t
            }),
            (any::<u32>(), any::<u32>()).prop_map(|(pid, tgid)| ProcEvent::Exec { pid, tgid }),
            (any::<u32>(), any::<u32>(), any::<[u8; 16]>())
                .prop_map(|(pid, tgid, comm)| ProcEvent::Comm { pid, tgid, comm }),
            (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(pid, tgid, exit_code)| {
                ProcEvent::Exit {
                    pid,
                    tgid,
                    exit_code,
                }
            }),
            prop::sample::select(vec![4u32, 0x40, 0x80, 0x100, 0x4000_0000])
                .prop_map(|what| ProcEvent::Other { what }),
        ]
    }

    fn message() -> impl Strategy<Value = Message> {
        (
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<u64>(),
            event(),
        )
            .prop_map(|(cpu, seq, ack, timestamp_ns, event)| Message {
                cpu,
                seq,
                ack,
                timestamp_ns,
                event,
            })
    }

    #[test]
    fn datagrams_round_trip() {
        check(prop::collection::vec(message(), 1..8), |ms| {
            let mut d = Vec::new();
            for m in &ms {
                d.extend_from_slice(&encode(m));
            }
            let (got, peak) = peak_alloc(|| messages(&d).collect::<Vec<_>>());
            let got: Vec<Message> = got.into_iter().map(|r| r.unwrap()).collect();
            prop_assert_eq!(got, ms);
            prop_assert!(peak <= alloc_bound(d.len()));
            Ok(())
        });
    }

    #[test]
    fn mutated_and_arbitrary_datagrams_never_panic_or_invent() {
        check(
            (message(), any::<usize>(), any::<u8>(), any::<u8>()),
            |(m, at, op, byte)| {
                let d = mutate(&encode(&m), at, op, byte);
                // Parsing allocates nothing itself; at most one result per 52 bytes (the
                // three headers), plus the one error that ends it.
                let (n, peak) = peak_alloc(|| messages(&d).count());
                prop_assert_eq!(peak, 0);
                prop_assert!(n <= d.len() / 52 + 1);
                Ok(())
            },
        );
        check(prop::collection::vec(any::<u8>(), 0..4096), |d| {
            let n = messages(&d).count();
            prop_assert!(n <= d.len() / 52 + 1);
            Ok(())
        });
    }

    #[test]
    fn sequence_gaps_count_exactly_what_was_dropped() {
        // Per CPU, a run of consecutive numbers from a random start (wrapping), some
        // of them dropped after the first: the tracker counts exactly the dropped ones.
        check(
            (
                prop::collection::vec((0u32..8, any::<u32>(), 1usize..200), 1..6),
                prop::collection::vec(any::<bool>(), 0..1200),
            ),
            |(cpus, drops)| {
                let mut s = Sequences::default();
                let mut dropped = 0u64;
                let mut counted = 0u64;
                let mut seen = std::collections::HashSet::new();
                let mut k = 0;
                for (cpu, start, n) in cpus {
                    if !seen.insert(cpu) {
                        continue;
                    }
                    for i in 0..n {
                        let keep = i == 0 || i + 1 == n || !drops.get(k).copied().unwrap_or(false);
                        k += 1;
                        let m = Message {
                            cpu,
                            seq: start.wrapping_add(i as u32),
                            ack: 0,
                            timestamp_ns: 0,
                            event: ProcEvent::Exec { pid: 1, tgid: 1 },
                        };
                        if keep {
                            counted += s.observe(&m);
                        } else {
                            dropped += 1;
                        }
                    }
                }
                prop_assert_eq!(counted, dropped);
                Ok(())
            },
        );
    }
}

/// Why `parse_stat_view` is ours (see its doc): procfs-core's `Stat` panics on stat
/// files a hostile tree can hold, where ours returns an error. If procfs-core stops
/// panicking, this fails, and the choice is worth measuring again.
#[test]
fn procfs_core_stat_panics_where_ours_errs() {
    use procfs_core::FromRead;
    for bad in [&b"1 (x)"[..], b"(x) S 1"] {
        assert!(parse_stat_view(bad).is_err());
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let r = std::panic::catch_unwind(|| procfs_core::process::Stat::from_read(bad));
        std::panic::set_hook(prev);
        assert!(r.is_err(), "procfs-core no longer panics on {bad:?}");
    }
}
