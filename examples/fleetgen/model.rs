//! The synthetic fleet: N nodes over a window of D days, each node's nsexporter
//! exposition and the kube-state-metrics series for its pods, sampled every `step`
//! seconds and written as OpenMetrics text with timestamps (what `promtool tsdb
//! create-blocks-from openmetrics` reads).
//!
//! Every node runs four DaemonSet agents (kube-proxy and calico-node on the host network
//! as root, node-exporter on the host network and host PID as UID 65534, nsexporter as
//! root in its own namespaces), some application pods that come and go (rollouts and
//! reschedules give new pods, new container IDs), and on some nodes a CronJob. A few
//! nodes leak pinned network namespaces (every pod deletion leaves its netns bind
//! mount), a few grow one namespace type linearly toward their limit, and one node is
//! down for three hours in the middle of the window. Which series exist, and with
//! which labels, follows the exporter (README "Metrics"): every container shares the
//! host's `time` namespace, and its `user` namespace unless its pod has `hostUsers:
//! false`; a hostNetwork pod shares `net` and `uts`; nodes run cgroup v2 (private
//! cgroup namespaces).
//!
//! Everything is a pure function of the configuration (seeded), so a chunk of the
//! window can be written by one run and the next chunk by another, and `truth` tells
//! what the fleet panels must show at any time.
//!
//! Shared by `examples/fleetgen` (the benchmark) and `tests/fleet.rs` (the small fleet).
//!
//! Why one file of about 1250 lines: the fleet's model is one set of rules (who runs
//! where, when pods churn, which nodes leak or grow) that the exposition writer, the
//! stats and the expected answers all read; split, the answers would drift from the
//! model.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};

pub const TYPES: [&str; 8] = ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"];
const CGROUP: usize = 0;
const IPC: usize = 1;
const MNT: usize = 2;
const NET: usize = 3;
const PID: usize = 4;
const TIME: usize = 5;
const USER: usize = 6;
const UTS: usize = 7;
const ERROR_REASONS: [&str; 5] = ["io", "parse", "permission", "procfs", "vanished"];
/// Processes that are not in any container: systemd, kubelet, containerd, sshd, ...
const HOST_PROCESSES: u64 = 240;
/// The exporter's scan interval (the chart's default): counters grow by scans.
const SCAN_INTERVAL: i64 = 15;

/// What to synthesise.
#[derive(Debug, Clone)]
pub struct Config {
    pub nodes: usize,
    pub clusters: usize,
    /// Seconds between samples (Prometheus' scrape interval, here 5 minutes).
    pub step: i64,
    /// Unix seconds of the last sample; a multiple of `step`.
    pub end: i64,
    /// Length of the window in seconds; samples are at `end - window + step ..= end`.
    pub window: i64,
    pub seed: u64,
    /// Application pod slots per node: `apps_min ..= apps_min + 5`.
    pub apps_min: usize,
    /// Mean life of an application pod, seconds.
    pub app_life: i64,
}

impl Config {
    pub fn new(nodes: usize, days: f64, end: i64) -> Config {
        let step = 300;
        Config {
            nodes,
            clusters: 2,
            step,
            end: end - end.rem_euclid(step),
            window: (days * 86400.0) as i64,
            seed: 18,
            apps_min: 6,
            app_life: 36 * 3600,
        }
    }

    pub fn start(&self) -> i64 {
        self.end - self.window
    }

    /// Sample times in `[from, to)`, clipped to the window.
    pub fn times(&self, from: i64, to: i64) -> impl Iterator<Item = i64> {
        let first = (self.start() + self.step).max(from);
        let first = first + (self.step - first.rem_euclid(self.step)) % self.step;
        let last = self.end.min(to - 1);
        let step = self.step;
        (0..)
            .map(move |k| first + k * step)
            .take_while(move |t| *t <= last)
    }

    pub fn leaking(&self) -> Vec<usize> {
        spread(self.nodes, (self.nodes / 200).max(2), 3)
    }

    pub fn growing(&self) -> Vec<usize> {
        let leaking = self.leaking();
        spread(self.nodes, (self.nodes / 100).max(3), 11)
            .into_iter()
            .map(|i| {
                let mut i = i;
                while leaking.contains(&i) {
                    i = (i + 1) % self.nodes;
                }
                i
            })
            .collect()
    }

    /// The node that is down for three hours in the middle of the window.
    pub fn down_node(&self) -> Option<usize> {
        (self.nodes > 8).then_some(7)
    }
}

/// `count` node indices spread over `0..nodes`, starting near `offset`.
fn spread(nodes: usize, count: usize, offset: usize) -> Vec<usize> {
    let count = count.min(nodes);
    (0..count)
        .map(|k| (offset + k * nodes / count) % nodes)
        .collect()
}

/// splitmix64: small, fast, and the same everywhere.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Exponentially distributed, mean `mean`, at least 1.
    pub fn exp(&mut self, mean: f64) -> i64 {
        ((-(1.0 - self.unit()).ln() * mean) as i64).max(1)
    }
    fn hex(&mut self, digits: usize) -> String {
        let mut s = String::with_capacity(digits + 16);
        while s.len() < digits {
            let _ = write!(s, "{:016x}", self.next());
        }
        s.truncate(digits);
        s
    }
    fn uuid(&mut self) -> String {
        let h = self.hex(32);
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }
    fn name_suffix(&mut self) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..5)
            .map(|_| ALPHABET[self.below(ALPHABET.len() as u64) as usize] as char)
            .collect()
    }
}

