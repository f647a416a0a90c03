//! Shared test support: a real nsexporter process, a tiny HTTP client, an exposition
//! parser, and the integration "lab": real namespaces in real cgroups shaped the way
//! kubelet, Docker and systemd shape them. Everything a lab creates is removed on drop,
//! also when a test fails.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_nsexporter");

/// Random hex of `n` digits, from the kernel.
pub fn rand_hex(n: usize) -> String {
    let mut buf = vec![0u8; n.div_ceil(2)];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    let s: String = buf.iter().map(|b| format!("{b:02x}")).collect();
    s[..n].to_string()
}

/// A random pod UID in API form.
pub fn rand_uuid() -> String {
    let h = rand_hex(32);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

// ---------------------------------------------------------------------------------
// Exposition parsing

/// One sample: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parse the Prometheus text format (enough for our own output: no timestamps).
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line has a value");
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n.to_string(), parse_labels(rest.strip_suffix('}').unwrap())),
            None => (series.to_string(), BTreeMap::new()),
        };
        out.push(Sample {
            name,
            labels,
            value: value.parse().expect("numeric value"),
        });
    }
    out
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let eq = s[i..].find('=').unwrap() + i;
        let key = s[i..eq].to_string();
        assert_eq!(b[eq + 1], b'"');
        let mut j = eq + 2;
        let mut val = String::new();
        while b[j] != b'"' {
            if b[j] == b'\\' {
                j += 1;
                val.push(match b[j] {
                    b'n' => '\n',
                    c => c as char,
                });
            } else {
                let ch = s[j..].chars().next().unwrap();
                val.push(ch);
                j += ch.len_utf8() - 1;
            }
            j += 1;
        }
        m.insert(key, val);
        i = j + 1;
        if i < b.len() && b[i] == b',' {
            i += 1;
        }
    }
    m
}

/// Samples of `name` whose labels include all of `want`.
pub fn find<'a>(samples: &'a [Sample], name: &str, want: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

/// The single value of `name{want}`, or None.
pub fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    let f = find(samples, name, want);
    assert!(f.len() <= 1, "{name}{want:?} matches {} series", f.len());
    f.first().map(|s| s.value)
}

// ---------------------------------------------------------------------------------
// Running the binary

/// `nsexporter --once` with extra args; panics unless it exits 0.
pub fn once(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("--once")
        .args(args)
        .output()
        .expect("run nsexporter");
    assert!(
        out.status.success(),
        "nsexporter --once failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 exposition")
}

/// A running `nsexporter` server, killed on drop.
pub struct Exporter {
    pub child: Child,
    pub addr: SocketAddr,
    pub stderr: mpsc::Receiver<String>,
}

impl Exporter {
    /// Start the server on a free loopback port and wait until it listens.
    pub fn start(args: &[&str]) -> Exporter {
        Self::launch(Command::new(BIN), args)
    }

    /// Like [`Exporter::start`], with the binary run through `wrapper` (e.g.
    /// `setpriv --reuid=65534 ...`); killed on drop like any other.
    pub fn start_wrapped(wrapper: &[&str], args: &[&str]) -> Exporter {
        let (prog, pre) = wrapper.split_first().expect("a wrapper program");
        let mut cmd = Command::new(prog);
        cmd.args(pre).arg(BIN);
        Self::launch(cmd, args)
    }

