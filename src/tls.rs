//! TLS set-up for every client and server nprt runs: rustls with the ring provider, so the
//! default build needs no system library, and one trust rule (the system's roots plus an
//! optional extra CA) for all of them.
//!
//! Clients: the replay's own connections take [`client_config`]; every pooled HTTPS client
//! (the deploy API client, the registry client, the shadow and on-fail senders) comes from
//! [`https_client`], so an extra CA, the provider and the timeouts are set in one place.
//! Servers take [`server_config`] and are served by [`crate::net::serve`].

use hyper_util::client::legacy::connect::HttpConnector;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file_error = |message: String| TlsError::File {
        path: path.display().to_string(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(file_error("no PEM certificate in the file".into()));
    }
    Ok(certs)
}

/// Client configuration trusting the system's roots, plus `extra_ca` (PEM) when given, e.g.
/// the private CA of a staging cluster.
///
/// # Errors
/// The CA file cannot be read or holds no certificate.
pub fn client_config(extra_ca: Option<&Path>) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates are skipped: the extra CA may be all that is needed.
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = extra_ca {
        for cert in read_certs(path)? {
            roots.add(cert).map_err(|e| TlsError::File {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
        }
    }
    // No ALPN here: the HTTPS connector offers the protocols it was built with.
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Server configuration from a PEM certificate chain and key, offering h2 and HTTP/1.1.
///
/// # Errors
/// A file cannot be read, holds nothing usable, or the key does not match.
pub fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let chain = read_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::File {
        path: key.display().to_string(),
        message: e.to_string(),
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// How a pooled HTTPS client connects and keeps connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// A CA (PEM) trusted besides the system's roots, e.g. a staging cluster's private CA.
    pub extra_ca: Option<PathBuf>,
    /// Longest wait for a TCP connection; a black-holed address fails after this long
    /// instead of the operating system's minutes.
    pub connect_timeout: Duration,
    /// Idle connections kept per host.
    pub idle_per_host: usize,
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
    /// Speak HTTP/2 only: prior knowledge (h2c) for http://, ALPN `h2` for https:// — what a
    /// gRPC server needs, and what a client that came over HTTP/2 gets passed on.
    pub http2_only: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            extra_ca: None,
            connect_timeout: Duration::from_secs(10),
            idle_per_host: 32,
            idle_timeout: Duration::from_secs(60),
            http2_only: false,
        }
    }
}

/// The connector of [`HttpsClient`]: http, or https with [`client_config`].
pub type HttpsConnector = hyper_rustls::HttpsConnector<HttpConnector>;

/// A pooled client for http and https URLs: HTTP/1.1, or HTTP/2 only
/// ([`ClientOptions::http2_only`]).
pub type HttpsClient<B> = hyper_util::client::legacy::Client<HttpsConnector, B>;

/// The one builder of pooled HTTPS clients: trusts the system's roots plus
/// `options.extra_ca`, speaks HTTP/1.1 (ALPN `http/1.1` over TLS) or with
/// `options.http2_only` HTTP/2 (h2c prior knowledge, ALPN `h2`), sets `TCP_NODELAY`.
///
/// # Errors
/// The extra CA cannot be read or holds no certificate.
pub fn https_client<B>(options: &ClientOptions) -> Result<HttpsClient<B>, TlsError>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
{
    let tls = client_config(options.extra_ca.as_deref())?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(options.connect_timeout));
    connector.enforce_http(false);
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let connector = if options.http2_only {
        builder.enable_http2().wrap_connector(connector)
    } else {
        builder.enable_http1().wrap_connector(connector)
    };
    let mut client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new());
    client
        .pool_idle_timeout(options.idle_timeout)
        .pool_max_idle_per_host(options.idle_per_host)
        .http2_only(options.http2_only);
    if options.http2_only {
        client.timer(hyper_util::rt::TokioTimer::new());
    }
    Ok(client.build(connector))
}

/// An error and its causes on one line (hyper's top-level error alone says little); a cause
/// the text already quotes is not repeated.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}
