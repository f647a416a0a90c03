//! Runtime files shaped as the runtimes write them (trimmed copies of files seen on real
//! nodes and on this machine), and hostile ones, in temporary roots.
//!
//! Why one file of about 900 lines: every runtime's reader is tested on the same temporary
//! host roots, builders and trimmed real files (the first part), and the hostile cases
//! (symlinks out, huge, deep, malformed) run against all the readers at once.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};

use super::bolt::testdb::{build, Bucket};
use super::safefs::ErrorKind;
use super::*;
use crate::model::{ContainerRef, NsType, Runtime};

const SECRET: &str = "hunter2-do-not-print";

fn id(n: u8) -> String {
    format!("{:02x}", n).repeat(32)
}

fn cref(runtime: Runtime, id: &str) -> ContainerRef {
    ContainerRef {
        runtime,
        id: id.to_owned(),
        pod_uid: String::new(),
        owner_uid: None,
    }
}

/// A temporary host root with a reader over it (procfs: the real one).
struct Host {
    dir: tempfile::TempDir,
}

impl Host {
    fn new() -> Host {
        Host {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, rel: &str, content: &[u8]) -> PathBuf {
        let p = self.root().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
        p
    }

    fn reader(&self) -> Reader {
        Reader::new(self.root(), "/proc", Locations::default())
    }

    fn read(&self, runtime: Runtime, id: &str) -> Lookup {
        let out = self.reader().read(&cref(runtime, id));
        let shown = format!("{out:?} {}", errors_text(&out));
        assert!(!shown.contains(SECRET), "a secret leaked: {shown}");
        assert!(
            !shown.contains("PATH=/usr"),
            "the environment leaked: {shown}"
        );
        out
    }
}

fn errors_text(l: &Lookup) -> String {
    l.errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

fn kinds(l: &Lookup) -> Vec<ErrorKind> {
    l.errors.iter().map(|e| e.kind).collect()
}

fn self_ns(t: NsType) -> u64 {
    fs::metadata(format!("/proc/self/ns/{}", t.name()))
        .unwrap()
        .ino()
}

/// A containerd CRI app container's config.json, as containerd 1.7 writes it (trimmed):
/// it joins its sandbox's net, ipc and uts by path, has its own pid and mnt, and, in a
/// `hostUsers: false` pod, the sandbox's user namespace and uid mappings.
fn containerd_spec(net_path: &str, ipc_path: &str, userns: bool) -> String {
    let user = if userns {
        format!(
            r#",{{"type":"user","path":"{ipc_path_user}"}}"#,
            ipc_path_user = ipc_path.replace("/ipc", "/user")
        )
    } else {
        String::new()
    };
    let maps = if userns {
        r#","uidMappings":[{"containerID":0,"hostID":65536,"size":65536}],"gidMappings":[{"containerID":0,"hostID":65536,"size":65536}]"#
    } else {
        ""
    };
    format!(
        r#"{{"ociVersion":"1.1.0","process":{{"user":{{"uid":0,"gid":0}},"args":["/app"],"env":["PATH=/usr/local/sbin:/usr/local/bin","DB_PASSWORD={SECRET}"],"cwd":"/"}},
"root":{{"path":"rootfs"}},"hostname":"web-0",
"annotations":{{"io.kubernetes.cri.container-name":"app","io.kubernetes.cri.container-type":"container","io.kubernetes.cri.image-name":"registry/app:1","io.kubernetes.cri.sandbox-id":"{sb}","io.kubernetes.cri.sandbox-name":"web-0","io.kubernetes.cri.sandbox-namespace":"shop","io.kubernetes.cri.sandbox-uid":"eb052b63-ea96-4728-ab4a-64ab3babccd7","kubectl.kubernetes.io/last-applied-configuration":"{{\"env\":\"{SECRET}\"}}"}},
"linux":{{"resources":{{"devices":[{{"allow":false,"access":"rwm"}}]}},"cgroupsPath":"kubepods-besteffort-podeb052b63_ea96_4728_ab4a_64ab3babccd7.slice:cri-containerd:x",
"namespaces":[{{"type":"pid"}},{{"type":"ipc","path":"{ipc_path}"}},{{"type":"uts","path":"{uts}"}},{{"type":"mount"}},{{"type":"network","path":"{net_path}"}}{user}]{maps},
"maskedPaths":["/proc/kcore"],"readonlyPaths":["/proc/sys"]}}}}"#,
        sb = id(0xaa),
        uts = ipc_path.replace("/ipc", "/uts"),
    )
}

