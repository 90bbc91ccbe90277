//! Console sessions without server state: the cookie is an expiry and a nonce with their HMAC
//! under a key derived from the admin token, so every gateway sharing the token accepts it and
//! changing the token ends every session. The CSRF token of a session is an HMAC of its cookie.

use crate::auth::constant_time_eq;
use crate::auth::signing::hmac_sha256;

/// Name of the session cookie.
pub const COOKIE: &str = "cairn_console";
/// How long a console session lasts, in milliseconds.
pub const SESSION_TTL_MS: u64 = 12 * 3600 * 1000;
/// Name of the form field and header that carry the CSRF token.
pub const CSRF_FIELD: &str = "csrf";
/// The header a script sends the CSRF token in.
pub const CSRF_HEADER: &str = "x-cairn-csrf";

/// Issues and checks session cookies and their CSRF tokens.
pub struct Sessions {
    key: [u8; 32],
}

impl Sessions {
    /// Sessions signed with a key derived from the admin token.
    pub fn new(admin_token: &str) -> Self {
        Self { key: hmac_sha256(b"cairn console session v1", admin_token.as_bytes()) }
    }

    /// A new session cookie value valid until `now_ms + SESSION_TTL_MS`.
    pub fn issue(&self, now_ms: u64) -> String {
        let expires = now_ms.saturating_add(SESSION_TTL_MS);
        let nonce = crate::random_string(22, b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");
        let body = format!("{expires}.{nonce}");
        format!("{body}.{}", self.mac(&body))
    }

    /// Whether `cookie` is a session this key issued that has not expired.
    pub fn verify(&self, cookie: &str, now_ms: u64) -> bool {
        let Some((body, mac)) = cookie.rsplit_once('.') else { return false };
        let Some(expires) = body.split_once('.').and_then(|(e, _)| e.parse::<u64>().ok()) else { return false };
        constant_time_eq(self.mac(body).as_bytes(), mac.as_bytes()) && now_ms < expires
    }

    /// The CSRF token forms of the session `cookie` carry.
    pub fn csrf(&self, cookie: &str) -> String {
        self.mac(&format!("csrf|{cookie}"))
    }

    fn mac(&self, text: &str) -> String {
        hex::encode(hmac_sha256(&self.key, text.as_bytes()))
    }
}

/// The `Set-Cookie` value that starts session `value` (or, empty, ends it).
pub fn set_cookie(value: &str) -> String {
    let max_age = if value.is_empty() { 0 } else { SESSION_TTL_MS / 1000 };
    format!("{COOKIE}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}")
}

/// The session cookie a request carries, if any.
pub fn cookie_of(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_verify_until_they_expire_and_only_under_their_token() {
        let sessions = Sessions::new("token");
        let cookie = sessions.issue(1_000);
        assert!(sessions.verify(&cookie, 1_001));
        assert!(!sessions.verify(&cookie, 1_000 + SESSION_TTL_MS));
        assert!(!Sessions::new("another token").verify(&cookie, 1_001));
        let forged = cookie.replacen(&(1_000 + SESSION_TTL_MS).to_string(), "99999999999999", 1);
        assert!(!sessions.verify(&forged, 1_001));
        assert!(!sessions.verify("garbage", 1_001));
        let csrf = sessions.csrf(&cookie);
        assert_eq!(csrf, sessions.csrf(&cookie));
        assert_ne!(csrf, sessions.csrf(&sessions.issue(1_000)), "a token belongs to one session");
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::COOKIE, "a=1; cairn_console=v.w.x; b=2".parse().expect("header"));
        assert_eq!(cookie_of(&headers).as_deref(), Some("v.w.x"));
        assert!(set_cookie("v").contains("HttpOnly; SameSite=Strict"));
    }
}
