//! Real Docker containers for tests: a FROM-scratch image around the host's static
//! busybox (no image can be pulled here), and a guard that removes each container it
//! started, also when the test fails.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use super::{require_dockerd, require_tool, SETUP};

/// A FROM-scratch image holding the host's static busybox, with the applets the tests
/// run inside containers; its entrypoint is `sleep 3600`.
pub const BUSYBOX_IMAGE: &str = "nsexporter-busybox:test";
const APPLETS: [&str; 11] = [
    "sh", "sleep", "ps", "nc", "cat", "hostname", "ls", "readlink", "grep", "id", "kill",
];

/// The label every container started here carries: this worktree and test crate, so
/// that a later run removes what an interrupted one left behind, and nothing else.
fn label() -> String {
    format!(
        "nsexporter-test={}:{}",
        env!("CARGO_MANIFEST_DIR"),
        env!("CARGO_CRATE_NAME")
    )
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `docker args...`; panics with its stderr unless it succeeds; trimmed stdout.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run docker: {e}; {SETUP} installs it"));
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout).trim().to_string()
}

/// Builds [`BUSYBOX_IMAGE`] once per test process, after checking that a Docker engine
/// answers, and removes containers an interrupted earlier run of this crate left.
pub fn busybox_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        require_dockerd();
        let stale = docker(&["ps", "-aq", "--filter", &format!("label={}", label())]);
        for id in stale.split_whitespace() {
            docker(&["rm", "-f", "-v", id]);
        }
        let busybox = Path::new("/bin/busybox");
        let file = Command::new(require_tool("file"))
            .arg("-L")
            .arg(busybox)
            .output()
            .expect("run file");
        assert!(
            text(&file.stdout).contains("statically linked"),
            "/bin/busybox is not a static busybox ({}); {SETUP} installs Debian's busybox-static",
            text(&file.stdout).trim()
        );
        let ctx = tempfile::tempdir().expect("tempdir");
        let bin = ctx.path().join("bin");
        std::fs::create_dir(&bin).expect("mkdir bin");
        std::fs::copy(busybox, bin.join("busybox")).expect("copy busybox");
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("symlink");
        }
        std::fs::write(
            ctx.path().join("Dockerfile"),
            "FROM scratch\nCOPY bin/ /bin/\nENTRYPOINT [\"/bin/sleep\"]\nCMD [\"3600\"]\n",
        )
        .expect("write Dockerfile");
        // The legacy builder: all that Debian's docker.io offers without buildx.
        let out = Command::new("docker")
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "-q", "-t", BUSYBOX_IMAGE])
            .arg(ctx.path())
            .output()
            .expect("run docker build");
        assert!(
            out.status.success(),
            "building {BUSYBOX_IMAGE} failed: {}",
            text(&out.stderr)
        );
    });
    BUSYBOX_IMAGE
}

/// A container this test started; `docker rm -f` when dropped, pass or fail.
pub struct Container {
    pub id: String,
}

impl Container {
    /// `docker run -d <args>` (image and command included in `args`).
    pub fn run(args: &[&str]) -> Container {
        let label = label();
        let mut full = vec!["run", "-d", "--label", &label];
        full.extend_from_slice(args);
        let id = docker(&full);
        assert_eq!(
            id.len(),
            64,
            "docker run printed {id:?}, not a container id"
        );
        Container { id }
    }

    /// A busybox container running `sleep 3600`, with `docker run` options `opts`.
    pub fn busybox(opts: &[&str]) -> Container {
        let image = busybox_image();
        let mut args = opts.to_vec();
        args.push(image);
        Container::run(&args)
    }

    /// Host PID of the container's first process.
    pub fn pid(&self) -> u32 {
        docker(&["inspect", "--format", "{{.State.Pid}}", &self.id])
            .parse()
            .expect("State.Pid is a number")
    }

    /// The `container_id` label value: `docker://<id>`.
    pub fn label(&self) -> String {
        format!("docker://{}", self.id)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &self.id])
            .output();
    }
}
