//! The sidecar's Alertmanager client against real Alertmanagers on loopback, driven
//! in-process with snapshots the test writes: both members of an HA pair get every
//! alert; an Alertmanager stopped for 30 s and restarted with its storage wiped gets
//! every still-active alert back within one resend interval, and what changed while it
//! was down; 500 and 400 answers are counted and retried, and so is an Alertmanager
//! that never answers; TLS with a client certificate and basic auth against
//! Alertmanager's own `--web.config.file`; a bearer token, and nothing sent while its
//! file is missing.
//!
//! Needs `prometheus-alertmanager` and `curl`.
//!
//! Why one file of about 750 lines: every case drives the same client against the same
//! real Alertmanager harness and snapshot builders.

mod am;
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use am::*;
use nsexporter::alerting::allow::{AllowConfig, AllowList};
use nsexporter::alerting::client::AlertmanagerUrl;
use nsexporter::alerting::httpconfig::HttpConfig;
use nsexporter::alerting::{AlertingSettings, Sidecar, Tasks};
use nsexporter::model::*;

fn container(id: &str, host: &[NsType]) -> ContainerSummary {
    let mut host_ns_processes = [0; 8];
    for t in host {
        host_ns_processes[t.index()] = 1;
    }
    ContainerSummary {
        container: ContainerRef {
            runtime: Runtime::Containerd,
            id: id.into(),
            pod_uid: String::new(),
            owner_uid: None,
        },
        processes: 1,
        main_pid: 1000,
        main_start_time: 1,
        comm: "sleep".into(),
        main_ns: NsSet::default(),
        host_ns_processes,
        host_root_processes: 0,
        root: RootMapping::NonRoot,
        uid_map: None,
        runtime_info: Default::default(),
        escaped_processes: [0; 8],
        escapes: Vec::new(),
    }
}

/// A snapshot in which the containers `ids` share the host network namespace.
fn hostnet(ids: &[&str]) -> Arc<Snapshot> {
    Arc::new(Snapshot {
        taken_at: SystemTime::now(),
        duration: Duration::ZERO,
        host: HostRef {
            source: HostSource::Kthread,
            ns: NsSet::default(),
        },
        supported: NsType::ALL.to_vec(),
        processes: 10,
        counts: [NsCount::default(); 8],
        limits: [None; 8],
        host_ns_processes: [0; 8],
        containers: ids
            .iter()
            .map(|id| {
                let c = container(id, &[NsType::Net]);
                (c.container.clone(), c)
            })
            .collect::<BTreeMap<_, _>>(),
        pinned: Vec::new(),
        errors: ScanErrors::default(),
        reader_in_child_userns: false,
        runtime_read_errors: Vec::new(),
        visibility: Default::default(),
    })
}

fn keys(ids: &[&str]) -> Vec<String> {
    let mut k: Vec<String> = ids
        .iter()
        .map(|id| format!("NsexporterHostNetworkContainer/containerd://{id}"))
        .collect();
    k.sort();
    k
}

/// The sidecar on its own runtime; the test plays the sampler and calls `observe`.
struct Running {
    _rt: tokio::runtime::Runtime,
    _tasks: Tasks,
    sidecar: Sidecar,
}

fn start(urls: &[String], http: HttpConfig, resend: Duration) -> Running {
    start_timeout(urls, http, resend, Duration::from_secs(5))
}

fn start_timeout(
    urls: &[String],
    http: HttpConfig,
    resend: Duration,
    timeout: Duration,
) -> Running {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let settings = AlertingSettings {
        urls: urls
            .iter()
            .map(|u| AlertmanagerUrl::parse(u).unwrap())
            .collect(),
        http: Arc::new(http),
        resend_interval: resend,
        queue_capacity: 1000,
        batch_max: 64,
        timeout,
        node: "test-node".into(),
        allow: AllowList::new(&AllowConfig::default(), None).unwrap(),
    };
    let (sidecar, tasks) = {
        let _g = rt.enter();
        Sidecar::start(settings)
    };
    Running {
        _rt: rt,
        _tasks: tasks,
        sidecar,
    }
}

