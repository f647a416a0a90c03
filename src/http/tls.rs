//! TLS from the web config: the certificate and key, client certificates (checked
//! against a CA or only asked for), protocol versions, cipher suites and curves, built
//! into a rustls `ServerConfig`.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
    SupportedCipherSuite,
};

use super::webconfig::{err, Inputs, RawTls, WebConfigError};

/// Inline PEM (`cert`) or a file (`cert_file`), never both.
fn pem_source<'a>(
    inline: Option<&'a String>,
    file: Option<&'a Vec<u8>>,
    inline_name: &str,
    file_name: &str,
) -> Result<Option<&'a [u8]>, WebConfigError> {
    match (inline.filter(|s| !s.is_empty()), file) {
        (Some(_), Some(_)) => Err(err(format!(
            "tls_server_config: {inline_name} and {file_name} are both set; use one"
        ))),
        (Some(s), None) => Ok(Some(s.as_bytes())),
        (None, Some(b)) => Ok(Some(b.as_slice())),
        (None, None) => Ok(None),
    }
}

fn parse_version(
    field: &str,
    v: Option<&String>,
    default: &'static rustls::SupportedProtocolVersion,
) -> Result<&'static rustls::SupportedProtocolVersion, WebConfigError> {
    match v.map(|s| s.trim()) {
        None | Some("") => Ok(default),
        Some("TLS12") => Ok(&rustls::version::TLS12),
        Some("TLS13") => Ok(&rustls::version::TLS13),
        Some(s @ ("TLS10" | "TLS11")) => Err(err(format!(
            "tls_server_config.{field}: {s} is not supported (TLS 1.0 and 1.1 are insecure); use TLS12 or TLS13"
        ))),
        Some(s) => Err(err(format!(
            "tls_server_config.{field}: unknown TLS version {s:?}; use TLS12 or TLS13"
        ))),
    }
}

fn version_rank(v: &rustls::SupportedProtocolVersion) -> u8 {
    if v.version == rustls::ProtocolVersion::TLSv1_3 {
        13
    } else {
        12
    }
}

/// Go spells one suite two ways; the rest match the IANA names rustls uses.
fn canonical_suite_name(name: &str) -> String {
    match name {
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => {
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256".into()
        }
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => {
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256".into()
        }
        other => other.to_string(),
    }
}

fn suite_name(s: &SupportedCipherSuite) -> String {
    s.suite()
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:?}", s.suite()))
}

