//! `--web.listen-address :port` is every interface, IPv6 and IPv4: one dual-stack
//! socket. (Where the kernel has no IPv6, IPv4 alone: tests/docker_runtime.rs runs the
//! image in a sandbox that refuses IPv6 sockets.)

mod common;

use std::net::SocketAddr;

use common::*;

#[test]
fn port_alone_answers_over_ipv6_and_ipv4() {
    let fixture = fixture_proc().display().to_string();
    let e = Exporter::start_on(":0", &["--path.procfs", &fixture]);
    assert!(
        e.addr.is_ipv6() && e.addr.ip().is_unspecified(),
        "`:0` should listen on [::], not {}",
        e.addr
    );
    e.wait_ready();
    let port = e.addr.port();
    for addr in [
        SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], port)),
        SocketAddr::from(([127, 0, 0, 1], port)),
    ] {
        let r = http_get(addr, "/metrics", &[]);
        assert_eq!(r.status, 200, "GET /metrics over {addr}");
        assert!(r.body.contains("nsexporter_processes"), "over {addr}");
    }
}

#[test]
fn an_ipv4_address_listens_on_ipv4_only() {
    let fixture = fixture_proc().display().to_string();
    let e = Exporter::start_on("127.0.0.1:0", &["--path.procfs", &fixture]);
    let v6 = SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], e.addr.port()));
    assert!(
        std::net::TcpStream::connect(v6).is_err(),
        "127.0.0.1 should not answer on [::1]"
    );
}

#[test]
fn port_alone_is_dual_stack_even_where_bindv6only_is_set() {
    // A network namespace of its own, where net.ipv6.bindv6only=1 would make a plain
    // [::] socket IPv6-only; the exporter sets IPV6_V6ONLY off itself.
    for tool in ["unshare", "ip", "sysctl", "nsenter", "curl"] {
        require_tool(tool);
    }
    let fixture = fixture_proc().display().to_string();
    let e = Exporter::start_wrapped_on(
        &[
            "unshare",
            "--net",
            "sh",
            "-c",
            "ip link set lo up && sysctl -qw net.ipv6.bindv6only=1 && exec \"$0\" \"$@\"",
        ],
        ":0",
        &["--path.procfs", &fixture],
    );
    let netns = format!("--net=/proc/{}/ns/net", e.child.id());
    let sysctl = std::process::Command::new("nsenter")
        .args([&netns, "cat", "/proc/sys/net/ipv6/bindv6only"])
        .output()
        .expect("run nsenter");
    assert_eq!(String::from_utf8_lossy(&sysctl.stdout).trim(), "1");
    for host in ["[::1]", "127.0.0.1"] {
        let url = format!("http://{host}:{}/healthz", e.addr.port());
        let out = std::process::Command::new("nsenter")
            .args([
                &netns,
                "curl",
                "--silent",
                "--show-error",
                "--globoff",
                &url,
            ])
            .output()
            .expect("run nsenter curl");
        assert!(
            out.status.success(),
            "{url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n", "{url}");
    }
}
