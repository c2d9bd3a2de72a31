//! TLS with rustls (the `ring` provider): the client configuration each `sslmode` asks for,
//! the two ways of starting TLS (`sslnegotiation`), and the `tls-server-end-point` channel
//! binding data for SCRAM-SHA-256-PLUS.
//!
//! | sslmode | certificate chain | host name |
//! |---|---|---|
//! | `prefer`, `allow` | not checked | not checked |
//! | `require` | checked only if root certificates are given (libpq's rule) | not checked |
//! | `verify-ca` | checked | not checked |
//! | `verify-full` | checked | checked against `host` (not `hostaddr`) |
//!
//! The handshake signature is always verified, so the peer holds the certificate's key even
//! when the certificate itself is not checked.

use std::io;
use std::path::Path;
use std::sync::Arc;

use postgres_protocol::message::frontend;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::config::{Config, Host, SslMode, SslNegotiation, SslRootCert};
use crate::error::{Error, Result};

/// The ALPN protocol name PostgreSQL 17 registered; required by `sslnegotiation=direct`.
pub(crate) const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// A ready client configuration and the name to present and verify.
#[derive(Clone)]
pub(crate) struct TlsSetup {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) server_name: ServerName<'static>,
    pub(crate) negotiation: SslNegotiation,
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSetup")
            .field("server_name", &self.server_name)
            .field("negotiation", &self.negotiation)
            .finish_non_exhaustive()
    }
}

/// The outcome of asking for TLS.
pub(crate) enum Negotiated {
    /// TLS is up.
    Tls(Box<TlsStream<TcpStream>>),
    /// The server answered `N` to the SSLRequest: the socket is still usable in plain text.
    Refused(TcpStream),
}

/// Builds the rustls configuration `config` asks for.
///
/// # Errors
/// Unreadable or empty certificate files, a key that does not fit its certificate, missing
/// root certificates under `verify-ca` / `verify-full`, or a host name `verify-full` cannot
/// check.
pub(crate) fn setup(config: &Config, fallback_ip: std::net::IpAddr) -> Result<TlsSetup> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match &config.ssl_root_cert {
        // libpq: under `require` a root file that does not exist means "do not verify".
        Some(SslRootCert::File(path)) if config.ssl_mode == SslMode::Require && !path.exists() => {
            None
        }
        Some(SslRootCert::File(path)) => Some(load_roots(path)?),
        Some(SslRootCert::System) => Some(system_roots()?),
        None => None,
    };
    let verifier: Arc<dyn ServerCertVerifier> = match (config.ssl_mode, roots) {
        (SslMode::VerifyFull, Some(roots)) => webpki_verifier(roots, &provider)?,
        (SslMode::VerifyCa | SslMode::Require, Some(roots)) => Arc::new(ChainOnly {
            inner: webpki_verifier(roots, &provider)?,
        }),
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            return Err(Error::config(format!(
                "sslmode={} needs root certificates to check the server's certificate: give \
                 sslrootcert=<file> (or put it at ~/.postgresql/root.crt), use the system's \
                 trusted roots with sslrootcert=system, or use a mode that does not verify",
                config.ssl_mode
            )));
        }
        _ => Arc::new(AnyCertificate {
            provider: provider.clone(),
        }),
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| Error::tls_with("cannot set up TLS", e))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut client = match (&config.ssl_cert, &config.ssl_key) {
        (Some(cert), Some(key)) => {
            let chain = load_certs(cert, "client certificate")?;
            let key = load_key(key)?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                Error::tls_with(
                    format!(
                        "the client certificate \"{}\" cannot be used with its key",
                        cert.display()
                    ),
                    e,
                )
            })?
        }
        (Some(cert), None) => {
            return Err(Error::config(format!(
                "client certificate \"{}\" given without a key (sslkey)",
                cert.display()
            )));
        }
        (None, _) => builder.with_no_client_auth(),
    };
    client.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
    let server_name = match &config.host {
        Host::Tcp(h) => match ServerName::try_from(h.clone()) {
            Ok(n) => n,
            Err(_) if config.ssl_mode != SslMode::VerifyFull => fallback_ip.into(),
            Err(e) => {
                return Err(Error::tls_with(
                    format!("sslmode=verify-full cannot check host name \"{h}\""),
                    e,
                ));
            }
        },
        Host::Unix(_) => fallback_ip.into(),
    };
    Ok(TlsSetup {
        config: Arc::new(client),
        server_name,
        negotiation: config.ssl_negotiation,
    })
}

fn webpki_verifier(
    roots: RootCertStore,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| Error::tls_with("cannot use the root certificates", e))
}

