//! Who a connection is: its Unix credentials, its TLS certificate's name, and the token it
//! proves in the hello exchange (see `baton_proto::token`). TCP clients must prove something
//! unless anonymous TCP is explicitly allowed.

use crate::engine::Peer;
use crate::wire::{ReadError, read_message, write_message};
use baton_proto::message::HelloReply;
use baton_proto::token::{SALT_LEN, SECRET_LEN, TokenChallenge, TokenHello, TokenProof, Verifier};
use baton_proto::{ErrorCode, ErrorReply, Principal};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::warn;

/// The verifiers of the tokens this server accepts, and the policy for TCP.
pub struct Authenticator {
    verifiers: HashMap<String, Verifier>,
    /// Salts for unknown token names are derived from this, so a challenge does not reveal
    /// whether a name exists.
    decoy_key: [u8; SECRET_LEN],
    allow_anonymous_tcp: bool,
}

impl Authenticator {
    /// Loads the tokens file (one verifier per line, `#` comments), if there is one.
    pub fn new(tokens_file: Option<&Path>, allow_anonymous_tcp: bool) -> Result<Authenticator, String> {
        let mut verifiers = HashMap::new();
        if let Some(path) = tokens_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read tokens file {}: {e}", path.display()))?;
            for (number, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let verifier: Verifier =
                    line.parse().map_err(|e| format!("{} line {}: {e}", path.display(), number + 1))?;
                if verifiers.insert(verifier.name.clone(), verifier).is_some() {
                    return Err(format!("{} line {}: a second token of the same name", path.display(), number + 1));
                }
            }
        }
        let mut decoy_key = [0u8; SECRET_LEN];
        getrandom::fill(&mut decoy_key).map_err(|e| format!("no randomness: {e}"))?;
        Ok(Authenticator { verifiers, decoy_key, allow_anonymous_tcp })
    }

    /// How many tokens are configured, for the start-up log.
    pub fn token_count(&self) -> usize {
        self.verifiers.len()
    }

    /// Runs the token exchange if the hello asked for one, and checks that a TCP client has
    /// proved something. `principals` holds what the transport proved; on success the token
    /// is added to it.
    pub async fn authenticate<R, W>(
        &self,
        token: Option<&TokenHello>,
        peer: Peer,
        principals: &mut Vec<Principal>,
        io: (&mut R, &mut W),
        frame_len_max: u32,
        timeout: Duration,
    ) -> Result<(), ErrorReply>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        if let Some(token) = token {
            let name = self.prove(token, io, frame_len_max, timeout).await?;
            principals.push(Principal::Token(name));
        }
        if matches!(peer, Peer::Tcp(_)) && principals.is_empty() && !self.allow_anonymous_tcp {
            let message = "TCP clients must authenticate with a token or a TLS client certificate";
            return Err(ErrorReply::new(ErrorCode::AuthFailed, message));
        }
        Ok(())
    }

    async fn prove<R, W>(
        &self,
        hello: &TokenHello,
        (reader, writer): (&mut R, &mut W),
        frame_len_max: u32,
        timeout: Duration,
    ) -> Result<String, ErrorReply>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let failed = || ErrorReply::new(ErrorCode::AuthFailed, "token authentication failed");
        let verifier = self.verifiers.get(&hello.name);
        let salt = verifier.map_or_else(|| self.decoy_salt(&hello.name), |v| v.salt);
        let mut server_nonce = [0u8; SECRET_LEN];
        getrandom::fill(&mut server_nonce).map_err(|e| ErrorReply::new(ErrorCode::Internal, e.to_string()))?;
        let challenge = TokenChallenge { salt, server_nonce };
        let exchange = async {
            write_message(writer, &HelloReply::Challenge(challenge.clone()), frame_len_max).await?;
            read_message::<_, TokenProof>(reader, frame_len_max).await.map_err(|e| match e {
                ReadError::Io(e) => e,
                ReadError::Frame(e) => std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            })
        };
        let proof = match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(proof)) => proof,
            Ok(Err(e)) => {
                warn!(token = %hello.name, error = %e, "token exchange broken off");
                return Err(failed());
            }
            Err(_) => return Err(ErrorReply::new(ErrorCode::AuthFailed, "no token proof in time")),
        };
        match verifier {
            Some(v) if v.verify(&hello.client_nonce, &challenge, &proof) => Ok(hello.name.clone()),
            _ => {
                warn!(token = %hello.name, "token authentication failed");
                Err(failed())
            }
        }
    }

    fn decoy_salt(&self, name: &str) -> [u8; SALT_LEN] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.decoy_key).expect("HMAC takes any key length");
        mac.update(name.as_bytes());
        let digest: [u8; 32] = mac.finalize().into_bytes().into();
        std::array::from_fn(|i| digest[i])
    }
}
