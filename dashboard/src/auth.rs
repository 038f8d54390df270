//! The dashboard password and the session cookie.
//!
//! One password, checked against `DASHBOARD_PASSWORD_HASH` (argon2id). A session is a
//! cookie signed with a key derived from `SECRET_KEY_BASE`, holding its expiry and a
//! fingerprint of the password hash: changing the password ends every session.

use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, Key, SameSite};
use axum_extra::extract::SignedCookieJar;
use sha2::{Digest, Sha256, Sha512};
use tokio::sync::Semaphore;

use crate::AppState;

pub const COOKIE: &str = "pmon_session";
const SESSION_DAYS: i64 = 30;

/// What login needs; built once at startup.
pub struct Auth {
    password_hash: String,
    pub key: Key,
    fingerprint: String,
    /// One argon2 verification at a time: a password guesser can't take every core.
    verifying: Semaphore,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("DASHBOARD_PASSWORD_HASH is not an argon2 hash ({0}); make one with `proxmox-monitor hash-password`")]
    BadHash(String),
    #[error("SECRET_KEY_BASE is shorter than 32 characters; make one with `proxmox-monitor gen-secret`")]
    ShortSecret,
}

impl Auth {
    pub fn new(password_hash: &str, secret_key_base: &str) -> Result<Auth, AuthConfigError> {
        let parsed = PasswordHash::new(password_hash).map_err(|e| AuthConfigError::BadHash(e.to_string()))?;
        if !parsed.algorithm.as_str().starts_with("argon2") {
            return Err(AuthConfigError::BadHash(format!("algorithm {}", parsed.algorithm)));
        }
        if secret_key_base.len() < 32 {
            return Err(AuthConfigError::ShortSecret);
        }
        let key_bytes = Sha512::digest(secret_key_base.as_bytes());
        let fingerprint = hex_prefix(&Sha256::digest(password_hash.as_bytes()));
        Ok(Auth {
            password_hash: password_hash.to_owned(),
            key: Key::from(&key_bytes),
            fingerprint,
            verifying: Semaphore::new(1),
        })
    }

    /// Checks a password off the async runtime; a failure costs the caller half a second.
    pub async fn verify(&self, password: String) -> bool {
        // The semaphore is never closed.
        let _permit = self.verifying.acquire().await.expect("semaphore open");
        let hash = self.password_hash.clone();
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if !ok {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        ok
    }

    pub fn session_cookie(&self, now_s: i64, secure: bool) -> Cookie<'static> {
        let value = format!("{}.{}", now_s + SESSION_DAYS * 86_400, self.fingerprint);
        let mut cookie = Cookie::new(COOKIE, value);
        cookie.set_http_only(true);
        cookie.set_same_site(SameSite::Strict);
        cookie.set_path("/");
        cookie.set_secure(secure);
        cookie.set_max_age(time_days(SESSION_DAYS));
        cookie
    }

    /// Whether the jar holds a valid, unexpired session for the current password.
    pub fn is_signed_in(&self, jar: &SignedCookieJar, now_s: i64) -> bool {
        let Some(cookie) = jar.get(COOKIE) else { return false };
        let Some((expiry, fingerprint)) = cookie.value().split_once('.') else { return false };
        expiry.parse::<i64>().is_ok_and(|e| e > now_s) && fingerprint == self.fingerprint
    }
}

fn time_days(days: i64) -> cookie::time::Duration {
    cookie::time::Duration::days(days)
}

fn hex_prefix(digest: &[u8]) -> String {
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

pub fn now_s() -> i64 {
    wire::now_ms() / 1000
}

/// True when the browser reached us over HTTPS (directly or through the proxy).
pub fn is_https(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()) == Some("https")
}

/// Middleware for every page behind login: pages redirect to `/login`, the API, SSE and
/// metrics answer 401.
pub async fn require_login(
    State(state): State<AppState>,
    jar: SignedCookieJar,
    request: Request,
    next: Next,
) -> Response {
    if state.auth.is_signed_in(&jar, now_s()) {
        return next.run(request).await;
    }
    let wants_html =
        request.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"));
    let path = request.uri().path();
    if wants_html && !path.starts_with("/api/") && path != "/events" {
        Redirect::to("/login").into_response()
    } else {
        (StatusCode::UNAUTHORIZED, "sign in at /login").into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};

    pub fn hash(pw: &str) -> String {
        Argon2::default().hash_password(pw.as_bytes(), &SaltString::generate(&mut OsRng)).unwrap().to_string()
    }

    #[test]
    fn config_errors_name_the_fix() {
        let e = Auth::new("plain", &"s".repeat(64)).err().unwrap().to_string();
        assert!(e.contains("hash-password"), "{e}");
        let e = Auth::new(&hash("x"), "short").err().unwrap().to_string();
        assert!(e.contains("gen-secret"), "{e}");
    }

    #[tokio::test]
    async fn password_and_session_checks() {
        let auth = Auth::new(&hash("right"), &"s".repeat(64)).unwrap();
        assert!(auth.verify("right".into()).await);
        assert!(!auth.verify("wrong".into()).await);
        let jar = SignedCookieJar::new(auth.key.clone()).add(auth.session_cookie(1000, false));
        assert!(auth.is_signed_in(&jar, 1000));
        assert!(!auth.is_signed_in(&jar, 1000 + SESSION_DAYS * 86_400 + 1), "expired");
        let other = Auth::new(&hash("new"), &"s".repeat(64)).unwrap();
        let jar = SignedCookieJar::new(other.key.clone()).add(auth.session_cookie(1000, false));
        assert!(!other.is_signed_in(&jar, 1000), "a new password ends old sessions");
    }
}
