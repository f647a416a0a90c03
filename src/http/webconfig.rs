//! The web config file (`--web.config.file`) in the exporter-toolkit format that every
//! Prometheus exporter reads: TLS with optional client certificates, basic-auth users
//! with bcrypt hashes, and extra response headers.
//!
//! # Reloading
//! The file, and every file it names, is read again for each new connection and each
//! request (as exporter-toolkit does), so a rotated certificate is served from the next
//! connection on without a restart. Reading costs a few small file reads: the config is
//! rebuilt only when a SHA-256 over all of those bytes changes.
//!
//! A reload never weakens security. A change that does not build (bad YAML, a missing or
//! mismatched key, a bad bcrypt hash), an empty file (one being rewritten in place), and
//! a valid config that would turn off TLS, client certificate verification or basic auth
//! that is in force are all logged once, at error level, and the last good config stays
//! in force: a half-written rotation neither takes the endpoint down nor opens it. Turning
//! protection off takes a restart.
//!
//! Every file is read only when it is a regular file, and at most [`MAX_FILE_BYTES`] of
//! it: `cert_file: /dev/zero` or a FIFO is an error, not a hang or an unbounded read.
//!
//! The TLS part is built in `tls.rs`; basic-auth credentials are checked in `auth.rs`.
//!
//! Why one file of about 880 lines: about 500 of code, the rest its unit tests beside it;
//! loading, validating and reloading one file format belong together (a reload must
//! never weaken what a load checks).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read as _;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hyper::header::{HeaderName, HeaderValue};
use rustls::ServerConfig;
use serde::Deserialize;

use super::auth::{check_hash, BasicAuth};
use super::tls::build_tls;

/// Most bytes read from any one file of the web config: the file itself and the
/// certificate, key and CA files it names. A CA bundle of every public root is ~250 KiB.
pub(super) const MAX_FILE_BYTES: u64 = 1 << 20;

/// Why a web config cannot be used; the message names the field.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WebConfigError(String);

pub(super) fn err(msg: impl Into<String>) -> WebConfigError {
    WebConfigError(msg.into())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    basic_auth_users: Option<BTreeMap<String, String>>,
    /// Accepted by the format, not implemented here: rejected with a pointer to
    /// `--web.max-requests` rather than silently ignored.
    rate_limit: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) cert: Option<String>,
    pub(super) key: Option<String>,
    pub(super) client_ca: Option<String>,
    pub(super) cert_file: Option<String>,
    pub(super) key_file: Option<String>,
    pub(super) client_auth_type: Option<String>,
    pub(super) client_ca_file: Option<String>,
    pub(super) client_allowed_sans: Option<Vec<String>>,
    pub(super) min_version: Option<String>,
    pub(super) max_version: Option<String>,
    pub(super) cipher_suites: Option<Vec<String>>,
    pub(super) prefer_server_cipher_suites: Option<bool>,
    pub(super) curve_preferences: Option<Vec<String>>,
}

impl RawTls {
    /// exporter-toolkit serves plain HTTP for an empty `tls_server_config`.
    fn is_empty(&self) -> bool {
        self.cert.is_none()
            && self.key.is_none()
            && self.client_ca.is_none()
            && self.cert_file.is_none()
            && self.key_file.is_none()
            && self.client_auth_type.is_none()
            && self.client_ca_file.is_none()
            && self.client_allowed_sans.is_none()
            && self.min_version.is_none()
            && self.max_version.is_none()
            && self.cipher_suites.is_none()
            && self.prefer_server_cipher_suites.is_none()
            && self.curve_preferences.is_none()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    /// Accepted for compatibility; nsexporter serves HTTP/1.1 only.
    #[allow(dead_code)]
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

/// The response headers the format allows, as exporter-toolkit does.
const ALLOWED_HEADERS: &[&str] = &[
    "Content-Security-Policy",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "X-XSS-Protection",
    "Strict-Transport-Security",
];

/// A built, checked web config.
pub struct WebConfig {
    tls: Option<Arc<ServerConfig>>,
    client_auth: &'static str,
    /// Username to bcrypt hash. Empty: no basic auth.
    users: BTreeMap<String, String>,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Things that work but deserve a warning (a costly bcrypt hash, an empty file),
    /// logged when the config comes into force.
    warnings: Vec<String>,
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the hashes.
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("client_auth", &self.client_auth)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("headers", &self.headers)
            .finish()
    }
}

impl WebConfig {
    /// The rustls config when TLS is on.
    pub fn tls(&self) -> Option<Arc<ServerConfig>> {
        self.tls.clone()
    }

