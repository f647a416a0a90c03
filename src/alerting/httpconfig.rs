//! The Alertmanager client's credentials, from a file in the format of Prometheus'
//! `http_config`: `tls_config` (CA, client certificate, server name, minimum version),
//! `basic_auth`, `authorization` and the older `bearer_token`.
//!
//! The file and the TLS files it names are read once, at startup, and every problem is
//! an error that names the field and the file. Secret files (`password_file`,
//! `credentials_file`, `bearer_token_file`) are read again for every request, as
//! Prometheus does, so a rotated Kubernetes Secret is used without a restart. Every file
//! is size-bounded. Secrets never reach a log line: [`Secret`]'s `Debug` hides them.
//!
//! Why one file of about 770 lines: about 620 of code, the rest its unit tests beside it;
//! it mirrors one Prometheus file format, whose parts (TLS, basic auth, tokens) are read
//! and checked together.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::Deserialize;

/// Largest config, certificate or key file read.
const MAX_FILE: u64 = 1 << 20;
/// Largest secret file (password, token) read.
const MAX_SECRET_FILE: u64 = 64 << 10;

/// Why the client credentials cannot be used; the message names the field and file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpConfigError(String);

fn err(msg: impl Into<String>) -> HttpConfigError {
    HttpConfigError(msg.into())
}

/// A string that must never be printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    basic_auth: Option<RawBasicAuth>,
    authorization: Option<RawAuthorization>,
    bearer_token: Option<Secret>,
    bearer_token_file: Option<String>,
    tls_config: Option<RawTls>,
    /// HTTP/1.1 is always used; accepted so that a Prometheus config can be reused.
    #[allow(dead_code)]
    enable_http2: Option<bool>,
    /// Redirects are never followed (a 3xx is a failed send); accepted for reuse.
    #[allow(dead_code)]
    follow_redirects: Option<bool>,
    // Parts of the format this client does not implement: rejected by name rather
    // than silently ignored.
    oauth2: Option<serde_yaml_ng::Value>,
    proxy_url: Option<serde_yaml_ng::Value>,
    no_proxy: Option<serde_yaml_ng::Value>,
    proxy_from_environment: Option<serde_yaml_ng::Value>,
    proxy_connect_header: Option<serde_yaml_ng::Value>,
    http_headers: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBasicAuth {
    username: Option<String>,
    username_file: Option<String>,
    password: Option<Secret>,
    password_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuthorization {
    #[serde(rename = "type")]
    kind: Option<String>,
    credentials: Option<Secret>,
    credentials_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca: Option<String>,
    ca_file: Option<String>,
    cert: Option<String>,
    cert_file: Option<String>,
    key: Option<Secret>,
    key_file: Option<String>,
    server_name: Option<String>,
    #[serde(default)]
    insecure_skip_verify: bool,
    min_version: Option<String>,
    max_version: Option<String>,
}

/// A secret given inline or as a file that is read again for every request.
#[derive(Debug, Clone)]
enum SecretSource {
    Inline(Secret),
    File(PathBuf),
}

impl SecretSource {
    fn get(&self, field: &str) -> Result<Secret, HttpConfigError> {
        match self {
            SecretSource::Inline(s) => Ok(s.clone()),
            SecretSource::File(p) => {
                let bytes = read_bounded(p, MAX_SECRET_FILE, field)?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| err(format!("{field}: {}: not UTF-8", p.display())))?;
                Ok(Secret(text.trim().to_string()))
            }
        }
    }
}

/// How requests authenticate.
#[derive(Debug, Clone)]
enum Auth {
    None,
    Basic {
        username: String,
        password: Option<SecretSource>,
    },
    /// `Authorization: <scheme> <credentials>`.
    Token {
        scheme: String,
        credentials: SecretSource,
    },
}

/// Checked client settings: TLS and the `Authorization` header.
#[derive(Clone)]
pub struct HttpConfig {
    auth: Auth,
    tls: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
    /// Where it came from, for messages; None for the built-in default.
    source: Option<PathBuf>,
}

impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.auth {
            Auth::None => "none".to_string(),
            Auth::Basic { username, .. } => format!("basic ({username})"),
            Auth::Token { scheme, .. } => format!("authorization ({scheme})"),
        };
        f.debug_struct("HttpConfig")
            .field("source", &self.source)
            .field("auth", &auth)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl HttpConfig {
    /// No credentials; HTTPS verified against the system's trusted CAs.
    pub fn none() -> Result<HttpConfig, HttpConfigError> {
        build(RawFile::default(), Path::new("."), None)
    }

    /// Read and check the file at `path`. Relative paths in it are relative to its
    /// directory, as in Prometheus.
    pub fn load(path: &Path) -> Result<HttpConfig, HttpConfigError> {
        let text = read_bounded(path, MAX_FILE, "file")
            .map_err(|e| err(format!("{}: {e}", path.display())))?;
        let value: serde_yaml_ng::Value = serde_yaml_ng::from_slice(&text)
            .map_err(|e| err(format!("{}: not valid YAML: {e}", path.display())))?;
        let raw = if value.is_null() {
            RawFile::default()
        } else {
            serde_yaml_ng::from_slice(&text).map_err(|e| err(format!("{}: {e}", path.display())))?
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        build(raw, dir, Some(path.to_path_buf()))
            .map_err(|e| err(format!("{}: {e}", path.display())))
    }

    /// The rustls client config (CA, client certificate, versions).
    pub fn tls(&self) -> Arc<ClientConfig> {
        self.tls.clone()
    }

    /// `tls_config.server_name`: the name the server's certificate must carry, when it
    /// is not the URL's host.
    pub fn server_name(&self) -> Option<&ServerName<'static>> {
        self.server_name.as_ref()
    }

    /// The `Authorization` header value for the next request, if any; secret files are
    /// read now. The value is marked sensitive so that hyper never logs it.
    pub fn authorization(&self) -> Result<Option<hyper::header::HeaderValue>, HttpConfigError> {
        let text = match &self.auth {
            Auth::None => return Ok(None),
            Auth::Basic { username, password } => {
                let pw = match password {
                    Some(p) => p.get("basic_auth.password_file")?,
                    None => Secret::default(),
                };
                let raw = format!("{username}:{}", pw.expose());
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )
            }
            Auth::Token {
                scheme,
                credentials,
            } => {
                let c = credentials.get("authorization.credentials_file")?;
                format!("{scheme} {}", c.expose())
            }
        };
        let mut v = hyper::header::HeaderValue::from_str(&text).map_err(|_| {
            err("the credentials contain characters an HTTP header cannot carry (a newline?)")
        })?;
        v.set_sensitive(true);
        Ok(Some(v))
    }
}

/// Read at most `limit` bytes of `path`; a longer file is an error, not truncated.
fn read_bounded(path: &Path, limit: u64, field: &str) -> Result<Vec<u8>, HttpConfigError> {
    let f =
        std::fs::File::open(path).map_err(|e| err(format!("{field}: {}: {e}", path.display())))?;
    let mut buf = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| err(format!("{field}: {}: {e}", path.display())))?;
    if buf.len() as u64 > limit {
        return Err(err(format!(
            "{field}: {}: larger than {limit} bytes",
            path.display()
        )));
    }
    Ok(buf)
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Inline value or file, never both.
fn one_of<'a>(
    inline: Option<&'a str>,
    file: Option<&'a str>,
    inline_name: &str,
    file_name: &str,
) -> Result<Option<Result<&'a str, &'a str>>, HttpConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(err(format!(
            "{inline_name} and {file_name} are both set; use one"
        ))),
        (Some(i), None) => Ok(Some(Ok(i))),
        (None, Some(f)) => Ok(Some(Err(f))),
        (None, None) => Ok(None),
    }
}