fn result_count(r: &Running, url: &str, result: &str) -> u64 {
    let s = r.sidecar.stats();
    let t = s.targets.iter().find(|t| t.url == url).expect("target");
    t.notifications
        .iter()
        .find(|(k, _)| *k == result)
        .map(|(_, n)| *n)
        .unwrap_or(0)
}

#[test]
fn both_alertmanagers_of_a_pair_receive_every_alert_and_every_resolve() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Alertmanager::start(tmp.path(), "am-a");
    let b = Alertmanager::start(tmp.path(), "am-b");
    let r = start(
        &[a.url(), b.url()],
        HttpConfig::none().unwrap(),
        Duration::from_secs(60),
    );
    let ids = ["c1", "c2", "c3"];
    r.sidecar.observe(&hostnet(&ids));
    for am in [&a, &b] {
        wait_for("all three alerts", Duration::from_secs(10), || {
            let k = am.sidecar_keys()?;
            if k == keys(&ids) {
                Ok(())
            } else {
                Err(format!("{k:?}"))
            }
        });
    }
    // Labels as the rules name them, plus node and source.
    let alerts = a.alerts().unwrap();
    let l = &alerts[0]["labels"];
    assert_eq!(l["node"], "test-node");
    assert_eq!(l["severity"], "warning");
    assert_eq!(l["type"], "net");
    // c2 stops sharing: resolved in both.
    r.sidecar.observe(&hostnet(&["c1", "c3"]));
    for am in [&a, &b] {
        wait_for("c2 resolved", Duration::from_secs(10), || {
            let k = am.sidecar_keys()?;
            if k == keys(&["c1", "c3"]) {
                Ok(())
            } else {
                Err(format!("{k:?}"))
            }
        });
    }
    for am in [&a, &b] {
        assert_eq!(
            result_count(&r, &am.url(), "success"),
            4,
            "3 firing + 1 resolve"
        );
    }
}

#[test]
fn alertmanager_restarted_with_wiped_storage_gets_every_active_alert_back() {
    let tmp = tempfile::tempdir().unwrap();
    let mut am = Alertmanager::start(tmp.path(), "am");
    let other = Alertmanager::start(tmp.path(), "am-other");
    let resend = Duration::from_secs(5);
    let r = start(
        &[am.url(), other.url()],
        HttpConfig::none().unwrap(),
        resend,
    );
    r.sidecar.observe(&hostnet(&["a", "b"]));
    wait_for("a and b", Duration::from_secs(10), || {
        let k = am.sidecar_keys()?;
        (k == keys(&["a", "b"]))
            .then_some(())
            .ok_or(format!("{k:?}"))
    });

    am.stop();
    // While it is down: b clears, c appears, and resends pile up for 30 s.
    r.sidecar.observe(&hostnet(&["a", "c"]));
    wait_for(
        "the other Alertmanager is not held back",
        Duration::from_secs(10),
        || {
            let k = other.sidecar_keys()?;
            (k == keys(&["a", "c"]))
                .then_some(())
                .ok_or(format!("{k:?}"))
        },
    );
    std::thread::sleep(Duration::from_secs(30));
    let down = r.sidecar.stats();
    let t = down.targets.iter().find(|t| t.url == am.url()).unwrap();
    assert!(t.queue_length <= 3, "bounded while down: {t:?}");
    assert!(result_count(&r, &am.url(), "error") > 0, "failures counted");

    am.restart(true);
    assert!(am.sidecar_keys().unwrap().is_empty(), "storage was wiped");
    // Back within one resend interval (plus the backoff's jitter and a poll).
    let start = std::time::Instant::now();
    wait_for(
        "every active alert back",
        resend + Duration::from_secs(3),
        || {
            let k = am.sidecar_keys()?;
            (k == keys(&["a", "c"]))
                .then_some(())
                .ok_or(format!("{k:?}"))
        },
    );
    eprintln!("active alerts back {:?} after the restart", start.elapsed());
    let s = r.sidecar.stats();
    assert!(
        s.targets
            .iter()
            .all(|t| t.dropped_full == 0 && t.dropped_rejected == 0),
        "nothing dropped: {s:?}"
    );
}

