//! `[tls]`: the CA, certificate and key files, resolved against the config's directory and checked
//! to exist. Their type is `crate::tls::TlsFiles`; reading and using them is `crate::tls`'s job,
//! not this folder's.

use std::path::PathBuf;

use super::error::ConfigError;
use super::raw::RawTls;
use super::validate::Validator;

impl Validator<'_> {
    pub(super) fn tls(&self, raw: &RawTls) -> Result<crate::tls::TlsFiles, ConfigError> {
        let file = |key: &str, text: &str| -> Result<PathBuf, ConfigError> {
            let path = self.resolve(text);
            if !path.is_file() {
                return Err(self.invalid(
                    key,
                    format!(
                        "file {} does not exist (create certificates with `tandemctl certs init`)",
                        path.display()
                    ),
                ));
            }
            Ok(path)
        };
        Ok(crate::tls::TlsFiles {
            ca: file("tls.ca", &raw.ca)?,
            cert: file("tls.cert", &raw.cert)?,
            key: file("tls.key", &raw.key)?,
        })
    }
}