fn build(raw: RawFile, dir: &Path, source: Option<PathBuf>) -> Result<HttpConfig, HttpConfigError> {
    for (name, set) in [
        ("oauth2", raw.oauth2.is_some()),
        ("proxy_url", raw.proxy_url.is_some()),
        ("no_proxy", raw.no_proxy.is_some()),
        (
            "proxy_from_environment",
            raw.proxy_from_environment.is_some(),
        ),
        ("proxy_connect_header", raw.proxy_connect_header.is_some()),
        ("http_headers", raw.http_headers.is_some()),
    ] {
        if set {
            return Err(err(format!(
                "{name} is not supported by nsexporter's Alertmanager client; use tls_config, \
                 basic_auth or authorization"
            )));
        }
    }
    let path = |name: &str| dir.join(name);
    let secret_inline = |s: &Option<Secret>| s.as_ref().filter(|s| !s.0.is_empty()).cloned();

    let bearer = match (
        secret_inline(&raw.bearer_token),
        nonempty(&raw.bearer_token_file),
    ) {
        (Some(_), Some(_)) => {
            return Err(err(
                "bearer_token and bearer_token_file are both set; use one",
            ))
        }
        (Some(s), None) => Some(SecretSource::Inline(s)),
        (None, Some(f)) => Some(SecretSource::File(path(f))),
        (None, None) => None,
    };
    let mut auth = Auth::None;
    let mut chosen: Vec<&str> = Vec::new();
    if let Some(b) = &raw.basic_auth {
        chosen.push("basic_auth");
        let username = match one_of(
            nonempty(&b.username),
            nonempty(&b.username_file),
            "basic_auth.username",
            "basic_auth.username_file",
        )? {
            Some(Ok(u)) => u.to_string(),
            Some(Err(f)) => {
                let bytes = read_bounded(&path(f), MAX_SECRET_FILE, "basic_auth.username_file")?;
                String::from_utf8(bytes)
                    .map_err(|_| err("basic_auth.username_file: not UTF-8"))?
                    .trim()
                    .to_string()
            }
            None => return Err(err("basic_auth: username (or username_file) is missing")),
        };
        if username.contains(':') {
            return Err(err(
                "basic_auth.username contains ':', which basic auth cannot carry",
            ));
        }
        let password = match (secret_inline(&b.password), nonempty(&b.password_file)) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "basic_auth.password and basic_auth.password_file are both set; use one",
                ))
            }
            (Some(s), None) => Some(SecretSource::Inline(s)),
            (None, Some(f)) => Some(SecretSource::File(path(f))),
            (None, None) => None,
        };
        auth = Auth::Basic { username, password };
    }
    if let Some(a) = &raw.authorization {
        chosen.push("authorization");
        let scheme = nonempty(&a.kind).unwrap_or("Bearer").to_string();
        if scheme.eq_ignore_ascii_case("basic") {
            return Err(err(
                "authorization.type cannot be Basic; use basic_auth instead",
            ));
        }
        if !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(err(format!(
                "authorization.type {scheme:?} is not a valid scheme name"
            )));
        }
        let credentials = match (secret_inline(&a.credentials), nonempty(&a.credentials_file)) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "authorization.credentials and authorization.credentials_file are both set; use one",
                ))
            }
            (Some(s), None) => SecretSource::Inline(s),
            (None, Some(f)) => SecretSource::File(path(f)),
            (None, None) => {
                return Err(err(
                    "authorization: credentials (or credentials_file) is missing",
                ))
            }
        };
        auth = Auth::Token {
            scheme,
            credentials,
        };
    }
    if let Some(b) = bearer {
        chosen.push("bearer_token");
        auth = Auth::Token {
            scheme: "Bearer".into(),
            credentials: b,
        };
    }
    if chosen.len() > 1 {
        return Err(err(format!(
            "{} are set; at most one of basic_auth, authorization and bearer_token may be",
            chosen.join(" and ")
        )));
    }
    // A secret file that cannot be read now will not be readable for the first
    // request either: say so at startup.
    match &auth {
        Auth::Basic {
            password: Some(p), ..
        } => {
            p.get("basic_auth.password_file")?;
        }
        Auth::Token { credentials, .. } => {
            credentials.get("authorization.credentials_file")?;
        }
        _ => {}
    }

    let tls = raw.tls_config.unwrap_or_default();
    let (tls_config, server_name) = build_tls(&tls, dir)?;
    Ok(HttpConfig {
        auth,
        tls: Arc::new(tls_config),
        server_name,
        source,
    })
}

fn pem(
    inline: Option<&str>,
    file: Option<&str>,
    what: &str,
    dir: &Path,
) -> Result<Option<Vec<u8>>, HttpConfigError> {
    let inline_name = format!("tls_config.{what}");
    let file_name = format!("tls_config.{what}_file");
    Ok(match one_of(inline, file, &inline_name, &file_name)? {
        Some(Ok(text)) => Some(text.as_bytes().to_vec()),
        Some(Err(f)) => Some(read_bounded(&dir.join(f), MAX_FILE, &file_name)?),
        None => None,
    })
}

fn parse_version(
    field: &str,
    v: Option<&str>,
) -> Result<Option<&'static rustls::SupportedProtocolVersion>, HttpConfigError> {
    match v {
        None => Ok(None),
        Some("TLS12") => Ok(Some(&rustls::version::TLS12)),
        Some("TLS13") => Ok(Some(&rustls::version::TLS13)),
        Some(s @ ("TLS10" | "TLS11")) => Err(err(format!(
            "tls_config.{field}: {s} is not supported (TLS 1.0 and 1.1 are insecure); use TLS12 or TLS13"
        ))),
        Some(s) => Err(err(format!(
            "tls_config.{field}: unknown TLS version {s:?}; use TLS12 or TLS13"
        ))),
    }
}