#[test]
fn answers_500_are_counted_and_retried_with_backoff() {
    let fake = FakeAm::start(500);
    let r = start(
        &[fake.url()],
        HttpConfig::none().unwrap(),
        Duration::from_secs(60),
    );
    r.sidecar.observe(&hostnet(&["x"]));
    wait_for("three failed tries", Duration::from_secs(10), || {
        let n = fake.received().len();
        (n >= 3).then_some(()).ok_or(format!("{n} requests"))
    });
    assert!(result_count(&r, &fake.url(), "http_5xx") >= 3);
    // The same alert each time, at the v2 path.
    let got = fake.received();
    for req in &got {
        assert_eq!(req.path, "/api/v2/alerts");
        assert_eq!(req.header("content-type"), Some("application/json"));
        assert_eq!(
            req.body[0]["labels"]["container_id"], "containerd://x",
            "{:?}",
            req.body
        );
    }
    // Exponential backoff: the gaps grow (0.5 s, 1 s, 2 s, with ±20% jitter); no
    // request storm.
    let n = got.len();
    assert!(n <= 6, "{n} requests in a few seconds: no backoff?");
    fake.set_status(200);
    wait_for(
        "delivered once it recovers",
        Duration::from_secs(20),
        || {
            let ok = result_count(&r, &fake.url(), "success");
            (ok == 1).then_some(()).ok_or(format!("{ok} delivered"))
        },
    );
    let t = &r.sidecar.stats().targets[0];
    assert_eq!((t.queue_length, t.dropped_rejected), (0, 0));
}

