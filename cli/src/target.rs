//! Where a command talks to (`--mp URL`) and who it speaks as (`--identity DIR`).

use std::path::{Path, PathBuf};

use clap::Args;
use cmmp_model::value::SmsId;
use cmmp_transport::client::{Client, ClientConfig, ClientIdentity, CrlCheck, Roots, Scheme};
use cmmp_transport::msg::HostName;
use cmmp_transport::ntlm::Credentials;
use cmmp_transport::sign::{HashAlgorithm, SigningKey};
use cmmp_transport::wire::{Settings, Vdir};

use crate::Error;

/// The file in an identity directory that holds the SMSID the site issued at registration.
pub(crate) const SMSID_FILE: &str = "smsid";

/// The options every command that talks to a management point takes.
#[derive(Debug, Clone, Args)]
pub(crate) struct MpArgs {
    /// The management point: `http://HOST[:PORT]` (mixed mode) or `https://HOST[:PORT]`
    /// (native mode, HTTPS). For the emulator: the address `cmmp emulator serve` printed.
    #[arg(long, value_name = "URL")]
    pub(crate) mp: String,
    /// The virtual directory for CCM_POST: `default` (`/ccm_system/`), `windowsauth` or
    /// `altauth`.
    #[arg(long, default_value = "default", value_parser = ["default", "windowsauth", "altauth"])]
    pub(crate) vdir: String,
    /// This machine's NetBIOS name (`SourceHost`); defaults to the host name.
    #[arg(long, value_name = "NAME")]
    pub(crate) source_host: Option<String>,
    /// Sign with SHA-1 instead of SHA-256 (sites before 1906 without SHA-256 support).
    #[arg(long)]
    pub(crate) sha1: bool,
    /// A PEM file of root certificates that verify an HTTPS management point, used instead of
    /// the system's roots.
    #[arg(long, value_name = "PEM")]
    pub(crate) ca: Option<PathBuf>,
    /// A TLS client certificate (PEM chain, leaf first) for an HTTPS management point that
    /// asks for one (native mode; without one it answers 403). Needs `--client-key`.
    #[arg(long, value_name = "PEM", requires = "client_key")]
    pub(crate) client_cert: Option<PathBuf>,
    /// The unencrypted PEM private key of `--client-cert`.
    #[arg(long, value_name = "PEM", requires = "client_cert")]
    pub(crate) client_key: Option<PathBuf>,
    /// Seconds to wait for the whole exchange.
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    pub(crate) timeout: u64,
    /// Check the HTTPS MP's certificate chain for revocation with CRLs fetched from its CRL
    /// distribution points; an unavailable CRL is an error.
    #[arg(long)]
    pub(crate) crl_check: bool,
    /// Check revocation against this CRL (DER or PEM) instead of fetching; repeat for several.
    #[arg(long = "crl", value_name = "FILE")]
    pub(crate) crls: Vec<PathBuf>,
    /// Windows (NTLMv2) logon for `--vdir windowsauth`, as `DOMAIN\USER` (or `USER`); the
    /// password is read from the `CMMP_WINDOWS_PASSWORD` environment variable.
    #[arg(long, value_name = "DOMAIN\\USER")]
    pub(crate) windows_user: Option<String>,
}

impl MpArgs {
    /// The hash `clientauth` signatures use.
    pub(crate) fn hash(&self) -> HashAlgorithm {
        if self.sha1 { HashAlgorithm::Sha1 } else { HashAlgorithm::Sha256 }
    }

    /// The scheme, host and port of `--mp`.
    pub(crate) fn endpoint(&self) -> Result<(Scheme, HostName, Option<u16>), Error> {
        parse_mp_url(&self.mp)
    }

    /// The message settings for this MP.
    pub(crate) fn settings(&self) -> Result<Settings, Error> {
        let (scheme, host, _) = self.endpoint()?;
        let source = match &self.source_host {
            Some(name) => HostName::new(name)?,
            None => local_host_name(),
        };
        let mut settings = Settings::new(host, source);
        settings.vdir = match self.vdir.as_str() {
            "windowsauth" => Vdir::WindowsAuth,
            "altauth" => Vdir::AltAuth,
            _ => Vdir::Default,
        };
        settings.native_mode = scheme == Scheme::Https;
        settings.hash = self.hash();
        Ok(settings)
    }