#[test]
fn containerd_names_and_joined_namespaces() {
    let h = Host::new();
    let me = std::process::id();
    let c = id(1);
    // Joins given through /proc/<pid>/ns/<type> resolve through procfs; this process
    // stands in for the sandbox.
    let spec = containerd_spec(
        &format!("/proc/{me}/ns/net"),
        &format!("/proc/{me}/ns/ipc"),
        true,
    );
    h.write(
        &format!("run/containerd/io.containerd.runtime.v2.task/k8s.io/{c}/config.json"),
        spec.as_bytes(),
    );
    // Another namespace directory, tried first in sorted order, without the task.
    fs::create_dir_all(
        h.root()
            .join("run/containerd/io.containerd.runtime.v2.task/default"),
    )
    .unwrap();
    let out = h.read(Runtime::Containerd, &c);
    assert!(out.errors.is_empty(), "{}", errors_text(&out));
    let info = out.info;
    assert_eq!(
        info.names,
        Names {
            namespace: "shop".into(),
            pod: "web-0".into(),
            container: "app".into()
        }
    );
    assert!(info.uid_mappings);
    assert_eq!(info.declared(NsType::Pid), Some(DeclaredNs::Private));
    assert_eq!(info.declared(NsType::Mnt), Some(DeclaredNs::Private));
    for t in [NsType::Net, NsType::Ipc, NsType::Uts, NsType::User] {
        assert_eq!(
            info.declared(t),
            Some(DeclaredNs::Joins {
                inode: Some(self_ns(t))
            }),
            "{t}"
        );
    }
    // Not listed: the runtime's own, the host's.
    assert_eq!(info.declared(NsType::Cgroup), Some(DeclaredNs::Host));
    assert_eq!(info.declared(NsType::Time), Some(DeclaredNs::Host));
    // This test runs in the host's namespaces: a join of them is a join of the host's.
    assert_eq!(
        info.declared(NsType::Net)
            .unwrap()
            .is_host(Some(self_ns(NsType::Net))),
        Some(true)
    );
}

#[test]
fn containerd_sandbox_and_moby_namespace() {
    let h = Host::new();
    let c = id(2);
    // A hostNetwork sandbox: net not listed, so the host's; found in any namespace dir.
    let spec = r#"{"annotations":{"io.kubernetes.cri.container-type":"sandbox","io.kubernetes.cri.sandbox-name":"agent-x","io.kubernetes.cri.sandbox-namespace":"kube-system"},
        "linux":{"namespaces":[{"type":"pid"},{"type":"ipc"},{"type":"uts"},{"type":"mount"}]}}"#;
    h.write(
        &format!("run/containerd/io.containerd.runtime.v2.task/moby/{c}/config.json"),
        spec.as_bytes(),
    );
    let info = h.read(Runtime::Containerd, &c).info;
    assert_eq!(info.names.pod, "agent-x");
    assert_eq!(info.names.container, "", "a sandbox has no container name");
    assert_eq!(info.declared(NsType::Net), Some(DeclaredNs::Host));
    assert_eq!(info.declared(NsType::User), Some(DeclaredNs::Host));
    assert!(!info.uid_mappings);
}

#[test]
fn crio_bundle() {
    let h = Host::new();
    let c = id(3);
    let spec = format!(
        r#"{{"process":{{"env":["A={SECRET}"]}},"annotations":{{"io.kubernetes.pod.namespace":"db","io.kubernetes.pod.name":"pg-0","io.kubernetes.container.name":"postgres","io.kubernetes.cri-o.ContainerType":"container","io.kubernetes.cri-o.Labels":"{{\"x\":\"{SECRET}\"}}"}},
        "linux":{{"namespaces":[{{"type":"pid"}},{{"type":"network","path":"/proc/999999999/ns/net"}},{{"type":"ipc"}},{{"type":"uts"}},{{"type":"mount"}},{{"type":"user"}}],"uidMappings":[]}}}}"#
    );
    h.write(
        &format!("run/containers/storage/overlay-containers/{c}/userdata/config.json"),
        spec.as_bytes(),
    );
    let info = h.read(Runtime::CriO, &c).info;
    assert_eq!(
        (
            info.names.namespace.as_str(),
            info.names.pod.as_str(),
            info.names.container.as_str()
        ),
        ("db", "pg-0", "postgres")
    );
    // A join of a process that is gone does not resolve; it is still a join.
    assert_eq!(
        info.declared(NsType::Net),
        Some(DeclaredNs::Joins { inode: None })
    );
    assert_eq!(info.declared(NsType::Net).unwrap().is_host(Some(1)), None);
    // `user` listed without a path is private even with an empty uidMappings.
    assert_eq!(info.declared(NsType::User), Some(DeclaredNs::Private));
    assert!(!info.uid_mappings);
}

