//! The endpoint against the real binary on loopback: TLS, mTLS, TLS versions, basic
//! auth, certificate rotation without a restart, a broken reload, startup validation,
//! slowloris clients, gzip, and strict HTTP (404, 405, 431). Certificates are made at
//! test time with rcgen; the client is the tests' one (ureq on rustls, `common`).
//!
//! Why one file of about 800 lines: every case drives the same binary's endpoint with
//! the same certificates made at test time and the same raw and TLS clients.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Replace a file in one step, as a certificate manager does.
/// The web config of a TLS server whose certificate `ca` signed: writes `cert.pem`,
/// `key.pem` and `web.yml` (with `extra` lines under `tls_server_config`) into `dir`.
fn tls_web_config(dir: &Path, ca: &TestCa, extra: &str) -> PathBuf {
    let (cert, key) = ca.leaf(&["localhost"], false);
    write(dir, "cert.pem", &cert);
    write(dir, "key.pem", &key);
    write(dir, "web.yml", &format!("{TLS_WEB}{extra}"))
}

const TLS_WEB: &str = "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n";

fn replace(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

// ---------------------------------------------------------------------------------
// Clients: the tests' one HTTP client (ureq, in common), and raw bytes over TCP where
// the bytes on the wire are the point (oversized headers, garbage).

/// Send raw bytes over plain TCP and read until the server closes; the status.
fn raw_status(addr: SocketAddr, bytes: &[u8]) -> Result<u16, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(bytes).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    let res = s.read_to_end(&mut raw);
    let head = String::from_utf8_lossy(&raw);
    head.strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no HTTP response: {head:?} (read: {res:?})"))
}

/// A raw request with `headers`, as bytes.
fn raw_request(path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.into_bytes()
}

fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response, String> {
    HttpClient::plain(addr).request(method, path, headers)
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

/// A TLS client trusting `ca_pem`, offering `versions` (empty: both), with an optional
/// client certificate.
fn client_config(
    ca_pem: &str,
    client_cert: Option<&(String, String)>,
    versions: &[TlsVersion],
) -> TlsClient {
    TlsClient {
        ca_pem: ca_pem.to_string(),
        client_cert: client_cert.cloned(),
        versions: versions.to_vec(),
    }
}

const ALL_VERSIONS: &[TlsVersion] = &[];

/// One HTTPS request on a new connection. Err: the handshake or the exchange failed.
fn https(
    addr: SocketAddr,
    cfg: &TlsClient,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response, String> {
    HttpClient::tls(addr, cfg).request("GET", path, headers)
}

fn start_with(web_config: &Path, extra: &[&str]) -> Exporter {
    let mut args = fixture_args();
    args.push("--web.config.file".into());
    args.push(web_config.display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Exporter::start(&refs)
}

/// Wait for a stderr line containing all of `words`.
fn wait_log(e: &Exporter, words: &[&str], timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match e.stderr.recv_timeout(left) {
            Ok(line) => {
                if words.iter().all(|w| line.contains(w)) {
                    return line;
                }
                seen.push(line);
            }
            Err(_) => panic!("no log line with {words:?}; saw {seen:#?}"),
        }
    }
}

// ---------------------------------------------------------------------------------
// Tests

#[test]
fn basic_auth_wrong_or_missing_password_gets_401_right_one_200() {
    let d = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let cfg = write(
        d.path(),
        "web.yml",
        &format!(
            "basic_auth_users:\n  alice: '{hash}'\nhttp_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"
        ),
    );
    let e = start_with(&cfg, &[]);
    for (what, auth) in [
        ("no credentials", None),
        ("wrong password", Some(basic("alice", "nope"))),
        ("unknown user", Some(basic("mallory", "s3cret"))),
        ("empty password", Some(basic("alice", ""))),
        ("garbage", Some("Basic %%%".to_string())),
    ] {
        let h: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        for path in ["/metrics", "/", "/healthz", "/nope"] {
            let r = http(e.addr, "GET", path, &h).unwrap();
            assert_eq!(r.status, 401, "{what} on {path}");
            assert_eq!(r.header("WWW-Authenticate"), Some("Basic"), "{what}");
            assert!(!r.body.contains("nsexporter_"), "no metrics leak");
        }
    }
    let good = basic("alice", "s3cret");
    let h = [("Authorization", good.as_str())];
    let r = http(e.addr, "GET", "/metrics", &h).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.contains("nsexporter_"), "{}", r.body);
    assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"));
    // The second time comes from the credential cache; same answer.
    assert_eq!(http(e.addr, "GET", "/metrics", &h).unwrap().status, 200);
    assert_eq!(http(e.addr, "GET", "/nope", &h).unwrap().status, 404);
    assert_eq!(http(e.addr, "POST", "/metrics", &h).unwrap().status, 405);
}

#[test]
fn tls_serves_https_and_plain_http_to_the_tls_port_fails() {
    let d = tempfile::tempdir().unwrap();
    let ca = TestCa::new("server");
    let web = tls_web_config(d.path(), &ca, "");
    // Through the settings file's `web.config-file` key, and web.max-requests 0 (no limit).
    let settings = write(
        d.path(),
        "nsexporter.yml",
        &format!(
            "web:\n  config-file: {}\n  max-requests: 0\n",
            web.display()
        ),
    );
    let mut args = fixture_args();
    args.push("--config.file".into());
    args.push(settings.display().to_string());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = Exporter::start(&refs);
    let cfg = client_config(&ca.pem, None, ALL_VERSIONS);
    let r = https(e.addr, &cfg, "/metrics", &[]).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.contains("nsexporter_"));
    for _ in 0..3 {
        assert_eq!(https(e.addr, &cfg, "/healthz", &[]).unwrap().status, 200);
    }
    // Plain HTTP to the TLS port: no HTTP answer.
    let plain = http(e.addr, "GET", "/metrics", &[]);
    assert!(plain.is_err(), "plain HTTP got an answer: {plain:?}");
    // A client that does not trust the server's CA refuses it.
    let other = TestCa::new("other");
    assert!(https(
        e.addr,
        &client_config(&other.pem, None, ALL_VERSIONS),
        "/",
        &[]
    )
    .is_err());
    // The server still serves after all that.
    assert_eq!(https(e.addr, &cfg, "/metrics", &[]).unwrap().status, 200);
}