    /// A client for this MP.
    pub(crate) fn client(&self) -> Result<Client, Error> {
        let (scheme, _, port) = self.endpoint()?;
        let mut config = ClientConfig::new(self.settings()?);
        config.scheme = scheme;
        config.port = port;
        config.timeout = std::time::Duration::from_secs(self.timeout.max(1));
        if let Some(ca) = &self.ca {
            config.roots = Roots::Custom(read_pem_certificates(ca)?);
        }
        if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
            if scheme != Scheme::Https {
                return Err(Error::Usage(
                    "--client-cert is for an https:// management point".to_owned(),
                ));
            }
            let identity = ClientIdentity::from_pem(&read(cert)?, &read(key)?)?;
            config.client_identity = Some(identity);
        }
        if !self.crls.is_empty() {
            config.crl_check = Some(CrlCheck::from_files(&self.crls)?);
        } else if self.crl_check {
            config.crl_check = Some(CrlCheck::default());
        }
        if let Some(logon) = &self.windows_user {
            if config.settings.vdir != Vdir::WindowsAuth {
                return Err(Error::Usage(
                    "--windows-user logs on to the windowsauth vdir: add --vdir windowsauth"
                        .to_owned(),
                ));
            }
            let password = std::env::var("CMMP_WINDOWS_PASSWORD").map_err(|_| {
                Error::Usage(
                    "--windows-user needs the password in the CMMP_WINDOWS_PASSWORD environment \
                     variable (never on the command line)"
                        .to_owned(),
                )
            })?;
            let (domain, user) = logon.split_once('\\').unwrap_or(("", logon.as_str()));
            config.windows_credentials = Some(Credentials::new(domain, user, &password));
        }
        Ok(Client::new(config)?)
    }
}

/// Parses `http://HOST[:PORT][/]` or `https://…`.
pub(crate) fn parse_mp_url(url: &str) -> Result<(Scheme, HostName, Option<u16>), Error> {
    let bad = |why: &str| {
        Error::Usage(format!(
            "--mp {url:?}: {why}; expected http://HOST[:PORT] or https://HOST[:PORT]"
        ))
    };
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else {
        return Err(bad("not an http:// or https:// URL"));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') || rest.contains('@') || rest.contains('?') {
        return Err(bad("give the server only, without a path or user"));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => {
            let port = port.parse::<u16>().map_err(|_| bad("the port is not a number"))?;
            (host, Some(port))
        }
        None => (rest, None),
    };
    let host = HostName::new(host).map_err(|_| bad("the host is not a valid name or address"))?;
    Ok((scheme, host, port))
}

/// This machine's host name, first label, upper-case (a NetBIOS name); `CMMP` if unknown.
pub(crate) fn local_host_name() -> HostName {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let first = name.trim().split('.').next().unwrap_or_default().to_ascii_uppercase();
    let short: String = first.chars().take(15).collect();
    HostName::new(&short).unwrap_or_else(|_| HostName::new("CMMP").expect("a valid host name"))
}

fn read_pem_certificates(path: &Path) -> Result<Vec<Vec<u8>>, Error> {
    let pem = read(path)?;
    let certs = openssl::x509::X509::stack_from_pem(&pem)
        .map_err(|e| Error::Input { path: path.display().to_string(), message: e.to_string() })?;
    if certs.is_empty() {
        return Err(Error::Input {
            path: path.display().to_string(),
            message: "no PEM certificate in the file".to_owned(),
        });
    }
    certs
        .iter()
        .map(|c| {
            c.to_der().map_err(|e| Error::Input {
                path: path.display().to_string(),
                message: e.to_string(),
            })
        })
        .collect()
}

/// Reads a file, naming it in the error.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::Io(path.display().to_string(), e))
}

/// The signing key of the identity in `dir` (`signing.key`).
pub(crate) fn signing_key(dir: &Path) -> Result<SigningKey, Error> {
    Ok(cmmp_transport::cert::read_private_key(&dir.join("signing.key"))?)
}

/// The SMSID recorded in `dir` by `cmmp register`, if any.
pub(crate) fn recorded_smsid(dir: &Path) -> Result<Option<SmsId>, Error> {
    let path = dir.join(SMSID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse::<SmsId>().map(Some).map_err(|e| Error::Input {
            path: path.display().to_string(),
            message: format!("not an SMSID: {e}"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io(path.display().to_string(), e)),
    }
}

/// The SMSID a message speaks for: `--client-id`, else the identity's recorded SMSID.
pub(crate) fn client_id(identity: &Path, given: Option<SmsId>) -> Result<SmsId, Error> {
    match given {
        Some(id) => Ok(id),
        None => recorded_smsid(identity)?.ok_or_else(|| {
            Error::Usage(format!(
                "{} has no SMSID yet: register it first (cmmp register --identity {}), or pass \
                 --client-id for a client an ISV proxy registered",
                identity.display(),
                identity.display()
            ))
        }),
    }
}

/// Records the SMSID the site issued in `dir`.
pub(crate) fn record_smsid(dir: &Path, smsid: &SmsId) -> Result<(), Error> {
    let path = dir.join(SMSID_FILE);
    std::fs::write(&path, format!("{smsid}\n"))
        .map_err(|e| Error::Io(path.display().to_string(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mp_urls() {
        let (s, h, p) = parse_mp_url("http://127.0.0.1:8080").unwrap();
        assert_eq!((s, h.as_str(), p), (Scheme::Http, "127.0.0.1", Some(8080)));
        let (s, h, p) = parse_mp_url("https://mp01.corp.example/").unwrap();
        assert_eq!((s, h.as_str(), p), (Scheme::Https, "mp01.corp.example", None));
        for bad in
            ["mp01", "ftp://mp01", "http://mp01/ccm_system", "http://u@mp01", "http://mp01:x"]
        {
            assert!(parse_mp_url(bad).is_err(), "{bad}");
        }
    }
}