/// An Alertmanager that takes the request and never answers: each try ends at the
/// timeout, counted as an error; the alert stays queued and goes once it answers.
#[test]
fn a_hung_alertmanager_times_out_is_counted_and_retried() {
    let fake = FakeAm::start(0);
    let r = start_timeout(
        &[fake.url()],
        HttpConfig::none().unwrap(),
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    r.sidecar.observe(&hostnet(&["x"]));
    // 1 s, 0.5 s of backoff, 1 s: well before the server's own 5 s read timeout would
    // end a try that the client did not time out.
    wait_for("two tries timed out", Duration::from_secs(6), || {
        let n = result_count(&r, &fake.url(), "error");
        (n >= 2).then_some(()).ok_or(format!("{n} errors"))
    });
    assert!(
        fake.received().len() >= 2,
        "the timed-out tries reached the server"
    );
    assert_eq!(r.sidecar.stats().targets[0].queue_length, 1, "alert kept");
    fake.set_status(200);
    wait_for("delivered once it answers", Duration::from_secs(20), || {
        let t = r.sidecar.stats().targets[0].clone();
        (result_count(&r, &fake.url(), "success") == 1 && t.queue_length == 0)
            .then_some(())
            .ok_or(format!("{t:?}"))
    });
}

/// A batch refused as invalid is dropped and counted, not retried in front of
/// everything else; the alert it held goes again at the next resend.
#[test]
fn answers_400_drop_the_batch_and_do_not_hold_back_the_next() {
    let fake = FakeAm::start(400);
    let resend = Duration::from_secs(3);
    let r = start(&[fake.url()], HttpConfig::none().unwrap(), resend);
    r.sidecar.observe(&hostnet(&["x"]));
    wait_for("the refused batch", Duration::from_secs(10), || {
        let t = r.sidecar.stats().targets[0].clone();
        (t.dropped_rejected == 1 && t.queue_length == 0)
            .then_some(())
            .ok_or(format!("{t:?}"))
    });
    assert_eq!(result_count(&r, &fake.url(), "http_4xx"), 1);
    // No retry of the refused batch: nothing more until something new or the resend.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(fake.received().len(), 1, "a refused batch was retried");
    // The Alertmanager takes alerts again: the next alert goes at once, and x comes
    // back with the resend.
    fake.set_status(200);
    r.sidecar.observe(&hostnet(&["x", "y"]));
    let sent = |fake: &FakeAm| -> Vec<String> {
        let mut ids: Vec<String> = fake
            .received()
            .iter()
            .filter(|q| q.status == 200)
            .flat_map(|q| q.body.as_array().cloned().unwrap_or_default())
            .filter_map(|a| a["labels"]["container_id"].as_str().map(String::from))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    };
    wait_for("y at once", Duration::from_secs(2), || {
        let ids = sent(&fake);
        ids.contains(&"containerd://y".to_string())
            .then_some(())
            .ok_or(format!("{ids:?}"))
    });
    wait_for(
        "x again at the resend",
        resend + Duration::from_secs(2),
        || {
            let ids = sent(&fake);
            (ids == ["containerd://x", "containerd://y"])
                .then_some(())
                .ok_or(format!("{ids:?}"))
        },
    );
    assert_eq!(r.sidecar.stats().targets[0].dropped_rejected, 1);
}

/// What the 400 decision rests on: Alertmanager answers 400 to a batch with an
/// invalid alert, and has stored the valid alerts of that batch all the same.
#[test]
fn alertmanager_keeps_the_valid_alerts_of_a_batch_it_answers_400() {
    let tmp = tempfile::tempdir().unwrap();
    let am = Alertmanager::start(tmp.path(), "am");
    let batch = serde_json::json!([
        {"labels": {"alertname": "Good", "source": "nsexporter-sidecar", "type": "net"}},
        {"labels": {"alertname": "Bad", "source": "nsexporter-sidecar", "type": "net"},
         "startsAt": "2030-01-01T00:00:10Z", "endsAt": "2030-01-01T00:00:00Z"}
    ]);
    let e = am.post(&batch).unwrap_err();
    assert!(e.contains("400"), "{e}");
    assert_eq!(am.sidecar_keys().unwrap(), ["Good/net"]);
}

#[test]
fn bearer_token_from_a_file_is_sent() {
    let fake = FakeAm::start(200);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "t0ken\n").unwrap();
    std::fs::write(
        dir.path().join("http.yml"),
        "authorization:\n  credentials_file: token\n",
    )
    .unwrap();
    let r = start(
        &[fake.url()],
        HttpConfig::load(&dir.path().join("http.yml")).unwrap(),
        Duration::from_secs(60),
    );
    r.sidecar.observe(&hostnet(&["x"]));
    let got = wait_for("a request", Duration::from_secs(10), || {
        fake.received().first().cloned().ok_or("none".into())
    });
    assert_eq!(got.header("authorization"), Some("Bearer t0ken"));

    // The token file goes away (a Secret being rotated): nothing is sent without
    // credentials, each try is counted as an error, and the alert waits.
    std::fs::remove_file(dir.path().join("token")).unwrap();
    r.sidecar.observe(&hostnet(&["x", "y"]));
    wait_for(
        "tries without a token file",
        Duration::from_secs(10),
        || {
            let n = result_count(&r, &fake.url(), "error");
            (n >= 2).then_some(()).ok_or(format!("{n} errors"))
        },
    );
    assert_eq!(fake.received().len(), 1, "sent without credentials");
    assert_eq!(r.sidecar.stats().targets[0].queue_length, 1);
    // The new token is read for the next try.
    std::fs::write(dir.path().join("token"), "r0tated").unwrap();
    let got = wait_for("y with the new token", Duration::from_secs(20), || {
        let all = fake.received();
        (all.len() == 2)
            .then(|| all[1].clone())
            .ok_or(format!("{} requests", all.len()))
    });
    assert_eq!(got.header("authorization"), Some("Bearer r0tated"));
    assert_eq!(got.body[0]["labels"]["container_id"], "containerd://y");
}

