//! TLS for the Redis tests: certificates made at test time (a CA, a server certificate for
//! `localhost`, a client certificate, and a second CA that signed nothing the server shows),
//! written as PEM files readable by their owner only (0600), and a redis-server that serves
//! TLS on a port of its own beside its plain port (which the tests use to set it up).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::redis_server::{RedisServer, free_port, need_redis};

/// Whether the test may use redis-server with TLS (see [`super::need`]): it is installed
/// and built with TLS (Debian's is).
pub fn need_tls() -> bool {
    if !need_redis() {
        return false;
    }
    // A build with TLS calls OpenSSL (`BUILD_TLS=yes`; Debian's does).
    let bin = super::redis_server::redis_server_bin();
    let tls = std::fs::read(&bin).is_ok_and(|bytes| bytes.windows(11).any(|w| w == b"SSL_CTX_new"));
    super::need(
        tls,
        "redis-server has no TLS support (build it with BUILD_TLS=yes)",
    )
}

/// The certificates and keys of a test, as files in a temporary directory.
pub struct Pki {
    pub dir: tempfile::TempDir,
    /// The CA that signed the server's and the client's certificates.
    pub ca: PathBuf,
    /// A CA that signed neither.
    pub other_ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// A CA: its certificate (PEM) and its issuer.
fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

/// A certificate for `names` with `usage`, signed by `issuer`: (certificate, key) in PEM.
fn leaf(
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
    issuer: &Issuer<'_, KeyPair>,
) -> (String, String) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(
        DnType::CommonName,
        names.first().copied().unwrap_or("client"),
    );
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Writes `text` to `path`, readable by its owner only.
pub fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

impl Pki {
    /// The redis-server flags of a TLS port `port` showing the server certificate, and
    /// trusting the CA for clients' certificates, which it asks for when `client_certs`
    /// (`tls-auth-clients`).
    pub fn server_args(&self, port: u16, client_certs: bool) -> Vec<String> {
        let path = |p: &PathBuf| p.to_str().unwrap().to_string();
        vec![
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            path(&self.server_cert),
            "--tls-key-file".into(),
            path(&self.server_key),
            "--tls-ca-cert-file".into(),
            path(&self.ca),
            "--tls-auth-clients".into(),
            if client_certs { "yes" } else { "no" }.into(),
        ]
    }

    /// New certificates: the server's names `localhost` only (not 127.0.0.1, so that a URL
    /// with the address is a name mismatch).
    pub fn new() -> Pki {
        Self::for_server(&["localhost"])
    }

    /// New certificates, the server's naming `names` (an IP address, such as `127.0.0.1`,
    /// goes in its subjectAltName as an address: what sentinels announce a master by).
    pub fn for_server(names: &[&str]) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let (ca_pem, issuer) = ca("cookiestore test CA");
        let (other_pem, _) = ca("cookiestore other CA");
        let (server_cert, server_key) = leaf(names, ExtendedKeyUsagePurpose::ServerAuth, &issuer);
        let (client_cert, client_key) =
            leaf(&["client"], ExtendedKeyUsagePurpose::ClientAuth, &issuer);
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            write_private(&path, text);
            path
        };
        Pki {
            ca: file("ca.pem", &ca_pem),
            other_ca: file("other-ca.pem", &other_pem),
            server_cert: file("server.pem", &server_cert),
            server_key: file("server.key", &server_key),
            client_cert: file("client.pem", &client_cert),
            client_key: file("client.key", &client_key),
            dir,
        }
    }
}

/// A redis-server with TLS on `tls_port` (and plain TCP on `server.port`, for setting up).
pub struct TlsRedis {
    pub server: RedisServer,
    pub tls_port: u16,
    pub pki: Pki,
}

impl TlsRedis {
    /// Starts one; with `client_certs`, TLS clients must show a certificate signed by the
    /// test CA (`tls-auth-clients yes`).
    pub fn start(client_certs: bool) -> TlsRedis {
        let pki = Pki::new();
        let tls_port = free_port();
        let args = pki.server_args(tls_port, client_certs);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = RedisServer::start_config(false, &args);
        TlsRedis {
            server,
            tls_port,
            pki,
        }
    }

    /// `rediss://{host}:{tls_port}/`.
    pub fn url(&self, host: &str) -> String {
        format!("rediss://{host}:{}/", self.tls_port)
    }
}
