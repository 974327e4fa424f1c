//! A certificate authority made in the test, for TLS peers.

/// A certificate authority made for one test, and a server certificate it
/// signed for `localhost` and `127.0.0.1`.
pub struct TestCa {
    /// The CA certificate, PEM: what a client is told to trust.
    pub ca_pem: String,
    /// Accepts TLS with the server certificate.
    pub acceptor: tokio_rustls::TlsAcceptor,
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
    server: (rustls_pki::CertificateDer<'static>, Vec<u8>),
}

use tokio_rustls::rustls::pki_types as rustls_pki;

impl TestCa {
    pub fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "yujing test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
        let server = (leaf.der().clone(), leaf_key.serialize_der());
        let builder = Self::server_config_builder();
        let config = builder
            .with_no_client_auth()
            .with_single_cert(
                vec![server.0.clone()],
                rustls_pki::PrivateKeyDer::Pkcs8(server.1.clone().into()),
            )
            .unwrap();
        TestCa {
            ca_pem: ca.pem(),
            acceptor: tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)),
            ca,
            ca_key,
            server,
        }
    }

    fn server_config_builder() -> tokio_rustls::rustls::ConfigBuilder<
        tokio_rustls::rustls::ServerConfig,
        tokio_rustls::rustls::WantsVerifier,
    > {
        tokio_rustls::rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
    }

    /// Accepts TLS only from clients with a certificate this CA signed
    /// (mutual TLS).
    pub fn mutual_acceptor(&self) -> tokio_rustls::TlsAcceptor {
        use tokio_rustls::rustls;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            std::sync::Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let config = Self::server_config_builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![self.server.0.clone()],
                rustls_pki::PrivateKeyDer::Pkcs8(self.server.1.clone().into()),
            )
            .unwrap();
        tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config))
    }

    /// A client certificate for `name` and its key, both PEM.
    pub fn client_certificate(&self, name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}