/// Docker's files for a container, trimmed from what dockerd 20.10 wrote on this machine.
fn docker_container(h: &Host, c: &str, labels: &str, name: &str, pid: u32, hostconfig: &str) {
    let config = format!(
        r#"{{"StreamConfig":{{}},"State":{{"Running":true,"Paused":false,"Pid":{pid},"ExitCode":0}},"ID":"{c}","Path":"/bin/sleep","Args":["300"],
        "Config":{{"Hostname":"x","User":"","Env":["PATH=/usr/local/sbin","TOKEN={SECRET}"],"Cmd":["300"],"Image":"sleeper","Labels":{{{labels}}}}},
        "Name":"/{name}","Driver":"overlay2","SecretReferences":null}}"#
    );
    h.write(
        &format!("var/lib/docker/containers/{c}/config.v2.json"),
        config.as_bytes(),
    );
    h.write(
        &format!("var/lib/docker/containers/{c}/hostconfig.json"),
        hostconfig.as_bytes(),
    );
}

#[test]
fn docker_labels_modes_and_container_joins() {
    let h = Host::new();
    let me = std::process::id();
    let (sandbox, app, plain) = (id(4), id(5), id(6));
    let k8s = |c: &str| {
        format!(
            r#""io.kubernetes.container.name":"{c}","io.kubernetes.pod.name":"web-1","io.kubernetes.pod.namespace":"shop","io.kubernetes.pod.uid":"u","annotation.secret":"{SECRET}""#
        )
    };
    // cri-dockerd: the sandbox holds the pod's net (mode none, CNI sets it up) and ipc;
    // the app container joins them with container:<sandbox>, and pid too; host uts.
    docker_container(
        &h,
        &sandbox,
        &k8s("POD"),
        "k8s_POD_web-1_shop_u_0",
        me,
        r#"{"NetworkMode":"none","PidMode":"","IpcMode":"shareable","UTSMode":"","UsernsMode":"","CgroupnsMode":"host","Privileged":false}"#,
    );
    docker_container(
        &h,
        &app,
        &k8s("app"),
        "k8s_app_web-1_shop_u_0",
        0,
        &format!(
            r#"{{"NetworkMode":"container:{sandbox}","PidMode":"container:{sandbox}","IpcMode":"container:{sandbox}","UTSMode":"host","UsernsMode":"","CgroupnsMode":"private"}}"#
        ),
    );
    let out = h.read(Runtime::Docker, &app);
    assert!(out.errors.is_empty(), "{}", errors_text(&out));
    let info = out.info;
    assert_eq!(
        info.names,
        Names {
            namespace: "shop".into(),
            pod: "web-1".into(),
            container: "app".into()
        }
    );
    for t in [NsType::Net, NsType::Pid, NsType::Ipc] {
        assert_eq!(
            info.declared(t),
            Some(DeclaredNs::Joins {
                inode: Some(self_ns(t))
            }),
            "{t}: resolved through the sandbox's State.Pid"
        );
    }
    assert_eq!(info.declared(NsType::Uts), Some(DeclaredNs::Host));
    assert_eq!(info.declared(NsType::Mnt), Some(DeclaredNs::Private));
    assert_eq!(info.declared(NsType::Cgroup), Some(DeclaredNs::Private));
    assert_eq!(info.declared(NsType::Time), Some(DeclaredNs::Host));
    assert_eq!(info.declared(NsType::User), None, "left to the daemon");

    // A plain container: Docker's own name; host network and pid; a join of a hostNetwork
    // container is the host's.
    docker_container(
        &h,
        &plain,
        "",
        "agent",
        0,
        &format!(
            r#"{{"NetworkMode":"host","PidMode":"host","IpcMode":"container:{app}","UTSMode":"","UsernsMode":"host","CgroupnsMode":""}}"#
        ),
    );
    let info = h.read(Runtime::Docker, &plain).info;
    assert_eq!(info.names.container, "agent");
    assert_eq!(info.names.pod, "");
    assert_eq!(info.declared(NsType::Net), Some(DeclaredNs::Host));
    assert_eq!(info.declared(NsType::Pid), Some(DeclaredNs::Host));
    assert_eq!(info.declared(NsType::User), Some(DeclaredNs::Host));
    assert_eq!(info.declared(NsType::Cgroup), None);
    // ipc: container:<app>, which is container:<sandbox>, whose process is this one.
    assert_eq!(
        info.declared(NsType::Ipc),
        Some(DeclaredNs::Joins {
            inode: Some(self_ns(NsType::Ipc))
        })
    );
}