fn build_tls(
    t: &RawTls,
    dir: &Path,
) -> Result<(ClientConfig, Option<ServerName<'static>>), HttpConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let min = parse_version("min_version", nonempty(&t.min_version))?;
    let max = parse_version("max_version", nonempty(&t.max_version))?;
    let rank = |v: &rustls::SupportedProtocolVersion| {
        if v.version == rustls::ProtocolVersion::TLSv1_3 {
            13
        } else {
            12
        }
    };
    let lo = min.map(rank).unwrap_or(12);
    let hi = max.map(rank).unwrap_or(13);
    if lo > hi {
        return Err(err("tls_config: min_version is higher than max_version"));
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [&rustls::version::TLS12, &rustls::version::TLS13]
            .into_iter()
            .filter(|v| (lo..=hi).contains(&rank(v)))
            .collect();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| err(format!("tls_config: {e}")))?;

    let ca = pem(nonempty(&t.ca), nonempty(&t.ca_file), "ca", dir)?;
    let mut roots = RootCertStore::empty();
    match &ca {
        Some(bytes) => {
            for c in CertificateDer::pem_slice_iter(bytes) {
                let c = c.map_err(|e| err(format!("tls_config.ca_file: {e}")))?;
                roots
                    .add(c)
                    .map_err(|e| err(format!("tls_config.ca_file: {e}")))?;
            }
            if roots.is_empty() {
                return Err(err(
                    "tls_config.ca_file: no PEM certificate (-----BEGIN CERTIFICATE-----) found",
                ));
            }
        }
        None => {
            // The system's trusted CAs, as Prometheus uses. A system without any still
            // works for plain-HTTP URLs; an HTTPS one then fails with a TLS error.
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = roots.add(c);
            }
        }
    }
    let builder = if t.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider.clone())))
    } else {
        builder.with_root_certificates(roots)
    };

    let key_inline = t
        .key
        .as_ref()
        .map(|k| k.expose().trim())
        .filter(|k| !k.is_empty());
    let cert = pem(nonempty(&t.cert), nonempty(&t.cert_file), "cert", dir)?;
    let key = pem(key_inline, nonempty(&t.key_file), "key", dir)?;
    let cfg = match (cert, key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => return Err(err(
            "tls_config: cert_file is set but key_file is missing; a client certificate needs both",
        )),
        (None, Some(_)) => return Err(err(
            "tls_config: key_file is set but cert_file is missing; a client certificate needs both",
        )),
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert)
                .collect::<Result<_, _>>()
                .map_err(|e| err(format!("tls_config.cert_file: {e}")))?;
            if chain.is_empty() {
                return Err(err(
                    "tls_config.cert_file: no PEM certificate (-----BEGIN CERTIFICATE-----) found",
                ));
            }
            // The key's parse error never quotes the key.
            let key = PrivateKeyDer::from_pem_slice(&key)
                .map_err(|_| err("tls_config.key_file: no usable PEM private key found"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| err(format!("tls_config: certificate and key do not match: {e}")))?
        }
    };
    let server_name = match nonempty(&t.server_name) {
        None => None,
        Some(n) => Some(
            ServerName::try_from(n.to_string())
                .map_err(|_| err(format!("tls_config.server_name: {n:?} is not a valid name")))?,
        ),
    };
    Ok((cfg, server_name))
}