#[test]
fn mtls_refuses_clients_without_a_certificate_signed_by_the_client_ca() {
    let d = tempfile::tempdir().unwrap();
    let server_ca = TestCa::new("server");
    let client_ca = TestCa::new("clients");
    let stranger_ca = TestCa::new("stranger");
    write(d.path(), "clients.pem", &client_ca.pem);
    let web = tls_web_config(
        d.path(),
        &server_ca,
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: clients.pem\n",
    );
    let e = start_with(&web, &[]);
    for versions in [&[TlsVersion::Tls13][..], &[TlsVersion::Tls12][..]] {
        let none = https(
            e.addr,
            &client_config(&server_ca.pem, None, versions),
            "/metrics",
            &[],
        );
        assert!(none.is_err(), "no client cert was served: {none:?}");
        let stranger = stranger_ca.leaf(&["localhost"], true);
        let bad = https(
            e.addr,
            &client_config(&server_ca.pem, Some(&stranger), versions),
            "/metrics",
            &[],
        );
        assert!(bad.is_err(), "a cert from another CA was served: {bad:?}");
        let good = client_ca.leaf(&["localhost"], true);
        let r = https(
            e.addr,
            &client_config(&server_ca.pem, Some(&good), versions),
            "/metrics",
            &[],
        )
        .unwrap();
        assert_eq!(r.status, 200);
        assert!(r.body.contains("nsexporter_"));
    }
}

#[test]
fn min_version_tls13_refuses_a_tls12_only_client() {
    let d = tempfile::tempdir().unwrap();
    let ca = TestCa::new("server");
    let web = tls_web_config(d.path(), &ca, "  min_version: TLS13\n");
    let e = start_with(&web, &[]);
    let old = https(
        e.addr,
        &client_config(&ca.pem, None, &[TlsVersion::Tls12]),
        "/metrics",
        &[],
    );
    assert!(old.is_err(), "TLS 1.2 client was served: {old:?}");
    let new = https(
        e.addr,
        &client_config(&ca.pem, None, &[TlsVersion::Tls13]),
        "/metrics",
        &[],
    )
    .unwrap();
    assert_eq!(new.status, 200);
}