/// A workload: what its pods look like.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    pub namespace: &'static str,
    pub name: &'static str,
    /// DaemonSet, ReplicaSet (from a Deployment), StatefulSet, Job (from a CronJob).
    pub kind: &'static str,
    /// Container name and comm of each container.
    pub containers: &'static [(&'static str, &'static str)],
    pub host_network: bool,
    pub host_pid: bool,
    pub host_ipc: bool,
    /// `hostUsers: false`: the pod has its own user namespace.
    pub own_userns: bool,
    pub root: bool,
    /// Processes in each container.
    pub procs: u64,
}

const fn w(
    namespace: &'static str,
    name: &'static str,
    kind: &'static str,
    containers: &'static [(&'static str, &'static str)],
) -> Workload {
    Workload {
        namespace,
        name,
        kind,
        containers,
        host_network: false,
        host_pid: false,
        host_ipc: false,
        own_userns: false,
        root: true,
        procs: 2,
    }
}

/// The DaemonSets on every node.
pub const AGENTS: [Workload; 4] = [
    Workload {
        host_network: true,
        ..w(
            "kube-system",
            "kube-proxy",
            "DaemonSet",
            &[("kube-proxy", "kube-proxy")],
        )
    },
    Workload {
        host_network: true,
        procs: 6,
        ..w(
            "calico-system",
            "calico-node",
            "DaemonSet",
            &[("calico-node", "calico-node")],
        )
    },
    Workload {
        host_network: true,
        host_pid: true,
        root: false,
        procs: 1,
        ..w(
            "monitoring",
            "node-exporter",
            "DaemonSet",
            &[("node-exporter", "node_exporter")],
        )
    },
    Workload {
        procs: 1,
        ..w(
            "monitoring",
            "nsx-nsexporter",
            "DaemonSet",
            &[("nsexporter", "nsexporter")],
        )
    },
];

/// Application workloads (Deployments: their pods are owned by ReplicaSets).
pub const APPS: [Workload; 12] = [
    w("shop", "web", "ReplicaSet", &[("web", "nginx")]),
    Workload {
        root: false,
        ..w(
            "shop",
            "cart",
            "ReplicaSet",
            &[("cart", "java"), ("envoy", "envoy")],
        )
    },
    Workload {
        root: false,
        ..w("shop", "search", "ReplicaSet", &[("search", "java")])
    },
    w("payments", "api", "ReplicaSet", &[("api", "python3")]),
    Workload {
        own_userns: true,
        ..w(
            "payments",
            "ledger",
            "ReplicaSet",
            &[("ledger", "ledger"), ("envoy", "envoy")],
        )
    },
    Workload {
        root: false,
        ..w("media", "transcode", "ReplicaSet", &[("ffmpeg", "ffmpeg")])
    },
    w("media", "thumbs", "ReplicaSet", &[("thumbs", "node")]),
    Workload {
        own_userns: true,
        ..w("ci", "runner", "ReplicaSet", &[("runner", "buildkitd")])
    },
    Workload {
        root: false,
        ..w("data", "kafka", "ReplicaSet", &[("kafka", "java")])
    },
    w("data", "redis", "ReplicaSet", &[("redis", "redis-server")]),
    Workload {
        root: false,
        ..w("team-a", "frontend", "ReplicaSet", &[("frontend", "node")])
    },
    w("team-b", "worker", "ReplicaSet", &[("worker", "python3")]),
];

/// On every tenth node: a database tuned with host shared memory.
pub const SHM_DB: Workload = Workload {
    host_ipc: true,
    ..w(
        "data",
        "shm-cache",
        "StatefulSet",
        &[("cache", "memcached")],
    )
};

/// The CronJob on every fourth node (and every leaking one).
pub const BATCH: Workload = w("batch", "report", "Job", &[("report", "report")]);

/// One pod instance, alive in `[start, end)` (sample times).
#[derive(Debug, Clone)]
pub struct Pod {
    pub workload: &'static Workload,
    pub uid: String,
    pub name: String,
    pub owner: String,
    pub container_ids: Vec<String>,
    pub start: i64,
    pub end: i64,
}

/// How a growing node grows: `type` goes from `from` at the window's start, linearly,
/// to `limit` at `hit` (unix seconds, after the window).
#[derive(Debug, Clone, Copy)]
pub struct Growth {
    pub type_index: usize,
    pub from: f64,
    pub hit: i64,
}

#[derive(Debug, Clone)]
pub struct Node {
    pub index: usize,
    pub name: String,
    pub cluster: String,
    pub instance: String,
    /// `user.max_<type>_namespaces` (the same for every type, as the kernel sets them).
    pub limit: u64,
    pub pods: Vec<Pod>,
    /// A `ip netns add` pin that stays all along.
    pub static_pins: u64,
    /// Pod deletions from this time on leave their network namespace pinned.
    pub leak_from: Option<i64>,
    pub growth: Option<Growth>,
    pub down: Option<(i64, i64)>,
}

