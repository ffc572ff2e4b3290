//! TLS for PostgreSQL with rustls, following libpq's parameters so a URL that works
//! with `psql` works here: `sslmode` (disable, allow, prefer, require, verify-ca,
//! verify-full; libpq's default is prefer), `sslrootcert` (a PEM file, or `system` for
//! the public CA roots), `sslcert` and `sslkey` (a client certificate).
//!
//! As in libpq, `prefer` and `require` encrypt without checking who answers, unless
//! `sslrootcert` is given (then `require` checks the chain, as `verify-ca` does);
//! `verify-ca` checks the chain, `verify-full` the chain and the host name.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use strata_core::{DriverError, DriverErrorKind};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// What the connection string asks of TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tls {
    pub mode: Mode,
    pub root_cert: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Mode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Tls {
    /// Takes one of our parameters (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`);
    /// false for a parameter that is not ours.
    pub fn take(&mut self, key: &str, value: &str) -> Result<bool, DriverError> {
        match key {
            "sslmode" => {
                self.mode = match value {
                    "disable" => Mode::Disable,
                    // libpq's `allow` tries plaintext first; encrypting when the server
                    // offers it is never less safe.
                    "allow" | "prefer" => Mode::Prefer,
                    "require" => Mode::Require,
                    "verify-ca" => Mode::VerifyCa,
                    "verify-full" => Mode::VerifyFull,
                    other => {
                        return Err(DriverError::new(
                            DriverErrorKind::InvalidUrl,
                            format!(
                                "sslmode `{other}` is not one of disable, allow, prefer, require, verify-ca, verify-full"
                            ),
                        ))
                    }
                }
            }
            "sslrootcert" => self.root_cert = Some(value.into()),
            "sslcert" => self.cert = Some(value.into()),
            "sslkey" => self.key = Some(value.into()),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// tokio-postgres's mode: whether TLS is tried, and whether it is required.
    pub fn ssl_mode(&self) -> SslMode {
        match self.mode {
            Mode::Disable => SslMode::Disable,
            Mode::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        }
    }

    /// The connector for this mode.
    pub fn connector(&self) -> Result<MakeRustlsConnect, DriverError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(format!("TLS setup: {e}")))?;
        let root_file = self
            .root_cert
            .as_ref()
            .filter(|p| p.as_os_str() != "system");
        let verify = match self.mode {
            Mode::VerifyCa | Mode::VerifyFull => true,
            // libpq: with a root certificate, `require` checks the chain too.
            Mode::Require => root_file.is_some(),
            Mode::Disable | Mode::Prefer => false,
        };
        let verifier: Arc<dyn ServerCertVerifier> = if verify {
            let mut roots = RootCertStore::empty();
            match root_file {
                Some(path) => {
                    let certs = CertificateDer::pem_file_iter(path)
                        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                        .map_err(|e| tls_error(format!("sslrootcert {}: {e}", path.display())))?;
                    let (added, _) = roots.add_parsable_certificates(certs);
                    if added == 0 {
                        return Err(tls_error(format!(
                            "sslrootcert {} holds no certificate",
                            path.display()
                        )));
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| tls_error(format!("TLS setup: {e}")))?;
            if self.mode == Mode::VerifyFull {
                webpki
            } else {
                Arc::new(ChainOnly(webpki))
            }
        } else {
            Arc::new(Unverified(provider))
        };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| tls_error(format!("sslcert {}: {e}", cert.display())))?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| tls_error(format!("sslkey {}: {e}", key.display())))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| tls_error(format!("sslcert/sslkey: {e}")))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(tls_error(
                    "sslcert and sslkey go together: give both or neither".into(),
                ))
            }
        };
        Ok(MakeRustlsConnect::new(config))
    }

    /// What to change when the server's certificate did not verify.
    pub fn advice(&self) -> String {
        let against = match self
            .root_cert
            .as_ref()
            .filter(|p| p.as_os_str() != "system")
        {
            Some(p) => format!("the CA in sslrootcert ({})", p.display()),
            None => "the public CA roots (no sslrootcert given)".into(),
        };
        let name = if self.mode == Mode::VerifyFull {
            " and its name against the host in the URL"
        } else {
            ""
        };
        format!(
            "sslmode={} checks the server's certificate against {against}{name}: set sslrootcert to the \
             CA that signed it (`verify-ca` skips the name check), or sslmode=require to encrypt without verifying",
            match self.mode {
                Mode::VerifyFull => "verify-full",
                Mode::VerifyCa => "verify-ca",
                _ => "require",
            }
        )
    }
}

fn tls_error(message: String) -> DriverError {
    DriverError::new(DriverErrorKind::InvalidUrl, message)
}

/// `verify-ca`: the chain must lead to a trusted root; the name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
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
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer`/`require` without a root certificate: encrypted, whoever answers (libpq's
/// behaviour); the handshake's signatures are still checked.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
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
        verify_tls13_signature(
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

    #[test]
    fn libpq_modes_map_to_whether_tls_is_required() {
        let mut t = Tls::default();
        assert_eq!(t.ssl_mode(), SslMode::Prefer, "libpq's default");
        for (v, want) in [
            ("disable", SslMode::Disable),
            ("allow", SslMode::Prefer),
            ("require", SslMode::Require),
            ("verify-ca", SslMode::Require),
            ("verify-full", SslMode::Require),
        ] {
            assert!(t.take("sslmode", v).unwrap());
            assert_eq!(t.ssl_mode(), want, "{v}");
        }
        assert!(t.take("sslmode", "verify").is_err());
        assert!(!t.take("application_name", "x").unwrap());
    }

    #[test]
    fn a_certificate_without_its_key_is_refused() {
        let mut t = Tls::default();
        t.take("sslcert", "/nonexistent/client.crt").unwrap();
        let e = t.connector().err().expect("refused");
        assert!(e.message.contains("sslcert"), "{}", e.message);
    }
}
