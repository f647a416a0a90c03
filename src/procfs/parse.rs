//! Pure parsers for the /proc files nsexporter reads. Each takes the file's bytes or
//! text and returns a value or a [`ParseError`]; none touches the file system.

use crate::model::{NsType, UidMap, UidMapLine};

/// Why some /proc content did not parse. The text is for logs; the variant for tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("namespace link {0:?} is not of the form <type>:[<inode>]")]
    NsLink(String),
    #[error("namespace link is of type {found:?}, expected {expected}")]
    NsLinkType { found: String, expected: NsType },
    #[error("uid_map line {0:?} is not `inside outside length`")]
    UidMap(String),
    #[error("uid_map has more than {0} lines")]
    UidMapTooLong(usize),
    #[error("stat: {0}")]
    Stat(&'static str),
    #[error("status has no parseable Uid: line")]
    StatusUid,
    #[error("cgroup line {0:?} is not `hierarchy:controllers:path`")]
    Cgroup(String),
    #[error("cgroup file names hierarchy {0} twice")]
    CgroupDuplicate(u32),
    #[error("cgroup file has more than {0} lines")]
    CgroupTooLong(usize),
    #[error("mountinfo line {0:?} is not a well-formed nsfs mount")]
    Mountinfo(String),
    /// Content refused before parsing, e.g. a file over the size cap.
    #[error("{0}")]
    Unusable(String),
}

/// More cgroup lines than any host has hierarchies (16 controllers, a few named v1
/// hierarchies and the v2 one); bounds the duplicate check on a hostile file.
pub const CGROUP_MAX_LINES: usize = 256;

/// Maximum number of uid_map lines the kernel allows (`UID_GID_MAP_MAX_EXTENTS`).
pub const UID_MAP_MAX_LINES: usize = 340;

/// Clip a string for an error message so a hostile file cannot bloat the log.
fn clip(s: &[u8]) -> String {
    let s = &s[..s.len().min(80)];
    String::from_utf8_lossy(s).into_owned()
}

/// Parse the text of a `/proc/<pid>/ns/<type>` link, e.g. `net:[4026531833]`, and check
/// that it names the expected type.
pub fn parse_ns_link(text: &[u8], expected: NsType) -> Result<u64, ParseError> {
    let bad = || ParseError::NsLink(clip(text));
    let colon = text.iter().position(|&b| b == b':').ok_or_else(bad)?;
    let (ty, rest) = (&text[..colon], &text[colon + 1..]);
    let inner = rest
        .strip_prefix(b"[")
        .and_then(|r| r.strip_suffix(b"]"))
        .ok_or_else(bad)?;
    if ty != expected.name().as_bytes() {
        return Err(ParseError::NsLinkType {
            found: clip(ty),
            expected,
        });
    }
    parse_u64(inner).ok_or_else(bad)
}

/// A strict decimal: ASCII digits only, no sign, no overflow.
fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(v)
}

fn parse_u32(s: &str) -> Option<u32> {
    parse_u64(s.as_bytes()).and_then(|v| u32::try_from(v).ok())
}

/// Parse a `uid_map` file: lines of `inside outside length`, any amount of spaces.
/// An empty file (a user namespace whose map is not written yet) is an empty map.
///
/// Our own: procfs-core 0.18 has no `uid_map` parser (procfs reads the file through its
/// `Process`, which opens it itself). Fuzzed in tests/fuzz.rs.
pub fn parse_uid_map(text: &str) -> Result<UidMap, ParseError> {
    let mut lines = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if lines.len() == UID_MAP_MAX_LINES {
            return Err(ParseError::UidMapTooLong(UID_MAP_MAX_LINES));
        }
        let mut f = line.split_ascii_whitespace();
        let mut next = || f.next().and_then(parse_u32);
        let (Some(inside), Some(outside), Some(length)) = (next(), next(), next()) else {
            return Err(ParseError::UidMap(clip(line.as_bytes())));
        };
        if f.next().is_some() || length == 0 {
            return Err(ParseError::UidMap(clip(line.as_bytes())));
        }
        lines.push(UidMapLine {
            inside,
            outside,
            length,
        });
    }
    Ok(UidMap(lines))
}

