//! Who may use a served engine: users with argon2 password hashes (a users
//! file of `name:$argon2id$…` lines, made by `lakecap passwd`), static bearer
//! tokens (a token file, one per line), or nobody at all (loopback only).
//!
//! Flight SQL's handshake turns a user's `Basic` credentials into a bearer
//! token of this process (random, 256 bits); every later request carries
//! `authorization: Bearer …`, checked against the issued and the static
//! tokens. A failed check is `UNAUTHENTICATED` and a log line.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use rand::RngCore;
use tonic::Status;
use tonic::metadata::MetadataMap;

/// The name a request runs as when the server has no authentication.
pub const ANONYMOUS: &str = "anonymous";

/// A server's credentials.
#[derive(Default)]
pub struct Auth {
    /// User name -> PHC-format argon2 hash.
    users: HashMap<String, String>,
    /// Static tokens from `--token-file` (user: `token:N`, the line).
    static_tokens: HashMap<String, String>,
    /// Tokens issued by handshakes -> user.
    issued: Mutex<HashMap<String, String>>,
}

/// The PHC-format argon2id hash of `password` (a fresh random salt).
pub fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))?
        .to_string())
}

impl Auth {
    /// Credentials from a users file and/or a token file.
    pub fn load(users: Option<&Path>, tokens: Option<&Path>) -> Result<Auth> {
        let mut auth = Auth::default();
        if let Some(path) = users {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read users file {}", path.display()))?;
            for (n, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let Some((name, hash)) = line.trim().split_once(':') else {
                    bail!(
                        "{}:{}: expected NAME:ARGON2-HASH (see lakecap passwd)",
                        path.display(),
                        n + 1
                    );
                };
                PasswordHash::new(hash).map_err(|e| {
                    anyhow::anyhow!("{}:{}: not an argon2 hash: {e}", path.display(), n + 1)
                })?;
                auth.users.insert(name.to_string(), hash.to_string());
            }
        }
        if let Some(path) = tokens {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read token file {}", path.display()))?;
            for (n, line) in text.lines().enumerate() {
                let token = line.trim();
                if token.len() >= 16 {
                    auth.static_tokens
                        .insert(token.to_string(), format!("token:{}", n + 1));
                } else if !token.is_empty() {
                    bail!(
                        "{}:{}: a token must have at least 16 characters",
                        path.display(),
                        n + 1
                    );
                }
            }
        }
        if (users.is_some() || tokens.is_some())
            && auth.users.is_empty()
            && auth.static_tokens.is_empty()
        {
            bail!("the users and token files name nobody");
        }
        Ok(auth)
    }

    /// Whether any credentials are required.
    pub fn enabled(&self) -> bool {
        !self.users.is_empty() || !self.static_tokens.is_empty()
    }

    /// The handshake: `Basic` credentials -> (user, a new bearer token).
    /// Without authentication every handshake succeeds, anonymously.
    pub fn handshake(&self, meta: &MetadataMap) -> Result<(String, String), Status> {
        if !self.enabled() {
            return Ok((ANONYMOUS.into(), String::new()));
        }
        let header = header(meta)?;
        if let Some(token) = header.strip_prefix("Bearer ") {
            return self.bearer(token).map(|u| (u, token.to_string()));
        }
        let Some(b64) = header.strip_prefix("Basic ") else {
            return Err(Status::unauthenticated(
                "expected Basic or Bearer authorization",
            ));
        };
        // Padding optional: Go clients (ADBC) send unpadded base64.
        let lenient = GeneralPurpose::new(
            &alphabet::STANDARD,
            GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
        );
        let decoded = lenient
            .decode(b64.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| Status::unauthenticated("malformed Basic authorization"))?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| Status::unauthenticated("malformed Basic authorization"))?;
        let ok = self.users.get(user).is_some_and(|hash| {
            PasswordHash::new(hash).is_ok_and(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
        });
        if !ok {
            return Err(Status::unauthenticated(format!(
                "wrong user name or password for '{user}'"
            )));
        }
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut issued = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        issued.insert(token.clone(), user.to_string());
        Ok((user.to_string(), token))
    }

    /// The user a request runs as, from its bearer token.
    pub fn user(&self, meta: &MetadataMap) -> Result<String, Status> {
        if !self.enabled() {
            return Ok(ANONYMOUS.into());
        }
        match header(meta)?.strip_prefix("Bearer ") {
            Some(token) => self.bearer(token),
            None => Err(Status::unauthenticated(
                "a bearer token is required (handshake with a user name and password first)",
            )),
        }
    }

    fn bearer(&self, token: &str) -> Result<String, Status> {
        let token = token.trim();
        if let Some(u) = self.static_tokens.get(token) {
            return Ok(u.clone());
        }
        let issued = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        issued
            .get(token)
            .cloned()
            .ok_or_else(|| Status::unauthenticated("unknown or expired bearer token"))
    }
}

fn header(meta: &MetadataMap) -> Result<&str, Status> {
    meta.get("authorization")
        .ok_or_else(|| Status::unauthenticated("this server requires authorization"))?
        .to_str()
        .map_err(|_| Status::unauthenticated("malformed authorization header"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::prelude::BASE64_STANDARD;

    fn meta(v: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("authorization", v.parse().unwrap());
        m
    }

    #[test]
    fn passwords_tokens_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users");
        std::fs::write(
            &users,
            format!("ana:{}\n", hash_password("s3cret pass").unwrap()),
        )
        .unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::write(&tokens, "0123456789abcdef0123\n").unwrap();
        let auth = Auth::load(Some(&users), Some(&tokens)).unwrap();
        let basic = |u: &str, p: &str| {
            meta(&format!(
                "Basic {}",
                BASE64_STANDARD.encode(format!("{u}:{p}"))
            ))
        };
        let (user, token) = auth.handshake(&basic("ana", "s3cret pass")).unwrap();
        assert_eq!(user, "ana");
        assert_eq!(auth.user(&meta(&format!("Bearer {token}"))).unwrap(), "ana");
        assert_eq!(
            auth.user(&meta("Bearer 0123456789abcdef0123")).unwrap(),
            "token:1"
        );
        for bad in [
            basic("ana", "wrong"),
            basic("bob", "s3cret pass"),
            meta("Basic %%%"),
        ] {
            assert_eq!(
                auth.handshake(&bad).unwrap_err().code(),
                tonic::Code::Unauthenticated
            );
        }
        assert!(auth.user(&meta("Bearer nope")).is_err());
        assert!(auth.user(&MetadataMap::new()).is_err());
        std::fs::write(&tokens, "short\n").unwrap();
        assert!(Auth::load(None, Some(&tokens)).is_err());
        std::fs::write(&users, "ana:plaintext\n").unwrap();
        assert!(Auth::load(Some(&users), None).is_err());
    }
}