impl Node {
    pub fn build(cfg: &Config, index: usize) -> Node {
        let mut rng = Rng::new(cfg.seed ^ (index as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
        let cluster = format!("c{}", index % cfg.clusters);
        let name = format!("node-{index:04}");
        let instance = format!(
            "10.{}.{}.{}:9816",
            64 + index / 65536,
            (index / 256) % 256,
            index % 256
        );
        let limit = [63_471u64, 127_247, 31_695][index % 3];
        let start = cfg.start();
        let window = cfg.window;
        let leak_from = cfg
            .leaking()
            .contains(&index)
            .then(|| start + window / 5 + rng.below(window as u64 / 4) as i64);
        let growth = cfg.growing().iter().position(|&g| g == index).map(|k| {
            let n = cfg.growing().len() as i64;
            // Limit hits spread over the 1.5 windows after the end.
            let hit = cfg.end + (k as i64 + 1) * window * 3 / (2 * n);
            Growth {
                type_index: [MNT, PID, NET][k % 3],
                from: limit as f64 * 0.3,
                hit,
            }
        });
        let down = (cfg.down_node() == Some(index)).then(|| {
            let from = start + window / 2;
            (from, from + 3 * 3600)
        });
        let mut node = Node {
            index,
            cluster,
            instance,
            limit,
            pods: Vec::new(),
            static_pins: u64::from(index.is_multiple_of(5)),
            leak_from,
            growth,
            down,
            name,
        };
        node.schedule(cfg, &mut rng);
        node
    }

    fn schedule(&mut self, cfg: &Config, rng: &mut Rng) {
        let (start, end) = (cfg.start(), cfg.end + cfg.step);
        // Agents: alive all along, except one rollout of each in the window.
        for (a, agent) in AGENTS.iter().enumerate() {
            let roll = start + cfg.window * (a as i64 + 1) / 5 + rng.below(3600) as i64;
            let roll = roll - roll.rem_euclid(cfg.step);
            for (from, to) in [(start - 86400, roll), (roll, end)] {
                self.add_pod(agent, agent.name.to_string(), from, to, rng);
            }
        }
        // Application slots: one pod after another, each living an exponential time;
        // the workload rolls out every three days (a new ReplicaSet).
        let slots = cfg.apps_min + (self.index * 7 + 3) % 6;
        for s in 0..slots {
            let a = (self.index * 5 + s * 7) % APPS.len();
            let app = &APPS[a];
            let mut t = start - rng.below(cfg.app_life as u64) as i64;
            while t < end {
                let life = rng.exp(cfg.app_life as f64);
                let to = t + life;
                let to = (to - to.rem_euclid(cfg.step)).max(t - t.rem_euclid(cfg.step) + cfg.step);
                let epoch = (t + a as i64 * 7919).div_euclid(3 * 86400);
                let owner = format!("{}-{}", app.name, short_hash(epoch as u64 * 31 + a as u64));
                if to > start {
                    self.add_pod(app, owner, t, to, rng);
                }
                t = to;
            }
        }
        if self.index % 10 == 4 {
            self.add_pod(&SHM_DB, SHM_DB.name.to_string(), start - 86400, end, rng);
        }
        // The CronJob: a Job every two hours (every hour on leaking nodes), 20 minutes each.
        if self.index % 4 == 1 || self.leak_from.is_some() {
            let every = if self.leak_from.is_some() { 3600 } else { 7200 };
            let phase = rng.below((every / cfg.step) as u64) as i64 * cfg.step;
            let mut t = start - start.rem_euclid(every) + phase;
            while t < end {
                if t + 1200 > start {
                    self.add_pod(&BATCH, format!("report-{}", t / 60), t, t + 1200, rng);
                }
                t += every;
            }
        }
        self.pods.sort_by_key(|p| p.start);
    }

    fn add_pod(
        &mut self,
        workload: &'static Workload,
        owner: String,
        from: i64,
        to: i64,
        rng: &mut Rng,
    ) {
        let name = match workload.kind {
            "StatefulSet" => format!("{owner}-0"),
            _ => format!("{owner}-{}", rng.name_suffix()),
        };
        let container_ids = workload.containers.iter().map(|_| rng.hex(64)).collect();
        self.pods.push(Pod {
            workload,
            uid: rng.uuid(),
            name,
            owner,
            container_ids,
            start: from,
            end: to,
        });
    }

    pub fn up(&self, t: i64) -> bool {
        !matches!(self.down, Some((a, b)) if t >= a && t < b)
    }

    /// Pods alive at `t`.
    pub fn alive(&self, t: i64) -> impl Iterator<Item = &Pod> + Clone {
        self.pods.iter().filter(move |p| p.start <= t && t < p.end)
    }

    /// The exporter's counters at `t`, counted from the window's start (the exporter's
    /// first scan): containers that started sharing each host namespace since, pods
    /// that went away (processes seen vanishing), and pinned network namespaces leaked.
    pub fn counters(&self, cfg: &Config, t: i64) -> Counters {
        let mut c = Counters::default();
        for p in &self.pods {
            c.started(cfg, p, t);
            c.ended(self, cfg, p, t);
        }
        c
    }

    /// What the exporter on this node reports at `t`, given the pods alive then.
    pub fn state<'a>(
        &self,
        cfg: &Config,
        t: i64,
        alive: impl Iterator<Item = &'a Pod> + Clone,
        counters: &Counters,
    ) -> NodeState {
        let mut st = NodeState {
            // The host's own, plus systemd services with private mounts and networks.
            namespaces: [1, 1, 1 + 24, 1 + 2, 1, 1, 1, 1 + 2],
            processes: HOST_PROCESSES,
            host_ns_processes: [HOST_PROCESSES; 8],
            starts: counters.starts,
            vanished: counters.vanished,
            scans: ((t - cfg.start()) / SCAN_INTERVAL) as u64,
            ..NodeState::default()
        };
        for p in alive {
            let wl = p.workload;
            let n = wl.containers.len() as u64;
            // The sandbox (pause) and each container: own mnt, cgroup and (unless
            // hostPID) pid namespaces; the pod's net and uts unless hostNetwork, ipc
            // unless hostIPC, user with hostUsers: false.
            st.namespaces[MNT] += 1 + n;
            st.namespaces[CGROUP] += 1 + n;
            if !wl.host_pid {
                st.namespaces[PID] += 1 + n;
            }
            if !wl.host_network {
                st.namespaces[NET] += 1;
                st.namespaces[UTS] += 1;
            }
            if !wl.host_ipc {
                st.namespaces[IPC] += 1;
            }
            if wl.own_userns {
                st.namespaces[USER] += 1;
            }
            st.processes += 1 + n * wl.procs;
            st.containers += n;
            for (ty, shared) in shares(wl) {
                if shared {
                    st.host_ns_containers[ty] += n;
                    st.host_ns_processes[ty] += n * wl.procs;
                }
            }
            if wl.root && !wl.own_userns {
                st.host_root_containers += n;
            }
        }
        st.pinned[NET] = self.static_pins + counters.leaked;
        st.namespaces[NET] += st.pinned[NET];
        if let Some(g) = self.growth {
            // Leaked processes, each holding a namespace of the growing type.
            let extra = g.value(cfg, self.limit, t).round() as u64;
            st.namespaces[g.type_index] += extra;
            st.processes += extra;
        }
        st
    }
}

/// Counters accumulated since the window's start.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub starts: [u64; 8],
    pub vanished: u64,
    pub leaked: u64,
}