/// PF_KTHREAD: the process is a kernel thread.
pub const PF_KTHREAD: u64 = 0x0020_0000;

/// The fields of `/proc/<pid>/stat` a scan needs, borrowed from the file's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatView<'a> {
    /// `comm` as the kernel wrote it between the outer parentheses (any bytes).
    pub comm: &'a [u8],
    /// Field 3, the state letter.
    pub state: u8,
    /// Field 4.
    pub ppid: u64,
    /// Field 9 has PF_KTHREAD.
    pub kernel_thread: bool,
    /// Field 10, the group's minor faults.
    pub minflt: u64,
    /// Field 20.
    pub threads: u64,
    /// Field 22, start time in clock ticks after boot.
    pub start_time: u64,
}

/// Parse `/proc/<pid>/stat`. `comm` may hold spaces and parentheses, so it is the text
/// between the first `(` and the *last* `)`; the fields after it are counted from
/// field 3.
///
/// Our own parser rather than procfs-core's `Stat`: a scan reads `stat` of every
/// process on every scan, and procfs-core's allocates (a `String` of the line and one
/// of `comm`, lossy, so `comm`'s raw bytes are lost) and parses all 52 fields, where
/// this one borrows and stops at field 22 (`cargo bench --bench parsers`, this
/// project's machine under load: 12.4 µs against 7.5 µs, 1.7x); and procfs-core's panics on some malformed files (a `stat` that ends right
/// after the `)`; a `(` first), which a hostile `--path.procfs` tree can hold. Fuzzed
/// in tests/fuzz.rs.
#[inline]
pub fn parse_stat_view(bytes: &[u8]) -> Result<StatView<'_>, ParseError> {
    let open = bytes
        .iter()
        .position(|&b| b == b'(')
        .ok_or(ParseError::Stat("no '(' before comm"))?;
    let close = bytes
        .iter()
        .rposition(|&b| b == b')')
        .filter(|&c| c > open)
        .ok_or(ParseError::Stat("no ')' after comm"))?;
    let mut state = None;
    let mut ppid = None;
    let mut flags = None;
    let mut minflt = None;
    let mut threads = None;
    let mut start_time = None;
    // Field 3 (state) is index 0: ppid is field 4, flags 9, minflt 10, num_threads 20,
    // starttime 22.
    let fields = bytes[close + 1..]
        .split(|b| *b == b' ' || *b == b'\n')
        .filter(|f| !f.is_empty());
    for (i, f) in fields.enumerate() {
        match i {
            0 => state = f.first().copied(),
            1 => ppid = parse_u64(f),
            6 => flags = parse_u64(f),
            7 => minflt = parse_u64(f),
            17 => threads = parse_u64(f),
            19 => {
                start_time = parse_u64(f);
                break;
            }
            _ => {}
        }
    }
    Ok(StatView {
        comm: &bytes[open + 1..close],
        state: state.ok_or(ParseError::Stat("no state field"))?,
        ppid: ppid.ok_or(ParseError::Stat("bad ppid field"))?,
        kernel_thread: flags.ok_or(ParseError::Stat("bad flags field"))? & PF_KTHREAD != 0,
        minflt: minflt.ok_or(ParseError::Stat("bad minflt field"))?,
        threads: threads.ok_or(ParseError::Stat("bad num_threads field"))?,
        start_time: start_time.ok_or(ParseError::Stat("bad starttime field"))?,
    })
}

/// `/proc/<pid>/schedstat`: `<runtime ns> <run delay ns> <times switched in>`; the
/// runtime and the switch count.
///
/// Our own rather than procfs-core's `Schedstat`: read for every process on every
/// scan, and procfs-core's reads the bytes into a new `String` first (`cargo bench
/// --bench parsers`: 638 ns against 228 ns, 2.8x; our warm reads allocate nothing).
/// Fuzzed in tests/fuzz.rs.
#[inline]
pub fn parse_schedstat(text: &[u8]) -> Option<(u64, u64)> {
    let mut f = text
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let runtime = parse_u64(f.next()?)?;
    let _delay = f.next()?;
    let pcount = parse_u64(f.next()?)?;
    Some((runtime, pcount))
}

