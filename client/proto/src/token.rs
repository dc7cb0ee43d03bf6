//! Token authentication for TCP clients, without the token ever being sent or stored in the
//! clear (the idea of SCRAM, RFC 5802, with HMAC-SHA-256).
//!
//! A token is a name and 32 random bytes; the client holds it (`NAME:HEX`). The server holds
//! only a *verifier* (`NAME:SALT:STORED_KEY`, hex): `client_key = HMAC(HMAC(secret, salt),
//! "Client Key")` and `stored_key = SHA-256(client_key)`. A stolen verifier does not let its
//! thief log in, since it lacks `client_key`.
//!
//! The exchange: the client's hello names the token and brings a nonce; the server answers
//! with the salt and a nonce of its own; the client sends `proof = client_key XOR
//! HMAC(stored_key, transcript)`; the server recovers `client_key` from the proof and checks
//! its hash against `stored_key`. A proof is good for one pair of nonces only.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::fmt::Write as _;
use std::str::FromStr;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of a token's secret, of a nonce and of a proof.
pub const SECRET_LEN: usize = 32;
/// Bytes of a verifier's salt.
pub const SALT_LEN: usize = 16;

/// In the client's hello: which token it will prove, and its nonce.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenHello {
    pub name: String,
    pub client_nonce: [u8; SECRET_LEN],
}

/// The server's answer to a [`TokenHello`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenChallenge {
    pub salt: [u8; SALT_LEN],
    pub server_nonce: [u8; SECRET_LEN],
}

/// The client's frame after a challenge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenProof {
    pub proof: [u8; SECRET_LEN],
}

/// A client's token. Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    name: String,
    secret: [u8; SECRET_LEN],
}

/// What the server stores for a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verifier {
    pub name: String,
    pub salt: [u8; SALT_LEN],
    stored_key: [u8; SECRET_LEN],
}

impl Token {
    /// A token from its name and secret (32 random bytes the caller drew).
    pub fn new(name: &str, secret: [u8; SECRET_LEN]) -> Result<Token, String> {
        valid_name(name)?;
        Ok(Token { name: name.to_owned(), secret })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier for this token with `salt` (random bytes the caller drew).
    pub fn verifier(&self, salt: [u8; SALT_LEN]) -> Verifier {
        let stored_key = Sha256::digest(self.client_key(&salt)).into();
        Verifier { name: self.name.clone(), salt, stored_key }
    }

    /// Answers `challenge` for the exchange that began with `client_nonce`.
    pub fn prove(&self, client_nonce: &[u8; SECRET_LEN], challenge: &TokenChallenge) -> TokenProof {
        let client_key = self.client_key(&challenge.salt);
        let stored_key: [u8; SECRET_LEN] = Sha256::digest(client_key).into();
        let signature = signature(&stored_key, &self.name, client_nonce, challenge);
        TokenProof { proof: xor(&client_key, &signature) }
    }

    fn client_key(&self, salt: &[u8; SALT_LEN]) -> [u8; SECRET_LEN] {
        let salted = hmac(&self.secret, salt);
        hmac(&salted, b"Client Key")
    }
}

impl Verifier {
    /// Whether `proof` shows knowledge of the token in the exchange of these nonces.
    pub fn verify(&self, client_nonce: &[u8; SECRET_LEN], challenge: &TokenChallenge, proof: &TokenProof) -> bool {
        let signature = signature(&self.stored_key, &self.name, client_nonce, challenge);
        let client_key = xor(&proof.proof, &signature);
        let hashed: [u8; SECRET_LEN] = Sha256::digest(client_key).into();
        // Compare without an early exit, so timing says nothing of how much matched.
        hashed.iter().zip(&self.stored_key).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
    }
}

/// The transcript both sides sign: everything the exchange agreed on.
#[allow(clippy::expect_used, reason = "HMAC takes keys of any length")]
fn signature(
    stored_key: &[u8; SECRET_LEN],
    name: &str,
    client_nonce: &[u8; SECRET_LEN],
    challenge: &TokenChallenge,
) -> [u8; SECRET_LEN] {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(stored_key).expect("HMAC takes any key length");
    mac.update(b"baton-token-v1");
    mac.update(&(name.len() as u64).to_le_bytes());
    mac.update(name.as_bytes());
    mac.update(client_nonce);
    mac.update(&challenge.salt);
    mac.update(&challenge.server_nonce);
    mac.finalize().into_bytes().into()
}

#[allow(clippy::expect_used, reason = "HMAC takes keys of any length")]
fn hmac(key: &[u8], message: &[u8]) -> [u8; SECRET_LEN] {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn xor(a: &[u8; SECRET_LEN], b: &[u8; SECRET_LEN]) -> [u8; SECRET_LEN] {
    std::array::from_fn(|i| a[i] ^ b[i])
}

/// Token names: 1 to 64 of `A-Z a-z 0-9 . _ -`.
fn valid_name(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok { Ok(()) } else { Err(format!("token name {name:?} must be 1 to 64 of A-Z a-z 0-9 . _ -")) }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token").field("name", &self.name).finish_non_exhaustive()
    }
}

/// `NAME:HEX` — what a client keeps in its token file.
impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, hex(&self.secret))
    }
}