pub(super) fn build_tls(
    t: &RawTls,
    inputs: &Inputs,
) -> Result<(ServerConfig, &'static str), WebConfigError> {
    let cert_pem = pem_source(t.cert.as_ref(), inputs.cert.as_ref(), "cert", "cert_file")?
        .ok_or_else(|| err("tls_server_config: cert_file (or cert) is missing"))?;
    let key_pem = pem_source(t.key.as_ref(), inputs.key.as_ref(), "key", "key_file")?
        .ok_or_else(|| err("tls_server_config: key_file (or key) is missing"))?;
    let ca_pem = pem_source(
        t.client_ca.as_ref(),
        inputs.client_ca.as_ref(),
        "client_ca",
        "client_ca_file",
    )?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| err(format!("tls_server_config.cert_file: {e}")))?;
    if certs.is_empty() {
        return Err(err(
            "tls_server_config.cert_file: no PEM certificate (-----BEGIN CERTIFICATE-----) found",
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
        err(format!(
            "tls_server_config.key_file: no usable private key: {e}"
        ))
    })?;

    let min = parse_version(
        "min_version",
        t.min_version.as_ref(),
        &rustls::version::TLS12,
    )?;
    let max = parse_version(
        "max_version",
        t.max_version.as_ref(),
        &rustls::version::TLS13,
    )?;
    if version_rank(min) > version_rank(max) {
        return Err(err(
            "tls_server_config: min_version is higher than max_version",
        ));
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [&rustls::version::TLS12, &rustls::version::TLS13]
            .into_iter()
            .filter(|v| (version_rank(min)..=version_rank(max)).contains(&version_rank(v)))
            .collect();

    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(names) = t.cipher_suites.as_ref().filter(|n| !n.is_empty()) {
        // As in Go, the list orders the TLS 1.2 suites; TLS 1.3 suites are not configurable.
        let all = provider.cipher_suites.clone();
        let mut chosen: Vec<SupportedCipherSuite> = all
            .iter()
            .filter(|s| matches!(s, SupportedCipherSuite::Tls13(_)))
            .copied()
            .collect();
        for name in names {
            let want = canonical_suite_name(name.trim());
            let found = all
                .iter()
                .find(|s| matches!(s, SupportedCipherSuite::Tls12(_)) && suite_name(s) == want);
            match found {
                Some(s) => chosen.push(*s),
                None => {
                    let supported: Vec<String> = all
                        .iter()
                        .filter(|s| matches!(s, SupportedCipherSuite::Tls12(_)))
                        .map(suite_name)
                        .collect();
                    return Err(err(format!(
                        "tls_server_config.cipher_suites: {name:?} is not supported; supported: {}",
                        supported.join(", ")
                    )));
                }
            }
        }
        provider.cipher_suites = chosen;
    }
    if let Some(curves) = t.curve_preferences.as_ref().filter(|c| !c.is_empty()) {
        let all = provider.kx_groups.clone();
        let mut chosen = Vec::new();
        for c in curves {
            let group = match c.trim() {
                "X25519" => Some(rustls::NamedGroup::X25519),
                "CurveP256" => Some(rustls::NamedGroup::secp256r1),
                "CurveP384" => Some(rustls::NamedGroup::secp384r1),
                _ => None,
            };
            match group.and_then(|g| all.iter().find(|k| k.name() == g)) {
                Some(k) => chosen.push(*k),
                None => {
                    return Err(err(format!(
                        "tls_server_config.curve_preferences: {c:?} is not supported; supported: X25519, CurveP256, CurveP384"
                    )))
                }
            }
        }
        provider.kx_groups = chosen;
    }
    let provider = Arc::new(provider);

    if t.client_allowed_sans
        .as_ref()
        .is_some_and(|s| !s.is_empty())
    {
        return Err(err(
            "tls_server_config.client_allowed_sans is not supported by nsexporter; \
             issue client certificates from a dedicated CA instead",
        ));
    }
    let auth_type = t
        .client_auth_type
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("NoClientCert");
    let roots = || -> Result<Arc<RootCertStore>, WebConfigError> {
        let pem = ca_pem.ok_or_else(|| {
            err(format!(
                "tls_server_config: client_auth_type {auth_type} needs client_ca_file (or client_ca)"
            ))
        })?;
        let mut store = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(pem) {
            let c = c.map_err(|e| err(format!("tls_server_config.client_ca_file: {e}")))?;
            store
                .add(c)
                .map_err(|e| err(format!("tls_server_config.client_ca_file: {e}")))?;
        }
        if store.is_empty() {
            return Err(err(
                "tls_server_config.client_ca_file: no PEM certificate found",
            ));
        }
        Ok(Arc::new(store))
    };
    let (verifier, auth_name): (Arc<dyn ClientCertVerifier>, &'static str) = match auth_type {
        "NoClientCert" => {
            if ca_pem.is_some() {
                return Err(err(
                    "tls_server_config: client_ca_file is set but client_auth_type is NoClientCert; \
                     set client_auth_type: RequireAndVerifyClientCert",
                ));
            }
            (WebPkiClientVerifier::no_client_auth(), "NoClientCert")
        }
        "RequestClientCert" => (
            Arc::new(AnyClientCert::new(false, &provider)),
            "RequestClientCert",
        ),
        "RequireAnyClientCert" => (
            Arc::new(AnyClientCert::new(true, &provider)),
            "RequireAnyClientCert",
        ),
        "VerifyClientCertIfGiven" => (
            WebPkiClientVerifier::builder_with_provider(roots()?, provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| err(format!("tls_server_config.client_ca_file: {e}")))?,
            "VerifyClientCertIfGiven",
        ),
        "RequireAndVerifyClientCert" => (
            WebPkiClientVerifier::builder_with_provider(roots()?, provider.clone())
                .build()
                .map_err(|e| err(format!("tls_server_config.client_ca_file: {e}")))?,
            "RequireAndVerifyClientCert",
        ),
        other => {
            return Err(err(format!(
                "tls_server_config.client_auth_type: unknown {other:?}; one of NoClientCert, \
                 RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, \
                 RequireAndVerifyClientCert"
            )))
        }
    };
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| err(format!("tls_server_config: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| {
            err(format!(
                "tls_server_config: certificate and key do not work together: {e}"
            ))
        })?;
    cfg.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(true);
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((cfg, auth_name))
}

/// `RequestClientCert` / `RequireAnyClientCert`: a client certificate is asked for (and
/// required by the second) but not checked against any CA; only its possession is
/// proven by the handshake signature. Insecure by design, as in Go; for compatibility.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algs: WebPkiSupportedAlgorithms,
}

impl AnyClientCert {
    fn new(mandatory: bool, provider: &CryptoProvider) -> Self {
        AnyClientCert {
            mandatory,
            algs: provider.signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}