    /// Run `cmd` (which ends in the nsexporter binary) on 127.0.0.1:0 with `args`, and
    /// read the listening address from its log.
    fn launch(mut cmd: Command, args: &[&str]) -> Exporter {
        let mut child = cmd
            .args([
                "--web.listen-address",
                "127.0.0.1:0",
                "--log.format",
                "logfmt",
            ])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nsexporter");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.contains("nsexporter listening") => {
                    let addr = line
                        .split(' ')
                        .find_map(|kv| kv.strip_prefix("address="))
                        .expect("address in the listening line")
                        .trim_matches('"')
                        .parse()
                        .expect("socket address");
                    return Exporter {
                        child,
                        addr,
                        stderr: rx,
                    };
                }
                Ok(line) => seen.push(line),
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("nsexporter did not start listening: {seen:?}");
                }
            }
        }
    }

    pub fn get(&self, path: &str) -> Response {
        http_get(self.addr, path, &[])
    }

    /// Wait until `/readyz` says 200.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.get("/readyz").status != 200 {
            assert!(Instant::now() < deadline, "nsexporter never became ready");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Scrape until `pred` holds for the parsed samples, or fail after `timeout`.
    pub fn scrape_until(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&[Sample]) -> bool,
    ) -> Vec<Sample> {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.get("/metrics");
            assert_eq!(r.status, 200);
            let s = parse_exposition(&r.body);
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last scrape:\n{}",
                r.body
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP response, as far as the tests need it.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request with `Connection: close`.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_string(),
    }
}

pub fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    http_request(addr, "GET", path, headers)
}

// ---------------------------------------------------------------------------------
// The lab: real namespaces in real cgroups

/// The v2 hierarchy and the v1 controllers the lab uses on this hybrid host.
pub const CGROUP_V2: &str = "/sys/fs/cgroup/unified";
pub const CGROUP_V1: &[&str] = &["/sys/fs/cgroup/pids", "/sys/fs/cgroup/memory"];

/// A container or service the lab started.
#[derive(Debug, Clone)]
pub struct Member {
    /// The process that stands for the container (the one moved into its cgroup).
    /// The lab itself keeps every PID it must kill at cleanup.
    pub pid: u32,
    /// Container ID (64 hex) or empty for non-containers.
    pub id: String,
    pub pod_uid: String,
}

impl Member {
    pub fn container_id(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.id)
    }
}

/// Real processes in real namespaces and cgroups. Dropping it kills the processes,
/// removes the cgroups and deletes the network namespaces, in that order.
pub struct Lab {
    /// A unique top cgroup (`/nsxlab-<hex>`) under which every shape is created, so
    /// labs never collide and cleanup cannot touch anything else.
    pub top: String,
    children: Vec<Child>,
    pids: Vec<u32>,
    cgroups: Vec<String>,
    netns: Vec<String>,
}

impl Default for Lab {
    fn default() -> Self {
        Self::new()
    }
}

impl Lab {
    pub fn new() -> Lab {
        Lab {
            top: format!("/nsxlab-{}", rand_hex(8)),
            children: Vec::new(),
            pids: Vec::new(),
            cgroups: Vec::new(),
            netns: Vec::new(),
        }
    }

    /// Create `rel` (relative to the lab's top cgroup) in v2 and the v1 controllers.
    fn make_cgroup(&mut self, rel: &str) -> String {
        let path = format!("{}/{}", self.top, rel.trim_start_matches('/'));
        // Record every level, so cleanup removes the leaves first.
        let mut acc = String::new();
        for comp in path.split('/').filter(|c| !c.is_empty()) {
            acc.push('/');
            acc.push_str(comp);
            if !self.cgroups.contains(&acc) {
                self.cgroups.push(acc.clone());
            }
        }
        for root in std::iter::once(CGROUP_V2).chain(CGROUP_V1.iter().copied()) {
            std::fs::create_dir_all(format!("{root}{path}"))
                .unwrap_or_else(|e| panic!("mkdir {root}{path}: {e}"));
        }
        path
    }

    /// Move `pid` into `cgroup` in every hierarchy the lab uses.
    fn enter(&self, cgroup: &str, pid: u32) {
        for root in std::iter::once(CGROUP_V2).chain(CGROUP_V1.iter().copied()) {
            std::fs::write(format!("{root}{cgroup}/cgroup.procs"), pid.to_string())
                .unwrap_or_else(|e| panic!("enter {root}{cgroup}: {e}"));
        }
    }

    fn spawn(&mut self, cmd: &mut Command) -> u32 {
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn lab process");
        let pid = child.id();
        self.pids.push(pid);
        self.children.push(child);
        pid
    }