impl Counters {
    /// Counts `p` as started if it started in `(start, t]`.
    fn started(&mut self, cfg: &Config, p: &Pod, t: i64) {
        if p.start > cfg.start() && p.start <= t {
            for (ty, shared) in shares(p.workload) {
                if shared {
                    self.starts[ty] += p.workload.containers.len() as u64;
                }
            }
        }
    }

    /// Counts `p` as gone if it ended in `(start, t]`, and its network namespace as
    /// leaked if the node leaks.
    fn ended(&mut self, node: &Node, cfg: &Config, p: &Pod, t: i64) {
        if p.end > cfg.start() && p.end <= t {
            self.vanished += 1;
            if !p.workload.host_network && node.leak_from.is_some_and(|from| p.end > from) {
                self.leaked += 1;
            }
        }
    }
}

impl Growth {
    /// Namespaces the growth holds at `t`: linear from `from` at the window's start
    /// to the limit (less what the rest of the node holds, roughly) at `hit`.
    pub fn value(&self, cfg: &Config, limit: u64, t: i64) -> f64 {
        self.from + self.rate(cfg, limit) * (t - cfg.start()) as f64
    }

    /// Namespaces per second.
    pub fn rate(&self, cfg: &Config, limit: u64) -> f64 {
        (limit as f64 - self.from) / (self.hit - cfg.start()) as f64
    }
}

/// A ReplicaSet's pod-template-hash: 10 characters of Kubernetes' alphabet.
fn short_hash(x: u64) -> String {
    let mut r = Rng::new(x ^ 0x51_7cc1_b727_220a);
    (0..10)
        .map(|_| ALPHABET[r.below(ALPHABET.len() as u64) as usize] as char)
        .collect()
}

const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Which host namespaces each container of `wl` shares: (type index, shared).
fn shares(wl: &Workload) -> [(usize, bool); 8] {
    [
        (CGROUP, false),
        (IPC, wl.host_ipc),
        (MNT, false),
        (NET, wl.host_network),
        (PID, wl.host_pid),
        (TIME, true),
        (USER, !wl.own_userns),
        (UTS, wl.host_network),
    ]
}

/// Node-level figures at one time.
#[derive(Debug, Default, Clone)]
pub struct NodeState {
    pub namespaces: [u64; 8],
    pub pinned: [u64; 8],
    pub processes: u64,
    pub host_ns_processes: [u64; 8],
    pub containers: u64,
    pub host_ns_containers: [u64; 8],
    pub host_root_containers: u64,
    pub starts: [u64; 8],
    pub vanished: u64,
    pub scans: u64,
}