#[test]
fn docker_join_of_a_name_or_a_loop_stays_unresolved() {
    let h = Host::new();
    let (a, b) = (id(7), id(8));
    docker_container(
        &h,
        &a,
        "",
        "a",
        0,
        &format!(r#"{{"NetworkMode":"container:{b}"}}"#),
    );
    docker_container(
        &h,
        &b,
        "",
        "b",
        0,
        &format!(r#"{{"NetworkMode":"container:{a}","PidMode":"container:web"}}"#),
    );
    let info = h.read(Runtime::Docker, &b).info;
    assert_eq!(
        info.declared(NsType::Net),
        Some(DeclaredNs::Joins { inode: None })
    );
    assert_eq!(
        info.declared(NsType::Pid),
        Some(DeclaredNs::Joins { inode: None })
    );
}

/// Podman's database as Podman 4.3 laid it out on this machine for `podman pod create
/// --name probepod` and `podman run --pod probepod --name probectr`.
fn podman_db(infra: &str, ctr: &str, pod: &str) -> Vec<u8> {
    let ctr_bucket = |name: &str| {
        Bucket::default()
            .value(
                "config",
                &format!(r#"{{"spec":{{"process":{{"env":["S={SECRET}"]}}}},"name":"{name}"}}"#),
            )
            .value("pod-id", pod)
            .value("state", "{}")
            .bucket("dependencies", Bucket::default())
    };
    let root = Bucket::default()
        .bucket(
            "all-ctrs",
            Bucket::default()
                .value(infra, &format!("{}-infra", &pod[..12]))
                .value(ctr, "probectr"),
        )
        .bucket("allPods", Bucket::default().value(pod, "probepod"))
        .bucket("allVolumes", Bucket::default())
        .bucket(
            "ctr",
            Bucket::default()
                .bucket(infra, ctr_bucket("infra"))
                .bucket(ctr, ctr_bucket("probectr")),
        )
        .bucket(
            "id-registry",
            Bucket::default()
                .value(infra, "infra")
                .value(ctr, "probectr")
                .value(pod, "probepod"),
        )
        .bucket(
            "pod",
            Bucket::default().bucket(
                pod,
                Bucket::default()
                    .value("config", r#"{"name":"probepod"}"#)
                    .bucket("containers", Bucket::default().value(ctr, "probectr")),
            ),
        );
    build(&root, 4096, 2, 4)
}

#[test]
fn podman_pod_and_container_names_from_its_database() {
    let h = Host::new();
    let (infra, ctr, pod) = (id(9), id(10), id(11));
    let me = std::process::id();
    h.write(
        "var/lib/containers/storage/libpod/bolt_state.db",
        &podman_db(&infra, &ctr, &pod),
    );
    let spec = format!(
        r#"{{"process":{{"env":["container=podman","SECRET={SECRET}"]}},"annotations":{{"io.container.manager":"libpod","io.kubernetes.cri-o.ContainerType":"container","io.kubernetes.cri-o.SandboxID":"{infra}"}},
        "linux":{{"namespaces":[{{"type":"pid"}},{{"type":"network","path":"/proc/{me}/ns/net"}},{{"type":"ipc","path":"/proc/{me}/ns/ipc"}},{{"type":"uts","path":"/proc/{me}/ns/uts"}},{{"type":"mount"}}]}}}}"#
    );
    h.write(
        &format!("var/lib/containers/storage/overlay-containers/{ctr}/userdata/config.json"),
        spec.as_bytes(),
    );
    let out = h.read(Runtime::Podman, &ctr);
    assert!(out.errors.is_empty(), "{}", errors_text(&out));
    assert_eq!(out.info.names.pod, "probepod");
    assert_eq!(out.info.names.container, "probectr");
    assert_eq!(out.info.names.namespace, "");
    assert_eq!(
        out.info.declared(NsType::Net),
        Some(DeclaredNs::Joins {
            inode: Some(self_ns(NsType::Net))
        })
    );
    assert_eq!(out.info.declared(NsType::Pid), Some(DeclaredNs::Private));

    // While a writer holds the database, the read is retried, not cached as unknown.
    let db = fs::File::open(
        h.root()
            .join("var/lib/containers/storage/libpod/bolt_state.db"),
    )
    .unwrap();
    rustix::fs::flock(&db, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let mut cache = RuntimeCache::new(h.reader());
    let c = cref(Runtime::Podman, &ctr);
    let info = cache.lookup(&c);
    assert_eq!(info.names.pod, "");
    assert_eq!(
        info.declared(NsType::Pid),
        Some(DeclaredNs::Private),
        "the spec was still read"
    );
    assert_eq!(cache.errors().get(ErrorKind::Busy), 1);
    assert!(cache.get(&c).is_none(), "a busy read is not cached");
    drop(db);
    assert_eq!(cache.lookup(&c).names.pod, "probepod");
    assert_eq!(cache.reads(), 2);

    // A container outside any pod: no pod name. Without a database (SQLite-backed
    // Podman): the spec still counts, the missing database is counted.
    let lone = id(12);
    h.write(
        &format!("var/lib/containers/storage/overlay-containers/{lone}/userdata/config.json"),
        br#"{"linux":{"namespaces":[{"type":"network"}]}}"#,
    );
    let out = h.read(Runtime::Podman, &lone);
    assert!(out.errors.is_empty(), "{}", errors_text(&out));
    assert_eq!(out.info.names, Names::default());
    fs::remove_file(
        h.root()
            .join("var/lib/containers/storage/libpod/bolt_state.db"),
    )
    .unwrap();
    let out = h.read(Runtime::Podman, &lone);
    assert_eq!(kinds(&out), vec![ErrorKind::Missing]);
    assert_eq!(out.info.declared(NsType::Net), Some(DeclaredNs::Private));
}

#[test]
fn cache_reads_once_and_forgets_gone_containers() {
    let h = Host::new();
    let (a, b) = (id(13), id(14));
    for c in [&a, &b] {
        h.write(
            &format!("run/containers/storage/overlay-containers/{c}/userdata/config.json"),
            br#"{"annotations":{"io.kubernetes.pod.name":"p"},"linux":{}}"#,
        );
    }
    let mut cache = RuntimeCache::new(h.reader());
    let (ca, cb) = (cref(Runtime::CriO, &a), cref(Runtime::CriO, &b));
    assert_eq!(cache.lookup(&ca).names.pod, "p");
    // The file changes after the first sighting: the cached answer stands.
    h.write(
        &format!("run/containers/storage/overlay-containers/{a}/userdata/config.json"),
        br#"{"annotations":{"io.kubernetes.pod.name":"changed"}}"#,
    );
    assert_eq!(cache.lookup(&ca).names.pod, "p");
    assert_eq!(cache.lookup(&cb).names.pod, "p");
    assert_eq!(cache.reads(), 2);
    // A missing bundle is read once and remembered as unknown.
    let gone = cref(Runtime::CriO, &id(15));
    assert_eq!(*cache.lookup(&gone), RuntimeInfo::default());
    assert_eq!(*cache.lookup(&gone), RuntimeInfo::default());
    assert_eq!(cache.reads(), 3);
    assert_eq!(cache.errors().get(ErrorKind::Missing), 1);
    cache.retain(|c| c == &cb);
    assert_eq!(cache.len(), 1);
    assert_eq!(
        cache.lookup(&ca).names.pod,
        "changed",
        "read anew after it was dropped"
    );

    // A rootless container's ID is its user's own naming: never looked up.
    let mut rootless = cref(Runtime::CriO, &b);
    rootless.owner_uid = Some(1000);
    assert_eq!(*cache.lookup(&rootless), RuntimeInfo::default());
    assert_eq!(cache.errors().total(), 1);
    // Nor is an ID that is not a runtime's.
    let odd = cref(Runtime::CriO, "../../etc");
    assert_eq!(*cache.lookup(&odd), RuntimeInfo::default());
    assert_eq!(cache.errors().total(), 1);
}

/// The hostile bundles of the issue, each for each runtime that reads a JSON file: a
/// counted error of the right kind, nothing read outside the runtime's directory, no
/// panic, and no secret in what is returned or printed.
#[test]
fn hostile_bundles() {
    let h = Host::new();
    // What must never be read: a file outside the runtime's directories, holding a secret.
    let outside = h.write(
        "etc/shadow",
        format!("root:{SECRET}:19000::::::\n").as_bytes(),
    );
    type BundlePath = fn(&str) -> String;
    let locations: [(Runtime, BundlePath); 4] = [
        (Runtime::Containerd, |c| {
            format!("run/containerd/io.containerd.runtime.v2.task/k8s.io/{c}/config.json")
        }),
        (Runtime::CriO, |c| {
            format!("run/containers/storage/overlay-containers/{c}/userdata/config.json")
        }),
        (Runtime::Docker, |c| {
            format!("var/lib/docker/containers/{c}/config.v2.json")
        }),
        (Runtime::Podman, |c| {
            format!("var/lib/containers/storage/overlay-containers/{c}/userdata/config.json")
        }),
    ];
    let mut n = 100u8;
    for (runtime, path) in locations {
        let mut case = |make: &dyn Fn(&Path), want: ErrorKind| {
            n += 1;
            let c = id(n);
            let file = h.root().join(path(&c));
            fs::create_dir_all(file.parent().unwrap()).unwrap();
            if runtime == Runtime::Docker {
                fs::write(
                    file.with_file_name("hostconfig.json"),
                    r#"{"NetworkMode":"host"}"#,
                )
                .unwrap();
            }
            make(&file);
            let out = h.read(runtime, &c);
            let first = out.errors.first().map(|e| e.kind);
            assert_eq!(first, Some(want), "{runtime}: {}", errors_text(&out));
            assert!(out.info.names.is_empty());
        };
        // A huge file (sparse: nothing is allocated unless the reader tries).
        case(
            &|f| fs::File::create(f).unwrap().set_len(1 << 33).unwrap(),
            ErrorKind::TooLarge,
        );
        // Just over the bound, dense.
        case(
            &|f| fs::write(f, vec![b' '; MAX_FILE as usize + 1]).unwrap(),
            ErrorKind::TooLarge,
        );
        // A symlink to /etc/shadow: absolute, and relative climbing out.
        case(&|f| symlink("/etc/shadow", f).unwrap(), ErrorKind::Symlink);
        case(&|f| symlink(&outside, f).unwrap(), ErrorKind::Symlink);
        case(
            &|f| symlink("../../../../../../../../etc/shadow", f).unwrap(),
            ErrorKind::Symlink,
        );
        // The bundle directory itself a symlink out.
        case(
            &|f| {
                let d = f.parent().unwrap();
                fs::remove_dir_all(d).unwrap();
                symlink(h.root().join("etc"), d).unwrap();
            },
            ErrorKind::Symlink,
        );
        // A FIFO, which a plain open would block on.
        case(
            &|f| {
                rustix::fs::mkfifoat(rustix::fs::CWD, f, rustix::fs::Mode::from_raw_mode(0o600))
                    .unwrap()
            },
            ErrorKind::NotRegular,
        );
        // Malformed JSON, cut right after a secret.
        case(
            &|f| fs::write(f, format!(r#"{{"process":{{"env":["S={SECRET}"#)).unwrap(),
            ErrorKind::Parse,
        );
        case(
            &|f| fs::write(f, format!(r#"{{"Config":{{"Env":["S={SECRET}"]}} garbage"#)).unwrap(),
            ErrorKind::Parse,
        );
        // A named field of the wrong type holding a secret: serde's message would quote it.
        case(
            &|f| {
                fs::write(f, format!(r#"{{"annotations":{{"io.kubernetes.pod.name":["{SECRET}"]}},"Config":{{"Labels":{{"io.kubernetes.pod.name":{{"x":"{SECRET}"}}}}}},"Name":["{SECRET}"]}}"#)).unwrap()
            },
            ErrorKind::Parse,
        );
        // Deep nesting, in a field that is read and in one that is skipped.
        case(
            &|f| fs::write(f, "[".repeat(1 << 20)).unwrap(),
            ErrorKind::Parse,
        );
        case(
            &|f| fs::write(f, format!(r#"{{"process":{}"#, "{\"a\":".repeat(100_000))).unwrap(),
            ErrorKind::Parse,
        );
        case(
            &|f| {
                fs::write(
                    f,
                    format!(r#"{{"annotations":{{"x":{}}}}}"#, "[".repeat(5000)),
                )
                .unwrap()
            },
            ErrorKind::Parse,
        );
        // A bundle whose container has gone.
        case(
            &|f| fs::remove_dir_all(f.parent().unwrap()).unwrap(),
            ErrorKind::Missing,
        );
    }
    // Names that are not names: dropped and counted, never shown.
    let c = id(250);
    h.write(
        &format!("run/containers/storage/overlay-containers/{c}/userdata/config.json"),
        format!(
            r#"{{"annotations":{{"io.kubernetes.pod.name":"a\u001b[2Jb","io.kubernetes.container.name":"{}","io.kubernetes.pod.namespace":"ok"}}}}"#,
            "x".repeat(300)
        )
        .as_bytes(),
    );
    let out = h.read(Runtime::CriO, &c);
    assert_eq!(kinds(&out), vec![ErrorKind::Parse, ErrorKind::Parse]);
    assert_eq!(out.info.names.namespace, "ok");
    assert_eq!(out.info.names.pod, "");
    assert_eq!(out.info.names.container, "");
}

#[test]
fn a_damaged_podman_database_is_an_error() {
    let h = Host::new();
    let ctr = id(16);
    h.write(
        &format!("var/lib/containers/storage/overlay-containers/{ctr}/userdata/config.json"),
        br#"{"linux":{}}"#,
    );
    let mut db = podman_db(&id(17), &ctr, &id(18));
    for b in db.iter_mut().skip(2 * 4096) {
        *b ^= 0x5a;
    }
    h.write("var/lib/containers/storage/libpod/bolt_state.db", &db);
    let out = h.read(Runtime::Podman, &ctr);
    assert_eq!(kinds(&out), vec![ErrorKind::Parse]);
    assert!(out.info.names.is_empty());
    // The database as a symlink out of the graph root.
    fs::remove_file(
        h.root()
            .join("var/lib/containers/storage/libpod/bolt_state.db"),
    )
    .unwrap();
    symlink(
        "/etc/passwd",
        h.root()
            .join("var/lib/containers/storage/libpod/bolt_state.db"),
    )
    .unwrap();
    assert_eq!(
        kinds(&h.read(Runtime::Podman, &ctr)),
        vec![ErrorKind::Symlink]
    );
}

#[test]
fn missing_root_or_runtime_directory_is_counted_not_fatal() {
    let h = Host::new();
    let out = h.read(Runtime::Containerd, &id(19));
    assert_eq!(kinds(&out), vec![ErrorKind::Missing]);
    let r = Reader::new("/nonexistent/root", "/proc", Locations::default());
    assert_eq!(
        kinds(&r.read(&cref(Runtime::Docker, &id(19)))),
        vec![ErrorKind::Missing]
    );
}

/// A join given as a path to a namespace bind mount (`/run/netns/cni-…`, `/var/run/netns`
/// through the host's `/var/run -> /run` symlink) resolves to the namespace's inode.
#[test]
fn joins_of_bind_mounted_namespaces() {
    // The one policy for tests that need root: fail saying why, never pass silently.
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root to bind-mount a namespace; run the tests as root (CI does)"
    );
    let h = Host::new();
    let target = h.write("run/netns/cni-1234", b"");
    fs::create_dir(h.root().join("var")).unwrap();
    symlink("/run", h.root().join("var/run")).unwrap();
    let st = std::process::Command::new("mount")
        .args(["--bind", "/proc/self/ns/net"])
        .arg(&target)
        .status()
        .unwrap();
    assert!(st.success(), "mount --bind failed");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(target.clone());
    let c = id(20);
    h.write(
        &format!("run/containerd/io.containerd.runtime.v2.task/k8s.io/{c}/config.json"),
        br#"{"linux":{"namespaces":[{"type":"network","path":"/var/run/netns/cni-1234"},{"type":"ipc","path":"/run/netns/nothere"},{"type":"uts","path":"/proc/self/ns/net"}]}}"#,
    );
    let info = h.read(Runtime::Containerd, &c).info;
    // `mount` ran in its own process, in this test's namespaces: the host's here.
    assert_eq!(
        info.declared(NsType::Net),
        Some(DeclaredNs::Joins {
            inode: Some(self_ns(NsType::Net))
        })
    );
    assert_eq!(
        info.declared(NsType::Ipc),
        Some(DeclaredNs::Joins { inode: None })
    );
    // /proc/self is the reader's own, not a PID: unresolved; and a net link for uts is not uts.
    assert_eq!(
        info.declared(NsType::Uts),
        Some(DeclaredNs::Joins { inode: None })
    );
}

#[test]
fn drift_counts_processes_away_from_the_declared_namespace() {
    let mut host = crate::model::NsSet::default();
    for (i, t) in NsType::ALL.into_iter().enumerate() {
        host.set(t, Some(100 + i as u64));
    }
    // The kernel has no time namespaces here: never counted.
    host.set(NsType::Time, None);
    let mut d = Declared::default();
    d.set(NsType::Net, Some(DeclaredNs::Private));
    d.set(NsType::User, Some(DeclaredNs::Private));
    d.set(NsType::Pid, Some(DeclaredNs::Host));
    d.set(NsType::Ipc, Some(DeclaredNs::Joins { inode: Some(101) })); // the host's ipc
    d.set(NsType::Uts, Some(DeclaredNs::Joins { inode: Some(7) })); // not the host's
    d.set(NsType::Mnt, Some(DeclaredNs::Joins { inode: None }));
    d.set(NsType::Time, Some(DeclaredNs::Private));
    // 5 processes: 3 in the host's net, all in the host's user, 2 in the host's pid,
    // 5 in the host's ipc, 1 in the host's uts, 5 in the host's mnt and time.
    let mut in_host = [0u32; 8];
    in_host[NsType::Net.index()] = 3;
    in_host[NsType::User.index()] = 5;
    in_host[NsType::Pid.index()] = 2;
    in_host[NsType::Ipc.index()] = 5;
    in_host[NsType::Uts.index()] = 1;
    in_host[NsType::Mnt.index()] = 5;
    in_host[NsType::Time.index()] = 5;
    let got: Vec<_> = drift(&d, &host, 5, &in_host)
        .into_iter()
        .map(|x| (x.ns_type, x.declared.name(), x.processes))
        .collect();
    assert_eq!(
        got,
        vec![
            (NsType::Net, "private", 3),
            (NsType::Pid, "host", 3),
            (NsType::User, "private", 5),
            (NsType::Uts, "private", 1),
        ]
    );
    // Nothing declared, nothing counted.
    assert!(drift(&Declared::default(), &host, 5, &in_host).is_empty());
}

mod properties {
    use super::super::bolt::BoltDb;
    use super::super::oci::parse_spec;
    use super::*;
    use proptest::prelude::*;

    fn joins_ctx() -> SafeDir {
        SafeDir::open(&std::env::temp_dir()).unwrap()
    }

    /// A real-shaped spec, as bytes, so that mutations start from something that parses.
    fn seed() -> Vec<u8> {
        containerd_spec("/proc/1/ns/net", "/proc/1/ns/ipc", true).into_bytes()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(256)
        ))]

        #[test]
        fn parsers_never_panic_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let root = joins_ctx();
            let joins = Joins { root: &root, procfs: Path::new("/proc") };
            if let Err(e) = parse_spec(&bytes, &joins) {
                prop_assert_eq!(e.kind, ErrorKind::Parse);
            }
            let _ = super::super::docker::parse_both(&bytes, &bytes);
            let mut f = tempfile::tempfile().unwrap();
            std::io::Write::write_all(&mut f, &bytes).unwrap();
            if let Ok(db) = BoltDb::open(&f) {
                let _ = db.get(&[b"ctr", b"x"], b"pod-id");
            }
        }

        #[test]
        fn mutated_specs_parse_or_fail_cleanly(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut b = seed();
            for (at, byte) in edits {
                let i = at.index(b.len());
                b[i] = byte;
            }
            let end = cut.index(b.len() + 1);
            b.truncate(end.max(b.len() / 2));
            let root = joins_ctx();
            let joins = Joins { root: &root, procfs: Path::new("/proc") };
            match parse_spec(&b, &joins) {
                Ok(info) => {
                    let shown = format!("{info:?}");
                    prop_assert!(!shown.contains(SECRET));
                }
                Err(e) => prop_assert!(!e.to_string().contains(SECRET)),
            }
        }
    }
}

#[test]
fn the_declared_namespace_accessor_for_escape_detection() {
    use crate::model::{ContainerSummary, NsSet, RootMapping};
    let mut host = NsSet::default();
    host.set(NsType::Net, Some(10));
    host.set(NsType::Pid, Some(20));
    let mut info = RuntimeInfo::default();
    info.declared.set(NsType::Net, Some(DeclaredNs::Private));
    info.declared
        .set(NsType::Pid, Some(DeclaredNs::Joins { inode: Some(20) }));
    info.declared
        .set(NsType::Ipc, Some(DeclaredNs::Joins { inode: None }));
    let c = ContainerSummary {
        container: cref(Runtime::Containerd, &id(1)),
        processes: 1,
        main_pid: 1,
        main_start_time: 1,
        comm: "x".into(),
        main_ns: NsSet::default(),
        host_ns_processes: [0; 8],
        host_root_processes: 0,
        root: RootMapping::NonRoot,
        uid_map: None,
        escaped_processes: [0; 8],
        escapes: Vec::new(),
        runtime_info: std::sync::Arc::new(info),
    };
    assert_eq!(c.declared_host(NsType::Net, &host), Some(false));
    assert_eq!(
        c.declared_host(NsType::Pid, &host),
        Some(true),
        "a join of the host's"
    );
    assert_eq!(
        c.declared_host(NsType::Ipc, &host),
        None,
        "an unresolved join"
    );
    assert_eq!(c.declared_host(NsType::Uts, &host), None, "not declared");
    // The container's own namespace, for escapes: the declared one, else the oldest
    // process's (here in the host's uts and net namespaces).
    let mut c = c;
    host.set(NsType::Uts, Some(30));
    c.main_ns.set(NsType::Net, Some(10));
    c.main_ns.set(NsType::Uts, Some(30));
    assert!(!c.namespace_is_host(NsType::Net, &host), "declared private");
    assert!(
        c.namespace_is_host(NsType::Pid, &host),
        "declared a join of the host's"
    );
    assert!(
        c.namespace_is_host(NsType::Uts, &host),
        "not declared: the oldest process's"
    );
}