    /// Start `unshare <flags> sleep 600` and return the PID of the process that runs
    /// `sleep`: the forked child when `flags` holds `--fork`, else unshare itself.
    pub fn unshare(&mut self, flags: &[&str]) -> u32 {
        let pid = self.spawn(Command::new("unshare").args(flags).args(["sleep", "600"]));
        let target = if flags.contains(&"--fork") {
            wait_child(pid)
        } else {
            pid
        };
        self.pids.push(target);
        wait_comm(target, "sleep");
        target
    }

    /// Start a process in a new user namespace whose root is mapped to host UID
    /// `outside` (`0 outside 65536`), and that runs as root inside it, with the other
    /// namespaces in `flags` private. Needs no newuidmap: the map is written from here.
    pub fn unshare_remapped_root(&mut self, outside: u32, flags: &[&str]) -> u32 {
        let mut cmd = Command::new("unshare");
        // --keep-caps: the launcher's UID is unmapped in the new namespace, so exec would
        // drop the capabilities that setpriv needs to become root inside it.
        cmd.arg("--user").arg("--keep-caps").args(flags).args([
            "sh",
            "-c",
            "read _ ; exec setpriv --reuid=0 --regid=0 --clear-groups --inh-caps=-all --ambient-caps=-all sleep 600",
        ]);
        cmd.stdin(Stdio::piped());
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn unshare --user");
        let pid = child.id();
        let mut stdin = child.stdin.take().unwrap();
        self.pids.push(pid);
        self.children.push(child);
        // unshare(2) happens in the launcher itself; wait for its user ns to change.
        let own = std::fs::read_link("/proc/self/ns/user").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_link(format!("/proc/{pid}/ns/user"))
            .ok()
            .is_none_or(|l| l == own)
        {
            assert!(Instant::now() < deadline, "unshare --user did not happen");
            std::thread::sleep(Duration::from_millis(10));
        }
        let map = format!("0 {outside} 65536\n");
        std::fs::write(format!("/proc/{pid}/uid_map"), &map).expect("write uid_map");
        std::fs::write(format!("/proc/{pid}/gid_map"), &map).expect("write gid_map");
        let target = if flags.contains(&"--fork") {
            wait_child(pid)
        } else {
            pid
        };
        stdin.write_all(b"go\n").unwrap();
        drop(stdin);
        self.pids.push(target);
        wait_comm(target, "sleep");
        target
    }

    /// Create the cgroup `rel` (relative to the lab's top) and move `pid` into it.
    fn place(&mut self, rel: &str, pid: u32, id: String, pod_uid: String) -> Member {
        let cg = self.make_cgroup(rel);
        self.enter(&cg, pid);
        Member { pid, id, pod_uid }
    }

    /// A container in a kubelet (systemd driver) pod cgroup, runtime named by its
    /// scope prefix (`cri-containerd`, `crio`, `docker`), started with `unshare <flags>`.
    pub fn kube_systemd(&mut self, qos: &str, runtime_prefix: &str, flags: &[&str]) -> Member {
        let pid = self.unshare(flags);
        self.kube_systemd_pid(qos, runtime_prefix, pid)
    }

    fn kube_systemd_pid(&mut self, qos: &str, runtime_prefix: &str, pid: u32) -> Member {
        let uid = rand_uuid();
        let id = rand_hex(64);
        let rel = format!(
            "kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{}.slice/{runtime_prefix}-{id}.scope",
            uid.replace('-', "_")
        );
        self.place(&rel, pid, id, uid)
    }

    /// A container in a kubelet cgroupfs-driver pod cgroup: `kubepods/<qos>/pod<uid>/<id>`.
    pub fn kube_cgroupfs(&mut self, qos: &str, pid: u32) -> Member {
        let uid = rand_uuid();
        let id = rand_hex(64);
        self.place(&format!("kubepods/{qos}/pod{uid}/{id}"), pid, id, uid)
    }

    /// A CRI-O container in a kubelet (systemd driver) pod cgroup, for an existing PID.
    pub fn crio(&mut self, pid: u32) -> Member {
        self.kube_systemd_pid("burstable", "crio", pid)
    }