    /// The `client_auth_type` in force (`NoClientCert` without TLS).
    pub fn client_auth(&self) -> &'static str {
        self.client_auth
    }

    /// How many basic-auth users there are; 0 means no basic auth.
    pub fn basic_auth_users(&self) -> usize {
        self.users.len()
    }

    /// Headers to add to every response.
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// Warnings to log when this config comes into force.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// What of the protection in force in `self` `next` would turn off, if anything:
    /// TLS, client certificate verification, or basic auth.
    fn weakened_by(&self, next: &WebConfig) -> Option<&'static str> {
        if self.tls.is_some() && next.tls.is_none() {
            Some("TLS")
        } else if self.client_auth == VERIFIED_CLIENTS && next.client_auth != VERIFIED_CLIENTS {
            Some("client certificate verification (RequireAndVerifyClientCert)")
        } else if !self.users.is_empty() && next.users.is_empty() {
            Some("basic auth")
        } else {
            None
        }
    }
}

/// The only `client_auth_type` that authenticates clients.
const VERIFIED_CLIENTS: &str = "RequireAndVerifyClientCert";

/// The bytes a config is built from: the file and the files it names.
pub(super) struct Inputs {
    raw: RawFile,
    /// The file holds nothing (or only comments): at startup plain HTTP without auth, as
    /// in exporter-toolkit; on a reload a file caught while being rewritten.
    empty: bool,
    /// Contents of `cert_file`, `key_file`, `client_ca_file` when named.
    pub(super) cert: Option<Vec<u8>>,
    pub(super) key: Option<Vec<u8>>,
    pub(super) client_ca: Option<Vec<u8>>,
    /// SHA-256 over everything above, to notice a change without keeping key bytes.
    fingerprint: [u8; 32],
}

/// Read a regular file of at most [`MAX_FILE_BYTES`]. `field` names the file in the
/// error with its path; None for the config file itself, which every caller names.
fn read_bounded(path: &Path, field: Option<&str>) -> Result<Vec<u8>, WebConfigError> {
    let fail = |e: &dyn fmt::Display| match field {
        Some(f) => err(format!("{f}: {}: {e}", path.display())),
        None => err(e.to_string()),
    };
    // O_NONBLOCK: opening a FIFO without a writer must not block; it is refused below.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| fail(&e))?;
    let meta = file.metadata().map_err(|e| fail(&e))?;
    if !meta.file_type().is_file() {
        return Err(fail(&"not a regular file"));
    }
    let too_big = || fail(&format!("larger than {} KiB", MAX_FILE_BYTES >> 10));
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_big());
    }
    // The size may be 0 (procfs, sysfs) or grow while reading: bound the read itself.
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(&e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big());
    }
    Ok(bytes)
}

/// Read the config file and the files it names. Relative paths in the file are relative
/// to the file's directory, as in exporter-toolkit.
fn read_inputs(path: &Path) -> Result<Inputs, WebConfigError> {
    let text = read_bounded(path, None)?;
    let (raw, empty) = match parse_yaml(&text)? {
        Some(raw) => (raw, false),
        None => (RawFile::default(), true),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&(text.len() as u64).to_le_bytes());
    ctx.update(&text);
    let mut file =
        |name: Option<&String>, field: &str| -> Result<Option<Vec<u8>>, WebConfigError> {
            let Some(name) = name.filter(|n| !n.is_empty()) else {
                ctx.update(&[0]);
                return Ok(None);
            };
            let bytes = read_bounded(&dir.join(name), Some(field))?;
            ctx.update(&[1]);
            ctx.update(&(bytes.len() as u64).to_le_bytes());
            ctx.update(&bytes);
            Ok(Some(bytes))
        };
    let tls = raw.tls_server_config.as_ref();
    let cert = file(
        tls.and_then(|t| t.cert_file.as_ref()),
        "tls_server_config.cert_file",
    )?;
    let key = file(
        tls.and_then(|t| t.key_file.as_ref()),
        "tls_server_config.key_file",
    )?;
    let client_ca = file(
        tls.and_then(|t| t.client_ca_file.as_ref()),
        "tls_server_config.client_ca_file",
    )?;
    let mut fingerprint = [0u8; 32];
    fingerprint.copy_from_slice(ctx.finish().as_ref());
    Ok(Inputs {
        raw,
        empty,
        cert,
        key,
        client_ca,
        fingerprint,
    })
}

