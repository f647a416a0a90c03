//! Container attribution: which container (runtime, ID, pod UID) a process belongs to,
//! derived from the shapes of cgroup paths that kubelet and the runtimes create.

use crate::model::{ContainerRef, Runtime};
use crate::procfs::parse::CgroupLine;

/// What a cgroup path says about the process in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribution {
    /// The process is in this container.
    Container(ContainerRef),
    /// A runtime's monitor process (conmon): not a container.
    Monitor,
    /// The path names no container: a host process (services, init.scope, `/`).
    Host,
}

/// Where an attribution to a container came from: the line, and the path of the
/// cgroup that holds the container's own (everything before the component that names
/// the container). The scanner checks that path's directories for delegation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin<'a> {
    pub line: &'a CgroupLine<'a>,
    pub parent: &'a str,
}

/// Attribute a process from all the lines of its `/proc/<pid>/cgroup`.
///
/// The v2 line is tried first; when it names no container (hybrid hosts where
/// containers live in the v1 hierarchies), the v1 lines are tried, `pids` and `memory`
/// first since every runtime joins them. A monitor anywhere wins over a container
/// further down the list, so conmon is never counted as its container.
pub fn attribute(lines: &[CgroupLine<'_>], default_runtime: Runtime) -> Attribution {
    attribute_with_origin(lines, default_runtime).0
}

/// [`attribute`], and for a container the line and parent path it was found in.
pub fn attribute_with_origin<'a>(
    lines: &'a [CgroupLine<'a>],
    default_runtime: Runtime,
) -> (Attribution, Option<Origin<'a>>) {
    let rank = |l: &CgroupLine<'_>| {
        if l.is_v2() {
            0
        } else if l.has_controller("pids") {
            1
        } else if l.has_controller("memory") {
            2
        } else if l.has_controller("name=systemd") {
            3
        } else {
            4
        }
    };
    let mut ordered: Vec<&CgroupLine<'_>> = lines.iter().collect();
    ordered.sort_by_key(|l| rank(l));
    for l in ordered {
        match attribute_path_at(l.path, default_runtime) {
            (Attribution::Host, _) => continue,
            (found, parent) => {
                return (found, parent.map(|parent| Origin { line: l, parent }));
            }
        }
    }
    (Attribution::Host, None)
}

/// Attribute one cgroup path. The innermost component that names a container wins, so
/// a pod inside a kind node is attributed to the pod's container, not the node's.
///
/// # Delegated user subtrees
/// Below `user@<uid>.service` systemd delegates the cgroup tree to that user, who can
/// create cgroups of any name there: a `docker-<id>.scope` or `pod<uid>/<id>` reusing
/// another, real container's ID or pod UID. Rootless Podman and Docker legitimately
/// live there, so such containers are still attributed, but marked with the owner's
/// UID ([`ContainerRef::owner_uid`]): they are a different key from any system
/// container (never merged into its series), their `container_id` label reads
/// `<scheme>://user-<uid>/<id>` (never joined to kube-state-metrics' containers), and
/// their pod UID is left empty (a user cannot claim a Kubernetes pod). Elsewhere only
/// root (or a privileged container, through its own nested cgroups: the kind shape)
/// can create cgroups, and such a writer is host root already.
pub fn attribute_path(path: &str, default_runtime: Runtime) -> Attribution {
    attribute_path_at(path, default_runtime).0
}

/// [`attribute_path`], and for a container the part of `path` before the component
/// that names it (the path of the cgroup that holds the container's).
fn attribute_path_at(path: &str, default_runtime: Runtime) -> (Attribution, Option<&str>) {
    // The kernel prints cgroup paths into a PATH_MAX buffer: a longer one is not from
    // a kernel, and splitting it would allocate in proportion to a hostile file.
    if path.len() > PATH_MAX {
        return (Attribution::Host, None);
    }
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    if comps.last().is_some_and(|leaf| is_monitor(leaf)) {
        return (Attribution::Monitor, None);
    }
    for i in (0..comps.len()).rev() {
        let parent = i.checked_sub(1).map(|p| comps[p]);
        let Some((runtime, id, own_pod)) = container_component(comps[i], parent, default_runtime)
        else {
            continue;
        };
        let owner_uid = comps[..i].iter().find_map(|c| user_manager_uid(c));
        let pod_uid = match owner_uid {
            Some(_) => String::new(),
            None => own_pod
                .or_else(|| comps[..i].iter().rev().find_map(|c| pod_component(c)))
                .unwrap_or_default(),
        };
        // `comps[i]` is a slice of `path`: what precedes it is the parent's path.
        let start = comps[i].as_ptr() as usize - path.as_ptr() as usize;
        let parent = path[..start].trim_end_matches('/');
        return (
            Attribution::Container(ContainerRef {
                runtime,
                id: id.to_owned(),
                pod_uid,
                owner_uid,
            }),
            Some(parent),
        );
    }
    (Attribution::Host, None)
}

