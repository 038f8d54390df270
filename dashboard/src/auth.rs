//! The dashboard password, sign-in sessions and the checks in front of every private
//! route.
//!
//! One password, checked against `DASHBOARD_PASSWORD_HASH` (argon2id). A session is a
//! cookie signed with a key derived from `SECRET_KEY_BASE` (see [`crate::session`]),
//! valid while its id is in the `sessions` table (sign-out deletes it) and its
//! fingerprint of the password hash is the current one (changing the password ends every
//! session). Sign-in attempts are limited per source address ([`crate::limit`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, Key};
use axum_extra::extract::SignedCookieJar;
use sha2::{Digest, Sha256, Sha512};
use tokio::sync::Semaphore;

use crate::error::AppError;
use crate::limit::{LoginLimiter, LoginPolicy};
use crate::session::{self, Session, SESSION_DAYS};
use crate::AppState;

/// What sign-in needs; built once at startup.
pub struct Auth {
    password_hash: String,
    pub key: Key,
    fingerprint: String,
    /// One argon2 verification at a time: a password guesser can't take every core.
    verifying: Semaphore,
    /// Sign-in attempts per source address; a short lock, never across an `.await`.
    pub limiter: Mutex<LoginLimiter>,
    /// Sessions known to be in the `sessions` table, by id, with their expiry: a page
    /// view costs no query. Filled at sign-in and on a miss; sign-out removes its entry
    /// before deleting the row.
    live: Mutex<HashMap<String, i64>>,
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
            limiter: Mutex::new(LoginLimiter::new(LoginPolicy::default())),
            live: Mutex::default(),
        })
    }

    /// The same, with another sign-in limit (tests use one without delays).
    pub fn with_login_policy(self, policy: LoginPolicy) -> Auth {
        Auth { limiter: Mutex::new(LoginLimiter::new(policy)), ..self }
    }

    /// Checks a password off the async runtime. The delay after a failure is the
    /// caller's (it grows per source address, see [`crate::limit`]) and is not spent
    /// here, so that one guesser's delays never hold up anybody else's sign-in.
    pub async fn verify(&self, password: String) -> bool {
        // The semaphore is never closed.
        let _permit = self.verifying.acquire().await.expect("semaphore open");
        let hash = self.password_hash.clone();
        tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false)
    }

    /// Starts a session: records it in `database` and returns its cookie, `Secure` when
    /// the browser reached us over https.
    pub async fn start_session(&self, database: &Path, now_s: i64, https: bool) -> Result<Cookie<'static>, AppError> {
        let session = Session::new(now_s + SESSION_DAYS * 86_400);
        let (id, expires_s) = (session.id.clone(), session.expires_s);
        crate::routes::write(database, move |conn| Ok(recorder::sessions::insert(conn, &id, now_s, expires_s)?))
            .await?;
        lock(&self.live).insert(session.id.clone(), session.expires_s);
        Ok(session::cookie(&session, &self.fingerprint, https))
    }

    /// The jar's session, if it is signed, unexpired, for the current password and live
    /// (not signed out).
    pub async fn session(
        &self,
        database: &Path,
        jar: &SignedCookieJar,
        now_s: i64,
    ) -> Result<Option<Session>, AppError> {
        let Some(session) = session::from_jar(jar, &self.fingerprint, now_s) else { return Ok(None) };
        if lock(&self.live).get(&session.id).is_some_and(|e| *e > now_s) {
            return Ok(Some(session));
        }
        let id = session.id.clone();
        let expiry = crate::routes::read(database, move |conn| recorder::sessions::expiry(conn, &id)).await?;
        match expiry {
            Some(expires_s) if expires_s > now_s => {
                lock(&self.live).insert(session.id.clone(), expires_s);
                Ok(Some(session))
            }
            _ => Ok(None),
        }
    }

    /// Ends a session server-side: a copy of its cookie is refused from now on.
    pub async fn end_session(&self, database: &Path, session: &Session) -> Result<(), AppError> {
        lock(&self.live).remove(&session.id);
        let id = session.id.clone();
        crate::routes::write(database, move |conn| Ok(recorder::sessions::delete(conn, &id)?)).await
    }
}

/// Locks a mutex whose holders never panic mid-update (short map and counter updates);
/// a poisoned one is used as is.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn hex_prefix(digest: &[u8]) -> String {
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

