//! The lab's detection of the host's cgroup layout (tests/common), against mount
//! tables of the three kinds of host: hybrid (this project's machine: v1 controllers
//! and v2 at /sys/fs/cgroup/unified), pure v2 (v2 at /sys/fs/cgroup, no v1), and v1
//! only, which the lab refuses with the reason. No root needed.

mod common;

use common::{cgroup_layout, CgroupLayout};

const HYBRID: &str = "\
25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/root rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

const PURE_V2: &str = "\
25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/root rw
30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

const V1_ONLY: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
";

/// A container's view: the hierarchies are bind mounts of its own cgroup (root is not
/// `/`), which the lab cannot use as whole hierarchies.
const CONTAINER: &str = "\
700 690 0:38 /docker/abc /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw
";

#[test]
fn hybrid_host_v2_under_unified_and_the_lab_v1_controllers() {
    let l = CgroupLayout::from_mountinfo(HYBRID).unwrap();
    assert_eq!(l.v2, "/sys/fs/cgroup/unified");
    assert_eq!(l.v1_root("pids"), Some("/sys/fs/cgroup/pids"));
    assert_eq!(l.v1_root("memory"), Some("/sys/fs/cgroup/memory"));
    assert_eq!(l.v1_root("cpu"), None, "not a controller the lab uses");
    assert_eq!(
        l.roots().collect::<Vec<_>>(),
        [
            "/sys/fs/cgroup/unified",
            "/sys/fs/cgroup/memory",
            "/sys/fs/cgroup/pids"
        ]
    );
}

#[test]
fn pure_v2_host_v2_at_the_top_and_no_v1() {
    let l = CgroupLayout::from_mountinfo(PURE_V2).unwrap();
    assert_eq!(l.v2, "/sys/fs/cgroup");
    assert!(l.v1.is_empty());
    assert_eq!(l.roots().collect::<Vec<_>>(), ["/sys/fs/cgroup"]);
}

#[test]
fn v1_only_and_container_views_are_refused_with_the_reason() {
    for table in [V1_ONLY, CONTAINER, ""] {
        let e = CgroupLayout::from_mountinfo(table).unwrap_err();
        assert!(e.contains("no cgroup v2 hierarchy"), "{e}");
    }
}

/// This machine is a hybrid host: the detection must find what the lab's tests have
/// always used here.
#[test]
fn this_host_is_detected_as_it_is_mounted() {
    let l = cgroup_layout();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        mountinfo.contains(&format!(" {} ", l.v2)),
        "{l:?} not in mountinfo"
    );
    assert!(std::path::Path::new(&l.v2).join("cgroup.procs").exists());
    for root in l.roots() {
        assert!(
            std::path::Path::new(root).join("cgroup.procs").exists(),
            "{root}"
        );
    }
}
