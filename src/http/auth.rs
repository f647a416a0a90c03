//! Basic auth: the `Authorization` header, and bcrypt verification with a cache of the
//! credentials already verified.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use base64::Engine as _;
use hyper::header::HeaderValue;

use super::webconfig::{err, WebConfigError};

/// Most verified credentials remembered; the cache is emptied when full.
const AUTH_CACHE_MAX: usize = 256;

/// Checks basic-auth credentials against the users' bcrypt hashes.
pub(super) struct BasicAuth {
    /// Hashes of (user, bcrypt hash, password) already verified, salted per process, so a
    /// scrape every few seconds does not pay bcrypt's cost each time.
    verified: Mutex<HashSet<[u8; 32]>>,
    salt: [u8; 16],
    /// bcrypt runs one at a time: a flood of wrong passwords costs one core at most.
    bcrypt_slot: tokio::sync::Semaphore,
}

impl BasicAuth {
    pub(super) fn new() -> Result<Self, WebConfigError> {
        let mut salt = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
            .map_err(|_| err("cannot get random bytes for the credential cache"))?;
        Ok(BasicAuth {
            verified: Mutex::new(HashSet::new()),
            salt,
            bcrypt_slot: tokio::sync::Semaphore::new(1),
        })
    }

    fn cache_key(&self, user: &str, hash: &str, pass: &[u8]) -> [u8; 32] {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(&self.salt);
        for part in [user.as_bytes(), hash.as_bytes(), pass] {
            ctx.update(&(part.len() as u64).to_le_bytes());
            ctx.update(part);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    fn is_cached(&self, key: &[u8; 32]) -> bool {
        match self.verified.lock() {
            Ok(g) => g.contains(key),
            Err(p) => p.into_inner().contains(key),
        }
    }

    /// Whether the request's `Authorization` header satisfies basic auth for `users`
    /// (username to bcrypt hash; always true when there are none). bcrypt runs on a
    /// blocking thread, one at a time.
    pub(super) async fn authorize(
        &self,
        users: &BTreeMap<String, String>,
        header: Option<&HeaderValue>,
    ) -> bool {
        if users.is_empty() {
            return true;
        }
        let Some((user, pass)) = parse_basic(header) else {
            return false;
        };
        let hash = users.get(&user).cloned();
        let key = self.cache_key(&user, hash.as_deref().unwrap_or(""), &pass);
        if hash.is_some() && self.is_cached(&key) {
            return true;
        }
        let Ok(_slot) = self.bcrypt_slot.acquire().await else {
            return false;
        };
        if hash.is_some() && self.is_cached(&key) {
            return true;
        }
        // An unknown user still costs one bcrypt (against a real hash, with a result
        // thrown away), so response time does not tell which users exist.
        let target = hash.clone().or_else(|| users.values().next().cloned());
        let known = hash.is_some();
        let ok = tokio::task::spawn_blocking(move || {
            let matched = target
                .map(|h| bcrypt::verify(&pass, &h).unwrap_or(false))
                .unwrap_or(false);
            matched && known
        })
        .await
        .unwrap_or(false);
        if ok {
            let mut set = match self.verified.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if set.len() >= AUTH_CACHE_MAX {
                set.clear();
            }
            set.insert(key);
        }
        ok
    }
}

/// `Authorization: Basic base64(user:password)` → (user, password).
fn parse_basic(header: Option<&HeaderValue>) -> Option<(String, Vec<u8>)> {
    let v = header?.to_str().ok()?.trim();
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let colon = raw.iter().position(|b| *b == b':')?;
    let user = String::from_utf8(raw[..colon].to_vec()).ok()?;
    Some((user, raw[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header_parsing() {
        let hv = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(
            parse_basic(Some(&hv("Basic YWxpY2U6cDpx"))),
            Some(("alice".into(), b"p:q".to_vec()))
        );
        assert_eq!(
            parse_basic(Some(&hv("basic YWxpY2U6"))),
            Some(("alice".into(), Vec::new()))
        );
        for bad in [
            "Bearer YWxpY2U6cA==",
            "Basic !!!",
            "Basic YWxpY2U=",
            "Basic",
            "",
        ] {
            assert_eq!(parse_basic(Some(&hv(bad))), None, "{bad}");
        }
        assert_eq!(parse_basic(None), None);
    }
}