/// The parsed file; None when it is empty or holds only comments.
fn parse_yaml(text: &[u8]) -> Result<Option<RawFile>, WebConfigError> {
    let value: serde_yaml_ng::Value =
        serde_yaml_ng::from_slice(text).map_err(|e| err(format!("not valid YAML: {e}")))?;
    if value.is_null() {
        return Ok(None);
    }
    serde_yaml_ng::from_slice(text)
        .map(Some)
        .map_err(|e| err(e.to_string()))
}

/// Build a config from its inputs; every error names the field.
fn build(inputs: &Inputs) -> Result<WebConfig, WebConfigError> {
    let raw = &inputs.raw;
    if raw.rate_limit.is_some() {
        return Err(err(
            "rate_limit is not supported by nsexporter; use --web.max-requests to bound scrapes",
        ));
    }
    let (tls, client_auth) = match raw.tls_server_config.as_ref().filter(|t| !t.is_empty()) {
        Some(t) => {
            let (cfg, auth) = build_tls(t, inputs)?;
            (Some(Arc::new(cfg)), auth)
        }
        None => (None, "NoClientCert"),
    };
    let mut users = BTreeMap::new();
    let mut warnings = Vec::new();
    if inputs.empty {
        warnings
            .push("the web config file is empty: plain HTTP without authentication".to_string());
    }
    for (user, hash) in raw.basic_auth_users.iter().flatten() {
        if user.contains(':') {
            return Err(err(format!(
                "basic_auth_users: username {user:?} contains ':', which basic auth cannot carry"
            )));
        }
        warnings.extend(check_hash(user, hash.trim())?);
        users.insert(user.clone(), hash.trim().to_string());
    }
    let mut headers = Vec::new();
    for (name, value) in raw
        .http_server_config
        .iter()
        .flat_map(|h| h.headers.iter().flatten())
    {
        let Some(allowed) = ALLOWED_HEADERS
            .iter()
            .find(|a| a.eq_ignore_ascii_case(name))
        else {
            return Err(err(format!(
                "http_server_config.headers: {name:?} cannot be configured; allowed: {}",
                ALLOWED_HEADERS.join(", ")
            )));
        };
        if value.is_empty() {
            continue;
        }
        let ok = match *allowed {
            "X-Frame-Options" => {
                value.eq_ignore_ascii_case("deny") || value.eq_ignore_ascii_case("sameorigin")
            }
            "X-Content-Type-Options" => value.eq_ignore_ascii_case("nosniff"),
            _ => true,
        };
        let header_value = HeaderValue::from_str(value).ok().filter(|_| ok);
        let Some(header_value) = header_value else {
            return Err(err(format!(
                "http_server_config.headers.{allowed}: invalid value {value:?}"
            )));
        };
        headers.push((HeaderName::from_static(header_name(allowed)), header_value));
    }
    Ok(WebConfig {
        tls,
        client_auth,
        users,
        headers,
        warnings,
    })
}

fn header_name(allowed: &str) -> &'static str {
    match allowed {
        "Content-Security-Policy" => "content-security-policy",
        "X-Frame-Options" => "x-frame-options",
        "X-Content-Type-Options" => "x-content-type-options",
        "X-XSS-Protection" => "x-xss-protection",
        _ => "strict-transport-security",
    }
}

struct State {
    config: Arc<WebConfig>,
    fingerprint: [u8; 32],
    /// The last failure already logged (its fingerprint or read error), so a broken
    /// file is reported once, not on every connection.
    last_failure: Option<String>,
}

/// The web config file, re-read on use; see the module docs.
pub struct WebConfigSource {
    path: PathBuf,
    state: Mutex<State>,
    auth: BasicAuth,
}