#[test]
fn certificates_rotate_without_restart_and_a_broken_reload_keeps_the_last_good_config() {
    let d = tempfile::tempdir().unwrap();
    let ca1 = TestCa::new("first");
    let ca2 = TestCa::new("second");
    let web = tls_web_config(d.path(), &ca1, "");
    let e = start_with(&web, &[]);
    let pid = e.child.id();
    let trust1 = client_config(&ca1.pem, None, ALL_VERSIONS);
    let trust2 = client_config(&ca2.pem, None, ALL_VERSIONS);
    assert_eq!(https(e.addr, &trust1, "/metrics", &[]).unwrap().status, 200);
    assert!(https(e.addr, &trust2, "/metrics", &[]).is_err());

    // Rotate: a new key and certificate from another CA.
    let (c2, k2) = ca2.leaf(&["localhost"], false);
    replace(d.path(), "key.pem", &k2);
    replace(d.path(), "cert.pem", &c2);
    assert_eq!(
        https(e.addr, &trust2, "/metrics", &[]).unwrap().status,
        200,
        "the next connection sees the new certificate"
    );
    assert!(https(e.addr, &trust1, "/metrics", &[]).is_err());
    wait_log(&e, &["web config reloaded"], Duration::from_secs(5));

    // A broken config file: logged, and the last good config stays.
    replace(d.path(), "web.yml", "tls_server_config: [\n");
    assert_eq!(https(e.addr, &trust2, "/metrics", &[]).unwrap().status, 200);
    wait_log(
        &e,
        &["cannot reload the web config"],
        Duration::from_secs(5),
    );
    // A half-done rotation (a key that does not match the certificate) likewise.
    replace(d.path(), "web.yml", TLS_WEB);
    let (_, k3) = ca1.leaf(&["localhost"], false);
    replace(d.path(), "key.pem", &k3);
    assert_eq!(https(e.addr, &trust2, "/metrics", &[]).unwrap().status, 200);
    wait_log(
        &e,
        &["cannot reload the web config", "do not work together"],
        Duration::from_secs(5),
    );
    // A deleted certificate too.
    std::fs::remove_file(d.path().join("cert.pem")).unwrap();
    assert_eq!(https(e.addr, &trust2, "/metrics", &[]).unwrap().status, 200);
    // Fixed again: served with the newest pair.
    let (c4, k4) = ca1.leaf(&["localhost"], false);
    replace(d.path(), "key.pem", &k4);
    replace(d.path(), "cert.pem", &c4);
    assert_eq!(https(e.addr, &trust1, "/metrics", &[]).unwrap().status, 200);
    assert_eq!(e.child.id(), pid);
    let mut e = e;
    assert!(e.child.try_wait().unwrap().is_none(), "still running");
}

