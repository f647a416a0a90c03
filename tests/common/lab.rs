//! The lab: real processes in real namespaces and cgroups, shaped the way kubelet,
//! Docker and systemd shape them, on whatever cgroup layout the host has (hybrid or
//! pure v2; [`cgroup_layout`]). Everything a lab creates is removed on drop, also when a
//! test fails.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{rand_hex, rand_uuid, require_root};

/// The v1 controllers whose hierarchies the lab places its members in, when the host
/// mounts them (a pure v2 host has none).
pub const LAB_V1_CONTROLLERS: &[&str] = &["pids", "memory"];

/// Where this host mounts the cgroup hierarchies the lab uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupLayout {
    /// The v2 (unified) hierarchy: `/sys/fs/cgroup` on a pure v2 host,
    /// `/sys/fs/cgroup/unified` on a hybrid one.
    pub v2: String,
    /// `(controller, mount point)` of each v1 hierarchy of [`LAB_V1_CONTROLLERS`] that
    /// is mounted: none on a pure v2 host.
    pub v1: Vec<(String, String)>,
}

impl CgroupLayout {
    /// The layout from a mountinfo table. Only whole hierarchies count (root `/`); a
    /// host without a v2 hierarchy is refused with the reason, since the lab, like
    /// every current kubelet, needs one.
    pub fn from_mountinfo(text: &str) -> Result<CgroupLayout, String> {
        let mut v2 = None;
        let mut v1 = Vec::new();
        for line in text.lines() {
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            let (Some(&root), Some(&point), Some(&fstype)) = (pre.get(3), pre.get(4), post.first())
            else {
                continue;
            };
            if root != "/" {
                continue;
            }
            match fstype {
                "cgroup2" if v2.is_none() => v2 = Some(point.to_string()),
                "cgroup" => {
                    let opts = post.get(2).copied().unwrap_or("");
                    for c in opts.split(',') {
                        if LAB_V1_CONTROLLERS.contains(&c) && !v1.iter().any(|(k, _)| k == c) {
                            v1.push((c.to_string(), point.to_string()));
                        }
                    }
                }
                _ => {}
            }
        }
        let v2 = v2.ok_or_else(|| {
            "no cgroup v2 hierarchy is mounted: the lab needs one (a v1-only host cannot \
             run the lab)"
                .to_string()
        })?;
        Ok(CgroupLayout { v2, v1 })
    }

    /// Every hierarchy the lab uses: v2 first, then the v1 ones.
    pub fn roots(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.v2.as_str()).chain(self.v1.iter().map(|(_, p)| p.as_str()))
    }

    /// The mount point of the v1 hierarchy of `controller`, if the lab uses it.
    pub fn v1_root(&self, controller: &str) -> Option<&str> {
        self.v1
            .iter()
            .find(|(c, _)| c == controller)
            .map(|(_, p)| p.as_str())
    }
}

/// This host's layout, from the test process's own mountinfo; panics with the reason
/// when the lab cannot run here.
pub fn cgroup_layout() -> &'static CgroupLayout {
    static LAYOUT: std::sync::OnceLock<CgroupLayout> = std::sync::OnceLock::new();
    LAYOUT.get_or_init(|| {
        let text = std::fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
        CgroupLayout::from_mountinfo(&text).unwrap_or_else(|e| panic!("{e}"))
    })
}

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
        require_root("the lab makes namespaces, cgroups and network namespaces");
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
        for root in cgroup_layout().roots() {
            std::fs::create_dir_all(format!("{root}{path}"))
                .unwrap_or_else(|e| panic!("mkdir {root}{path}: {e}"));
        }
        path
    }

    /// Move `pid` into `cgroup` in every hierarchy the lab uses.
    fn enter(&self, cgroup: &str, pid: u32) {
        for root in cgroup_layout().roots() {
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
        let (m, cg) = self.kube_systemd_cgroup(qos, runtime_prefix);
        self.enter(&cg, pid);
        Member { pid, ..m }
    }

    /// The cgroup of a container in a kubelet (systemd driver) pod, with no process in
    /// it yet (`pid` 0), and its path relative to each hierarchy: a process that joins it
    /// before its exec (see [`Lab::cgroup_procs`]) makes that exec the container's.
    pub fn kube_systemd_cgroup(&mut self, qos: &str, runtime_prefix: &str) -> (Member, String) {
        let uid = rand_uuid();
        let id = rand_hex(64);
        let rel = format!(
            "kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{}.slice/{runtime_prefix}-{id}.scope",
            uid.replace('-', "_")
        );
        let cg = self.make_cgroup(&rel);
        (
            Member {
                pid: 0,
                id,
                pod_uid: uid,
            },
            cg,
        )
    }

    /// The cgroup of a plain Docker container, `/docker/<id>`, with no process in it
    /// yet, like [`Lab::kube_systemd_cgroup`].
    pub fn docker_cgroup(&mut self) -> (Member, String) {
        let id = rand_hex(64);
        let cg = self.make_cgroup(&format!("docker/{id}"));
        (
            Member {
                pid: 0,
                id,
                pod_uid: String::new(),
            },
            cg,
        )
    }

    /// `cgroup.procs` of `cgroup` in every hierarchy the lab uses, opened for writing:
    /// a child that writes `0` to each between its fork and its exec joins `cgroup`
    /// (`pre_exec` may only make async-signal-safe calls, so the files are opened here).
    pub fn cgroup_procs(&self, cgroup: &str) -> Vec<std::fs::File> {
        cgroup_layout()
            .roots()
            .map(|root| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(format!("{root}{cgroup}/cgroup.procs"))
                    .unwrap_or_else(|e| panic!("open {root}{cgroup}/cgroup.procs: {e}"))
            })
            .collect()
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

    /// A process of `member`'s container in every host namespace, as an `nsenter`
    /// into the host from inside the container leaves one: `sleep 600` started here
    /// (in the host's namespaces), then moved into the container's cgroup. The
    /// container's own namespaces stay those of its oldest process, `member.pid`.
    /// Returns the new PID.
    pub fn escape_from(&mut self, member: &Member) -> u32 {
        let lines = std::fs::read_to_string(format!("/proc/{}/cgroup", member.pid))
            .unwrap_or_else(|e| panic!("read /proc/{}/cgroup: {e}", member.pid));
        // Every hierarchy holds the container at the same path under the lab's top.
        let cgroup = lines
            .lines()
            .filter_map(|l| l.splitn(3, ':').nth(2))
            .find(|path| path.starts_with(&self.top))
            .unwrap_or_else(|| panic!("{} is in no cgroup of the lab: {lines}", member.pid))
            .to_string();
        let pid = self.spawn(Command::new("sleep").arg("600"));
        wait_comm(pid, "sleep");
        self.enter(&cgroup, pid);
        pid
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
            for root in cgroup_layout().roots() {
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
