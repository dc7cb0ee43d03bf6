//! Identity and access control against the real daemon: TCP clients prove a token (made by
//! `baton token new`) or are refused; nodes carry ACLs checked per operation and again when
//! watch events are delivered; admin operations need the admin permission; a Unix client is
//! its SO_PEERCRED uid and gid.

use baton::{Client, CreateOptions, ErrorCode, EventKind, Perms, Principal};
use baton_tests::access::TcpAccess;
use baton_tests::{Daemon, cli};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};
use std::time::Duration;

fn server_code(err: &baton::Error) -> Option<ErrorCode> {
    match err {
        baton::Error::Server { code, .. } => Some(*code),
        _ => None,
    }
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{out:?}");
    text(&out)
}

/// A daemon on TCP with the default (creator-only) ACL and two tokens.
fn two_tokens() -> (Daemon, TcpAccess, TcpAccess) {
    let alice = TcpAccess::new("alice");
    let bob = TcpAccess::new("bob");
    let tokens = alice.tokens_file().with_file_name("both");
    let lines = [alice.tokens_file(), bob.tokens_file()].map(|f| std::fs::read_to_string(f).unwrap()).concat();
    std::fs::write(&tokens, lines).unwrap();
    let config = format!("listen = \"{}\"\ntokens_file = \"{}\"\n", alice.tcp(), tokens.display());
    (Daemon::start_with_config(&config), alice, bob)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_clients_are_refused_without_a_valid_token_and_known_by_it_with_one() {
    let (daemon, alice, _bob) = two_tokens();
    let tcp = alice.tcp().to_string();
    let anonymous = Client::connect(&tcp).await.unwrap_err();
    assert_eq!(server_code(&anonymous), Some(ErrorCode::AuthFailed), "{anonymous}");
    let forged: baton::Token = format!("alice:{}", "ab".repeat(32)).parse().unwrap();
    let refused = Client::builder().token(forged).connect(&tcp).await.unwrap_err();
    assert_eq!(server_code(&refused), Some(ErrorCode::AuthFailed), "{refused}");
    let unknown: baton::Token = format!("mallory:{}", "cd".repeat(32)).parse().unwrap();
    let refused = Client::builder().token(unknown).connect(&tcp).await.unwrap_err();
    assert_eq!(server_code(&refused), Some(ErrorCode::AuthFailed), "{refused}");
    let client = alice.builder().connect(&tcp).await.unwrap();
    assert_eq!(client.who_am_i().await.unwrap(), (vec![Principal::Token("alice".into())], false));
    // The server kept only verifiers, and its log names no secret.
    let secret = std::fs::read_to_string(alice.token_file()).unwrap();
    let secret = secret.trim().split_once(':').unwrap().1;
    assert!(!std::fs::read_to_string(alice.tokens_file()).unwrap().contains(secret));
    client.close().await.unwrap();
    assert!(!daemon.log().contains(secret));
    assert!(daemon.log().contains("token authentication failed"), "refusals are logged");
}

#[test]
fn baton_token_new_makes_a_token_the_daemon_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("ci.token");
    let made = cli("unused").args(["token", "new", "ci", "--out"]).arg(&token_file).output().unwrap();
    let verifier = ok(made);
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the client's token is private");
    let again = cli("unused").args(["token", "new", "ci", "--out"]).arg(&token_file).output().unwrap();
    assert!(!again.status.success(), "an existing token file is never replaced");
    let secret = std::fs::read_to_string(&token_file).unwrap();
    assert!(!verifier.contains(secret.trim().split_once(':').unwrap().1), "the verifier holds no secret");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, &verifier).unwrap();
    let tcp = baton_tests::free_tcp_addr();
    let _daemon = Daemon::start_with_config(&format!("listen = \"{tcp}\"\ntokens_file = \"{}\"\n", tokens.display()));
    let who = cli(&tcp.to_string()).arg("--token-file").arg(&token_file).args(["acl", "whoami"]).output().unwrap();
    assert_eq!(ok(who), "token:ci\nanyone\n");
    let refused = cli(&tcp.to_string()).args(["ls", "/"]).output().unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("authentication failed"), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_decide_who_reads_writes_and_hears_of_a_node() {
    let (daemon, alice_access, bob_access) = two_tokens();
    let tcp = alice_access.tcp().to_string();
    let alice = alice_access.builder().connect(&tcp).await.unwrap();
    let bob = bob_access.builder().connect(&tcp).await.unwrap();
    let mut bob_hears = bob.watch("/", true).await.unwrap();

    alice.create("/hidden", b"secret", CreateOptions::persistent()).await.unwrap();
    alice.set("/hidden", b"still secret", None).await.unwrap();
    let (acl, _) = alice.get_acl("/hidden").await.unwrap();
    assert_eq!(acl.iter().map(ToString::to_string).collect::<Vec<_>>(), ["token:alice:rwcda"]);
    let denied = bob.get("/hidden").await.unwrap_err();
    assert_eq!(server_code(&denied), Some(ErrorCode::NoAuth), "{denied}");
    assert!(bob.exists("/hidden").await.unwrap().is_some(), "exists needs no permission, as in ZooKeeper");
    let denied = bob.set("/hidden", b"mine now", None).await.unwrap_err();
    assert_eq!(server_code(&denied), Some(ErrorCode::NoAuth));
    let denied = bob.create("/hidden/child", b"", CreateOptions::persistent()).await.unwrap_err();
    assert_eq!(server_code(&denied), Some(ErrorCode::NoAuth));

    // Alice shares it with bob, read-only, through the CLI.
    let set = cli(&tcp)
        .arg("--token-file")
        .arg(alice_access.token_file())
        .args(["acl", "set", "/hidden", "creator:all", "token:bob:r"])
        .output()
        .unwrap();
    ok(set);
    let shown =
        cli(&tcp).arg("--token-file").arg(alice_access.token_file()).args(["acl", "get", "/hidden"]).output().unwrap();
    assert_eq!(ok(shown), "token:alice:rwcda\ntoken:bob:r\n");
    assert_eq!(bob.get("/hidden").await.unwrap().0, b"still secret");
    alice.set("/hidden", b"shared", None).await.unwrap();

    // Bob's recursive watch heard nothing while he could not read the node, and hears the
    // change made after the grant.
    let first = tokio::time::timeout(Duration::from_secs(5), bob_hears.next()).await.unwrap().unwrap();
    assert_eq!((first.path.as_str(), first.kind), ("/hidden", EventKind::DataChanged), "{first:?}");
    assert_eq!(bob.get("/hidden").await.unwrap().0, b"shared");

    // Admin operations need `a` on the root, which neither token has.
    let denied = bob.status().await.unwrap_err();
    assert_eq!(server_code(&denied), Some(ErrorCode::NoAuth));
    let denied = alice.backup("/tmp/never-written").await.unwrap_err();
    assert_eq!(server_code(&denied), Some(ErrorCode::NoAuth));
    let (root_acl, _) = bob.get_acl("/").await.unwrap();
    assert!(root_acl.iter().all(|e| !e.perms.contains(Perms::ADMIN)));
    // The daemon's own user (this test's) is a superuser on the Unix socket.
    let local = Client::connect(&daemon.addr()).await.unwrap();
    let (principals, superuser) = local.who_am_i().await.unwrap();
    assert!(superuser && principals.contains(&Principal::Uid(nix::unistd::geteuid().as_raw())), "{principals:?}");
    local.status().await.unwrap();
}