/// A node's position in time while writing: the pods alive and the counters so far.
struct Cursor {
    /// Index (into `Node::pods`, sorted by start) of the next pod to start.
    next: usize,
    alive: Vec<usize>,
    counters: Counters,
}

impl Cursor {
    fn new() -> Cursor {
        Cursor {
            next: 0,
            alive: Vec::new(),
            counters: Counters::default(),
        }
    }

    /// Moves to `t` (never backwards).
    fn advance(&mut self, cfg: &Config, node: &Node, t: i64) {
        let counters = &mut self.counters;
        self.alive.retain(|&i| {
            let p = &node.pods[i];
            if p.end > t {
                return true;
            }
            counters.ended(node, cfg, p, t);
            false
        });
        while self.next < node.pods.len() && node.pods[self.next].start <= t {
            let p = &node.pods[self.next];
            self.counters.started(cfg, p, t);
            if p.end > t {
                self.alive.push(self.next);
            } else {
                self.counters.ended(node, cfg, p, t);
            }
            self.next += 1;
        }
    }
}

/// The node's state at each of `times`; `None` while it is down.
fn states(cfg: &Config, node: &Node, times: &[i64]) -> Vec<Option<NodeState>> {
    let mut cur = Cursor::new();
    times
        .iter()
        .map(|&t| {
            cur.advance(cfg, node, t);
            node.up(t).then(|| {
                node.state(
                    cfg,
                    t,
                    cur.alive.iter().map(|&i| &node.pods[i]),
                    &cur.counters,
                )
            })
        })
        .collect()
}

/// Series of pod `p` in `family`: (labels, value).
fn pod_series(family: &str, target: &str, ksm: &str, node: &Node, p: &Pod) -> Vec<(String, f64)> {
    let wl = p.workload;
    let mut out = Vec::new();
    let pod = format!(
        "{ksm},namespace=\"{}\",pod=\"{}\",uid=\"{}\"",
        wl.namespace, p.name, p.uid
    );
    match family {
        "kube_pod_info" => out.push((
            format!(
                "{pod},node=\"{}\",host_network=\"{}\",created_by_kind=\"{}\",created_by_name=\"{}\"",
                node.name, wl.host_network, wl.kind, p.owner
            ),
            1.0,
        )),
        "kube_pod_owner" => out.push((
            format!(
                "{pod},owner_kind=\"{}\",owner_name=\"{}\",owner_is_controller=\"true\"",
                wl.kind, p.owner
            ),
            1.0,
        )),
        _ => {}
    }
    for ((container, comm), id) in wl.containers.iter().zip(&p.container_ids) {
        let c = format!(
            "{target},uid=\"{}\",container_id=\"containerd://{id}\",runtime=\"containerd\"",
            p.uid
        );
        match family {
            // The exec counter has a series for each sharing pair too: each process a
            // scan found first counts once (process events are off, the chart's default).
            "nsexporter_container_host_namespace"
            | "nsexporter_container_host_namespace_execs_total" => {
                for (ty, shared) in shares(wl) {
                    if shared {
                        out.push((format!("{c},type=\"{}\"", TYPES[ty]), wl.procs as f64));
                    }
                }
            }
            "nsexporter_container_host_root_processes" if wl.root && !wl.own_userns => {
                out.push((c, wl.procs as f64))
            }
            // Names from containerd's files, as the chart's default mounts give them.
            "nsexporter_container_info" => out.push((
                format!(
                    "{c},comm=\"{comm}\",namespace=\"{}\",pod=\"{}\",container=\"{container}\"",
                    wl.namespace, p.name
                ),
                1.0,
            )),
            "kube_pod_container_info" => out.push((
                format!(
                    "{pod},container=\"{container}\",container_id=\"containerd://{id}\",image=\"registry.example/{container}:1\""
                ),
                1.0,
            )),
            _ => {}
        }
    }
    out
}

const POD_FAMILIES: [&str; 7] = [
    "nsexporter_container_host_namespace",
    "nsexporter_container_host_namespace_execs_total",
    "nsexporter_container_host_root_processes",
    "nsexporter_container_info",
    "kube_pod_container_info",
    "kube_pod_info",
    "kube_pod_owner",
];

/// What a node-level series reports.
#[derive(Debug, Clone, Copy)]
enum Field {
    Namespaces(usize),
    Pinned(usize),
    Limit,
    HostNsProcesses(usize),
    HostNsContainers(usize),
    Starts(usize),
    Processes,
    Containers,
    HostRootContainers,
    Scans,
    Vanished,
    ScanDuration,
    ScanTimestamp,
    /// The exporter's own process (process_*): CPU seconds grow with its scans.
    CpuSeconds,
    Rss,
    VirtualMemory,
    OpenFds,
    MaxFds,
    StartTime,
    Zero,
    One,
}

