//! TLS settings: custom CA, client certificate, skip-verify and server-name override,
//! all on rustls with the process's single crypto provider (`ring`).
//!
//! Without any TLS setting the `reqwest` defaults apply (system roots; plain `http://`
//! needs nothing). With a CA (`NOMAD_CACERT`) that CA is the only trust anchor, as with
//! the Nomad CLI; `NOMAD_TLS_SERVER_NAME` then names the certificate to expect instead of
//! the address's host.

use std::path::Path;
use std::sync::Arc;

use reqwest::ClientBuilder;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::config::{NomadConfig, Pem};
use super::error::{NomadError, error_chain};

/// Installs rustls' `ring` provider as the process default, unless one already is.
pub(crate) fn install_crypto_provider() {
    // An error only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Applies the TLS settings of `config` to `builder`.
pub(crate) fn configure(
    builder: ClientBuilder,
    config: &NomadConfig,
) -> Result<ClientBuilder, NomadError> {
    if !config.has_tls_settings() {
        return Ok(builder);
    }
    let identity = client_identity(config)?;
    if Source::ca(config).is_none() && !config.skip_verify {
        if config.tls_server_name.is_some() {
            return Err(NomadError::Config(
                "NOMAD_TLS_SERVER_NAME needs NOMAD_CACERT (or NOMAD_SKIP_VERIFY)".into(),
            ));
        }
        // Only a client certificate: keep the default verification with system roots.
        return with_reqwest_identity(builder, config);
    }
    let tls = rustls_config(config, identity)?;
    Ok(builder.tls_backend_preconfigured(tls))
}

/// A client certificate chain and its key.
type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// Where one piece of TLS material comes from: a file, or PEM in memory.
#[derive(Clone, Copy)]
enum Source<'a> {
    File(&'a Path),
    Inline(&'a Pem),
}

impl<'a> Source<'a> {
    fn pick(inline: Option<&'a Pem>, file: Option<&'a std::path::PathBuf>) -> Option<Self> {
        inline
            .map(Source::Inline)
            .or_else(|| file.map(|f| Source::File(f.as_path())))
    }

    fn ca(config: &'a NomadConfig) -> Option<Self> {
        Self::pick(config.inline_tls.ca_cert.as_ref(), config.ca_cert.as_ref())
    }

    fn client_cert(config: &'a NomadConfig) -> Option<Self> {
        Self::pick(
            config.inline_tls.client_cert.as_ref(),
            config.client_cert.as_ref(),
        )
    }

    fn client_key(config: &'a NomadConfig) -> Option<Self> {
        Self::pick(
            config.inline_tls.client_key.as_ref(),
            config.client_key.as_ref(),
        )
    }

    /// The bytes, naming the source in the error.
    fn read(self) -> Result<Vec<u8>, NomadError> {
        match self {
            Self::File(path) => read_file(path),
            Self::Inline(pem) => Ok(pem.bytes.clone()),
        }
    }

    /// An error about this source.
    fn error(self, why: &str) -> NomadError {
        match self {
            Self::File(path) => config_error(path, why),
            Self::Inline(pem) => NomadError::Config(format!("{}: {why}", pem.origin)),
        }
    }
}

/// Reads the client certificate and key, if configured (both or neither).
fn client_identity(config: &NomadConfig) -> Result<Option<Identity>, NomadError> {
    let (cert, key) = match (Source::client_cert(config), Source::client_key(config)) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        _ => {
            return Err(NomadError::Config(
                "NOMAD_CLIENT_CERT and NOMAD_CLIENT_KEY must be given together".into(),
            ));
        }
    };
    let certs = read_certs(cert)?;
    let key = PrivateKeyDer::from_pem_slice(&key.read()?)
        .map_err(|e| key.error(&format!("no usable private key: {e}")))?;
    Ok(Some((certs, key)))
}

/// Client certificate with `reqwest`'s own verification (system roots).
fn with_reqwest_identity(
    builder: ClientBuilder,
    config: &NomadConfig,
) -> Result<ClientBuilder, NomadError> {
    let (Some(cert), Some(key)) = (Source::client_cert(config), Source::client_key(config)) else {
        return Ok(builder);
    };
    let mut pem = key.read()?;
    pem.push(b'\n');
    pem.extend(cert.read()?);
    let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
        NomadError::Config(format!("invalid client certificate: {}", error_chain(&e)))
    })?;
    Ok(builder.identity(identity))
}

