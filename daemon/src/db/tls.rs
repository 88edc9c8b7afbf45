//! TLS to PostgreSQL with rustls, with libpq's `sslmode` semantics: `disable` never;
//! `prefer` (the default) TLS when the server offers it, plaintext only when it refuses;
//! `require` encryption without checking the certificate, unless a root certificate is
//! given (or ~/.postgresql/root.crt exists), then as `verify-ca`; `verify-ca` the chain;
//! `verify-full` the chain and the host name. tokio-postgres knows only disable, prefer and
//! require: the verification is the rustls verifier's.

use anyhow::{bail, Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres_rustls::MakeRustlsConnect;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(text: &str) -> Result<SslMode> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => bail!("sslmode \"allow\" is not supported: use \"prefer\" (TLS when the server offers it) or \"disable\""),
            other => bail!("invalid sslmode {other:?}: disable, prefer, require, verify-ca or verify-full"),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// What tokio-postgres is asked for: whether to try TLS and whether it must succeed.
    pub fn driver(self) -> tokio_postgres::config::SslMode {
        match self {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        }
    }
}

/// How the server's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verify {
    /// Encryption only (require/prefer without a root certificate).
    Nothing,
    /// The chain up to these roots, not the host name.
    Chain(Roots),
    /// The chain and the host name.
    Full(Roots),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    File(PathBuf),
    /// `sslrootcert=system`: the operating system's trusted roots.
    System,
}

/// The TLS settings of a connection, from the libpq keywords.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    pub verify: Verify,
    /// Client certificate and key files.
    pub client: Option<(PathBuf, PathBuf)>,
}

impl TlsSettings {
    /// From `sslmode`, `sslrootcert`, `sslcert`, `sslkey` (already merged from flags, service
    /// and environment) and libpq's defaults under ~/.postgresql (`home`).
    pub fn from_params(
        params: &super::conninfo::Params,
        home: Option<&Path>,
    ) -> Result<TlsSettings> {
        let mode = SslMode::parse(params.get("sslmode").map(String::as_str).unwrap_or("prefer"))?;
        let default_file = |name: &str| home.map(|h| h.join(".postgresql").join(name));
        let root = match params.get("sslrootcert") {
            Some(s) if s == "system" => Some(Roots::System),
            Some(path) => Some(Roots::File(PathBuf::from(path))),
            None => default_file("root.crt").filter(|p| p.exists()).map(Roots::File),
        };
        let verify = match (mode, root) {
            (SslMode::Disable, _) => Verify::Nothing,
            (SslMode::VerifyFull, Some(roots)) => Verify::Full(roots),
            (SslMode::VerifyCa, Some(roots)) => Verify::Chain(roots),
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => bail!(
                "sslmode={} needs a root certificate: set sslrootcert (or PGSSLROOTCERT) to the CA's file, \
                 use sslrootcert=system for the system's trusted roots, or create ~/.postgresql/root.crt",
                mode.name()
            ),
            // libpq verifies the chain whenever a root certificate is at hand.
            (_, Some(roots)) => Verify::Chain(roots),
            (_, None) => Verify::Nothing,
        };
        let cert = params
            .get("sslcert")
            .map(PathBuf::from)
            .or_else(|| default_file("postgresql.crt").filter(|p| p.exists()));
        let client = match cert {
            Some(cert) => {
                let key = params
                    .get("sslkey")
                    .map(PathBuf::from)
                    .or_else(|| default_file("postgresql.key"));
                let key = key.with_context(|| {
                    format!("sslcert {} is given without sslkey", cert.display())
                })?;
                Some((cert, key))
            }
            None => None,
        };
        Ok(TlsSettings { mode, verify, client })
    }

