//! The web config file (`--web.config.file`) in the exporter-toolkit format that every
//! Prometheus exporter reads: TLS with optional client certificates, basic-auth users
//! with bcrypt hashes, and extra response headers.
//!
//! # Reloading
//! The file, and every file it names, is read again for each new connection and each
//! request (as exporter-toolkit does), so a rotated certificate is served from the next
//! connection on without a restart. Reading costs a few small file reads: the config is
//! rebuilt only when a SHA-256 over all of those bytes changes. A change that does not
//! build (bad YAML, a missing or mismatched key) is logged once, at error level, and the
//! last good config stays in force: a half-written rotation never takes the endpoint down.
//!
//! The TLS part is built in `tls.rs`; basic-auth credentials are checked in `auth.rs`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use hyper::header::{HeaderName, HeaderValue};
use rustls::ServerConfig;
use serde::Deserialize;

use super::auth::BasicAuth;
use super::tls::build_tls;

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
}

/// The bytes a config is built from: the file and the files it names.
pub(super) struct Inputs {
    raw: RawFile,
    /// Contents of `cert_file`, `key_file`, `client_ca_file` when named.
    pub(super) cert: Option<Vec<u8>>,
    pub(super) key: Option<Vec<u8>>,
    pub(super) client_ca: Option<Vec<u8>>,
    /// SHA-256 over everything above, to notice a change without keeping key bytes.
    fingerprint: [u8; 32],
}

fn read_file(path: &Path, field: &str) -> Result<Vec<u8>, WebConfigError> {
    std::fs::read(path).map_err(|e| err(format!("{field}: {}: {e}", path.display())))
}

/// Read the config file and the files it names. Relative paths in the file are relative
/// to the file's directory, as in exporter-toolkit.
fn read_inputs(path: &Path) -> Result<Inputs, WebConfigError> {
    // Without the path: every caller names the file already.
    let text = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let raw = parse_yaml(&text)?;
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
            let bytes = read_file(&dir.join(name), field)?;
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
        cert,
        key,
        client_ca,
        fingerprint,
    })
}

fn parse_yaml(text: &[u8]) -> Result<RawFile, WebConfigError> {
    // An empty file (or one with only comments) is a valid config: plain HTTP, no auth.
    let value: serde_yaml_ng::Value =
        serde_yaml_ng::from_slice(text).map_err(|e| err(format!("not valid YAML: {e}")))?;
    if value.is_null() {
        return Ok(RawFile::default());
    }
    serde_yaml_ng::from_slice(text).map_err(|e| err(e.to_string()))
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
    for (user, hash) in raw.basic_auth_users.iter().flatten() {
        if user.contains(':') {
            return Err(err(format!(
                "basic_auth_users: username {user:?} contains ':', which basic auth cannot carry"
            )));
        }
        if bcrypt::HashParts::from_str(hash.trim()).is_err() {
            return Err(err(format!(
                "basic_auth_users.{user}: not a bcrypt hash (make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)"
            )));
        }
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
                let key = e.to_string();
                if st.last_failure.as_deref() != Some(key.as_str()) {
                    tracing::error!(file = %self.path.display(), error = %e,
                        "cannot reload the web config; keeping the last good one");
                    st.last_failure = Some(key);
                }
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
        match build(&inputs) {
            Ok(cfg) => {
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
            Err(e) => {
                tracing::error!(file = %self.path.display(), error = %e,
                    "cannot reload the web config; keeping the last good one");
                st.last_failure = Some(key);
            }
        }
        st.config.clone()
    }

    /// Whether the request's `Authorization` header satisfies `cfg`'s basic auth (always
    /// true when it has no users). bcrypt runs on a blocking thread, one at a time.
    pub async fn authorize(&self, cfg: &WebConfig, header: Option<&HeaderValue>) -> bool {
        self.auth.authorize(&cfg.users, header).await
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

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
        for text in ["", "# nothing\n", "tls_server_config: {}\n"] {
            let c = load(&write(d.path(), "w.yml", text)).unwrap();
            assert!(c.tls().is_none(), "{text:?}");
            assert_eq!(c.basic_auth_users(), 0);
        }
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
        assert!(!src.authorize(&cfg, None).await);
        assert!(!src.authorize(&cfg, Some(&b("alice", "wrong"))).await);
        assert!(!src.authorize(&cfg, Some(&b("bob", "secret"))).await);
        assert!(src.authorize(&cfg, Some(&b("alice", "secret"))).await);
        assert!(src.authorize(&cfg, Some(&b("alice", "secret"))).await);
        assert!(!src.authorize(&cfg, Some(&b("alice", "secret2"))).await);
        // htpasswd writes `$2y$`: the same algorithm, accepted and verified.
        let h2y = format!("$2y${}", &bcrypt::hash("pw", 4).unwrap()[4..]);
        let f2 = write(
            d.path(),
            "w2.yml",
            &format!("basic_auth_users:\n  bob: '{h2y}'\n"),
        );
        let src2 = WebConfigSource::load(f2).unwrap();
        let cfg2 = src2.current();
        assert!(src2.authorize(&cfg2, Some(&b("bob", "pw"))).await);
        assert!(!src2.authorize(&cfg2, Some(&b("bob", "px"))).await);
    }
}