fn load_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| {
            Error::tls_with(format!("cannot read {what} file \"{}\"", path.display()), e)
        })?;
    if certs.is_empty() {
        return Err(Error::tls(format!(
            "{what} file \"{}\" holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

fn load_roots(path: &Path) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path, "root certificate")? {
        roots.add(cert).map_err(|e| {
            Error::tls_with(
                format!("unusable root certificate in \"{}\"", path.display()),
                e,
            )
        })?;
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        return Err(Error::tls(format!(
            "sslrootcert=system, but no trusted root certificate was found on this system{why}"
        )));
    }
    Ok(roots)
}

/// Reads a PEM private key (PKCS#8, PKCS#1 or SEC1). Like libpq, refuses a key file that the
/// group or others may read, unless root owns it and only the group may read it.
fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode();
            let ok = if meta.uid() == 0 {
                mode & 0o037 == 0
            } else {
                mode & 0o077 == 0
            };
            if !ok {
                return Err(Error::tls(format!(
                    "private key file \"{}\" has group or world access; file must have \
                     permissions u=rw (0600) or less if owned by the current user, or \
                     permissions u=rw,g=r (0640) or less if owned by root",
                    path.display()
                )));
            }
        }
    }
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        Error::tls_with(
            format!("cannot read private key file \"{}\"", path.display()),
            e,
        )
    })
}

/// Starts TLS on `tcp` as `setup` says: an SSLRequest first (`sslnegotiation=postgres`), or a
/// TLS ClientHello at once (`direct`).
///
/// BE ADVISED: after the server's `S` nothing may be read from the plain socket: bytes a man
/// in the middle injected after it would otherwise be taken as coming from inside the TLS
/// session (CVE-2021-23222). Exactly one byte is read, and rustls reads the rest.
pub(crate) async fn negotiate(mut tcp: TcpStream, setup: &TlsSetup) -> Result<Negotiated> {
    let direct = setup.negotiation == SslNegotiation::Direct;
    if !direct {
        let mut request = bytes::BytesMut::with_capacity(8);
        frontend::ssl_request(&mut request);
        tcp.write_all(&request).await?;
        let mut answer = [0u8; 1];
        match tcp.read_exact(&mut answer).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(Error::tls(
                    "the server closed the connection instead of answering the TLS request",
                ));
            }
            Err(e) => return Err(e.into()),
        }
        match answer[0] {
            b'S' => {}
            b'N' => return Ok(Negotiated::Refused(tcp)),
            b'E' => {
                return Err(Error::protocol(
                    "the server answered the TLS request with an error message (it does not \
                     understand SSLRequest)",
                ));
            }
            other => {
                return Err(Error::protocol(format!(
                    "invalid answer '{}' to the TLS request",
                    other.escape_ascii()
                )));
            }
        }
    }
    let connector = TlsConnector::from(setup.config.clone());
    let tls = connector
        .connect(setup.server_name.clone(), tcp)
        .await
        .map_err(|e| handshake_error(e, direct))?;
    if direct && tls.get_ref().1.alpn_protocol() != Some(ALPN_POSTGRESQL) {
        return Err(Error::tls(
            "the server did not select ALPN protocol \"postgresql\", which \
             sslnegotiation=direct requires",
        ));
    }
    Ok(Negotiated::Tls(Box::new(tls)))
}

fn handshake_error(e: io::Error, direct: bool) -> Error {
    let eof = matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
    );
    if eof && direct {
        return Error::tls_with(
            "the server closed the connection during a direct TLS handshake: \
             sslnegotiation=direct needs PostgreSQL 17 or later (use sslnegotiation=postgres \
             for older servers)",
            e,
        );
    }
    if eof {
        return Error::tls_with(
            "the server closed the connection during the TLS handshake",
            e,
        );
    }
    let kind = e.kind();
    match e.into_inner() {
        Some(inner) => match inner.downcast::<rustls::Error>() {
            Ok(tls) => {
                let what = match &*tls {
                    rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
                        "the server certificate is not signed by a trusted root certificate"
                    }
                    rustls::Error::InvalidCertificate(
                        CertificateError::NotValidForName
                        | CertificateError::NotValidForNameContext { .. },
                    ) => "the server certificate does not name the host (sslmode=verify-full)",
                    rustls::Error::InvalidCertificate(
                        CertificateError::Expired | CertificateError::ExpiredContext { .. },
                    ) => "the server certificate has expired",
                    rustls::Error::InvalidCertificate(_) => "the server certificate did not verify",
                    _ => "the TLS handshake failed",
                };
                Error::tls_with(what, *tls)
            }
            Err(other) => Error::tls_with("the TLS handshake failed", other),
        },
        None => Error::tls_with("the TLS handshake failed", io::Error::from(kind)),
    }
}