#[test]
fn a_bad_web_config_or_max_requests_exits_2_naming_the_setting() {
    let d = tempfile::tempdir().unwrap();
    let ca = TestCa::new("server");
    let (cert, key) = ca.leaf(&["localhost"], false);
    let (_, other_key) = ca.leaf(&["localhost"], false);
    write(d.path(), "cert.pem", &cert);
    write(d.path(), "key.pem", &key);
    write(d.path(), "other-key.pem", &other_key);
    let tls = "tls_server_config:\n  cert_file: cert.pem\n";
    let good = bcrypt::hash("pw", 4).unwrap();
    let cases = [
        ("missing.yml", None, "missing.yml"),
        (
            "yaml.yml",
            Some("basic_auth_users: [\n".to_string()),
            "YAML",
        ),
        (
            "unknown.yml",
            Some("tls_config: {}\n".to_string()),
            "tls_config",
        ),
        ("nokey.yml", Some(tls.to_string()), "key_file"),
        (
            "version.yml",
            Some(format!("{tls}  key_file: key.pem\n  min_version: TLS11\n")),
            "min_version",
        ),
        (
            "auth.yml",
            Some(format!(
                "{tls}  key_file: key.pem\n  client_auth_type: Maybe\n"
            )),
            "client_auth_type",
        ),
        (
            "mismatch.yml",
            Some(format!("{tls}  key_file: other-key.pem\n")),
            "do not work together",
        ),
        (
            "hash.yml",
            Some("basic_auth_users:\n  alice: hunter2\n".to_string()),
            "basic_auth_users.alice",
        ),
        // A cost the bcrypt library refuses: every login would fail, silently.
        (
            "cost99.yml",
            Some(format!(
                "basic_auth_users:\n  ok: '{good}'\n  alice: '{}'\n",
                with_cost(&good, "99")
            )),
            "basic_auth_users.alice: bcrypt cost 99 is outside 4 to 31",
        ),
        // A cost no login could wait for: days per check.
        (
            "cost31.yml",
            Some(format!(
                "basic_auth_users:\n  ok: '{good}'\n  alice: '{}'\n",
                with_cost(&good, "31")
            )),
            "basic_auth_users.alice: bcrypt cost 31 takes about",
        ),
    ];
    for (name, text, want) in cases {
        if let Some(t) = &text {
            write(d.path(), name, t);
        }
        let out = Command::new(BIN)
            .args(["--once", "--path.procfs"])
            .arg(fixture_proc())
            .arg("--web.config.file")
            .arg(d.path().join(name))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(
            err.starts_with("nsexporter: invalid --web.config.file: "),
            "{name}: {err}"
        );
        assert_eq!(err.matches(name).count(), 1, "{name} once: {err}");
        assert!(err.contains(want), "{name}: {err} should mention {want}");
    }
    for bad in ["-1", "lots", "1e3", "100001"] {
        let out = Command::new(BIN)
            .args(["--once", "--path.procfs"])
            .arg(fixture_proc())
            .env("NSEXPORTER_WEB_MAX_REQUESTS", bad)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(
            err.starts_with("nsexporter: invalid NSEXPORTER_WEB_MAX_REQUESTS: "),
            "{bad}: {err}"
        );
    }
}

/// `hash` with its two cost digits replaced.
fn with_cost(hash: &str, cost: &str) -> String {
    format!("{}{cost}{}", &hash[..4], &hash[6..])
}

/// Run `nsexporter --once` with `args` under a 256 MiB address-space limit; kill it and
/// fail if it has not exited after 20 s. Returns (exit code, stderr).
fn once_bounded(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 262144 && exec \"$0\" \"$@\"")
        .arg(BIN)
        .arg("--once")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("nsexporter {args:?} still running after 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code(), err)
}