    /// One line for logs and check-config: the mode and what is verified.
    pub fn describe(&self) -> String {
        let what = match &self.verify {
            _ if self.mode == SslMode::Disable => "no TLS".to_string(),
            Verify::Nothing => "encryption, certificate not verified".to_string(),
            Verify::Chain(r) => format!("certificate chain verified against {}", r.describe()),
            Verify::Full(r) => {
                format!("certificate chain and host name verified against {}", r.describe())
            }
        };
        let offered =
            if self.mode == SslMode::Prefer { "TLS if the server offers it: " } else { "" };
        format!("sslmode={} ({offered}{what})", self.mode.name())
    }

    /// The rustls connector for these settings (it reads the certificate files).
    pub fn connector(&self) -> Result<Connector> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?;
        let verifier: Arc<dyn ServerCertVerifier> = match &self.verify {
            Verify::Nothing => Arc::new(Partial { chain: None, provider: provider.clone() }),
            Verify::Chain(roots) => Arc::new(Partial {
                chain: Some(webpki(roots, &provider)?),
                provider: provider.clone(),
            }),
            Verify::Full(roots) => webpki(roots, &provider)?,
        };
        let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
        let config = match &self.client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let certs = CertificateDer::pem_file_iter(cert)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .with_context(|| {
                        format!("cannot read the client certificate {}", cert.display())
                    })?;
                check_key_permissions(key)?;
                let key_der = PrivateKeyDer::from_pem_file(key)
                    .with_context(|| format!("cannot read the client key {}", key.display()))?;
                builder
                    .with_client_auth_cert(certs, key_der)
                    .context("the client certificate does not match its key")?
            }
        };
        Ok(Connector {
            inner: MakeRustlsConnect::new(config),
            used: Arc::new(AtomicBool::new(false)),
        })
    }
}

impl Roots {
    fn describe(&self) -> String {
        match self {
            Roots::File(p) => p.display().to_string(),
            Roots::System => "the system's trusted roots".into(),
        }
    }
}

/// libpq refuses a private key that others can read (unless root owns it, 0640 at most).
fn check_key_permissions(key: &Path) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(key)
        .with_context(|| format!("cannot read the client key {}", key.display()))?;
    let mode = meta.permissions().mode();
    let too_open = if meta.uid() == 0 { mode & 0o137 != 0 } else { mode & 0o077 != 0 };
    if too_open {
        bail!(
            "private key file {} has group or world access; it must be u=rw (0600) or less if owned by the current user, \
             or u=rw,g=r (0640) or less if owned by root",
            key.display()
        );
    }
    Ok(())
}

fn webpki(roots: &Roots, provider: &Arc<CryptoProvider>) -> Result<Arc<WebPkiServerVerifier>> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .with_context(|| {
                    format!("cannot read the root certificate file {}", path.display())
                })?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                bail!("no usable certificate in the root certificate file {}", path.display());
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                bail!("sslrootcert=system: no trusted root certificates found on this system");
            }
        }
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
        .build()
        .context("cannot build the certificate verifier")
}

/// The checks below verify-full. verify-ca (`chain`): the chain must lead to a trusted root,
/// the name in it is not compared. require/prefer without a root certificate (no `chain`):
/// encrypted, the certificate not checked. The handshake's signatures are checked either way
/// (as the webpki verifier does, with the same provider), so the session key belongs to
/// whoever holds the certificate.
#[derive(Debug)]
struct Partial {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Partial {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        // The name is checked after the chain: a name error means the chain was valid.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// tokio-postgres's TLS hook over tokio-postgres-rustls that also records whether a TLS
/// session was established (with `prefer` the server may have refused).
#[derive(Clone)]
pub struct Connector {
    inner: MakeRustlsConnect,
    used: Arc<AtomicBool>,
}

impl Connector {
    /// Whether the last connection made with this connector is encrypted.
    pub fn used(&self) -> bool {
        self.used.load(Ordering::Relaxed)
    }
}

pub type Stream = <MakeRustlsConnect as MakeTlsConnect<tokio_postgres::Socket>>::Stream;

impl MakeTlsConnect<tokio_postgres::Socket> for Connector {
    type Stream = Stream;
    type TlsConnect = Connect;
    type Error = std::convert::Infallible;