/// `tls-server-end-point` channel binding data (RFC 5929 section 4.1): a hash of the server's
/// certificate, with the hash of its signature algorithm, SHA-256 for MD5 and SHA-1.
///
/// # Errors
/// A certificate that is not DER, or whose signature algorithm has no single hash (Ed25519,
/// RSASSA-PSS): PostgreSQL cannot bind such a channel either.
pub(crate) fn tls_server_end_point(cert: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let oid = signature_algorithm(cert).ok_or("the server certificate is not valid DER")?;
    // DER contents of the OIDs: 1.2.840.113549.1.1.x (PKCS #1) and 1.2.840.10045.4.x (ECDSA).
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04];
    enum Hash {
        Sha224,
        Sha256,
        Sha384,
        Sha512,
    }
    let hash = match oid {
        [p @ .., x] if p == RSA => match x {
            4 | 5 | 11 => Hash::Sha256, // md5, sha1, sha256 WithRSAEncryption
            12 => Hash::Sha384,
            13 => Hash::Sha512,
            14 => Hash::Sha224,
            _ => return Err(unsupported(oid)),
        },
        [p @ .., 1] if p == ECDSA => Hash::Sha256, // ecdsa-with-SHA1
        [p @ .., 3, x] if p == ECDSA => match x {
            1 => Hash::Sha224,
            2 => Hash::Sha256,
            3 => Hash::Sha384,
            4 => Hash::Sha512,
            _ => return Err(unsupported(oid)),
        },
        _ => return Err(unsupported(oid)),
    };
    Ok(match hash {
        Hash::Sha224 => sha2::Sha224::digest(cert).to_vec(),
        Hash::Sha256 => sha2::Sha256::digest(cert).to_vec(),
        Hash::Sha384 => sha2::Sha384::digest(cert).to_vec(),
        Hash::Sha512 => sha2::Sha512::digest(cert).to_vec(),
    })
}

fn unsupported(oid: &[u8]) -> String {
    format!(
        "the server certificate's signature algorithm (OID bytes {oid:02x?}) has no hash for \
         tls-server-end-point channel binding"
    )
}

/// The OID of `Certificate.signatureAlgorithm` (RFC 5280 section 4.1): the second element of
/// the outer SEQUENCE, itself a SEQUENCE starting with the OID.
fn signature_algorithm(cert: &[u8]) -> Option<&[u8]> {
    let (tag, body, _) = der_element(cert)?;
    if tag != 0x30 {
        return None;
    }
    let (_, _tbs, rest) = der_element(body)?;
    let (tag, alg, _) = der_element(rest)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, oid, _) = der_element(alg)?;
    (tag == 0x06).then_some(oid)
}

/// One DER element: its tag, contents and what follows it.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    let (body, after) = rest.split_at(len);
    Some((tag, body, after))
}

/// `sslmode=require` without root certificates (and `prefer`, `allow`): any certificate, but
/// the handshake signature must be valid for it.
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `sslmode=verify-ca`: the full webpki check, except that the certificate need not name the
/// host. webpki checks the chain before the name, so `NotValidForName` means the chain is good.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
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
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DER certificate skeleton: SEQUENCE { tbs SEQUENCE {}, alg SEQUENCE { OID }, BIT STRING }.
    fn cert_with_oid(oid: &[u8]) -> Vec<u8> {
        let mut alg = vec![0x06, oid.len() as u8];
        alg.extend_from_slice(oid);
        let mut body = vec![0x30, 0x00, 0x30, alg.len() as u8];
        body.extend_from_slice(&alg);
        body.extend_from_slice(&[0x03, 0x01, 0x00]);
        let mut cert = vec![0x30, 0x81, body.len() as u8];
        cert.extend_from_slice(&body);
        cert
    }

    #[test]
    fn end_point_hash_follows_the_signature_algorithm() {
        let rsa = |x| [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, x];
        for (oid, len) in [
            (rsa(5).to_vec(), 32),
            (rsa(11).to_vec(), 32),
            (rsa(12).to_vec(), 48),
            (rsa(13).to_vec(), 64),
            (rsa(14).to_vec(), 28),
            (vec![0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01], 32),
            (vec![0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02], 32),
            (vec![0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03], 48),
        ] {
            let cert = cert_with_oid(&oid);
            let hash = tls_server_end_point(&cert).unwrap();
            assert_eq!(hash.len(), len, "{oid:02x?}");
        }
        let cert = cert_with_oid(&rsa(11));
        assert_eq!(
            tls_server_end_point(&cert).unwrap(),
            sha2::Sha256::digest(&cert).to_vec()
        );
        // Ed25519 (1.3.101.112) and RSASSA-PSS have no single hash.
        assert!(tls_server_end_point(&cert_with_oid(&[0x2b, 0x65, 0x70])).is_err());
        assert!(tls_server_end_point(&cert_with_oid(&rsa(10))).is_err());
        // Garbage never panics.
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[0x30, 0x05, 0x30],
        ] {
            assert!(tls_server_end_point(bad).is_err());
        }
    }
}