// ---------------------------------------------------------------------------------
// TLS, client certificate and basic auth against Alertmanager's own web config.

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn tls_with_client_certificate_and_basic_auth_against_a_real_alertmanager() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = common::TestCa::new("alerting");
    let (server_cert, server_key) = ca.leaf(&["am.test", "localhost"], false);
    let (client_cert, client_key) = ca.leaf(&["nsexporter"], true);
    write(d, "ca.pem", &ca.pem);
    write(d, "server.pem", &server_cert);
    write(d, "server-key.pem", &server_key);
    write(d, "client.pem", &client_cert);
    write(d, "client-key.pem", &client_key);
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    write(
        d,
        "web.yml",
        &format!(
            "tls_server_config:\n  cert_file: {0}/server.pem\n  key_file: {0}/server-key.pem\n  \
             client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {0}/ca.pem\n\
             basic_auth_users:\n  sidecar: {hash}\n",
            d.display()
        ),
    );
    let access = ApiAccess {
        tls: Some((
            d.join("ca.pem"),
            d.join("client.pem"),
            d.join("client-key.pem"),
        )),
        basic_auth: Some(("sidecar".into(), "s3cret".into())),
    };
    let am = Alertmanager::start_with(d, "am-tls", Some(d.join("web.yml")), access);

    // The right credentials, and a server name other than the URL's host.
    write(
        d,
        "http.yml",
        "tls_config:\n  ca_file: ca.pem\n  cert_file: client.pem\n  key_file: client-key.pem\n  \
         server_name: am.test\n  min_version: TLS12\n\
         basic_auth:\n  username: sidecar\n  password_file: pw\n",
    );
    write(d, "pw", "s3cret\n");
    let r = start(
        &[am.url()],
        HttpConfig::load(&d.join("http.yml")).unwrap(),
        Duration::from_secs(60),
    );
    r.sidecar.observe(&hostnet(&["tls"]));
    wait_for("the alert over TLS", Duration::from_secs(10), || {
        let k = am.sidecar_keys()?;
        (k == keys(&["tls"])).then_some(()).ok_or(format!("{k:?}"))
    });
    drop(r);

    // A wrong password: 401, counted as http_4xx and retried.
    write(d, "pw", "wrong\n");
    let r = start(
        &[am.url()],
        HttpConfig::load(&d.join("http.yml")).unwrap(),
        Duration::from_secs(60),
    );
    r.sidecar.observe(&hostnet(&["tls2"]));
    wait_for("401 counted twice", Duration::from_secs(10), || {
        let n = result_count(&r, &am.url(), "http_4xx");
        (n >= 2).then_some(()).ok_or(format!("{n}"))
    });
    // The password is rotated on disk: the next retry gets through, no restart.
    write(d, "pw", "s3cret\n");
    wait_for("delivered after rotation", Duration::from_secs(15), || {
        let k = am.sidecar_keys()?;
        k.contains(&keys(&["tls2"])[0])
            .then_some(())
            .ok_or(format!("{k:?}"))
    });
    drop(r);

    // No client certificate: the handshake fails, counted as error.
    write(d, "http-nocert.yml", "tls_config:\n  ca_file: ca.pem\n");
    let r = start(
        &[am.url()],
        HttpConfig::load(&d.join("http-nocert.yml")).unwrap(),
        Duration::from_secs(60),
    );
    r.sidecar.observe(&hostnet(&["tls3"]));
    wait_for("TLS failure counted", Duration::from_secs(10), || {
        let n = result_count(&r, &am.url(), "error");
        (n >= 1).then_some(()).ok_or(format!("{n}"))
    });
    // And an untrusted server: the system CAs do not know this test CA.
    let r2 = start(
        &[am.url()],
        HttpConfig::none().unwrap(),
        Duration::from_secs(60),
    );
    r2.sidecar.observe(&hostnet(&["tls4"]));
    wait_for(
        "untrusted certificate refused",
        Duration::from_secs(10),
        || {
            let n = result_count(&r2, &am.url(), "error");
            (n >= 1).then_some(()).ok_or(format!("{n}"))
        },
    );
    let k = am.sidecar_keys().unwrap();
    assert!(
        !k.iter().any(|k| k.ends_with("tls3") || k.ends_with("tls4")),
        "{k:?}"
    );
}