    fn make_tls_connect(&mut self, hostname: &str) -> Result<Connect, Self::Error> {
        // verify-ca and require do not compare names; a Unix socket or hostaddr has none.
        let name = if hostname.is_empty() { "localhost" } else { hostname };
        let inner =
            MakeTlsConnect::<tokio_postgres::Socket>::make_tls_connect(&mut self.inner, name)?;
        Ok(Connect { inner, used: self.used.clone() })
    }
}

pub struct Connect {
    inner: <MakeRustlsConnect as MakeTlsConnect<tokio_postgres::Socket>>::TlsConnect,
    used: Arc<AtomicBool>,
}

impl TlsConnect<tokio_postgres::Socket> for Connect {
    type Stream = Stream;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, std::io::Error>> + Send>>;

    fn connect(self, stream: tokio_postgres::Socket) -> Self::Future {
        let used = self.used;
        let handshake = self.inner.connect(stream);
        Box::pin(async move {
            let stream = handshake.await?;
            used.store(true, Ordering::Relaxed);
            Ok(stream)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::conninfo::parse;
    use super::*;

    fn settings(conninfo: &str, home: Option<&Path>) -> Result<TlsSettings> {
        TlsSettings::from_params(&parse(conninfo)?, home)
    }

    #[test]
    fn modes_map_to_libpq_verification() {
        let no_home = None;
        assert_eq!(settings("", no_home).unwrap().mode, SslMode::Prefer);
        assert_eq!(settings("sslmode=require", no_home).unwrap().verify, Verify::Nothing);
        let ca = Roots::File("/ca.pem".into());
        assert_eq!(
            settings("sslmode=require sslrootcert=/ca.pem", no_home).unwrap().verify,
            Verify::Chain(ca.clone())
        );
        assert_eq!(
            settings("sslmode=verify-ca sslrootcert=/ca.pem", no_home).unwrap().verify,
            Verify::Chain(ca.clone())
        );
        assert_eq!(
            settings("sslmode=verify-full sslrootcert=/ca.pem", no_home).unwrap().verify,
            Verify::Full(ca)
        );
        assert_eq!(
            settings("sslmode=verify-full sslrootcert=system", no_home).unwrap().verify,
            Verify::Full(Roots::System)
        );
        assert_eq!(
            settings("sslmode=disable sslrootcert=/ca.pem", no_home).unwrap().verify,
            Verify::Nothing
        );
        let err = settings("sslmode=verify-full", no_home).unwrap_err().to_string();
        assert!(err.contains("needs a root certificate"), "{err}");
        assert!(settings("sslmode=allow", no_home)
            .unwrap_err()
            .to_string()
            .contains("not supported"));
    }

    #[test]
    fn root_crt_under_home_turns_require_into_verify_ca() {
        let home = std::env::temp_dir().join(format!("pitstop-tls-home-{}", std::process::id()));
        std::fs::create_dir_all(home.join(".postgresql")).unwrap();
        assert_eq!(settings("sslmode=require", Some(&home)).unwrap().verify, Verify::Nothing);
        let root = home.join(".postgresql/root.crt");
        std::fs::write(&root, "").unwrap();
        assert_eq!(
            settings("sslmode=require", Some(&home)).unwrap().verify,
            Verify::Chain(Roots::File(root.clone()))
        );
        assert_eq!(
            settings("sslmode=verify-full", Some(&home)).unwrap().verify,
            Verify::Full(Roots::File(root))
        );
        std::fs::remove_dir_all(&home).unwrap();
    }

    #[test]
    fn driver_modes() {
        assert_eq!(SslMode::VerifyFull.driver(), tokio_postgres::config::SslMode::Require);
        assert_eq!(SslMode::Prefer.driver(), tokio_postgres::config::SslMode::Prefer);
        assert_eq!(SslMode::Disable.driver(), tokio_postgres::config::SslMode::Disable);
    }
}
