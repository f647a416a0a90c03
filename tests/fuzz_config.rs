//! Property tests ("fuzzing" that runs in `cargo test`) for the settings loader: values
//! from a config file or from flags either load into sane settings or are refused
//! naming the bad setting; arbitrary files never panic. Cases per property:
//! `PROPTEST_CASES` (default 256). Inputs that ever broke a property are kept as plain
//! regression tests at the end.

use std::io::Write;

use clap::CommandFactory;
use nsexporter::cli::Flags;
use nsexporter::config;
use proptest::prelude::*;

mod fuzzkit;
use fuzzkit::{check, proc_bytes};

// ---------------------------------------------------------------------------------
// The settings loader

/// Load settings from a YAML file and extra flags, as the binary does.
fn load(yaml: Option<&[u8]>, flags: &[String]) -> Result<config::Settings, String> {
    let file = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    let mut argv: Vec<String> = vec!["nsexporter".into()];
    if let Some(y) = yaml {
        file.as_file().write_all(y).map_err(|e| e.to_string())?;
        argv.push("--config.file".into());
        argv.push(file.path().display().to_string());
    }
    argv.extend(flags.iter().cloned());
    let matches = Flags::command()
        .try_get_matches_from(argv)
        .map_err(|e| e.to_string())?;
    config::load(&matches).map_err(|e| e.to_string())
}

/// The invariants every loaded Settings must hold.
fn settings_are_sane(s: &config::Settings) -> Result<(), TestCaseError> {
    prop_assert!(s.telemetry_path.starts_with('/') && s.telemetry_path.len() > 1);
    prop_assert!(!["/healthz", "/readyz"].contains(&s.telemetry_path.as_str()));
    prop_assert!(s.scan_interval >= std::time::Duration::from_millis(100));
    prop_assert!(s.scan_interval <= std::time::Duration::from_secs(3600));
    prop_assert!((1..=64).contains(&s.scan_threads));
    prop_assert!(!s.paths.procfs.as_os_str().is_empty());
    Ok(())
}

/// Listen addresses that resolve without DNS: a random string is used only when it
/// cannot be `host:port` with a host name (which would send a DNS query).
fn listen_address() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(":9816".to_string()),
        Just("127.0.0.1:0".to_string()),
        Just("[::1]:9816".to_string()),
        (0u32..70000).prop_map(|p| format!(":{p}")),
        (0u32..70000).prop_map(|p| format!("127.0.0.1:{p}")),
        "[^:]{0,20}",
        "[0-9.:\\[\\]]{0,20}",
    ]
}

fn setting_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("15s".into()),
        Just("99ms".into()),
        Just("2h".into()),
        Just("0".into()),
        Just("65".into()),
        Just("18446744073709551616".into()),
        Just("cri-o".into()),
        Just("json".into()),
        Just("debug".into()),
        Just("off".into()),
        Just("/metrics".into()),
        Just("/readyz".into()),
        Just("/".into()),
        Just("/proc".into()),
        "[ -~]{0,24}",
        ".{0,12}",
    ]
}

const KEYS: &[(&str, &str)] = &[
    ("web", "telemetry-path"),
    ("path", "procfs"),
    ("scan", "interval"),
    ("scan", "threads"),
    ("container", "default-runtime"),
    ("log", "level"),
    ("log", "format"),
];

const FLAGS: &[&str] = &[
    "--web.telemetry-path",
    "--path.procfs",
    "--scan.interval",
    "--scan.threads",
    "--container.default-runtime",
    "--log.level",
    "--log.format",
];

fn yaml_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[test]
fn config_file_values_load_or_name_the_bad_setting() {
    let values = prop::collection::vec(prop::option::of(setting_value()), KEYS.len());
    check((listen_address(), values), |(addr, values)| {
        let mut sections: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        sections
            .entry("web")
            .or_default()
            .push(format!("  listen-address: {}", yaml_quote(&addr)));
        for ((section, key), v) in KEYS.iter().zip(&values) {
            if let Some(v) = v {
                sections
                    .entry(section)
                    .or_default()
                    .push(format!("  {key}: {}", yaml_quote(v)));
            }
        }
        let yaml: String = sections
            .iter()
            .map(|(s, lines)| format!("{s}:\n{}\n", lines.join("\n")))
            .collect();
        match load(Some(yaml.as_bytes()), &[]) {
            Ok(s) => settings_are_sane(&s)?,
            // Named by its key in the file, or the file as a whole.
            Err(e) => prop_assert!(
                e.starts_with("invalid ") && e.contains(" in /")
                    || e.starts_with("invalid settings file /"),
                "{e}\n{yaml}"
            ),
        }
        Ok(())
    });
}

#[test]
fn flag_values_load_or_name_the_bad_setting() {
    let values = prop::collection::vec(prop::option::of(setting_value()), FLAGS.len());
    check((listen_address(), values), |(addr, values)| {
        let mut flags = vec![format!("--web.listen-address={addr}")];
        for (f, v) in FLAGS.iter().zip(&values) {
            if let Some(v) = v {
                flags.push(format!("{f}={v}"));
            }
        }
        match load(None, &flags) {
            Ok(s) => settings_are_sane(&s)?,
            // Named by its flag.
            Err(e) => prop_assert!(e.starts_with("invalid --"), "{e}\n{flags:?}"),
        }
        Ok(())
    });
}

#[test]
fn arbitrary_config_files_never_panic() {
    let doc = prop_oneof![
        proc_bytes(400),
        "[a-z:{}\\[\\], \n\"'&*!|>#-]{0,200}".prop_map(String::into_bytes),
    ];
    check(doc, |yaml| {
        match load(Some(&yaml), &[]) {
            Ok(s) => settings_are_sane(&s)?,
            Err(e) => prop_assert!(
                e.starts_with("invalid ") || e.contains("cannot load settings"),
                "{e}"
            ),
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------
// Regression tests: inputs that once broke, or would break, a property.

#[test]
fn regression_deeply_nested_yaml_is_an_error_not_a_crash() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(load(Some(deep.as_bytes()), &[]).is_err());
    let deep = "a:\n".to_string() + &" a:\n".repeat(0) + &"{a: ".repeat(50_000);
    assert!(load(Some(deep.as_bytes()), &[]).is_err());
}

#[test]
fn regression_non_utf8_config_file_names_the_setting() {
    let e = load(Some(b"scan:\n  interval: \"\xff\xfe\"\n"), &[]).unwrap_err();
    assert!(e.starts_with("invalid scan.interval in /"), "{e}");
    let e = load(Some(b"\xff\xfe: 1\n"), &[]).unwrap_err();
    assert!(e.starts_with("invalid settings file /"), "{e}");
}
