//! Client TLS for `etcds://` stores: the CA that signed the etcd servers'
//! certificates, and the client certificate and key that an etcd started
//! with `--client-cert-auth` demands (rustls, ring provider, through
//! etcd-client's `tls` feature; no system roots: an etcd cluster has a CA
//! of its own).

use std::path::{Path, PathBuf};

use etcd_client::{Certificate, Identity, TlsOptions};

use crate::error::StoreError;

/// The TLS files of an `etcds://` store (`--etcd-ca`, `--etcd-cert`,
/// `--etcd-key`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcdTls {
    /// PEM file of the CA certificate(s) the servers' certificates chain to.
    pub ca: Option<PathBuf>,
    /// PEM file of the client certificate.
    pub cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    pub key: Option<PathBuf>,
}

fn read_pem(what: &str, flag: &str, path: &Path) -> Result<Vec<u8>, StoreError> {
    let bytes = std::fs::read(path).map_err(|e| {
        StoreError::Tls(format!(
            "cannot read the {what} {} ({flag}): {e}",
            path.display()
        ))
    })?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(StoreError::Tls(format!(
            "the {what} {} ({flag}) is not a PEM file (no \"-----BEGIN\" line)",
            path.display()
        )));
    }
    Ok(bytes)
}

impl EtcdTls {
    /// True when no file is given.
    pub fn is_empty(&self) -> bool {
        self.ca.is_none() && self.cert.is_none() && self.key.is_none()
    }

    /// Checks the combination: a CA is required, a certificate needs its
    /// key and a key its certificate.
    pub fn check(&self) -> Result<(), StoreError> {
        if self.ca.is_none() {
            return Err(StoreError::Tls(
                "an etcds:// store needs --etcd-ca FILE: the CA certificate that signed the etcd servers' certificates".into(),
            ));
        }
        match (&self.cert, &self.key) {
            (Some(_), None) => Err(StoreError::Tls(
                "--etcd-cert is given without --etcd-key (the certificate's private key)".into(),
            )),
            (None, Some(_)) => Err(StoreError::Tls(
                "--etcd-key is given without --etcd-cert (the client certificate)".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Reads the files into etcd-client's TLS settings.
    pub(crate) fn load(&self) -> Result<TlsOptions, StoreError> {
        self.check()?;
        let mut tls = TlsOptions::new();
        if let Some(ca) = &self.ca {
            tls = tls.ca_certificate(Certificate::from_pem(read_pem(
                "CA certificate",
                "--etcd-ca",
                ca,
            )?));
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            let cert = read_pem("client certificate", "--etcd-cert", cert)?;
            let key = read_pem("client key", "--etcd-key", key)?;
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        Ok(tls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combinations_and_files_are_checked_with_the_flag_named() {
        let e = EtcdTls::default().check().unwrap_err().to_string();
        assert!(e.contains("--etcd-ca"), "{e}");
        let e = EtcdTls {
            ca: Some("/x".into()),
            cert: Some("/c".into()),
            key: None,
        }
        .check()
        .unwrap_err()
        .to_string();
        assert!(e.contains("--etcd-key"), "{e}");
        let e = EtcdTls {
            ca: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        }
        .load()
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("/nonexistent/ca.pem") && e.contains("--etcd-ca"),
            "{e}"
        );
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ca.pem");
        std::fs::write(&p, "not a certificate").unwrap();
        let e = EtcdTls {
            ca: Some(p),
            ..Default::default()
        }
        .load()
        .unwrap_err()
        .to_string();
        assert!(e.contains("not a PEM file"), "{e}");
    }
}