/// The effective UID from `/proc/<pid>/status` (`Uid:\treal\teffective\tsaved\tfs`).
///
/// Our own rather than procfs-core's `Status`: that one requires `Name`, `State`,
/// `Tgid`, `Pid`, `PPid` and `TracerPid` lines, which the fixture trees (the only ones
/// whose `status` is read: on a procfs the UID comes from `fstat`) need not hold, and it
/// builds a map of every line to take one field (`cargo bench --bench parsers`: 13.6 µs
/// against 64 ns). Fuzzed in tests/fuzz.rs.
pub fn parse_status_euid(text: &[u8]) -> Result<u32, ParseError> {
    for line in text.split(|b| *b == b'\n') {
        if let Some(rest) = line.strip_prefix(b"Uid:") {
            let mut f = rest
                .split(|b| *b == b'\t' || *b == b' ')
                .filter(|f| !f.is_empty());
            let _real = f.next();
            return f
                .next()
                .and_then(parse_u64)
                .and_then(|v| u32::try_from(v).ok())
                .ok_or(ParseError::StatusUid);
        }
    }
    Err(ParseError::StatusUid)
}

/// One line of `/proc/<pid>/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupLine<'a> {
    /// 0 for the v2 line.
    pub hierarchy: u32,
    /// Comma-separated controllers, empty for v2, `name=systemd` for named ones.
    pub controllers: &'a str,
    pub path: &'a str,
}

impl CgroupLine<'_> {
    pub fn is_v2(&self) -> bool {
        self.hierarchy == 0 && self.controllers.is_empty()
    }

    pub fn has_controller(&self, c: &str) -> bool {
        self.controllers.split(',').any(|x| x == c)
    }
}

/// Parse `/proc/<pid>/cgroup`: `N:controllers:/path` per line. The path is everything
/// after the second colon (paths may contain colons: the cgroupsPath form does).
///
/// The kernel writes one line per hierarchy, so a hierarchy named twice means a cgroup
/// name smuggled in a line of its own: an error, never a second, forged line to
/// attribute by. (Kernels since 5.x refuse `\n` in cgroup names, so this is defence
/// in depth; the check costs nothing.)
///
/// Our own rather than procfs-core's `ProcessCGroups`: a cold scan parses every
/// distinct cgroup file it meets, and procfs-core's parser allocates a `String` per
/// line, per controller and per path, and skips `#` lines, needing the checks below
/// on top (`cargo bench --bench parsers`: 22.4 µs against 8.4 µs, 2.7x, without those
/// checks). Tried: with it, parsing took 3.9x the user-space instructions of this one
/// (callgrind, four cold scans of ~160 processes: 984k against 251k), about a tenth
/// of a whole cold scan's, over the no-regression budget. Fuzzed in tests/fuzz.rs.
pub fn parse_cgroup(text: &str) -> Result<Vec<CgroupLine<'_>>, ParseError> {
    let mut out: Vec<CgroupLine<'_>> = Vec::new();
    for line in text.split('\n').filter(|l| !l.is_empty()) {
        let bad = || ParseError::Cgroup(clip(line.as_bytes()));
        let (h, rest) = line.split_once(':').ok_or_else(bad)?;
        let (controllers, path) = rest.split_once(':').ok_or_else(bad)?;
        let hierarchy = parse_u32(h).ok_or_else(bad)?;
        if !path.starts_with('/') {
            return Err(bad());
        }
        if out.len() == CGROUP_MAX_LINES {
            return Err(ParseError::CgroupTooLong(CGROUP_MAX_LINES));
        }
        if out.iter().any(|l| l.hierarchy == hierarchy) {
            return Err(ParseError::CgroupDuplicate(hierarchy));
        }
        out.push(CgroupLine {
            hierarchy,
            controllers,
            path,
        });
    }
    Ok(out)
}

/// An nsfs bind mount found in a mountinfo file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsfsMount {
    pub ns_type: NsType,
    pub inode: u64,
    pub mount_point: String,
}