/// `insecure_skip_verify`: any server certificate is accepted, but the handshake's
/// signatures are still checked, so the connection is encrypted to whoever holds the
/// key of the certificate presented.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(dir: &Path, yaml: &str) -> Result<HttpConfig, HttpConfigError> {
        let p = dir.join("http.yml");
        std::fs::write(&p, yaml).unwrap();
        HttpConfig::load(&p)
    }

    fn auth_header(c: &HttpConfig) -> Option<String> {
        c.authorization()
            .unwrap()
            .map(|v| v.to_str().unwrap().to_string())
    }

    #[test]
    fn auth_forms_give_the_header_prometheus_would_send() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(auth_header(&load_str(d, "").unwrap()), None);
        let c = load_str(d, "basic_auth:\n  username: am\n  password: s3cret\n").unwrap();
        // base64("am:s3cret")
        assert_eq!(auth_header(&c).as_deref(), Some("Basic YW06czNjcmV0"));
        std::fs::write(d.join("pw"), "fromfile\n").unwrap();
        let c = load_str(d, "basic_auth:\n  username: am\n  password_file: pw\n").unwrap();
        assert_eq!(auth_header(&c).as_deref(), Some("Basic YW06ZnJvbWZpbGU="));
        // Rotated on disk: the next request uses the new one.
        std::fs::write(d.join("pw"), "rotated").unwrap();
        assert_eq!(auth_header(&c).as_deref(), Some("Basic YW06cm90YXRlZA=="));
        let c = load_str(d, "authorization:\n  credentials: tok\n").unwrap();
        assert_eq!(auth_header(&c).as_deref(), Some("Bearer tok"));
        let c = load_str(d, "authorization:\n  type: Token\n  credentials_file: pw\n").unwrap();
        assert_eq!(auth_header(&c).as_deref(), Some("Token rotated"));
        let c = load_str(d, "bearer_token: abc\n").unwrap();
        assert_eq!(auth_header(&c).as_deref(), Some("Bearer abc"));
        let c = load_str(d, "bearer_token_file: pw\n").unwrap();
        assert_eq!(auth_header(&c).as_deref(), Some("Bearer rotated"));
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let cases: &[(&str, &str)] = &[
            ("basic_auth: [", "not valid YAML"),
            ("bogus: 1\n", "unknown field `bogus`"),
            ("oauth2: {}\n", "oauth2 is not supported"),
            (
                "basic_auth:\n  password: x\n",
                "username (or username_file) is missing",
            ),
            (
                "basic_auth:\n  username: a\n  password: x\nauthorization:\n  credentials: y\n",
                "basic_auth and authorization are set",
            ),
            (
                "authorization:\n  type: Basic\n  credentials: y\n",
                "use basic_auth",
            ),
            (
                "authorization:\n  credentials_file: nope\n",
                "credentials_file",
            ),
            (
                "tls_config:\n  ca_file: missing.pem\n",
                "tls_config.ca_file",
            ),
            ("tls_config:\n  ca: not a cert\n", "no PEM certificate"),
            ("tls_config:\n  cert_file: c.pem\n", "key_file is missing"),
            ("tls_config:\n  min_version: TLS11\n", "insecure"),
            (
                "tls_config:\n  min_version: TLS13\n  max_version: TLS12\n",
                "higher than max_version",
            ),
        ];
        std::fs::write(d.join("c.pem"), "x").unwrap();
        for (yaml, want) in cases {
            let e = load_str(d, yaml).unwrap_err().to_string();
            assert!(e.contains(want), "{yaml:?}: {e}");
            assert!(e.contains("http.yml"), "names the file: {e}");
        }
        let e = HttpConfig::load(&d.join("absent.yml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("absent.yml") && e.contains("No such file"),
            "{e}"
        );
        // Size-bounded.
        std::fs::write(d.join("big"), vec![b'a'; (MAX_SECRET_FILE + 1) as usize]).unwrap();
        let e = load_str(d, "bearer_token_file: big\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("larger than"), "{e}");
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let dir = tempfile::tempdir().unwrap();
        let c = load_str(
            dir.path(),
            "basic_auth:\n  username: am\n  password: hunter2\n",
        )
        .unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("am"), "{dbg}");
        let c = load_str(dir.path(), "authorization:\n  credentials: tok-xyz\n").unwrap();
        assert!(!format!("{c:?}").contains("tok-xyz"));
        let raw: RawFile =
            serde_yaml_ng::from_str("tls_config:\n  key: KEYMATERIAL\nbearer_token: BT\n").unwrap();
        let dbg = format!("{raw:?}");
        assert!(
            !dbg.contains("KEYMATERIAL") && !dbg.contains("BT\""),
            "{dbg}"
        );
    }

    #[test]
    fn client_certificate_and_ca_are_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ca = rcgen::generate_simple_self_signed(vec!["am.test".into()]).unwrap();
        std::fs::write(d.join("ca.pem"), ca.cert.pem()).unwrap();
        std::fs::write(d.join("cert.pem"), ca.cert.pem()).unwrap();
        std::fs::write(d.join("key.pem"), ca.signing_key.serialize_pem()).unwrap();
        let c = load_str(
            d,
            "tls_config:\n  ca_file: ca.pem\n  cert_file: cert.pem\n  key_file: key.pem\n  server_name: am.test\n",
        )
        .unwrap();
        assert!(c.tls().client_auth_cert_resolver.has_certs());
        assert_eq!(
            c.server_name(),
            Some(&ServerName::try_from("am.test").unwrap())
        );
        // A key that is not the certificate's.
        let other = rcgen::generate_simple_self_signed(vec!["x".into()]).unwrap();
        std::fs::write(d.join("key.pem"), other.signing_key.serialize_pem()).unwrap();
        let e = load_str(
            d,
            "tls_config:\n  cert_file: cert.pem\n  key_file: key.pem\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("do not match"), "{e}");
    }
}