impl Field {
    fn value(self, s: &NodeState, n: &Node, t: i64) -> f64 {
        (match self {
            Field::Namespaces(i) => s.namespaces[i],
            Field::Pinned(i) => s.pinned[i],
            Field::Limit => n.limit,
            Field::HostNsProcesses(i) => s.host_ns_processes[i],
            Field::HostNsContainers(i) => s.host_ns_containers[i],
            Field::Starts(i) => s.starts[i],
            Field::Processes => s.processes,
            Field::Containers => s.containers,
            Field::HostRootContainers => s.host_root_containers,
            Field::Scans => s.scans,
            Field::Vanished => s.vanished,
            Field::ScanDuration => return 0.04 + (n.index % 7) as f64 * 0.01,
            Field::ScanTimestamp => return (t - 7) as f64,
            Field::CpuSeconds => return s.scans as f64 * 0.15,
            Field::Rss => return 4.2e6 + (n.index % 5) as f64 * 1e5,
            Field::VirtualMemory => return 2.4e7,
            Field::OpenFds => 9,
            Field::MaxFds => 1_048_576,
            Field::StartTime => return (t - s.scans as i64 * SCAN_INTERVAL) as f64,
            Field::Zero => 0,
            Field::One => 1,
        }) as f64
    }
}

/// The exporter's node-level families, in exposition order: each series' labels after
/// the target's, and what it reports.
fn node_families() -> Vec<(&'static str, Vec<(String, Field)>)> {
    let per_type = |f: fn(usize) -> Field| -> Vec<(String, Field)> {
        TYPES
            .iter()
            .enumerate()
            .map(|(i, t)| (format!(",type=\"{t}\""), f(i)))
            .collect()
    };
    let one = |f: Field| vec![(String::new(), f)];
    vec![
        ("nsexporter_namespaces", per_type(Field::Namespaces)),
        ("nsexporter_namespaces_pinned", per_type(Field::Pinned)),
        ("nsexporter_namespace_limit", per_type(|_| Field::Limit)),
        (
            "nsexporter_host_namespace_processes",
            per_type(Field::HostNsProcesses),
        ),
        (
            "nsexporter_host_namespace_containers",
            per_type(Field::HostNsContainers),
        ),
        (
            "nsexporter_host_namespace_container_starts_total",
            per_type(Field::Starts),
        ),
        ("nsexporter_processes", one(Field::Processes)),
        (
            "nsexporter_containers",
            ["containerd", "cri-o", "docker", "podman"]
                .iter()
                .map(|r| {
                    let f = if *r == "containerd" {
                        Field::Containers
                    } else {
                        Field::Zero
                    };
                    (format!(",runtime=\"{r}\""), f)
                })
                .collect(),
        ),
        (
            "nsexporter_host_root_containers",
            one(Field::HostRootContainers),
        ),
        ("nsexporter_scans_total", one(Field::Scans)),
        ("nsexporter_scan_events_enabled", one(Field::Zero)),
        ("nsexporter_exec_events_total", one(Field::Zero)),
        ("nsexporter_events_lost_total", one(Field::Zero)),
        (
            "nsexporter_scan_errors_total",
            ERROR_REASONS
                .iter()
                .map(|r| {
                    let f = if *r == "vanished" {
                        Field::Vanished
                    } else {
                        Field::Zero
                    };
                    (format!(",reason=\"{r}\""), f)
                })
                .collect(),
        ),
        (
            "nsexporter_last_scan_duration_seconds",
            one(Field::ScanDuration),
        ),
        (
            "nsexporter_last_scan_timestamp_seconds",
            one(Field::ScanTimestamp),
        ),
        (
            "nsexporter_host_reference_info",
            vec![(",source=\"pid1\"".to_string(), Field::One)],
        ),
        (
            "nsexporter_build_info",
            vec![(",version=\"0.1.0\"".to_string(), Field::One)],
        ),
        ("process_cpu_seconds_total", one(Field::CpuSeconds)),
        ("process_resident_memory_bytes", one(Field::Rss)),
        ("process_virtual_memory_bytes", one(Field::VirtualMemory)),
        ("process_open_fds", one(Field::OpenFds)),
        ("process_max_fds", one(Field::MaxFds)),
        ("process_start_time_seconds", one(Field::StartTime)),
    ]
}

/// Writes samples as OpenMetrics lines.
struct Out<W: Write> {
    out: W,
    line: String,
    samples: u64,
}

impl<W: Write> Out<W> {
    fn sample(&mut self, family: &str, labels: &str, value: f64, t: i64) -> io::Result<()> {
        self.line.clear();
        let _ = writeln!(self.line, "{family}{{{labels}}} {value} {t}");
        self.samples += 1;
        self.out.write_all(self.line.as_bytes())
    }
}

/// The exporter's target labels on every series of a node.
fn target(node: &Node) -> String {
    format!(
        "cluster=\"{}\",job=\"nsexporter\",instance=\"{}\",node=\"{}\"",
        node.cluster, node.instance, node.name
    )
}

/// Labels of the kube-state-metrics target of a cluster.
fn ksm_target(cluster: &str) -> String {
    format!(
        "cluster=\"{cluster}\",job=\"kube-state-metrics\",instance=\"kube-state-metrics.{cluster}:8080\""
    )
}