impl fmt::Debug for WebConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfigSource")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl WebConfigSource {
    /// Read and check the file; an error names the field that is wrong.
    pub fn load(path: PathBuf) -> Result<Self, WebConfigError> {
        let inputs = read_inputs(&path)?;
        let config = build(&inputs)?;
        let auth = BasicAuth::new()?;
        Ok(WebConfigSource {
            path,
            state: Mutex::new(State {
                config: Arc::new(config),
                fingerprint: inputs.fingerprint,
                last_failure: None,
            }),
            auth,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The config in force, re-read from disk. Blocking (file reads, and a rebuild when
    /// something changed): call it off the async workers.
    pub fn current(&self) -> Arc<WebConfig> {
        let mut st = match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let inputs = match read_inputs(&self.path) {
            Ok(i) => i,
            Err(e) => {
                self.refuse(&mut st, e.to_string(), &e);
                return st.config.clone();
            }
        };
        if inputs.fingerprint == st.fingerprint {
            st.last_failure = None;
            return st.config.clone();
        }
        let key = hex(&inputs.fingerprint);
        if st.last_failure.as_deref() == Some(key.as_str()) {
            return st.config.clone();
        }
        if inputs.empty {
            self.refuse(
                &mut st,
                key,
                &"the file is empty (caught while being rewritten?)",
            );
            return st.config.clone();
        }
        match build(&inputs) {
            Ok(cfg) => match st.config.weakened_by(&cfg) {
                Some(what) => {
                    let why = format!(
                        "it turns off {what}, which is in force; restart nsexporter to apply that"
                    );
                    self.refuse(&mut st, key, &why);
                }
                None => {
                    for w in cfg.warnings() {
                        tracing::warn!(file = %self.path.display(), "{w}");
                    }
                    tracing::info!(
                        file = %self.path.display(),
                        tls = cfg.tls.is_some(),
                        client_auth = cfg.client_auth,
                        basic_auth_users = cfg.users.len(),
                        "web config reloaded"
                    );
                    st.config = Arc::new(cfg);
                    st.fingerprint = inputs.fingerprint;
                    st.last_failure = None;
                }
            },
            Err(e) => self.refuse(&mut st, key, &e),
        }
        st.config.clone()
    }

    /// Keep the config in force and say why, once per distinct failure `key`.
    fn refuse(&self, st: &mut State, key: String, why: &dyn fmt::Display) {
        if st.last_failure.as_deref() != Some(key.as_str()) {
            tracing::error!(file = %self.path.display(), error = %why,
                "cannot reload the web config; keeping the last good one");
            st.last_failure = Some(key);
        }
    }

    /// Whether the request's `Authorization` header satisfies `cfg`'s basic auth (always
    /// true when it has no users). Uncached bcrypt checks share a bounded pool fairly
    /// between source addresses (`source`: the client's).
    pub async fn authorize(
        &self,
        cfg: &WebConfig,
        header: Option<&HeaderValue>,
        source: IpAddr,
    ) -> bool {
        self.auth.authorize(&cfg.users, header, source).await
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use std::process::Command;

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    /// Read and build a web config once, as [`WebConfigSource::load`] does.
    fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        build(&read_inputs(path)?)
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    struct Pki {
        ca_pem: String,
        cert_pem: String,
        key_pem: String,
    }

    fn pki() -> Pki {
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        Pki {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    #[test]
    fn empty_file_is_plain_http_without_auth() {
        let d = tempfile::tempdir().unwrap();
        for (text, empty) in [
            ("", true),
            ("# nothing\n", true),
            ("tls_server_config: {}\n", false),
        ] {
            let c = load(&write(d.path(), "w.yml", text)).unwrap();
            assert!(c.tls().is_none(), "{text:?}");
            assert_eq!(c.basic_auth_users(), 0);
            // At startup an empty file is served as exporter-toolkit does, with a warning.
            assert_eq!(
                c.warnings().iter().any(|w| w.contains("empty")),
                empty,
                "{text:?}"
            );
        }
    }

    /// `hash` with its two cost digits replaced.
    fn with_cost(hash: &str, cost: &str) -> String {
        format!("{}{cost}{}", &hash[..4], &hash[6..])
    }

    #[test]
    fn bcrypt_costs_the_library_refuses_or_no_login_could_wait_for_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let h = bcrypt::hash("pw", 4).unwrap();
        for (cost, want) in [
            ("99", "bcrypt cost 99 is outside 4 to 31"),
            ("32", "bcrypt cost 32 is outside 4 to 31"),
            ("03", "bcrypt cost 3 is outside 4 to 31"),
            ("31", "bcrypt cost 31 takes about"),
            ("17", "bcrypt cost 17 takes about"),
            ("+9", "the cost is not two digits"),
        ] {
            let text = format!(
                "basic_auth_users:\n  alice: '{h}'\n  bob: '{}'\n",
                with_cost(&h, cost)
            );
            let e = load(&write(d.path(), "w.yml", &text))
                .unwrap_err()
                .to_string();
            assert!(e.contains("basic_auth_users.bob:"), "{cost}: {e}");
            assert!(e.contains(want), "{cost}: {e}");
        }
        // Cost 31 is days of work per check; the message says so.
        let text = format!("basic_auth_users:\n  bob: '{}'\n", with_cost(&h, "31"));
        let e = load(&write(d.path(), "w.yml", &text))
            .unwrap_err()
            .to_string();
        assert!(e.contains("days per login check"), "{e}");
        // 13 to 16 load, with a warning naming the user; 12 and below without.
        for (cost, warned) in [("16", true), ("13", true), ("12", false), ("04", false)] {
            let text = format!("basic_auth_users:\n  bob: '{}'\n", with_cost(&h, cost));
            let c = load(&write(d.path(), "w.yml", &text)).unwrap();
            let w = c.warnings().join("\n");
            assert_eq!(
                w.contains("basic_auth_users.bob: bcrypt cost"),
                warned,
                "{cost}: {w:?}"
            );
        }
    }

    #[test]
    fn files_that_are_not_regular_or_too_big_are_refused_without_reading_them_whole() {
        let d = tempfile::tempdir().unwrap();
        let p = pki();
        write(d.path(), "key.pem", &p.key_pem);
        write(d.path(), "cert.pem", &p.cert_pem);
        // A sparse file far over the limit: refused from its size, nothing read.
        let big = std::fs::File::create(d.path().join("big.pem")).unwrap();
        big.set_len(4 << 30).unwrap();
        // A FIFO without a writer: opening it must not block.
        let fifo = d.path().join("fifo.pem");
        assert!(Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        for (cert, want) in [
            ("/dev/zero", "not a regular file"),
            ("fifo.pem", "not a regular file"),
            ("big.pem", "larger than 1024 KiB"),
            (".", "not a regular file"),
        ] {
            let text = format!("tls_server_config:\n  cert_file: {cert}\n  key_file: key.pem\n");
            let e = load(&write(d.path(), "w.yml", &text))
                .unwrap_err()
                .to_string();
            assert!(e.contains("tls_server_config.cert_file: "), "{cert}: {e}");
            assert!(e.contains(want), "{cert}: {e}");
        }
        // The config file itself is bounded too.
        let e = load(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let e = load(&d.path().join("big.pem")).unwrap_err().to_string();
        assert!(e.contains("larger than"), "{e}");
        // Exactly at the limit is fine (here: not a config, but read whole).
        let at = "#".repeat(MAX_FILE_BYTES as usize);
        assert!(load(&write(d.path(), "at.yml", &at)).is_ok());
        let over = "#".repeat(MAX_FILE_BYTES as usize + 1);
        assert!(load(&write(d.path(), "over.yml", &over)).is_err());
    }

    #[test]
    fn a_reload_never_turns_off_tls_client_verification_or_basic_auth() {
        let d = tempfile::tempdir().unwrap();
        let p = pki();
        write(d.path(), "ca.pem", &p.ca_pem);
        write(d.path(), "cert.pem", &p.cert_pem);
        write(d.path(), "key.pem", &p.key_pem);
        let h = bcrypt::hash("pw", 4).unwrap();
        let tls = "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n";
        let mtls = format!(
            "{tls}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n"
        );
        let users = format!("basic_auth_users:\n  alice: '{h}'\n  bob: '{h}'\n");
        let full = format!("{mtls}{users}");
        let f = write(d.path(), "w.yml", &full);
        let src = WebConfigSource::load(f.clone()).unwrap();
        let first = src.current();
        assert_eq!(first.client_auth(), VERIFIED_CLIENTS);
        assert_eq!(first.basic_auth_users(), 2);
        let kept = |text: &str, why: &str| {
            write(d.path(), "w.yml", text);
            assert!(Arc::ptr_eq(&first, &src.current()), "{why}: {text:?}");
        };
        kept("", "an empty file");
        kept("# being rewritten\n", "only a comment");
        kept(&full[..full.len() / 2], "truncated in the middle");
        kept(&format!("{tls}{users}"), "client verification dropped");
        kept(&mtls, "basic auth dropped");
        kept(&users, "TLS dropped");
        kept(
            &format!("{mtls}basic_auth_users: {{}}\n"),
            "an empty user list",
        );
        // Tightening or rotating applies: one user fewer, then a new hash.
        write(
            d.path(),
            "w.yml",
            &format!("{mtls}basic_auth_users:\n  alice: '{h}'\n"),
        );
        assert_eq!(src.current().basic_auth_users(), 1);
        let h2 = bcrypt::hash("pw2", 4).unwrap();
        write(
            d.path(),
            "w.yml",
            &format!("{mtls}basic_auth_users:\n  carol: '{h2}'\n"),
        );
        let now = src.current();
        assert_eq!(now.basic_auth_users(), 1);
        assert!(now.users.contains_key("carol"));
        // A source that started without protection takes it on at a reload.
        let g = write(d.path(), "plain.yml", "");
        let plain = WebConfigSource::load(g).unwrap();
        assert!(plain.current().tls().is_none());
        write(d.path(), "plain.yml", &format!("{tls}{users}"));
        let on = plain.current();
        assert!(on.tls().is_some());
        assert_eq!(on.basic_auth_users(), 2);
    }

    #[test]
    fn good_configs_build() {
        let d = tempfile::tempdir().unwrap();
        let p = pki();
        write(d.path(), "ca.pem", &p.ca_pem);
        write(d.path(), "cert.pem", &p.cert_pem);
        write(d.path(), "key.pem", &p.key_pem);
        let hash = bcrypt::hash("pw", 4).unwrap();
        for auth in [
            "NoClientCert",
            "RequestClientCert",
            "RequireAnyClientCert",
            "VerifyClientCertIfGiven",
            "RequireAndVerifyClientCert",
        ] {
            let ca = if auth == "NoClientCert" {
                ""
            } else {
                "  client_ca_file: ca.pem\n"
            };
            let text = format!(
                "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_auth_type: {auth}\n{ca}  min_version: TLS12\n  max_version: TLS13\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305]\n  curve_preferences: [X25519, CurveP256]\nhttp_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\nbasic_auth_users:\n  alice: '{hash}'\n"
            );
            let c =
                load(&write(d.path(), "w.yml", &text)).unwrap_or_else(|e| panic!("{auth}: {e}"));
            assert!(c.tls().is_some());
            assert_eq!(c.client_auth(), auth);
            assert_eq!(c.basic_auth_users(), 1);
            assert_eq!(c.headers().len(), 2);
        }
        // Inline PEM works too.
        let text = format!(
            "tls_server_config:\n  cert: |\n{}  key: |\n{}",
            indent(&p.cert_pem),
            indent(&p.key_pem)
        );
        assert!(load(&write(d.path(), "w.yml", &text))
            .unwrap()
            .tls()
            .is_some());
    }

    fn indent(s: &str) -> String {
        s.lines().map(|l| format!("    {l}\n")).collect()
    }

    #[test]
    fn bad_configs_name_the_field() {
        let d = tempfile::tempdir().unwrap();
        let p = pki();
        write(d.path(), "ca.pem", &p.ca_pem);
        write(d.path(), "cert.pem", &p.cert_pem);
        write(d.path(), "key.pem", &p.key_pem);
        let other = pki();
        write(d.path(), "other-key.pem", &other.key_pem);
        let tls = "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n";
        let cases: &[(String, &str)] = &[
            ("tls_server_config: [\n".into(), "YAML"),
            ("bogus: 1\n".into(), "bogus"),
            ("tls_server_config:\n  cert_file: cert.pem\n".into(), "key_file"),
            ("tls_server_config:\n  key_file: key.pem\n".into(), "cert_file"),
            ("tls_server_config:\n  cert_file: nope.pem\n  key_file: key.pem\n".into(), "tls_server_config.cert_file"),
            ("tls_server_config:\n  cert_file: key.pem\n  key_file: key.pem\n".into(), "cert_file"),
            ("tls_server_config:\n  cert_file: cert.pem\n  key_file: cert.pem\n".into(), "key_file"),
            ("tls_server_config:\n  cert_file: cert.pem\n  key_file: other-key.pem\n".into(), "do not work together"),
            (format!("{tls}  min_version: TLS10\n"), "min_version"),
            (format!("{tls}  min_version: SSL3\n"), "min_version"),
            (format!("{tls}  min_version: TLS13\n  max_version: TLS12\n"), "max_version"),
            (format!("{tls}  client_auth_type: Sometimes\n"), "client_auth_type"),
            (format!("{tls}  client_auth_type: RequireAndVerifyClientCert\n"), "client_ca_file"),
            (format!("{tls}  client_ca_file: ca.pem\n"), "client_auth_type"),
            (format!("{tls}  client_ca_file: key.pem\n  client_auth_type: RequireAndVerifyClientCert\n"), "client_ca_file"),
            (format!("{tls}  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n"), "cipher_suites"),
            (format!("{tls}  curve_preferences: [CurveP521]\n"), "curve_preferences"),
            (format!("{tls}  client_allowed_sans: [a]\n"), "client_allowed_sans"),
            (format!("{tls}  cert: inline\n"), "cert and cert_file"),
            ("basic_auth_users:\n  bob: plain\n".into(), "basic_auth_users.bob"),
            ("basic_auth_users:\n  'a:b': '$2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG'\n".into(), "basic_auth_users"),
            ("http_server_config:\n  headers:\n    Server: x\n".into(), "headers"),
            ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n".into(), "X-Frame-Options"),
            ("rate_limit:\n  interval: 1s\n  burst: 1\n".into(), "rate_limit"),
        ];
        for (text, want) in cases {
            let e = load(&write(d.path(), "w.yml", text))
                .err()
                .unwrap_or_else(|| panic!("accepted: {text}"))
                .to_string();
            assert!(e.contains(want), "{text:?}: {e:?} should name {want}");
        }
        assert!(load(&d.path().join("missing.yml")).is_err());
    }

    #[test]
    fn reload_keeps_last_good_and_picks_up_changes() {
        let d = tempfile::tempdir().unwrap();
        let h1 = bcrypt::hash("one", 4).unwrap();
        let f = write(
            d.path(),
            "w.yml",
            &format!("basic_auth_users:\n  a: '{h1}'\n"),
        );
        let src = WebConfigSource::load(f.clone()).unwrap();
        assert_eq!(src.current().basic_auth_users(), 1);
        let first = src.current();
        assert!(
            Arc::ptr_eq(&first, &src.current()),
            "unchanged file is not rebuilt"
        );
        write(d.path(), "w.yml", "basic_auth_users: [\n");
        assert!(
            Arc::ptr_eq(&first, &src.current()),
            "broken file keeps the last good"
        );
        std::fs::remove_file(&f).unwrap();
        assert!(
            Arc::ptr_eq(&first, &src.current()),
            "missing file keeps the last good"
        );
        write(
            d.path(),
            "w.yml",
            &format!("basic_auth_users:\n  a: '{h1}'\n  b: '{h1}'\n"),
        );
        assert_eq!(src.current().basic_auth_users(), 2);
    }

    #[tokio::test]
    async fn authorize_checks_bcrypt_and_caches() {
        let d = tempfile::tempdir().unwrap();
        let h = bcrypt::hash("secret", 4).unwrap();
        let f = write(
            d.path(),
            "w.yml",
            &format!("basic_auth_users:\n  alice: '{h}'\n"),
        );
        let src = WebConfigSource::load(f).unwrap();
        let cfg = src.current();
        let b = |u: &str, p: &str| {
            let v = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            HeaderValue::from_str(&format!("Basic {v}")).unwrap()
        };
        assert!(!src.authorize(&cfg, None, LOCAL).await);
        assert!(!src.authorize(&cfg, Some(&b("alice", "wrong")), LOCAL).await);
        assert!(!src.authorize(&cfg, Some(&b("bob", "secret")), LOCAL).await);
        assert!(
            src.authorize(&cfg, Some(&b("alice", "secret")), LOCAL)
                .await
        );
        assert!(
            src.authorize(&cfg, Some(&b("alice", "secret")), LOCAL)
                .await
        );
        assert!(
            !src.authorize(&cfg, Some(&b("alice", "secret2")), LOCAL)
                .await
        );
        // htpasswd writes `$2y$`: the same algorithm, accepted and verified.
        let h2y = format!("$2y${}", &bcrypt::hash("pw", 4).unwrap()[4..]);
        let f2 = write(
            d.path(),
            "w2.yml",
            &format!("basic_auth_users:\n  bob: '{h2y}'\n"),
        );
        let src2 = WebConfigSource::load(f2).unwrap();
        let cfg2 = src2.current();
        assert!(src2.authorize(&cfg2, Some(&b("bob", "pw")), LOCAL).await);
        assert!(!src2.authorize(&cfg2, Some(&b("bob", "px")), LOCAL).await);
    }
}