/// Runs the CLI as `uid` (group 0, which the test's root-owned socket admits).
fn as_user(daemon: &Daemon, uid: u32, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid", &uid.to_string(), "--regid", "0", "--clear-groups", "--"])
        .arg(baton_tests::binary("baton"))
        .arg("--addr")
        .arg(daemon.addr())
        .args(args)
        .output()
        .expect("run setpriv")
}

#[test]
fn a_unix_client_is_its_peer_uid_and_gid() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to connect as other uids (setpriv)");
        return;
    }
    let daemon = Daemon::start();
    // The test's temp dir is private; let the other users reach the (group 0) socket.
    let dir = daemon.socket().parent().unwrap().to_owned();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).unwrap();
    let (alice, bob) = (65_534, 65_533);
    assert_eq!(ok(as_user(&daemon, alice, &["acl", "whoami"])), "uid:65534\ngid:0\nanyone\n");
    ok(as_user(&daemon, alice, &["create", "/mine", "hers"]));
    assert_eq!(ok(as_user(&daemon, alice, &["acl", "get", "/mine"])), "uid:65534:rwcda\n");
    let denied = as_user(&daemon, bob, &["get", "/mine"]);
    assert!(!denied.status.success() && String::from_utf8_lossy(&denied.stderr).contains("not authorized"));
    ok(as_user(&daemon, alice, &["acl", "set", "/mine", "creator:all,gid:0:r"]));
    assert_eq!(ok(as_user(&daemon, bob, &["get", "/mine"])), "hers");
    let denied = as_user(&daemon, bob, &["admin", "status"]);
    assert!(String::from_utf8_lossy(&denied.stderr).contains("not authorized"), "{denied:?}");
    // An ACL given at create time, naming users by name.
    ok(cli(&daemon.addr()).args(["create", "/shared", "v0", "--acl", "uid:nobody:rw,uid:root:all"]).output().unwrap());
    assert_eq!(
        ok(cli(&daemon.addr()).args(["acl", "get", "/shared"]).output().unwrap()),
        "uid:0:rwcda\nuid:65534:rw\n"
    );
    ok(as_user(&daemon, alice, &["set", "/shared", "v1"]));
    assert!(!as_user(&daemon, bob, &["get", "/shared"]).status.success());
    // Root is a superuser by default.
    assert!(ok(cli(&daemon.addr()).args(["acl", "whoami"]).output().unwrap()).contains("(superuser)"));
    ok(cli(&daemon.addr()).args(["admin", "status"]).output().unwrap());
}

