//! `cmmp emulator serve`'s HTTPS listener: its certificate (given, or made once and kept next
//! to the site database) and the roots client certificates must chain to.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use clap::Args;
use cmmp_emulator::HttpsConfig;
use cmmp_emulator::tls::generate_tls_certificate;
use cmmp_transport::cert::{read_private_key, write_private_key};

use crate::Error;
use crate::target::read;

/// The HTTPS listener's options.
#[derive(Debug, Clone, Args)]
pub(crate) struct HttpsArgs {
    /// Also serve HTTPS on this address (native mode: `cmmp … --mp https://…`).
    #[arg(long, value_name = "ADDR")]
    pub(crate) https: Option<SocketAddr>,
    /// The HTTPS listener's certificate chain (PEM, leaf first). Without it, a self-signed
    /// certificate for localhost, 127.0.0.1 and ::1 is made once and kept next to the
    /// database (`<db>.tls.pem`, key `<db>.tls.key` with mode 0600).
    #[arg(long, value_name = "PEM", requires = "https", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The unencrypted PEM private key of `--tls-cert`.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Ask HTTPS clients for a certificate that chains to one of these roots (PEM); without
    /// one, `/ccm_system/` and `/SMS_MP/` answer 403 and the altauth vdirs still serve.
    #[arg(long, value_name = "PEM", requires = "https")]
    pub(crate) client_ca: Option<PathBuf>,
}

impl HttpsArgs {
    /// The listener's configuration and the file of the certificate clients should trust, or
    /// `None` without `--https`.
    pub(crate) fn config(&self, db: &Path) -> Result<Option<(HttpsConfig, PathBuf)>, Error> {
        let Some(listen) = self.https else { return Ok(None) };
        let (config, cert) = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                (HttpsConfig::from_pem(listen, &read(cert)?, &read(key)?)?, cert.clone())
            }
            _ => kept_certificate(listen, db)?,
        };
        let config = match &self.client_ca {
            Some(roots) => config.with_client_roots_pem(&read(roots)?)?,
            None => config,
        };
        Ok(Some((config, cert)))
    }
}

/// The self-signed certificate kept next to `db`, made on first use.
fn kept_certificate(listen: SocketAddr, db: &Path) -> Result<(HttpsConfig, PathBuf), Error> {
    let cert_path = db.with_extension("tls.pem");
    let key_path = db.with_extension("tls.key");
    match (cert_path.exists(), key_path.exists()) {
        (true, true) => {}
        (false, false) => {
            let ip = listen.ip();
            let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
            if !ip.is_unspecified() && !names.contains(&ip.to_string()) {
                names.push(ip.to_string());
            }
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let (cert, key) = generate_tls_certificate(&names, SystemTime::now())?;
            // The key first: a certificate without its key would be refused on the next start.
            write_private_key(&key_path, &key)
                .map_err(|e| Error::Io(key_path.display().to_string(), e))?;
            let pem = cert.to_pem().map_err(|e| Error::Input {
                path: cert_path.display().to_string(),
                message: format!("the certificate cannot be written as PEM: {e}"),
            })?;
            std::fs::write(&cert_path, pem)
                .map_err(|e| Error::Io(cert_path.display().to_string(), e))?;
        }
        _ => {
            return Err(Error::Usage(format!(
                "{} and {} go together: remove the one that is left, or give --tls-cert and \
                 --tls-key",
                cert_path.display(),
                key_path.display()
            )));
        }
    }
    let key = read_private_key(&key_path)?;
    let key_pem = key.to_pem()?;
    let config = HttpsConfig::from_pem(listen, &read(&cert_path)?, key_pem.expose())?;
    Ok((config, cert_path))
}