/// The fields of one mountinfo line that nsexporter uses, borrowed from the line.
/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`:
/// mount ID, parent ID, `major:minor`, root, mount point, mount options, optional
/// fields up to ` - `, then file system type, source and super options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountLine<'a> {
    /// `major:minor` of the file system (`st_dev` of files on it).
    pub dev: &'a str,
    /// The root of the mount within its file system; for nsfs the namespace's link
    /// text, e.g. `net:[4026532283]`. Escaped as the kernel writes it.
    pub root: &'a str,
    /// Escaped as the kernel writes it (`\040` for a space): see [`unescape_octal`].
    pub mount_point: &'a str,
    pub fstype: &'a str,
    /// Per-super-block options, e.g. `rw,hidepid=invisible,subset=pid` for a procfs.
    pub super_options: &'a str,
}

/// Split one mountinfo line into its fields; `None` when it has not the shape the
/// kernel writes (fewer than five fields before ` - `, or none after it).
pub fn parse_mountinfo_line(line: &str) -> Option<MountLine<'_>> {
    let (pre, post) = line.split_once(" - ")?;
    let mut f = pre.split(' ');
    let (_id, _parent) = (f.next()?, f.next()?);
    let (dev, root, mount_point) = (f.next()?, f.next()?, f.next()?);
    let mut p = post.split(' ');
    let fstype = p.next().filter(|t| !t.is_empty())?;
    let _source = p.next();
    Some(MountLine {
        dev,
        root,
        mount_point,
        fstype,
        super_options: p.next().unwrap_or(""),
    })
}

/// Undo mountinfo's octal escapes (`\040` for space, `\012` for newline, ...).
pub fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.len() - i >= 4 {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = u32::from(oct[0] - b'0') * 64
                    + u32::from(oct[1] - b'0') * 8
                    + u32::from(oct[2] - b'0');
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One mountinfo line: `None` when it is not an nsfs mount (it is then not parsed
/// further), else the mount or why it is malformed. For an nsfs mount the root field is
/// the namespace's link text, e.g. `net:[4026532283]`.
pub fn parse_mountinfo_nsfs_line(line: &str) -> Option<Result<NsfsMount, ParseError>> {
    // Cheap test first: nearly every line of a big table is not nsfs.
    let (_, post) = line.split_once(" - ")?;
    if post.split(' ').next() != Some("nsfs") {
        return None;
    }
    let bad = || ParseError::Mountinfo(clip(line.as_bytes()));
    let Some(m) = parse_mountinfo_line(line) else {
        return Some(Err(bad()));
    };
    // pid_for_children and friends cannot be bound; an unknown type is malformed.
    let Some(ns_type) = m
        .root
        .split_once(':')
        .and_then(|(t, _)| NsType::from_name(t))
    else {
        return Some(Err(bad()));
    };
    Some(match parse_ns_link(m.root.as_bytes(), ns_type) {
        Ok(inode) => Ok(NsfsMount {
            ns_type,
            inode,
            mount_point: unescape_octal(m.mount_point),
        }),
        Err(_) => Err(bad()),
    })
}

/// The nsfs bind mounts in the text of a `/proc/<pid>/mountinfo` file, and how many nsfs
/// lines were malformed. The scanner streams the file line by line instead
/// (`scan::mounts`); this is the same parse over text already in memory.
///
/// Our own rather than procfs-core's `MountInfos`: the scanner reads tables of
/// thousands of lines and looks only at nsfs mounts, where procfs-core's builds owned
/// strings and option maps for every field of every line, fails the whole table on one
/// line it cannot parse, and leaves the octal escapes in place (`cargo bench --bench
/// parsers`, this machine's 24-line table: 19.3 µs against 2.7 µs, 7.1x). Fuzzed in
/// tests/fuzz.rs.
pub fn parse_mountinfo_nsfs(text: &str) -> (Vec<NsfsMount>, u64) {
    let mut out = Vec::new();
    let mut bad = 0;
    for line in text.lines() {
        match parse_mountinfo_nsfs_line(line) {
            Some(Ok(m)) => out.push(m),
            Some(Err(_)) => bad += 1,
            None => {}
        }
    }
    (out, bad)
}