/// A rustls configuration for a custom CA, skip-verify or a server-name override.
fn rustls_config(
    config: &NomadConfig,
    identity: Option<Identity>,
) -> Result<ClientConfig, NomadError> {
    let provider = crypto_provider();
    let verifier = verifier(config, &provider)?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| NomadError::Config(format!("TLS setup failed: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut tls = match identity {
        Some((certs, key)) => builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| NomadError::Config(format!("invalid client certificate: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tls)
}

/// The process's crypto provider (see [`install_crypto_provider`]), else `ring`.
fn crypto_provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// The certificate verifier the settings ask for.
fn verifier(
    config: &NomadConfig,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, NomadError> {
    if config.skip_verify {
        return Ok(Arc::new(AcceptAnyCertificate {
            provider: provider.clone(),
        }));
    }
    let Some(ca) = Source::ca(config) else {
        return Err(NomadError::Config(
            "a custom TLS verifier needs NOMAD_CACERT".into(),
        ));
    };
    let roots = root_store(ca)?;
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| ca.error(&e.to_string()))?;
    match &config.tls_server_name {
        Some(name) => {
            let name = ServerName::try_from(name.clone()).map_err(|e| {
                NomadError::Config(format!("invalid NOMAD_TLS_SERVER_NAME {name:?}: {e}"))
            })?;
            Ok(Arc::new(ServerNameOverride {
                inner: webpki,
                name,
            }))
        }
        None => Ok(webpki),
    }
}

/// The CA bundle as a root store.
fn root_store(source: Source<'_>) -> Result<RootCertStore, NomadError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(source)? {
        roots
            .add(cert)
            .map_err(|e| source.error(&format!("unusable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// All certificates of a PEM source (at least one).
fn read_certs(source: Source<'_>) -> Result<Vec<CertificateDer<'static>>, NomadError> {
    let pem = source.read()?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| source.error(&format!("invalid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(source.error("no certificate found"));
    }
    Ok(certs)
}

/// Reads a file, naming it in the error.
fn read_file(path: &Path) -> Result<Vec<u8>, NomadError> {
    std::fs::read(path).map_err(|e| config_error(path, &e.to_string()))
}

/// A configuration error about a file.
fn config_error(path: &Path, why: &str) -> NomadError {
    NomadError::Config(format!("{}: {why}", path.display()))
}

/// Verifies the chain as usual, but for a configured name instead of the address's host.
#[derive(Debug)]
struct ServerNameOverride {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for ServerNameOverride {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `NOMAD_SKIP_VERIFY`: accepts any certificate, still checks handshake signatures.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
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
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    //! TLS: custom CA, server-name override, client certificates and skip-verify,
    //! against a one-shot rustls server on loopback.

    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::path::PathBuf;
    use std::sync::Arc;

    use crate::nomad::{NomadClient, NomadConfig, NomadError, Pem, Scope};
    use anyhow::{Context, Result};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    /// A file of the test PKI.
    fn pki(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/nomad/tls")
            .join(name)
    }

    /// Serves `GET /v1/jobs` once over TLS (requiring a client certificate when
    /// `mtls`), answering `[]` with index 5. Returns the port.
    fn serve_once(mtls: bool) -> Result<u16> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let certs =
            CertificateDer::pem_file_iter(pki("server.pem"))?.collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_file(pki("server-key.pem"))?;
        let builder = rustls::ServerConfig::builder();
        let builder = if mtls {
            let mut roots = rustls::RootCertStore::empty();
            for ca in CertificateDer::pem_file_iter(pki("ca.pem"))? {
                roots.add(ca?)?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder(Arc::new(roots)).build()?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let config = Arc::new(builder.with_single_cert(certs, key)?);
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        std::thread::spawn(move || {
            // One connection; a failed handshake simply ends the thread.
            let Ok((tcp, _)) = listener.accept() else {
                return;
            };
            let Ok(conn) = rustls::ServerConnection::new(config) else {
                return;
            };
            let mut stream = rustls::StreamOwned::new(conn, tcp);
            let mut reader = BufReader::new(&mut stream);
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                if line == "\r\n" {
                    break;
                }
                line.clear();
            }
            let answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                          X-Nomad-Index: 5\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]";
            let _ = stream.write_all(answer.as_bytes());
            let _ = stream.flush();
            stream.conn.send_close_notify();
            let _ = stream.flush();
        });
        Ok(port)
    }

    fn config(port: u16) -> NomadConfig {
        NomadConfig::new(format!("https://127.0.0.1:{port}"))
    }

    #[tokio::test]
    async fn custom_ca_server_name_and_client_certificate() -> Result<()> {
        let port = serve_once(true)?;
        let nomad = NomadClient::new(&NomadConfig {
            ca_cert: Some(pki("ca.pem")),
            client_cert: Some(pki("client.pem")),
            client_key: Some(pki("client-key.pem")),
            tls_server_name: Some("server.global.nomad".into()),
            ..config(port)
        })?;
        let jobs = nomad.list_jobs(&Scope::default(), None, None).await?;
        assert_eq!(jobs.index, 5);
        assert!(jobs.value.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn tls_material_in_memory_works_like_files_and_names_its_origin() -> Result<()> {
        let pem = |name: &str| -> Result<Pem> {
            Ok(Pem {
                origin: format!("Secret team-a/nomad-tls key {name}"),
                bytes: std::fs::read(pki(name))?,
            })
        };
        let port = serve_once(true)?;
        let nomad = NomadClient::new(&NomadConfig {
            inline_tls: crate::nomad::InlineTls {
                ca_cert: Some(pem("ca.pem")?),
                client_cert: Some(pem("client.pem")?),
                client_key: Some(pem("client-key.pem")?),
            },
            tls_server_name: Some("server.global.nomad".into()),
            ..config(port)
        })?;
        let jobs = nomad.list_jobs(&Scope::default(), None, None).await?;
        assert_eq!(jobs.index, 5);
        let bad = NomadConfig {
            inline_tls: crate::nomad::InlineTls {
                ca_cert: Some(Pem {
                    origin: "Secret team-a/nomad-ca key ca.crt".into(),
                    bytes: b"not a certificate".to_vec(),
                }),
                ..Default::default()
            },
            ..config(port)
        };
        let error = NomadClient::new(&bad)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("Secret team-a/nomad-ca key ca.crt")
                && !error.contains("not a certificate"),
            "{error}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn certificate_for_another_name_is_refused() -> Result<()> {
        let port = serve_once(false)?;
        let nomad = NomadClient::new(&NomadConfig {
            ca_cert: Some(pki("ca.pem")),
            ..config(port)
        })?;
        let error = nomad
            .list_jobs(&Scope::default(), None, None)
            .await
            .err()
            .context("the certificate is for server.global.nomad, not 127.0.0.1")?;
        assert!(matches!(error, NomadError::Transport(_)), "{error:?}");
        Ok(())
    }

    #[tokio::test]
    async fn skip_verify_accepts_any_certificate() -> Result<()> {
        let port = serve_once(false)?;
        let nomad = NomadClient::new(&NomadConfig {
            skip_verify: true,
            ..config(port)
        })?;
        let jobs = nomad.list_jobs(&Scope::default(), None, None).await?;
        assert_eq!(jobs.index, 5);
        Ok(())
    }

    #[test]
    fn unusable_tls_settings_are_config_errors() {
        let cases = [
            NomadConfig {
                ca_cert: Some(pki("missing.pem")),
                ..config(1)
            },
            NomadConfig {
                ca_cert: Some(pki("server-key.pem")),
                ..config(1)
            },
            NomadConfig {
                client_cert: Some(pki("client.pem")),
                ..config(1)
            },
            NomadConfig {
                tls_server_name: Some("server.global.nomad".into()),
                ..config(1)
            },
        ];
        for case in cases {
            let error = NomadClient::new(&case).expect_err("must fail");
            assert!(matches!(error, NomadError::Config(_)), "{error:?}");
            assert_eq!(error.category(), "config");
        }
        // A client certificate alone keeps the default verification.
        let ok = NomadConfig {
            client_cert: Some(pki("client.pem")),
            client_key: Some(pki("client-key.pem")),
            ..config(1)
        };
        assert!(NomadClient::new(&ok).is_ok());
    }
}