/// `user@<uid>.service`, the systemd user manager whose subtree is delegated to `<uid>`.
fn user_manager_uid(c: &str) -> Option<u32> {
    let digits = c.strip_prefix("user@")?.strip_suffix(".service")?;
    if digits.is_empty() || digits.len() > 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `PATH_MAX`: no cgroup path the kernel writes is longer.
const PATH_MAX: usize = 4096;

fn is_monitor(c: &str) -> bool {
    c == "conmon" || c.starts_with("crio-conmon-") || c.starts_with("libpod-conmon-")
}

/// A container ID as runtimes write it: 64 lowercase hex digits. Being strict here keeps
/// a path that merely looks container-like from becoming a container.
fn is_container_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// If `c` names a container, its runtime, ID and (for the cgroupsPath form, which
/// carries it) pod UID.
fn container_component<'a>(
    c: &'a str,
    parent: Option<&str>,
    default_runtime: Runtime,
) -> Option<(Runtime, &'a str, Option<String>)> {
    // cgroupsPath form: `<pod slice>:<runtime prefix>:<id>`.
    if let Some((slice, rest)) = c.split_once(':') {
        let (prefix, id) = rest.split_once(':')?;
        let runtime = match prefix {
            "cri-containerd" => Runtime::Containerd,
            "crio" => Runtime::CriO,
            "docker" => Runtime::Docker,
            _ => return None,
        };
        return is_container_id(id).then(|| (runtime, id, pod_component(slice)));
    }
    let scoped = |prefix: &str| {
        c.strip_prefix(prefix)
            .map(|r| r.strip_suffix(".scope").unwrap_or(r))
            .filter(|id| is_container_id(id))
    };
    if let Some(id) = scoped("cri-containerd-") {
        return Some((Runtime::Containerd, id, None));
    }
    if let Some(id) = scoped("crio-") {
        return Some((Runtime::CriO, id, None));
    }
    if let Some(id) = scoped("docker-").filter(|_| c.ends_with(".scope")) {
        return Some((Runtime::Docker, id, None));
    }
    if let Some(id) = scoped("libpod-") {
        return Some((Runtime::Podman, id, None));
    }
    if is_container_id(c) {
        // Bare IDs: the cgroupfs drivers. The parent tells whose.
        let parent = parent?;
        if parent == "docker" {
            return Some((Runtime::Docker, c, None));
        }
        if pod_component(parent).is_some() {
            return Some((default_runtime, c, None));
        }
    }
    None
}

/// If `c` is a pod's cgroup, the pod UID in API form.
fn pod_component(c: &str) -> Option<String> {
    // systemd driver: kubepods-<qos>-pod<uid_>.slice or kubepods-pod<uid_>.slice
    if let Some(rest) = c
        .strip_prefix("kubepods-")
        .and_then(|r| r.strip_suffix(".slice"))
    {
        let uid = rest.rsplit_once("pod").map(|(_, u)| u)?;
        return pod_uid(uid);
    }
    // cgroupfs driver: pod<uid>
    c.strip_prefix("pod").and_then(pod_uid)
}