/// The `hidepid` and `subset` options of a procfs mount, from its super options
/// (`rw,hidepid=invisible,subset=pid`). Kernels before 5.8 print `hidepid=2`.
pub fn procfs_options(super_options: &str) -> ProcfsOptions {
    let mut o = ProcfsOptions::default();
    for opt in super_options.split(',') {
        if let Some(v) = opt.strip_prefix("hidepid=") {
            if !matches!(v, "0" | "off") {
                o.hidepid = Some(v.to_owned());
            }
        } else if let Some(v) = opt.strip_prefix("subset=") {
            o.subset = Some(v.to_owned());
        }
    }
    o
}

/// Options of a procfs mount that hide what nsexporter must see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcfsOptions {
    /// `hidepid` other than `off`/`0`: `noaccess` (1), `invisible` (2), `ptraceable` (4).
    pub hidepid: Option<String>,
    /// `subset=pid`: only the process directories, no `loadavg`, no `sys/`.
    pub subset: Option<String>,
}

/// The number of tasks the kernel has, from `/proc/loadavg`
/// (`0.61 0.42 0.35 3/199 22731`: the field after the slash). Threads of every PID
/// namespace count, kernel threads too.
pub fn parse_loadavg_tasks(text: &str) -> Option<u64> {
    let field = text.split_ascii_whitespace().nth(3)?;
    let (_, total) = field.split_once('/')?;
    parse_u64(total.as_bytes())
}