pub fn now_s() -> i64 {
    wire::now_ms() / 1000
}

/// Middleware for every route behind sign-in: without a session pages redirect to
/// `/login` and the API, SSE and metrics answer 401; with one, a request that changes
/// something (any method but GET and HEAD) must carry the session's CSRF token (403
/// otherwise), and handlers find the [`Session`] in the request's extensions.
pub async fn require_login(
    State(state): State<AppState>,
    jar: SignedCookieJar,
    mut request: Request,
    next: Next,
) -> Response {
    let session = match state.auth.session(&state.database, &jar, now_s()).await {
        Ok(session) => session,
        Err(e) => return e.into_response(),
    };
    let Some(session) = session else {
        let wants_html = request
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
        let path = request.uri().path();
        return if wants_html && !path.starts_with("/api/") && path != "/events" && path != "/metrics" {
            Redirect::to("/login").into_response()
        } else {
            (StatusCode::UNAUTHORIZED, "sign in at /login").into_response()
        };
    };
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        request = match session::check_csrf(request, &session.csrf).await {
            Ok(request) => request,
            Err(e) => return e.into_response(),
        };
    }
    request.extensions_mut().insert(session);
    next.run(request).await
}

/// An API token's name, in the request's extensions when it came in with one.
#[derive(Debug, Clone)]
pub struct ApiClient(pub String);

/// Middleware for the read-only routes (`/api/v1/*`, and `/metrics` unless
/// `METRICS_PUBLIC`): a request with `Authorization: Bearer <token>` must carry a live
/// API token (401 otherwise, with no fallback to a cookie) and may only read (GET, HEAD);
/// one without goes through [`require_login`]. Tokens are looked up on every request, so
/// `token remove` refuses the next one.
pub async fn require_reader(
    State(state): State<AppState>,
    jar: SignedCookieJar,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(authorization) = request.headers().get(header::AUTHORIZATION) else {
        return require_login(State(state), jar, request, next).await;
    };
    let token = authorization
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(|t| t.trim().to_owned());
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return unauthorized("expected Authorization: Bearer <API token>");
    };
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return AppError::Forbidden("API tokens are read-only".into()).into_response();
    }
    let name = crate::routes::read(&state.database, move |conn| recorder::api_tokens::verify(conn, &token)).await;
    match name {
        Ok(Some(name)) => {
            request.extensions_mut().insert(ApiClient(name));
            next.run(request).await
        }
        Ok(None) => unauthorized("unknown or revoked API token"),
        Err(e) => e.into_response(),
    }
}

/// 401 with the challenge a script's HTTP client expects.
fn unauthorized(why: &'static str) -> Response {
    (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer realm=\"proxmox-monitor\"")], why).into_response()
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
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("m.db");
        recorder::db::open_and_migrate(&database).unwrap();
        let auth = Auth::new(&hash("right"), &"s".repeat(64)).unwrap();
        assert!(auth.verify("right".into()).await);
        assert!(!auth.verify("wrong".into()).await);
        let cookie = auth.start_session(&database, 1000, false).await.unwrap();
        let jar = SignedCookieJar::new(auth.key.clone()).add(cookie.clone());
        let session = auth.session(&database, &jar, 1000).await.unwrap().expect("signed in");
        assert!(auth.session(&database, &jar, 1000 + SESSION_DAYS * 86_400 + 1).await.unwrap().is_none(), "expired");
        let other = Auth::new(&hash("new"), &"s".repeat(64)).unwrap();
        let jar_for_other = SignedCookieJar::new(other.key.clone()).add(cookie.clone());
        assert!(
            other.session(&database, &jar_for_other, 1000).await.unwrap().is_none(),
            "a new password ends old sessions"
        );
        // A restart (an empty cache) still knows the session, until it is signed out.
        let restarted = Auth::new(&auth.password_hash, &"s".repeat(64)).unwrap();
        assert!(restarted.session(&database, &jar, 1000).await.unwrap().is_some());
        auth.end_session(&database, &session).await.unwrap();
        assert!(auth.session(&database, &jar, 1000).await.unwrap().is_none(), "signed out");
        let restarted = Auth::new(&auth.password_hash, &"s".repeat(64)).unwrap();
        assert!(restarted.session(&database, &jar, 1000).await.unwrap().is_none(), "and stays so after a restart");
    }
}