/// Every sample of the fleet in `[from, to)` as OpenMetrics: family after family (none
/// interleaved, as OpenMetrics asks), each series' samples together in time order, then
/// `# EOF`. A node that is down has `up` 0 and none of its exporter's series; its pods
/// stay in kube-state-metrics. Returns the output and the number of samples.
pub fn write_range<W: Write>(
    cfg: &Config,
    nodes: &[Node],
    from: i64,
    to: i64,
    out: W,
) -> io::Result<(W, u64)> {
    let times: Vec<i64> = cfg.times(from, to).collect();
    let mut o = Out {
        out,
        line: String::with_capacity(512),
        samples: 0,
    };
    let (Some(&first), Some(&last)) = (times.first(), times.last()) else {
        o.out.write_all(b"# EOF\n")?;
        return Ok((o.out, 0));
    };
    let states: Vec<Vec<Option<NodeState>>> =
        nodes.iter().map(|n| states(cfg, n, &times)).collect();
    let targets: Vec<String> = nodes.iter().map(target).collect();
    for (n, state) in states.iter().enumerate() {
        for (k, &t) in times.iter().enumerate() {
            let up = if state[k].is_some() { 1.0 } else { 0.0 };
            o.sample("up", &targets[n], up, t)?;
        }
    }
    for (family, series) in node_families() {
        for (n, node) in nodes.iter().enumerate() {
            for (suffix, value) in &series {
                let labels = format!("{}{suffix}", targets[n]);
                for (k, &t) in times.iter().enumerate() {
                    if let Some(st) = &states[n][k] {
                        o.sample(family, &labels, value.value(st, node, t), t)?;
                    }
                }
            }
        }
    }
    for node in nodes {
        let labels = format!("{},node=\"{}\"", ksm_target(&node.cluster), node.name);
        for &t in &times {
            o.sample("kube_node_info", &labels, 1.0, t)?;
        }
    }
    for family in POD_FAMILIES {
        let exporter = family.starts_with("nsexporter_");
        for (n, node) in nodes.iter().enumerate() {
            let ksm = ksm_target(&node.cluster);
            for p in node
                .pods
                .iter()
                .filter(|p| p.start <= last && p.end > first)
            {
                for (labels, value) in pod_series(family, &targets[n], &ksm, node, p) {
                    for (k, &t) in times.iter().enumerate() {
                        let alive = p.start <= t && t < p.end;
                        if alive && (!exporter || states[n][k].is_some()) {
                            o.sample(family, &labels, value, t)?;
                        }
                    }
                }
            }
        }
    }
    o.out.write_all(b"# EOF\n")?;
    o.out.flush()?;
    Ok((o.out, o.samples))
}

pub fn fleet(cfg: &Config) -> Vec<Node> {
    (0..cfg.nodes).map(|i| Node::build(cfg, i)).collect()
}

/// Series of a node that do not depend on its pods: `up`, the exporter's node-level
/// series (73: 8 types x 6 families, 4 runtimes, 5 error reasons, 10 single series and
/// 6 of its own process) and kube-state-metrics' `kube_node_info`.
pub const NODE_SERIES: u64 = 1 + 8 * 6 + 1 + 4 + 1 + 1 + 5 + 4 + 1 + 3 + 6;

/// Exporter and kube-state-metrics series of one pod.
pub fn pod_series_count(p: &Pod) -> (u64, u64) {
    let wl = p.workload;
    let shared = shares(wl).iter().filter(|(_, s)| *s).count() as u64;
    let root = u64::from(wl.root && !wl.own_userns);
    let n = wl.containers.len() as u64;
    (n * (2 * shared + root + 1), n + 2)
}

/// The size of the synthetic fleet over its window.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stats {
    pub nodes: usize,
    pub days: f64,
    pub step_seconds: i64,
    pub samples_per_series: u64,
    pub samples: u64,
    /// Distinct series over the window (what the index holds).
    pub series: u64,
    pub exporter_series: u64,
    /// Series alive at a time, per node, on average: all, the exporter's (with `up`),
    /// kube-state-metrics' for the node's pods.
    pub live_series_per_node: f64,
    pub live_exporter_series_per_node: f64,
    pub live_ksm_series_per_node: f64,
    /// Distinct series per node over the window, and how many of those the pods'
    /// churn added.
    pub series_per_node_over_window: f64,
    pub pods: u64,
    pub containers: u64,
}

pub fn stats(cfg: &Config, nodes: &[Node]) -> Stats {
    let times: Vec<i64> = cfg.times(i64::MIN, i64::MAX).collect();
    let n_times = times.len() as u64;
    let (first, last) = (times[0], times[times.len() - 1]);
    let mut s = Stats {
        nodes: nodes.len(),
        days: cfg.window as f64 / 86400.0,
        step_seconds: cfg.step,
        samples_per_series: n_times,
        samples: 0,
        series: 0,
        exporter_series: 0,
        live_series_per_node: 0.0,
        live_exporter_series_per_node: 0.0,
        live_ksm_series_per_node: 0.0,
        series_per_node_over_window: 0.0,
        pods: 0,
        containers: 0,
    };
    let (mut exporter_samples, mut ksm_samples) = (0u64, 0u64);
    for n in nodes {
        let down = times.iter().filter(|t| !n.up(**t)).count() as u64;
        exporter_samples += n_times * (NODE_SERIES - 1) - down * (NODE_SERIES - 2);
        ksm_samples += n_times;
        s.series += NODE_SERIES;
        s.exporter_series += NODE_SERIES - 1;
        for p in &n.pods {
            let from = p.start.max(first);
            let to = (p.end - 1).min(last);
            if to < from {
                continue;
            }
            let alive = times.iter().filter(|t| **t >= from && **t <= to).count() as u64;
            if alive == 0 {
                continue;
            }
            let up = times
                .iter()
                .filter(|t| **t >= from && **t <= to && n.up(**t))
                .count() as u64;
            let (e, k) = pod_series_count(p);
            exporter_samples += up * e;
            ksm_samples += alive * k;
            s.series += e + k;
            s.exporter_series += e;
            s.pods += 1;
            s.containers += p.workload.containers.len() as u64;
        }
    }
    s.samples = exporter_samples + ksm_samples;
    let per = (nodes.len() as u64 * n_times) as f64;
    s.live_series_per_node = s.samples as f64 / per;
    s.live_exporter_series_per_node = exporter_samples as f64 / per;
    s.live_ksm_series_per_node = ksm_samples as f64 / per;
    s.series_per_node_over_window = s.series as f64 / nodes.len() as f64;
    s
}

