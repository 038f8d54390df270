//! The security headers on every response (pages, assets, errors, the API), set in one
//! place: a layer over the whole router.
//!
//! The Content-Security-Policy allows no inline script or style, no `eval`, nothing from
//! another origin, and no framing; so an injected `<script>` or `onclick=` would not run.
//! `img-src` allows `data:` for browsers' own form icons; charts are inline SVG, which
//! needs no source. `connect-src 'self'` covers the live updates (`/events`) and the host
//! page's refresh.

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::HeaderValue;
use axum::response::Response;

pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Adds the headers; a response without its own `Cache-Control` gets `no-store` (pages
/// carry a CSRF token, and the admin page a new host's token, which no cache should keep;
/// the back button after sign-out shows nothing private).
pub async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(CACHE_CONTROL) {
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