/// A single unsigned integer, as in `/proc/sys/user/max_net_namespaces`.
pub fn parse_sysctl_u64(text: &str) -> Option<u64> {
    parse_u64(text.trim().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ns_links() {
        let cases: &[(&str, NsType, Result<u64, ()>)] = &[
            ("net:[4026531833]", NsType::Net, Ok(4026531833)),
            ("cgroup:[4026531835]", NsType::Cgroup, Ok(4026531835)),
            ("time:[4026531834]", NsType::Time, Ok(4026531834)),
            ("user:[4026532449]", NsType::User, Ok(4026532449)),
            ("net:[4026531833]", NsType::Pid, Err(())),
            ("net:4026531833", NsType::Net, Err(())),
            ("net:[]", NsType::Net, Err(())),
            ("net:[-1]", NsType::Net, Err(())),
            ("net:[99999999999999999999999]", NsType::Net, Err(())),
            ("", NsType::Net, Err(())),
            ("net:[12]x", NsType::Net, Err(())),
        ];
        for (text, t, want) in cases {
            let got = parse_ns_link(text.as_bytes(), *t).map_err(|_| ());
            assert_eq!(&got, want, "{text}");
        }
    }

    #[test]
    fn uid_maps() {
        let m = parse_uid_map("         0          0 4294967295\n").unwrap();
        assert!(m.is_identity_full());
        assert_eq!(m.to_host(0), Some(0));
        let m = parse_uid_map("         0     100000      65536\n").unwrap();
        assert_eq!(m.to_host(0), Some(100000));
        assert_eq!(m.to_inside(100000), Some(0));
        assert_eq!(m.to_inside(165535), Some(65535));
        assert_eq!(m.to_inside(165536), None);
        assert_eq!(m.to_inside(0), None);
        // `unshare --user --map-root-user` as root.
        let m = parse_uid_map("         0          0          1\n").unwrap();
        assert_eq!(m.to_host(0), Some(0));
        assert!(!m.is_identity_full());
        // hostUsers: false
        let m = parse_uid_map("0 1048576 65536").unwrap();
        assert_eq!(m.to_host(0), Some(1048576));
        // not yet written
        assert_eq!(parse_uid_map("").unwrap(), UidMap(vec![]));
        // multi-line
        let m = parse_uid_map("0 1000 1\n1 100000 65535\n").unwrap();
        assert_eq!(m.to_host(1), Some(100000));
        assert_eq!(m.to_inside(1000), Some(0));
        for bad in [
            "0 0",
            "a b c",
            "0 0 1 2",
            "0 0 0",
            "-1 0 1",
            "0 0 4294967296",
        ] {
            assert!(parse_uid_map(bad).is_err(), "{bad}");
        }
        let long = "0 0 1\n".repeat(UID_MAP_MAX_LINES + 1);
        assert_eq!(
            parse_uid_map(&long),
            Err(ParseError::UidMapTooLong(UID_MAP_MAX_LINES))
        );
    }

    #[test]
    fn stat_lines() {
        let kthreadd = b"2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 2 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
        let s = parse_stat_view(kthreadd).unwrap();
        assert_eq!(s.comm, b"kthreadd");
        assert_eq!(s.ppid, 0);
        assert!(s.kernel_thread);
        assert_eq!(s.start_time, 2);
        let sleep = b"4242 (sleep) S 4241 4242 1 0 -1 4194560 101 0 0 0 0 0 0 0 20 0 1 0 123456 2306048 128 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        let s = parse_stat_view(sleep).unwrap();
        assert_eq!(s.comm, b"sleep");
        assert_eq!(s.ppid, 4241);
        assert!(!s.kernel_thread);
        assert_eq!(s.start_time, 123456);
        // comm with spaces, parentheses and a newline.
        let evil = b"77 (a) b) S\n(c) R 1 77 77 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 999 0 0 0\n";
        let s = parse_stat_view(evil).unwrap();
        assert_eq!(s.comm, b"a) b) S\n(c");
        assert_eq!(s.start_time, 999);
        for bad in [&b""[..], b"1 (x S 0", b"1 x) S 0", b"1 (x) S 0 0 0"] {
            assert!(parse_stat_view(bad).is_err());
        }
    }

    #[test]
    fn stat_view_fields() {
        let s = b"4242 (a) b) S\n(c) S 1 4242 4242 0 -1 4194560 731 0 0 0 1 2 0 0 20 0 1 0 98765 \
                  8192000 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        let v = parse_stat_view(s).unwrap();
        assert_eq!(v.comm, b"a) b) S\n(c");
        assert_eq!(v.state, b'S');
        assert!(!v.kernel_thread);
        assert_eq!(v.minflt, 731);
        assert_eq!(v.start_time, 98765);
        let k = b"2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 3 0 0 \
                  18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 17 0 0 0 0 0 0\n";
        let v = parse_stat_view(k).unwrap();
        assert!(v.kernel_thread);
        assert_eq!(v.start_time, 3);
        assert!(parse_stat_view(b"1 (x) S 0 1 1").is_err());
        assert!(parse_stat_view(b"1 x) S").is_err());
    }

    #[test]
    fn schedstat() {
        assert_eq!(parse_schedstat(b"1234567 89 42\n"), Some((1234567, 42)));
        assert_eq!(parse_schedstat(b"0 0 0\n"), Some((0, 0)));
        assert_eq!(parse_schedstat(b"12 34\n"), None);
        assert_eq!(parse_schedstat(b"x 1 2\n"), None);
    }

    #[test]
    fn status_uid() {
        let st = b"Name:\tsleep\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t10\nUid:\t100000\t100000\t100000\t100000\nGid:\t100000\t100000\t100000\t100000\n";
        assert_eq!(parse_status_euid(st), Ok(100000));
        let st = b"Name:\tsu\nUid:\t1000\t0\t0\t0\n";
        assert_eq!(parse_status_euid(st), Ok(0));
        assert!(parse_status_euid(b"Name:\tx\n").is_err());
        assert!(parse_status_euid(b"Uid:\t1\n").is_err());
        assert!(parse_status_euid(b"Uid:\t1\tx\t1\t1\n").is_err());
    }

    #[test]
    fn cgroup_files() {
        let hybrid = "9:name=systemd:/\n8:pids:/docker/abc\n4:memory:/process_api/8f50\n1:cpu,cpuacct:/\n0::/\n";
        let l = parse_cgroup(hybrid).unwrap();
        assert_eq!(l.len(), 5);
        assert!(l[4].is_v2());
        assert!(l[1].has_controller("pids"));
        assert!(l[3].has_controller("cpuacct"));
        assert_eq!(l[1].path, "/docker/abc");
        let colon = "0::/podruntime.slice/containerd.service/kubepods-burstable-podab_cd.slice:cri-containerd:0123\n";
        let l = parse_cgroup(colon).unwrap();
        assert_eq!(
            l[0].path,
            "/podruntime.slice/containerd.service/kubepods-burstable-podab_cd.slice:cri-containerd:0123"
        );
        for bad in ["0:/", "x::/", "0::relative", "garbage"] {
            assert!(parse_cgroup(bad).is_err(), "{bad}");
        }
        // A second line for the same hierarchy is a forged one.
        let forged = "8:pids:/\n0::/user.slice/x\n0::/docker/abc\n";
        assert_eq!(parse_cgroup(forged), Err(ParseError::CgroupDuplicate(0)));
    }

    #[test]
    fn mountinfo_nsfs() {
        let text = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/root rw
630 25 0:4 net:[4026532283] /run/netns/cni-1234 rw shared:300 - nsfs nsfs rw
631 25 0:4 net:[4026532284] /run/netns/with\\040space rw - nsfs nsfs rw
632 25 0:4 uts:[4026532285] /var/run/docker/netns/x rw - nsfs nsfs rw
633 25 0:4 bogus /x rw - nsfs nsfs rw
634 25 0:4 pid_for_children:[1] /y rw - nsfs nsfs rw
";
        let (m, bad) = parse_mountinfo_nsfs(text);
        assert_eq!(bad, 2);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].ns_type, NsType::Net);
        assert_eq!(m[0].inode, 4026532283);
        assert_eq!(m[0].mount_point, "/run/netns/cni-1234");
        assert_eq!(m[1].mount_point, "/run/netns/with space");
        assert_eq!(m[2].ns_type, NsType::Uts);
    }

    #[test]
    fn mountinfo_lines_and_procfs_options() {
        // Seen on this machine: a procfs mounted with hidepid=2,subset=pid (kernel 6.18).
        let l = "69 45 0:39 / /tmp/tmp.rtEPvGakMw rw,relatime - proc proc rw,hidepid=invisible,subset=pid";
        let m = parse_mountinfo_line(l).unwrap();
        assert_eq!(
            (m.dev, m.root, m.mount_point, m.fstype),
            ("0:39", "/", "/tmp/tmp.rtEPvGakMw", "proc")
        );
        let o = procfs_options(m.super_options);
        assert_eq!(o.hidepid.as_deref(), Some("invisible"));
        assert_eq!(o.subset.as_deref(), Some("pid"));
        // Optional fields before the separator; old kernels' numeric hidepid.
        let l = "25 1 0:22 / /proc rw,nosuid shared:12 master:1 - proc proc rw,hidepid=2";
        let m = parse_mountinfo_line(l).unwrap();
        assert_eq!(m.mount_point, "/proc");
        assert_eq!(
            procfs_options(m.super_options).hidepid.as_deref(),
            Some("2")
        );
        for plain in ["rw", "rw,hidepid=0", "rw,hidepid=off", ""] {
            assert_eq!(procfs_options(plain), ProcfsOptions::default(), "{plain}");
        }
        for bad in ["", "1 2 3 4 - proc", "1 2 0:3 / /x rw -", "garbage - "] {
            assert_eq!(parse_mountinfo_line(bad), None, "{bad}");
        }
        assert_eq!(parse_mountinfo_nsfs_line(l), None);
        assert!(matches!(
            parse_mountinfo_nsfs_line("1 2 0:4 bogus /x rw - nsfs nsfs rw"),
            Some(Err(ParseError::Mountinfo(_)))
        ));
    }

    #[test]
    fn loadavg() {
        assert_eq!(
            parse_loadavg_tasks("11.22 12.43 9.16 9/199 22731\n"),
            Some(199)
        );
        assert_eq!(parse_loadavg_tasks("0.00 0.00 0.00 1/1 1"), Some(1));
        for bad in ["", "1 2 3", "1 2 3 4", "1 2 3 4/x 5", "1 2 3 /-1 5"] {
            assert_eq!(parse_loadavg_tasks(bad), None, "{bad}");
        }
    }

    #[test]
    fn octal() {
        assert_eq!(unescape_octal("a\\040b\\012c\\\\"), "a b\nc\\\\");
        assert_eq!(unescape_octal("\\04"), "\\04");
        assert_eq!(unescape_octal("\\777"), "\\777");
    }
}