    /// A plain Docker (cgroupfs driver) container: `/docker/<id>`.
    pub fn docker(&mut self, pid: u32) -> Member {
        let id = rand_hex(64);
        self.place(&format!("docker/{id}"), pid, id, String::new())
    }

    /// A systemd service: `system.slice/<name>.service`.
    pub fn service(&mut self, name: &str, pid: u32) -> Member {
        self.place(
            &format!("system.slice/{name}.service"),
            pid,
            String::new(),
            String::new(),
        )
    }

    /// `ip netns add <name>`: a network namespace that only a bind mount holds.
    pub fn netns_pin(&mut self) -> String {
        let name = format!("nsxlab-{}", rand_hex(8));
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("run ip");
        assert!(st.success(), "ip netns add {name} failed");
        self.netns.push(name.clone());
        name
    }

    /// Stop one process the lab started (for "container exits" steps).
    pub fn kill(&mut self, pid: u32) {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        for c in &mut self.children {
            if c.id() == pid {
                let _ = c.wait();
            }
        }
    }
}

/// The first child of `pid`, once it exists.
fn wait_child(pid: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
            if let Some(c) = s.split_whitespace().next().and_then(|c| c.parse().ok()) {
                return c;
            }
        }
        assert!(Instant::now() < deadline, "process {pid} never forked");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Wait until `pid` runs `comm` (so it has exec'd and its credentials are final).
fn wait_comm(pid: u32, comm: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim() != comm)
        .unwrap_or(true)
    {
        assert!(
            Instant::now() < deadline,
            "process {pid} never became {comm}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for pid in self.pids.iter().rev() {
            // SIGKILL by PID: only processes this lab started.
            let _ = Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Forked children (PID 1 of a new PID namespace) are reaped by init; wait until
        // they are gone from the cgroups before removing them.
        for cg in self.cgroups.iter().rev() {
            for root in std::iter::once(CGROUP_V2).chain(CGROUP_V1.iter().copied()) {
                let dir = format!("{root}{cg}");
                let deadline = Instant::now() + Duration::from_secs(5);
                while Path::new(&dir).exists() {
                    match std::fs::remove_dir(&dir) {
                        Ok(()) => break,
                        Err(_) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(20))
                        }
                        Err(e) => {
                            eprintln!("lab cleanup: cannot remove {dir}: {e}");
                            break;
                        }
                    }
                }
            }
        }
        for n in &self.netns {
            let _ = Command::new("ip").args(["netns", "delete", n]).status();
        }
    }
}

/// `--path.procfs <fixture tree> --path.rootfs <its runtime files> --scan.interval 1h`:
/// a server that scans the fixture
/// once and then serves that one snapshot.
pub fn fixture_args() -> Vec<String> {
    vec![
        "--path.procfs".into(),
        fixture_proc().display().to_string(),
        "--path.rootfs".into(),
        fixture_rootfs().display().to_string(),
        "--scan.interval".into(),
        "1h".into(),
    ]
}

/// The directory holding the fixture runtime state (tests/fixtures/make-rootfs.py),
/// the runtimes' files for the containers of the fixture /proc tree.
pub fn fixture_rootfs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rootfs")
}

/// The directory holding the fixture /proc tree.
pub fn fixture_proc() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/proc")
}

/// Run promtool check metrics on `text`; returns (success, output).
pub fn promtool_check_metrics(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is needed (Debian package prometheus; .ci/run installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

impl Exporter {
    /// Log lines received so far (drains them).
    pub fn drain_log(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }

    /// Wait until a log line contains `needle`; returns it.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            match self
                .stderr
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line containing {needle:?} within {timeout:?}"),
            }
        }
    }

    /// Status of `/readyz`, polled until `want` or `timeout`; returns the last status.
    pub fn wait_readyz(&self, want: u16, timeout: Duration) -> u16 {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.get("/readyz").status;
            if s == want || Instant::now() >= deadline {
                return s;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Whether the process is still running (it never exits on its own).
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process's PID, for /proc/<pid>/status and /proc/<pid>/fd.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}
