//! TLS and mutual TLS on the one port, with certificates made in the test.

use std::path::{Path, PathBuf};

use jhf_warp::pb::v1 as pb;
use jhf_warp::pb::v1::meta_service_client::MetaServiceClient;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::helpers::{AppOptions, TestApp, eventually, spawn_app_with};

/// A certificate authority and what it signed, as PEM files in a directory.
struct Pki {
    dir: PathBuf,
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new(dir: &Path, name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let ca = params.self_signed(&key).unwrap();
        let ca_pem = ca.pem();
        std::fs::write(dir.join(format!("{name}.crt")), &ca_pem).unwrap();
        Self { dir: dir.to_path_buf(), ca_pem, issuer: Issuer::new(params, key) }
    }

    /// Signs a certificate for `names`; returns the (cert, key) PEM file paths.
    fn issue(&self, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (cert_path, key_path) =
            (self.dir.join(format!("{file}.crt")), self.dir.join(format!("{file}.key")));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }
}

async fn tls_channel(
    app: &TestApp,
    ca_pem: &str,
    identity: Option<(&Path, &Path)>,
) -> Result<Channel, String> {
    let mut config =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem)).domain_name("localhost");
    if let Some((cert, key)) = identity {
        config =
            config.identity(Identity::from_pem(std::fs::read(cert).unwrap(), std::fs::read(key).unwrap()));
    }
    let endpoint = Channel::from_shared(format!("https://localhost:{}", app.addr.port()))
        .unwrap()
        .tls_config(config)
        .map_err(|e| e.to_string())?;
    endpoint.connect().await.map_err(|e| e.to_string())
}

async fn version_over(channel: Channel) -> Result<String, tonic::Status> {
    MetaServiceClient::new(channel)
        .get_version(pb::GetVersionRequest {})
        .await
        .map(|r| r.into_inner().service)
}

#[tokio::test]
async fn a_client_trusting_the_ca_connects_over_tls_and_a_plaintext_client_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let pki = Pki::new(temp.path(), "ca");
    let (cert, key) = pki.issue("server", &["localhost", "127.0.0.1"]);
    let app = spawn_app_with(AppOptions { tls: Some((cert, key, None)), ..AppOptions::default() }).await;

    let channel = tls_channel(&app, &pki.ca_pem, None).await.expect("TLS connects");
    assert_eq!(version_over(channel).await.unwrap(), "jhf-warp");

    // The HTTP shim is served on the same port over TLS too.
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/ready", app.addr.port());
    eventually("/ready to answer 200 over TLS", async || {
        (client.get(&url).send().await.unwrap().status() == 200).then_some(())
    })
    .await;

    // A plaintext client gets no answer from a TLS port.
    let plain = Channel::from_shared(format!("http://{}", app.addr)).unwrap().connect().await;
    let refused = match plain {
        Ok(channel) => version_over(channel).await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "a plaintext call must fail");
    app.stop().await;
}

#[tokio::test]
async fn with_a_client_ca_only_clients_with_a_certificate_from_it_get_in() {
    let temp = tempfile::tempdir().unwrap();
    let servers = Pki::new(temp.path(), "server-ca");
    let clients = Pki::new(temp.path(), "client-ca");
    let strangers = Pki::new(temp.path(), "stranger-ca");
    let (cert, key) = servers.issue("server", &["localhost"]);
    let client_ca = temp.path().join("client-ca.crt");
    let app =
        spawn_app_with(AppOptions { tls: Some((cert, key, Some(client_ca))), ..AppOptions::default() }).await;

    let (client_cert, client_key) = clients.issue("operator", &["operator"]);
    let channel = tls_channel(&app, &servers.ca_pem, Some((&client_cert, &client_key))).await.unwrap();
    assert_eq!(version_over(channel).await.unwrap(), "jhf-warp");

    let anonymous = tls_channel(&app, &servers.ca_pem, None).await;
    let refused = match anonymous {
        Ok(channel) => version_over(channel).await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "a client without a certificate must be refused");

    let (stranger_cert, stranger_key) = strangers.issue("stranger", &["stranger"]);
    let foreign = tls_channel(&app, &servers.ca_pem, Some((&stranger_cert, &stranger_key))).await;
    let refused = match foreign {
        Ok(channel) => version_over(channel).await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "a certificate from another CA must be refused");
    app.stop().await;
}

#[tokio::test]
async fn a_rotated_certificate_takes_effect_without_a_restart() {
    let temp = tempfile::tempdir().unwrap();
    let old = Pki::new(temp.path(), "old-ca");
    let (cert, key) = old.issue("server", &["localhost"]);
    let app = spawn_app_with(AppOptions {
        tls: Some((cert.clone(), key.clone(), None)),
        tls_reload_secs: 1,
        ..AppOptions::default()
    })
    .await;
    let new = Pki::new(temp.path(), "new-ca");
    assert!(tls_channel(&app, &new.ca_pem, None).await.is_err(), "not trusted yet");

    let (new_cert, new_key) = new.issue("server-next", &["localhost"]);
    std::fs::copy(&new_key, &key).unwrap();
    std::fs::copy(&new_cert, &cert).unwrap();
    let channel = eventually("the new certificate to be served", async || {
        tls_channel(&app, &new.ca_pem, None).await.ok()
    })
    .await;
    assert_eq!(version_over(channel).await.unwrap(), "jhf-warp");
    app.stop().await;
}