impl FromStr for Token {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, secret) = s.trim().split_once(':').ok_or("a token is NAME:SECRET (see `baton token new`)")?;
        Token::new(name, unhex(secret, "the token's secret")?)
    }
}

/// `NAME:SALT:STORED_KEY` — one line of the server's tokens file.
impl fmt::Display for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.name, hex(&self.salt), hex(&self.stored_key))
    }
}

impl FromStr for Verifier {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.trim().split(':');
        let (Some(name), Some(salt), Some(stored), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("a verifier is NAME:SALT:STORED_KEY (see `baton token new`)".into());
        };
        valid_name(name)?;
        Ok(Verifier {
            name: name.to_owned(),
            salt: unhex(salt, "the salt")?,
            stored_key: unhex(stored, "the stored key")?,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(2 * bytes.len()), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn unhex<const N: usize>(text: &str, what: &str) -> Result<[u8; N], String> {
    let bad = || format!("{what} must be {} hex digits", 2 * N);
    if text.len() != 2 * N || !text.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Token {
        Token::new("deploy", [7; SECRET_LEN]).unwrap()
    }

    fn challenge(server_nonce: u8) -> TokenChallenge {
        TokenChallenge { salt: [3; SALT_LEN], server_nonce: [server_nonce; SECRET_LEN] }
    }

    #[test]
    fn the_right_token_proves_itself_and_nothing_else_does() {
        let verifier = token().verifier([3; SALT_LEN]);
        let nonce = [1; SECRET_LEN];
        let proof = token().prove(&nonce, &challenge(2));
        assert!(verifier.verify(&nonce, &challenge(2), &proof));
        assert!(!verifier.verify(&nonce, &challenge(9), &proof), "a proof is bound to the server's nonce");
        assert!(!verifier.verify(&[8; SECRET_LEN], &challenge(2), &proof), "and to the client's");
        let other = Token::new("deploy", [8; SECRET_LEN]).unwrap();
        assert!(!verifier.verify(&nonce, &challenge(2), &other.prove(&nonce, &challenge(2))));
    }

    #[test]
    fn neither_the_proof_nor_the_verifier_contains_the_secret_or_the_client_key() {
        let t = token();
        let verifier = t.verifier([3; SALT_LEN]);
        let proof = t.prove(&[1; SECRET_LEN], &challenge(2));
        let client_key = t.client_key(&[3; SALT_LEN]);
        for secret in [t.secret, client_key] {
            assert_ne!(proof.proof, secret);
            assert!(!verifier.to_string().contains(&hex(&secret)));
        }
        assert!(!format!("{t:?}").contains(&hex(&t.secret)), "Debug hides the secret");
    }

    #[test]
    fn text_forms_round_trip_and_bad_ones_say_why() {
        let t = token();
        assert_eq!(t.to_string().parse::<Token>().unwrap(), t);
        let v = t.verifier([3; SALT_LEN]);
        assert_eq!(v.to_string().parse::<Verifier>().unwrap(), v);
        assert!("deploy".parse::<Token>().unwrap_err().contains("NAME:SECRET"));
        assert!("deploy:abc".parse::<Token>().unwrap_err().contains("64 hex digits"));
        let bad_name = format!("bad name:{}", hex(&[0; SECRET_LEN]));
        assert!(bad_name.parse::<Token>().unwrap_err().contains("token name"));
        assert!("a:b".parse::<Verifier>().unwrap_err().contains("NAME:SALT:STORED_KEY"));
    }
}
