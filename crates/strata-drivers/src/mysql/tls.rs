//! TLS for MySQL/MariaDB with rustls, following the `mysql` client's parameters:
//! `ssl-mode` (DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY; PREFERRED by
//! default, as in the client), `ssl-ca`, `ssl-cert` and `ssl-key`. As in the client,
//! PREFERRED and REQUIRED encrypt without checking who answers; VERIFY_CA checks the
//! chain, VERIFY_IDENTITY the chain and the host name.

use std::path::PathBuf;

use mysql_async::{ClientIdentity, SslOpts};
use strata_core::{DriverError, DriverErrorKind};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Mode {
    Disabled,
    #[default]
    Preferred,
    Required,
    VerifyCa,
    VerifyIdentity,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Tls {
    pub mode: Mode,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl Tls {
    /// Takes one of our URL parameters (`ssl-mode`, `ssl-ca`, `ssl-cert`, `ssl-key`, or
    /// the same with `_`); false for one that is not ours.
    pub fn take(&mut self, key: &str, value: &str) -> Result<bool, DriverError> {
        match key.replace('_', "-").to_ascii_lowercase().as_str() {
            "ssl-mode" => {
                self.mode = match value.to_ascii_uppercase().as_str() {
                    "DISABLED" => Mode::Disabled,
                    "PREFERRED" => Mode::Preferred,
                    "REQUIRED" => Mode::Required,
                    "VERIFY_CA" => Mode::VerifyCa,
                    "VERIFY_IDENTITY" => Mode::VerifyIdentity,
                    other => {
                        return Err(DriverError::new(
                            DriverErrorKind::InvalidUrl,
                            format!(
                                "ssl-mode `{other}` is not one of DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY"
                            ),
                        ))
                    }
                }
            }
            "ssl-ca" => self.ca = Some(value.into()),
            "ssl-cert" => self.cert = Some(value.into()),
            "ssl-key" => self.key = Some(value.into()),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The driver's TLS options for this mode (`None`: plaintext).
    pub fn ssl_opts(&self) -> Result<Option<SslOpts>, DriverError> {
        if self.mode == Mode::Disabled {
            return Ok(None);
        }
        let verify = matches!(self.mode, Mode::VerifyCa | Mode::VerifyIdentity);
        let mut opts = SslOpts::default()
            .with_danger_accept_invalid_certs(!verify)
            .with_danger_skip_domain_validation(self.mode != Mode::VerifyIdentity);
        if let Some(ca) = &self.ca {
            opts = opts.with_root_certs(vec![ca.clone().into()]);
        }
        match (&self.cert, &self.key) {
            (Some(c), Some(k)) => {
                opts = opts.with_client_identity(Some(ClientIdentity::new(
                    c.clone().into(),
                    k.clone().into(),
                )))
            }
            (None, None) => {}
            _ => {
                return Err(DriverError::new(
                    DriverErrorKind::InvalidUrl,
                    "ssl-cert and ssl-key go together: give both or neither",
                ))
            }
        }
        Ok(Some(opts))
    }

    pub fn mode_name(&self) -> &'static str {
        match self.mode {
            Mode::Disabled => "ssl-mode=DISABLED",
            Mode::Preferred => "ssl-mode=PREFERRED",
            Mode::Required => "ssl-mode=REQUIRED",
            Mode::VerifyCa => "ssl-mode=VERIFY_CA",
            Mode::VerifyIdentity => "ssl-mode=VERIFY_IDENTITY",
        }
    }

    /// What to change when the server's certificate did not verify.
    pub fn advice(&self) -> String {
        let against = match &self.ca {
            Some(p) => format!("the CA in ssl-ca ({})", p.display()),
            None => "the public CA roots (no ssl-ca given)".into(),
        };
        format!(
            "{} checks the server's certificate against {against}: set ssl-ca to the CA that \
             signed it (VERIFY_CA skips the name check), or ssl-mode=REQUIRED to encrypt without verifying",
            self.mode_name()
        )
    }
}
