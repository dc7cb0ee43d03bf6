//! TCP access for tests: a token the daemon knows (through a tokens file holding only its
//! verifier) and clients that prove it, as a deployment would set it up.

use baton::{ClientBuilder, Token};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A TCP address, a token for it, and the files that hold the two halves.
pub struct TcpAccess {
    _dir: tempfile::TempDir,
    tcp: SocketAddr,
    token: Token,
    tokens_file: PathBuf,
    token_file: PathBuf,
}

impl TcpAccess {
    /// A fresh loopback address and a random token named `name`.
    pub fn new(name: &str) -> TcpAccess {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut secret = [0u8; baton::proto::token::SECRET_LEN];
        let mut salt = [0u8; baton::proto::token::SALT_LEN];
        getrandom::fill(&mut secret).and_then(|()| getrandom::fill(&mut salt)).expect("randomness");
        let token = Token::new(name, secret).expect("a valid token name");
        let tokens_file = dir.path().join("tokens");
        std::fs::write(&tokens_file, format!("# verifiers only\n{}\n", token.verifier(salt))).expect("tokens file");
        let token_file = dir.path().join("client.token");
        std::fs::write(&token_file, format!("{token}\n")).expect("token file");
        TcpAccess { _dir: dir, tcp: super::free_tcp_addr(), token, tokens_file, token_file }
    }

    pub fn tcp(&self) -> SocketAddr {
        self.tcp
    }

    /// Config lines for a daemon listening on TCP with this token. Nodes are open to all
    /// (`anyone:all`): tests using this are about sessions and connections, not ACLs, and
    /// mix Unix and TCP clients.
    pub fn config(&self) -> String {
        format!(
            "listen = \"{}\"\ntokens_file = \"{}\"\ndefault_acl = [\"anyone:all\"]\n",
            self.tcp,
            self.tokens_file.display()
        )
    }

    /// A client builder that proves the token.
    pub fn builder(&self) -> ClientBuilder {
        baton::Client::builder().token(self.token.clone())
    }

    /// The client's token file, for `baton --token-file`.
    pub fn token_file(&self) -> &Path {
        &self.token_file
    }

    /// The daemon's tokens file.
    pub fn tokens_file(&self) -> &Path {
        &self.tokens_file
    }
}
