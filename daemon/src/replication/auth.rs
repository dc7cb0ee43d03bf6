//! Mutual authentication of the replication link with a shared token that never crosses the
//! wire: each side sends a random nonce, and each proves it holds the token with an
//! HMAC-SHA256 over both nonces (labelled by role, so a proof cannot be reflected back).

use baton_proto::replication::NONCE_LEN;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::path::Path;

type HmacSha256 = Hmac<Sha256>;

/// The shortest token accepted, in bytes.
pub const TOKEN_LEN_MIN: usize = 16;

pub struct Token(Vec<u8>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<secret>)")
    }
}

impl Token {
    /// Reads the token from `path` (surrounding whitespace ignored).
    pub fn load(path: &Path) -> Result<Token, String> {
        let text =
            std::fs::read(path).map_err(|e| format!("cannot read the replication token {}: {e}", path.display()))?;
        let token = text.trim_ascii().to_vec();
        if token.len() < TOKEN_LEN_MIN {
            return Err(format!("the replication token in {} is shorter than {TOKEN_LEN_MIN} bytes", path.display()));
        }
        Ok(Token(token))
    }

    pub fn from_bytes(bytes: &[u8]) -> Token {
        Token(bytes.to_vec())
    }

    /// The proof that `role` ("primary" or "standby") holds the token, bound to both nonces.
    pub fn prove(&self, role: &str, first: &[u8; NONCE_LEN], second: &[u8; NONCE_LEN]) -> [u8; 32] {
        let bytes = self.mac(role, first, second).finalize().into_bytes();
        let mut out = [0u8; 32];
        out.copy_from_slice(&bytes);
        out
    }

    /// Checks a proof in constant time.
    pub fn verify(&self, role: &str, first: &[u8; NONCE_LEN], second: &[u8; NONCE_LEN], proof: &[u8; 32]) -> bool {
        self.mac(role, first, second).verify_slice(proof).is_ok()
    }

    fn mac(&self, role: &str, first: &[u8; NONCE_LEN], second: &[u8; NONCE_LEN]) -> HmacSha256 {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(b"baton-replication-v1\0");
        mac.update(role.as_bytes());
        mac.update(first);
        mac.update(second);
        mac
    }
}

/// A fresh random nonce.
pub fn nonce() -> Result<[u8; NONCE_LEN], getrandom::Error> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce)?;
    Ok(nonce)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_verify_only_with_the_same_token_role_and_nonces() {
        let token = Token::from_bytes(b"0123456789abcdef");
        let (a, b) = ([1u8; NONCE_LEN], [2u8; NONCE_LEN]);
        let proof = token.prove("standby", &a, &b);
        assert!(token.verify("standby", &a, &b, &proof));
        assert!(!token.verify("primary", &a, &b, &proof), "a proof cannot be reflected");
        assert!(!token.verify("standby", &b, &a, &proof));
        assert!(!Token::from_bytes(b"another token!!!").verify("standby", &a, &b, &proof));
    }
}
