//! The session cookie and the CSRF tokens.
//!
//! `pmon_session` (signed, HttpOnly, SameSite=Strict, `Secure` over https) holds
//! `id.csrf.expiry.fingerprint`: the session id (its row in `sessions`), the session's
//! CSRF token, the expiry and the password fingerprint. Every form that changes something
//! carries the CSRF token in a hidden `csrf` field and [`check_csrf`] compares it; a page
//! from another site can make the browser send the cookie but cannot read the token.
//! Sign-in has no session yet: `GET /login` sets `pmon_login`, a signed cookie with a
//! token of its own, which the form carries back (a forged sign-in into the attacker's
//! session is refused too).

use axum::body::Body;
use axum::extract::Request;
use axum_extra::extract::cookie::{Cookie, SameSite};
use axum_extra::extract::SignedCookieJar;
use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::error::AppError;

pub const COOKIE: &str = "pmon_session";
pub const LOGIN_COOKIE: &str = "pmon_login";
pub const SESSION_DAYS: i64 = 30;
/// The largest form a signed-in page posts (host ids and tokens): bigger is refused
/// before it is read further.
const FORM_LIMIT: usize = 16 * 1024;

/// A signed-in browser, as handlers see it (an extension set by `require_login`).
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    /// Goes in every form's hidden `csrf` field.
    pub csrf: String,
    pub expires_s: i64,
}

impl Session {
    pub fn new(expires_s: i64) -> Session {
        Session { id: random_token(), csrf: random_token(), expires_s }
    }
}

/// 128 random bits, hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn base_cookie(name: &'static str, value: String, https: bool) -> Cookie<'static> {
    let mut cookie = Cookie::new(name, value);
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Strict);
    cookie.set_path("/");
    cookie.set_secure(https);
    cookie
}

/// The session's cookie; `https` makes it `Secure`.
pub fn cookie(session: &Session, fingerprint: &str, https: bool) -> Cookie<'static> {
    let value = format!("{}.{}.{}.{fingerprint}", session.id, session.csrf, session.expires_s);
    let mut cookie = base_cookie(COOKIE, value, https);
    cookie.set_max_age(cookie::time::Duration::days(SESSION_DAYS));
    cookie
}

/// The session in a signed cookie, if it is unexpired and for the password with
/// `fingerprint`. Whether it is still live is the caller's question.
pub fn from_jar(jar: &SignedCookieJar, fingerprint: &str, now_s: i64) -> Option<Session> {
    let cookie = jar.get(COOKIE)?;
    let mut parts = cookie.value().splitn(4, '.');
    let (id, csrf, expiry, print) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let expires_s = expiry.parse::<i64>().ok().filter(|e| *e > now_s)?;
    (print == fingerprint && !id.is_empty() && !csrf.is_empty()).then(|| Session {
        id: id.to_owned(),
        csrf: csrf.to_owned(),
        expires_s,
    })
}

/// The sign-in form's token: the one in the jar, or a new one with the cookie to set.
pub fn login_token(jar: &SignedCookieJar, https: bool) -> (String, Option<Cookie<'static>>) {
    match jar.get(LOGIN_COOKIE).map(|c| c.value().to_owned()).filter(|v| v.len() == 32) {
        Some(token) => (token, None),
        None => {
            let token = random_token();
            let mut cookie = base_cookie(LOGIN_COOKIE, token.clone(), https);
            cookie.set_path("/login");
            (token.clone(), Some(cookie))
        }
    }
}

/// Whether the sign-in form's `given` token is the one its cookie holds.
pub fn login_token_matches(jar: &SignedCookieJar, given: &str) -> bool {
    jar.get(LOGIN_COOKIE).is_some_and(|c| tokens_match(c.value(), given))
}

/// The cookie removal that ends the sign-in form's token.
pub fn login_cookie_removal() -> Cookie<'static> {
    Cookie::build(LOGIN_COOKIE).path("/login").build()
}

fn tokens_match(expected: &str, given: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// Checks the `csrf` field of a form request against `expected`: 403 without it or with
/// another, 413 for a form past [`FORM_LIMIT`]. Returns the request, body intact, for the
/// handler.
pub async fn check_csrf(request: Request, expected: &str) -> Result<Request, AppError> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, FORM_LIMIT)
        .await
        .map_err(|_| AppError::Rejected(axum::http::StatusCode::PAYLOAD_TOO_LARGE, "form too large".into()))?;
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
    let given = fields.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str()).unwrap_or("");
    if !tokens_match(expected, given) {
        return Err(AppError::Forbidden(
            "the form's security token is missing or stale; reload the page and try again".into(),
        ));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum_extra::extract::cookie::Key;

    #[test]
    fn the_cookie_round_trips_and_is_refused_when_expired_or_for_another_password() {
        let key = Key::generate();
        let session = Session::new(2000);
        let c = cookie(&session, "print", true);
        assert!(c.secure().unwrap_or(false) && c.http_only().unwrap_or(false));
        assert_eq!(c.same_site(), Some(SameSite::Strict));
        let jar = SignedCookieJar::new(key).add(c);
        let back = from_jar(&jar, "print", 1000).unwrap();
        assert_eq!((back.id.as_str(), back.csrf.as_str()), (session.id.as_str(), session.csrf.as_str()));
        assert!(from_jar(&jar, "print", 2000).is_none());
        assert!(from_jar(&jar, "other", 1000).is_none());
        assert!(!cookie(&session, "print", false).secure().unwrap_or(false));
    }

    #[test]
    fn tokens_are_compared_whole() {
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abc", "ab"));
        assert!(!tokens_match("", ""));
    }
}