#[test]
fn web_config_files_that_are_endless_huge_or_fifos_are_refused_at_once_in_bounded_memory() {
    let d = tempfile::tempdir().unwrap();
    let ca = TestCa::new("server");
    let (cert, key) = ca.leaf(&["localhost"], false);
    write(d.path(), "cert.pem", &cert);
    write(d.path(), "key.pem", &key);
    let big = std::fs::File::create(d.path().join("big.pem")).unwrap();
    big.set_len(8 << 30).unwrap();
    let fifo = d.path().join("fifo.pem");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let proc_arg = fixture_proc().display().to_string();
    for (file, want) in [
        ("/dev/zero", "not a regular file"),
        ("/dev/urandom", "not a regular file"),
        ("fifo.pem", "not a regular file"),
        ("big.pem", "larger than 1024 KiB"),
    ] {
        for field in ["cert_file", "key_file"] {
            let text = TLS_WEB.replace(
                &format!(
                    "{field}: {}",
                    if field == "cert_file" {
                        "cert.pem"
                    } else {
                        "key.pem"
                    }
                ),
                &format!("{field}: {file}"),
            );
            let web = write(d.path(), "web.yml", &text);
            let web_arg = web.display().to_string();
            let (code, err) =
                once_bounded(&["--path.procfs", &proc_arg, "--web.config.file", &web_arg]);
            assert_eq!(code, Some(2), "{field}: {file}: {err}");
            assert!(
                err.contains(&format!("tls_server_config.{field}: ")) && err.contains(want),
                "{field}: {file}: {err}"
            );
        }
    }
    // The web config file itself.
    let (code, err) = once_bounded(&["--path.procfs", &proc_arg, "--web.config.file", "/dev/zero"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not a regular file"), "{err}");
}

#[test]
fn a_costly_bcrypt_hash_is_served_with_a_warning_naming_the_user() {
    let d = tempfile::tempdir().unwrap();
    // Cost 13 is accepted with a warning (the hash is only checked, never verified here).
    let h = with_cost(&bcrypt::hash("pw", 4).unwrap(), "13");
    let cfg = write(
        d.path(),
        "web.yml",
        &format!("basic_auth_users:\n  alice: '{h}'\n"),
    );
    let e = start_with(&cfg, &[]);
    let line = wait_log(
        &e,
        &["level=warn", "basic_auth_users.alice: bcrypt cost 13"],
        Duration::from_secs(10),
    );
    assert!(line.contains("per new login"), "{line}");
    assert_eq!(http(e.addr, "GET", "/healthz", &[]).unwrap().status, 401);
}

#[test]
fn truncating_emptying_or_stripping_the_web_config_while_serving_keeps_tls_and_auth() {
    let d = tempfile::tempdir().unwrap();
    let ca = TestCa::new("server");
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let users = format!("basic_auth_users:\n  alice: '{hash}'\n");
    let web = tls_web_config(d.path(), &ca, &users);
    let full = std::fs::read_to_string(&web).unwrap();
    let e = start_with(&web, &[]);
    let pid = e.child.id();
    let trust = client_config(&ca.pem, None, ALL_VERSIONS);
    let good = basic("alice", "s3cret");
    let auth = [("Authorization", good.as_str())];
    let protected = |when: &str| {
        let plain = http(e.addr, "GET", "/metrics", &auth);
        assert!(plain.is_err(), "{when}: plain HTTP was answered: {plain:?}");
        let anon = https(e.addr, &trust, "/metrics", &[]).unwrap();
        assert_eq!(anon.status, 401, "{when}: no credentials");
        let ok = https(e.addr, &trust, "/metrics", &auth).unwrap();
        assert_eq!(ok.status, 200, "{when}: the right password");
        assert!(ok.body.contains("nsexporter_"), "{when}");
    };
    protected("at start");
    // Edited in place, as an editor or `>` does: truncated to nothing, then half
    // written, then cut right before the users, then stripped of TLS: each is refused
    // at error level and the last good config stays.
    let steps: [(&str, String, &[&str]); 5] = [
        (
            "truncated to 0 bytes",
            String::new(),
            &["the file is empty"],
        ),
        (
            "only a comment",
            "# rewritten by hand\n".into(),
            &["the file is empty"],
        ),
        (
            "cut inside the hash",
            full[..full.len() - 20].to_string(),
            &["not valid YAML"],
        ),
        (
            "cut before the users",
            full[..full.find("basic_auth_users").unwrap()].to_string(),
            &["turns off basic auth", "restart"],
        ),
        ("TLS removed", users.clone(), &["turns off TLS", "restart"]),
    ];
    for (what, text, words) in steps {
        std::fs::write(&web, &text).unwrap();
        protected(what);
        let mut want = vec!["level=error", "cannot reload the web config"];
        want.extend_from_slice(words);
        wait_log(&e, &want, Duration::from_secs(10));
    }
    // Written back whole: served as before, no restart.
    std::fs::write(&web, &full).unwrap();
    protected("restored");
    let mut e = e;
    assert_eq!(e.child.id(), pid);
    assert!(e.child.try_wait().unwrap().is_none(), "still running");
    drop(e);
    // Turning auth off does take effect after a restart.
    std::fs::write(&web, &full[..full.find("basic_auth_users").unwrap()]).unwrap();
    let e = start_with(&web, &[]);
    let anon = https(e.addr, &trust, "/metrics", &[]).unwrap();
    assert_eq!(
        anon.status, 200,
        "after a restart the file's config applies"
    );
}

#[test]
fn slowloris_clients_are_cut_off_and_scrapes_go_on_meanwhile() {
    let e = Exporter::start(
        &fixture_args()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    e.wait_ready();
    const SLOW: usize = 40;
    let t0 = Instant::now();
    let handles: Vec<_> = (0..SLOW)
        .map(|i| {
            let addr = e.addr;
            std::thread::spawn(move || -> Duration {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
                s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                // Every fifth client sends nothing at all (an idle connection).
                let msg: Vec<u8> = if i % 5 == 0 {
                    Vec::new()
                } else {
                    b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                        .to_vec()
                };
                let mut k = 0;
                loop {
                    if t0.elapsed() > Duration::from_secs(25) {
                        return t0.elapsed();
                    }
                    let byte = msg.get(k % msg.len().max(1)).copied();
                    if let Some(b) = byte {
                        if s.write_all(&[b]).is_err() {
                            return t0.elapsed();
                        }
                        k += 1;
                    }
                    let mut buf = [0u8; 256];
                    match s.read(&mut buf) {
                        Ok(_) => return t0.elapsed(), // EOF or a 408: closed
                        Err(e)
                            if e.kind() == std::io::ErrorKind::WouldBlock
                                || e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => return t0.elapsed(),
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
            })
        })
        .collect();
    // Meanwhile, normal scrapes are answered at once.
    let mut scrapes = 0;
    while t0.elapsed() < Duration::from_secs(9) {
        let start = Instant::now();
        let r = e.get("/metrics");
        assert_eq!(r.status, 200);
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "scrape took {:?}",
            start.elapsed()
        );
        scrapes += 1;
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(scrapes > 10);
    for h in handles {
        let closed_after = h.join().unwrap();
        assert!(
            closed_after >= Duration::from_secs(4) && closed_after < Duration::from_secs(9),
            "a slow client was closed after {closed_after:?}, want about the 5 s header timeout"
        );
    }
    assert_eq!(e.get("/healthz").status, 200);
}

#[test]
fn gzip_when_the_client_asks_for_it() {
    let e = Exporter::start(
        &fixture_args()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    e.wait_ready();
    for accept in [None, Some("application/openmetrics-text; version=1.0.0")] {
        let mut h: Vec<(&str, &str)> = accept.iter().map(|a| ("Accept", *a)).collect();
        let plain = http(e.addr, "GET", "/metrics", &h).unwrap();
        assert_eq!(plain.status, 200);
        assert_eq!(plain.header("Content-Encoding"), None);
        h.push(("Accept-Encoding", "deflate, gzip"));
        for _ in 0..2 {
            let z = http(e.addr, "GET", "/metrics", &h).unwrap();
            assert_eq!(z.status, 200);
            assert_eq!(z.header("Content-Encoding"), Some("gzip"));
            assert_eq!(z.header("Vary"), Some("Accept-Encoding"));
            assert_eq!(z.header("Content-Type"), plain.header("Content-Type"));
            assert_eq!(
                z.header("Content-Length").and_then(|l| l.parse().ok()),
                Some(z.bytes.len())
            );
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&z.bytes[..])
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, plain.bytes, "gzip decodes to the plain body");
            assert!(z.bytes.len() < plain.bytes.len());
        }
    }
    let no = http(
        e.addr,
        "GET",
        "/metrics",
        &[("Accept-Encoding", "gzip;q=0")],
    )
    .unwrap();
    assert_eq!(no.header("Content-Encoding"), None);
}

#[test]
fn strict_http_404_405_and_431_for_oversized_headers() {
    let e = Exporter::start(
        &[
            fixture_args(),
            vec!["--web.max-requests".into(), "1".into()],
        ]
        .concat()
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
    );
    assert_eq!(http(e.addr, "GET", "/nope", &[]).unwrap().status, 404);
    assert_eq!(http(e.addr, "GET", "/metricsx", &[]).unwrap().status, 404);
    for m in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let r = http(e.addr, m, "/metrics", &[]).unwrap();
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(r.header("Allow"), Some("GET, HEAD"));
    }
    let head = http(e.addr, "HEAD", "/metrics", &[]).unwrap();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    // One huge header, and too many small ones: raw bytes, the head is the point.
    let big = "a".repeat(64 * 1024);
    assert_eq!(
        raw_status(e.addr, &raw_request("/metrics", &[("X-Big", &big)])),
        Ok(431)
    );
    let names: Vec<String> = (0..200).map(|i| format!("X-H{i}")).collect();
    let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    assert_eq!(raw_status(e.addr, &raw_request("/metrics", &many)), Ok(431));
    // Garbage is a 400, not a crash.
    let r = raw_status(e.addr, b"\x00\x01\x02 nonsense\r\n\r\n").unwrap();
    assert_eq!(r, 400);
    // With --web.max-requests 1, scrapes one after another all pass: the slot is returned.
    for _ in 0..20 {
        assert_eq!(http(e.addr, "GET", "/metrics", &[]).unwrap().status, 200);
    }
    assert_eq!(e.get("/healthz").status, 200);
}
