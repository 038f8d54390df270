//! Who is asking: the client's address and whether it came over https, with the same
//! rule everywhere (sign-in limit, session cookie, `/mqtt`): only a loopback peer (the
//! proxy, Caddy) is trusted to say, through `X-Forwarded-For` and `X-Forwarded-Proto`.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;

use crate::error::AppError;

/// The client's address: behind a proxy on loopback (Caddy), the last hop it added to
/// `X-Forwarded-For`; otherwise the socket's peer (a loopback peer without the header
/// included: it is a source of its own). Only a loopback peer is trusted.
pub fn client_addr(peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
    if !peer.ip().is_loopback() {
        return peer;
    }
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|ip| ip.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 0))
        .unwrap_or(peer)
}

/// True when the browser reached the proxy over https. The dashboard itself speaks only
/// plain HTTP, so this is the loopback proxy's `X-Forwarded-Proto`; anybody else's is
/// ignored.
pub fn came_over_https(peer: SocketAddr, headers: &HeaderMap) -> bool {
    peer.ip().is_loopback()
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// The extractor: needs the socket's peer, which `serve` puts on every request.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub addr: SocketAddr,
    pub https: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Client, AppError> {
        let ConnectInfo(peer) = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .copied()
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("no peer address on the request")))?;
        Ok(Client { addr: client_addr(peer, &parts.headers), https: came_over_https(peer, &parts.headers) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (axum::http::HeaderName::from_static(k), v.parse().unwrap())).collect()
    }

    #[test]
    fn only_the_loopback_proxy_is_believed() {
        let proxy: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let stranger: SocketAddr = "198.51.100.9:5000".parse().unwrap();
        let forwarded = headers(&[("x-forwarded-for", "10.0.0.1, 203.0.113.7"), ("x-forwarded-proto", "https")]);
        assert_eq!(client_addr(proxy, &forwarded).ip().to_string(), "203.0.113.7", "the last hop");
        assert!(came_over_https(proxy, &forwarded));
        assert_eq!(client_addr(stranger, &forwarded), stranger);
        assert!(!came_over_https(stranger, &forwarded));
        assert_eq!(client_addr(proxy, &HeaderMap::new()), proxy, "loopback without the header is itself");
        assert!(!came_over_https(proxy, &headers(&[("x-forwarded-proto", "http")])));
    }
}