/// A CA and the certificates it signs, written as PEM files into `dir`.
struct Pki {
    dir: tempfile::TempDir,
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
        let ca = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Pki { dir, ca }
    }

    fn ca(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Issues a certificate named `name`; returns the paths of it and its key.
    fn issue(&self, name: &str, server: bool) -> (std::path::PathBuf, std::path::PathBuf) {
        let sans = if server { vec!["localhost".to_owned()] } else { Vec::new() };
        let mut params = rcgen::CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        if server {
            params.subject_alt_names.push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
        }
        params.extended_key_usages = vec![if server {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        }];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let (cert_path, key_path) =
            (self.dir.path().join(format!("{name}.pem")), self.dir.path().join(format!("{name}.key")));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_clients_are_their_certificate_names() {
    let pki = Pki::new("baton test CA");
    let (server_cert, server_key) = pki.issue("batond", true);
    let (web_cert, web_key) = pki.issue("web-1", false);
    let tcp = baton_tests::free_tcp_addr();
    let config = format!(
        "listen = \"{tcp}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\ntls_client_ca = \"{}\"\n",
        server_cert.display(),
        server_key.display(),
        pki.ca().display()
    );
    let daemon = Daemon::start_with_config(&config);
    let addr = tcp.to_string();

    let tls = baton::TlsClient::from_files(&pki.ca(), &web_cert, &web_key).unwrap();
    let web = Client::builder().tls(tls).connect(&addr).await.unwrap();
    assert_eq!(web.who_am_i().await.unwrap(), (vec![Principal::Cert("web-1".into())], false));
    web.create("/web", b"", CreateOptions::persistent()).await.unwrap();
    let (acl, _) = web.get_acl("/web").await.unwrap();
    assert_eq!(acl.iter().map(ToString::to_string).collect::<Vec<_>>(), ["cert:web-1:rwcda"]);

    // Without a certificate, or with one from another CA, there is no connection at all.
    let plain = Client::builder().connect_timeout(Duration::from_secs(2)).connect(&addr).await;
    assert!(plain.is_err(), "a plain TCP client got in");
    let rogue_pki = Pki::new("rogue CA");
    let (rogue_cert, rogue_key) = rogue_pki.issue("web-1", false);
    let rogue = baton::TlsClient::from_files(&pki.ca(), &rogue_cert, &rogue_key).unwrap();
    let refused = Client::builder().tls(rogue).connect_timeout(Duration::from_secs(2)).connect(&addr).await;
    assert!(refused.is_err(), "a certificate from another CA got in");
    // And the client checks the server: a CA that did not sign the server's certificate.
    let distrustful = baton::TlsClient::from_files(&rogue_pki.ca(), &web_cert, &web_key).unwrap();
    let refused = Client::builder().tls(distrustful).connect_timeout(Duration::from_secs(2)).connect(&addr).await;
    assert!(refused.is_err(), "the client trusted a server its CA did not sign");
    assert!(daemon.log().contains("TLS handshake failed"), "refusals are logged");

    let who = cli(&addr)
        .arg("--tls-ca")
        .arg(pki.ca())
        .arg("--tls-cert")
        .arg(&web_cert)
        .arg("--tls-key")
        .arg(&web_key)
        .args(["acl", "whoami"])
        .output()
        .unwrap();
    assert_eq!(ok(who), "cert:web-1\nanyone\n");
    web.close().await.unwrap();
}