/// The README's `inhibit_rules` block, as written there.
fn readme_inhibit_rules() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let block = readme
        .split("<!-- inhibit:begin -->")
        .nth(1)
        .and_then(|r| r.split("<!-- inhibit:end -->").next())
        .expect("README has an inhibit:begin/end block");
    block
        .lines()
        .filter(|l| !l.starts_with("```"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every kind the sidecar sends (`rules::KINDS`) is in the README: in the table of what
/// it sends, and in the `inhibit_rules` example, so that its rules' copy is held back
/// too. A new kind that is not documented fails here.
#[test]
fn readme_names_every_sidecar_alert() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("## The alerting sidecar")
        .nth(1)
        .and_then(|r| {
            r.split("### Running it next to the Prometheus rules")
                .next()
        })
        .expect("README has the alerting sidecar section");
    let inhibit = readme_inhibit_rules();
    let pattern = inhibit
        .split("alertname=~\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("an alertname=~ matcher in the inhibit_rules example");
    let re = regex::Regex::new(&format!("^(?:{pattern})$")).unwrap();
    for name in nsexporter::alerting::rules::alert_names() {
        assert!(
            section.contains(&format!("`{name}`")),
            "{name} is not in the README's table of what the sidecar sends"
        );
        assert!(
            re.is_match(name),
            "{name} is not in the README's inhibit_rules ({pattern})"
        );
    }
}

#[test]
fn readme_inhibit_rules_keep_one_page_per_alert_and_node() {
    let tmp = tempfile::tempdir().unwrap();
    let am = Alertmanager::start_configured(
        tmp.path(),
        "am",
        &readme_inhibit_rules(),
        None,
        ApiAccess::default(),
    );
    // The rules' copies, as Prometheus sends them (no `source`): one for this node,
    // one for another node the sidecar does not cover.
    let rules_alert = |node: &str, pod: &str| {
        serde_json::json!({
            "labels": {"alertname": "NsexporterHostNetworkContainer", "severity": "warning",
                       "node": node, "instance": format!("{node}:9816"), "type": "net",
                       "namespace": "default", "pod": pod, "workload_kind": "Deployment",
                       "workload": "web"},
            "annotations": {"summary": "from the rules"}
        })
    };
    am.post(&serde_json::json!([
        rules_alert("test-node", "web-1"),
        rules_alert("other-node", "web-2")
    ]))
    .unwrap();
    let r = start(
        &[am.url()],
        HttpConfig::none().unwrap(),
        Duration::from_secs(60),
    );
    r.sidecar.observe(&hostnet(&["c1"]));
    let state = |a: &serde_json::Value| a["status"]["state"].as_str().unwrap_or("").to_string();
    wait_for(
        "the rules' copy on the sidecar's node suppressed",
        Duration::from_secs(10),
        || {
            let alerts = am.alerts()?;
            let seen: Vec<(String, String, String)> = alerts
                .iter()
                .map(|a| {
                    (
                        a["labels"]["source"]
                            .as_str()
                            .unwrap_or("rules")
                            .to_string(),
                        a["labels"]["node"].as_str().unwrap_or("").to_string(),
                        state(a),
                    )
                })
                .collect();
            let want = |src: &str, node: &str, st: &str| {
                seen.iter()
                    .any(|(s, n, t)| s == src && n == node && t == st)
            };
            if want("nsexporter-sidecar", "test-node", "active")
                && want("rules", "test-node", "suppressed")
                && want("rules", "other-node", "active")
            {
                Ok(())
            } else {
                Err(format!("{seen:?}"))
            }
        },
    );
    // When the sidecar's alert resolves, the rules' copy pages again.
    r.sidecar.observe(&hostnet(&[]));
    wait_for(
        "the rules' copy active again",
        Duration::from_secs(10),
        || {
            let alerts = am.alerts()?;
            let ours = alerts
                .iter()
                .find(|a| a["labels"]["node"] == "test-node" && a["labels"].get("source").is_none())
                .ok_or("gone")?;
            (state(ours) == "active").then_some(()).ok_or(state(ours))
        },
    );
}