/// A pod UID as found in a path: a UUID with `-` or `_` (returned with `-`), or the
/// 32-hex config hash of a static pod (returned as is).
fn pod_uid(s: &str) -> Option<String> {
    let hex = |b: u8| b.is_ascii_hexdigit();
    if s.len() == 32 && s.bytes().all(hex) {
        return Some(s.to_owned());
    }
    let groups: Vec<&str> = s.split(['-', '_']).collect();
    let shape = [8, 4, 4, 4, 12];
    if groups.len() == 5
        && groups
            .iter()
            .zip(shape)
            .all(|(g, n)| g.len() == n && g.bytes().all(hex))
    {
        return Some(groups.join("-"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::parse::parse_cgroup;

    const ID: &str = "4d1f6c6e2c7a8b9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70";
    const ID2: &str = "0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f704d1f6c6e2c7a8b9e";

    fn c(runtime: Runtime, id: &str, uid: &str) -> Attribution {
        Attribution::Container(ContainerRef {
            runtime,
            id: id.into(),
            pod_uid: uid.into(),
            owner_uid: None,
        })
    }

    fn owned(runtime: Runtime, id: &str, owner: u32) -> Attribution {
        Attribution::Container(ContainerRef {
            runtime,
            id: id.into(),
            pod_uid: String::new(),
            owner_uid: Some(owner),
        })
    }

    #[test]
    fn delegated_user_subtrees_are_marked_and_never_claim_a_pod() {
        use Runtime::*;
        let u = "/user.slice/user-1000.slice/user@1000.service";
        let cases: Vec<(String, Attribution)> = vec![
            // rootless Podman (systemd cgroup manager) and rootless Docker
            (format!("{u}/user.slice/libpod-{ID}.scope/container"), owned(Podman, ID, 1000)),
            (format!("{u}/app.slice/docker-{ID}.scope"), owned(Docker, ID, 1000)),
            (format!("{u}/user.slice/docker/{ID}"), owned(Docker, ID, 1000)),
            // a user forging a kubelet pod with someone else's pod UID and container ID
            (format!("{u}/app.slice/kubepods/pod26ab26cd-6409-443f-a13c-fd6c231207c8/{ID}"),
             owned(Containerd, ID, 1000)),
            (format!("{u}/kubepods.slice/kubepods-podeb052b63_ea96_4728_ab4a_64ab3babccd7.slice/cri-containerd-{ID}.scope"),
             owned(Containerd, ID, 1000)),
            (format!("{u}/x.slice/kubepods-burstable-podeb052b63_ea96_4728_ab4a_64ab3babccd7.slice:cri-containerd:{ID}"),
             owned(Containerd, ID, 1000)),
            // the user manager's own services are host processes
            (format!("{u}/app.slice/dbus.service"), Attribution::Host),
            (format!("{u}/init.scope"), Attribution::Host),
            // look-alikes of the manager's name do not mark
            (format!("/system.slice/user@x.service/docker-{ID}.scope"), c(Docker, ID, "")),
            (format!("/system.slice/user@.service/docker-{ID}.scope"), c(Docker, ID, "")),
            (format!("/user@99999999999.service/docker-{ID}.scope"), c(Docker, ID, "")),
        ];
        for (path, want) in cases {
            assert_eq!(attribute_path(&path, Containerd), want, "{path}");
        }
        // The label can never equal a system container's.
        let Attribution::Container(forged) =
            attribute_path(&format!("{u}/app.slice/docker-{ID}.scope"), Containerd)
        else {
            panic!("not a container")
        };
        let Attribution::Container(real) =
            attribute_path(&format!("/system.slice/docker-{ID}.scope"), Containerd)
        else {
            panic!("not a container")
        };
        assert_ne!(forged, real);
        assert_eq!(forged.container_id(), format!("docker://user-1000/{ID}"));
        assert_eq!(real.container_id(), format!("docker://{ID}"));
    }

    #[test]
    fn every_shape_in_domain_notes() {
        use Runtime::*;
        let cases: Vec<(String, Attribution)> = vec![
            // kubelet systemd driver, containerd
            (format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podeb052b63_ea96_4728_ab4a_64ab3babccd7.slice/cri-containerd-{ID}.scope"),
             c(Containerd, ID, "eb052b63-ea96-4728-ab4a-64ab3babccd7")),
            // guaranteed QoS, systemd driver
            (format!("/kubepods.slice/kubepods-podeb052b63_ea96_4728_ab4a_64ab3babccd7.slice/cri-containerd-{ID}.scope"),
             c(Containerd, ID, "eb052b63-ea96-4728-ab4a-64ab3babccd7")),
            // docker via cri-dockerd
            (format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podeb052b63_ea96_4728_ab4a_64ab3babccd7.slice/docker-{ID}.scope"),
             c(Docker, ID, "eb052b63-ea96-4728-ab4a-64ab3babccd7")),
            // CRI-O and its monitor
            (format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podeb052b63_ea96_4728_ab4a_64ab3babccd7.slice/crio-{ID}.scope"),
             c(CriO, ID, "eb052b63-ea96-4728-ab4a-64ab3babccd7")),
            (format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podeb052b63_ea96_4728_ab4a_64ab3babccd7.slice/crio-conmon-{ID}.scope"),
             Attribution::Monitor),
            // kubelet cgroupfs driver
            (format!("/kubepods/besteffort/pod26ab26cd-6409-443f-a13c-fd6c231207c8/{ID}"),
             c(Containerd, ID, "26ab26cd-6409-443f-a13c-fd6c231207c8")),
            (format!("/kubepods/pod26ab26cd-6409-443f-a13c-fd6c231207c8/{ID}"),
             c(Containerd, ID, "26ab26cd-6409-443f-a13c-fd6c231207c8")),
            (format!("/kubepods/burstable/pod26ab26cd-6409-443f-a13c-fd6c231207c8/crio-{ID}"),
             c(CriO, ID, "26ab26cd-6409-443f-a13c-fd6c231207c8")),
            // cgroupsPath form
            (format!("/podruntime.slice/containerd.service/kubepods-burstable-podeb052b63_ea96_4728_ab4a_64ab3babccd7.slice:cri-containerd:{ID}"),
             c(Containerd, ID, "eb052b63-ea96-4728-ab4a-64ab3babccd7")),
            // nested (kind), static pod with 32-hex UID: the innermost container wins
            (format!("/system.slice/docker-{ID2}.scope/kubelet/kubepods/burstable/pod0123456789abcdef0123456789abcdef/{ID}"),
             c(Containerd, ID, "0123456789abcdef0123456789abcdef")),
            // the kind node's own services belong to the node container
            (format!("/system.slice/docker-{ID2}.scope/system.slice/containerd.service"),
             c(Docker, ID2, "")),
            // plain Docker
            (format!("/docker/{ID}"), c(Docker, ID, "")),
            (format!("/system.slice/docker-{ID}.scope"), c(Docker, ID, "")),
            // Podman
            (format!("/libpod_parent/libpod-{ID}"), c(Podman, ID, "")),
            (format!("/machine.slice/libpod-{ID}.scope/container"), c(Podman, ID, "")),
            ("/libpod_parent/conmon".into(), Attribution::Monitor),
            (format!("/machine.slice/libpod-conmon-{ID}.scope"), Attribution::Monitor),
            // not containers
            ("/init.scope".into(), Attribution::Host),
            ("/system.slice/containerd.service".into(), Attribution::Host),
            ("/system.slice/kubelet.service".into(), Attribution::Host),
            ("/".into(), Attribution::Host),
            ("/process_api/8f502bf88f30bf4efd179bb844e53620".into(), Attribution::Host),
            ("/system.slice/docker.service".into(), Attribution::Host),
            // look-alikes that are not container IDs
            ("/docker/notanid".into(), Attribution::Host),
            (format!("/docker/{}", &ID[..63]), Attribution::Host),
            (format!("/docker/{}", ID.to_uppercase()), Attribution::Host),
            (format!("/system.slice/docker-{ID}.service"), Attribution::Host),
            (format!("/somewhere/{ID}"), Attribution::Host),
        ];
        for (path, want) in cases {
            assert_eq!(attribute_path(&path, Containerd), want, "{path}");
        }
    }

    #[test]
    fn default_runtime_applies_to_bare_ids_under_pods_only() {
        let p = format!("/kubepods/besteffort/pod26ab26cd-6409-443f-a13c-fd6c231207c8/{ID}");
        assert_eq!(
            attribute_path(&p, Runtime::CriO),
            c(Runtime::CriO, ID, "26ab26cd-6409-443f-a13c-fd6c231207c8")
        );
        assert_eq!(
            attribute_path(&format!("/docker/{ID}"), Runtime::CriO),
            c(Runtime::Docker, ID, "")
        );
    }

    #[test]
    fn line_preference_on_hybrid_and_v2_hosts() {
        // Hybrid host, container in v1 only (Docker cgroupfs on this machine's layout).
        let text = format!(
            "9:name=systemd:/docker/{ID}\n8:pids:/docker/{ID}\n4:memory:/docker/{ID}\n0::/\n"
        );
        let lines = parse_cgroup(&text).unwrap();
        assert_eq!(
            attribute(&lines, Runtime::Containerd),
            c(Runtime::Docker, ID, "")
        );
        // v2-only systemd host.
        let text = format!("0::/system.slice/docker-{ID}.scope\n");
        let lines = parse_cgroup(&text).unwrap();
        assert_eq!(
            attribute(&lines, Runtime::Containerd),
            c(Runtime::Docker, ID, "")
        );
        // v2 names a container, v1 another: v2 wins.
        let text = format!("8:pids:/docker/{ID2}\n0::/docker/{ID}\n");
        let lines = parse_cgroup(&text).unwrap();
        assert_eq!(
            attribute(&lines, Runtime::Containerd),
            c(Runtime::Docker, ID, "")
        );
        // Host process on a hybrid host with an odd v1 path.
        let text = "4:memory:/process_api/8f50\n0::/\n";
        let lines = parse_cgroup(text).unwrap();
        assert_eq!(attribute(&lines, Runtime::Containerd), Attribution::Host);
        // conmon in v1 pids, nothing in v2.
        let text = "8:pids:/libpod_parent/conmon\n0::/\n";
        let lines = parse_cgroup(text).unwrap();
        assert_eq!(attribute(&lines, Runtime::Containerd), Attribution::Monitor);
    }

    #[test]
    fn origins_name_the_line_and_the_parent_path() {
        let text = format!(
            "8:pids:/docker/{ID}\n0::/kubepods.slice/kubepods-podeb052b63_ea96_4728_ab4a_64ab3babccd7.slice/cri-containerd-{ID}.scope\n"
        );
        let lines = parse_cgroup(&text).unwrap();
        let (a, o) = attribute_with_origin(&lines, Runtime::Containerd);
        assert!(matches!(a, Attribution::Container(_)));
        let o = o.unwrap();
        assert!(o.line.is_v2());
        assert_eq!(
            o.parent,
            "/kubepods.slice/kubepods-podeb052b63_ea96_4728_ab4a_64ab3babccd7.slice"
        );
        // The innermost container's parent.
        let text = format!(
            "0::/system.slice/docker-{ID2}.scope/kubelet/kubepods/pod26ab26cd-6409-443f-a13c-fd6c231207c8/{ID}\n"
        );
        let lines = parse_cgroup(&text).unwrap();
        let o = attribute_with_origin(&lines, Runtime::Containerd)
            .1
            .unwrap();
        assert_eq!(
            o.parent,
            format!("/system.slice/docker-{ID2}.scope/kubelet/kubepods/pod26ab26cd-6409-443f-a13c-fd6c231207c8")
        );
        let text = format!("4:memory:/docker/{ID}/\n");
        let lines = parse_cgroup(&text).unwrap();
        let o = attribute_with_origin(&lines, Runtime::Containerd)
            .1
            .unwrap();
        assert_eq!((o.parent, o.line.hierarchy), ("/docker", 4));
        let text = format!("0::/machine.slice/libpod-{ID}.scope/container\n");
        let lines = parse_cgroup(&text).unwrap();
        let o = attribute_with_origin(&lines, Runtime::Containerd)
            .1
            .unwrap();
        assert_eq!(o.parent, "/machine.slice");
        // No container: no origin.
        for text in ["0::/libpod_parent/conmon\n", "0::/system.slice/x.service\n"] {
            let lines = parse_cgroup(text).unwrap();
            assert_eq!(attribute_with_origin(&lines, Runtime::Containerd).1, None);
        }
    }

    #[test]
    fn pod_uids() {
        assert_eq!(
            pod_uid("eb052b63_ea96_4728_ab4a_64ab3babccd7").as_deref(),
            Some("eb052b63-ea96-4728-ab4a-64ab3babccd7")
        );
        assert_eq!(pod_uid("eb052b63_ea96_4728_ab4a_64ab3babccd"), None);
        assert_eq!(pod_uid("zz052b63-ea96-4728-ab4a-64ab3babccd7"), None);
        assert_eq!(pod_component("kubepods-besteffort.slice"), None);
        assert_eq!(pod_component("kubepods.slice"), None);
    }
}