/// What the fleet panels must show at one time, from the model itself.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Truth {
    pub at: i64,
    pub nodes: usize,
    pub nodes_up: usize,
    pub clusters: BTreeMap<String, ClusterTruth>,
    /// Nodes leaking pinned network namespaces, and those whose pinned count is at
    /// least 10 and grew by 5 or more over the last 6 hours (NsexporterPinnedNamespacesGrowing).
    pub leaking: Vec<String>,
    pub pinned_growing: Vec<String>,
    pub growing: Vec<GrowingTruth>,
    /// (container, type) pairs sharing the host net, pid or ipc namespace: the rows of
    /// the fleet's hostNetwork / hostPID / hostIPC table.
    pub host_sharing_rows: u64,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ClusterTruth {
    pub nodes: u64,
    pub containers: u64,
    pub host_root_containers: u64,
    /// By type name.
    pub host_ns_containers: BTreeMap<String, u64>,
    pub namespaces: BTreeMap<String, u64>,
    pub pinned: BTreeMap<String, u64>,
    /// Containers with their own user namespace, as a share of all.
    pub own_userns_ratio: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct GrowingTruth {
    pub node: String,
    pub cluster: String,
    pub r#type: String,
    pub limit: u64,
    pub namespaces: u64,
    /// Namespaces per second.
    pub rate: f64,
    /// When the linear growth reaches the limit, from `at`.
    pub seconds_to_limit: f64,
}

impl Node {
    /// The exporter's view at `t`, or None while the node is down.
    pub fn state_at(&self, cfg: &Config, t: i64) -> Option<NodeState> {
        self.up(t)
            .then(|| self.state(cfg, t, self.alive(t), &self.counters(cfg, t)))
    }
}

pub fn truth(cfg: &Config, nodes: &[Node], at: i64) -> Truth {
    let mut t = Truth {
        at,
        nodes: nodes.len(),
        nodes_up: 0,
        clusters: BTreeMap::new(),
        leaking: Vec::new(),
        pinned_growing: Vec::new(),
        growing: Vec::new(),
        host_sharing_rows: 0,
    };
    for n in nodes {
        if n.leak_from.is_some() {
            t.leaking.push(n.name.clone());
        }
        let Some(st) = n.state_at(cfg, at) else {
            continue;
        };
        t.nodes_up += 1;
        let c = t.clusters.entry(n.cluster.clone()).or_default();
        c.nodes += 1;
        c.containers += st.containers;
        c.host_root_containers += st.host_root_containers;
        for (i, ty) in TYPES.iter().enumerate() {
            *c.host_ns_containers.entry(ty.to_string()).or_default() += st.host_ns_containers[i];
            *c.namespaces.entry(ty.to_string()).or_default() += st.namespaces[i];
            *c.pinned.entry(ty.to_string()).or_default() += st.pinned[i];
        }
        t.host_sharing_rows +=
            st.host_ns_containers[NET] + st.host_ns_containers[PID] + st.host_ns_containers[IPC];
        let pinned = st.pinned[NET];
        let low = cfg
            .times(at - 6 * 3600, at + 1)
            .filter_map(|s| n.state_at(cfg, s))
            .map(|s| s.pinned[NET])
            .min()
            .unwrap_or(pinned);
        if pinned >= 10 && pinned - low >= 5 {
            t.pinned_growing.push(n.name.clone());
        }
        if let Some(g) = n.growth {
            let rate = g.rate(cfg, n.limit);
            let now = st.namespaces[g.type_index];
            t.growing.push(GrowingTruth {
                node: n.name.clone(),
                cluster: n.cluster.clone(),
                r#type: TYPES[g.type_index].to_string(),
                limit: n.limit,
                namespaces: now,
                rate,
                seconds_to_limit: (n.limit as f64 - now as f64) / rate,
            });
        }
    }
    for c in t.clusters.values_mut() {
        let own = c.containers - c.host_ns_containers["user"];
        c.own_userns_ratio = own as f64 / c.containers as f64;
    }
    t.growing
        .sort_by(|a, b| a.seconds_to_limit.total_cmp(&b.seconds_to_limit));
    t
}
