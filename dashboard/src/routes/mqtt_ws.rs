//! `GET /mqtt`: MQTT over WebSocket (subprotocol `mqtt`). The upgrade is done here, and the
//! connection goes to the gateway as one stream of the frames' bytes (`broker::ws`): no
//! WebSocket library, no second task, no buffer of its own (docs/PERFORMANCE.md, "Memory
//! per held connection").

use std::future::Future;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hyper_util::rt::TokioIo;
use sha1::{Digest, Sha1};

use crate::client::client_addr;
use crate::AppState;

pub async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (mut parts, _) = request.into_parts();
    let accept = match check_handshake(&parts.method, &parts.headers) {
        Ok(accept) => accept,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(on_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
        return (StatusCode::UPGRADE_REQUIRED, "this connection cannot be upgraded\n").into_response();
    };
    let client = client_addr(peer, &parts.headers);
    // The per-address limit and the connection cap, before the upgrade: a refused client
    // costs one small HTTP answer. The opening deadline starts here.
    let Some(admission) = state.gateway.admit(client) else {
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "5")], "too many connection attempts\n")
            .into_response();
    };
    let gateway = state.gateway.clone();
    // A frame as large as the largest MQTT packet the gateway takes, and some.
    let max_frame = (gateway.config().max_payload + 64 * 1024) as u64;
    // hyper hands over the connection once the 101 below is sent. The session gets a
    // task of its own, the gateway's future as it is, like the listeners': awaited in
    // this short task instead, it would keep room for what this task holds (the address,
    // the admission) for the session's whole life.
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            tokio::spawn(session(&gateway, upgraded, client, admission, max_frame));
        }
    });
    let mut answer = Response::new(axum::body::Body::empty());
    *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = answer.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    if offers_mqtt(&parts.headers) {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("mqtt"));
    }
    answer
}

/// The gateway's session over an upgraded connection: `Gateway::serve`'s future, unwrapped.
fn session(
    gateway: &broker::Gateway,
    upgraded: hyper::upgrade::Upgraded,
    client: SocketAddr,
    admission: broker::Admission,
    max_frame: u64,
) -> impl Future<Output = ()> + Send + 'static {
    gateway.serve(broker::ws::WsStream::new(TokioIo::new(upgraded), max_frame), client, admission)
}

/// Why an upgrade request is refused, as the answer says it.
#[derive(Debug, PartialEq, Eq)]
pub enum HandshakeRefusal {
    NotGet,
    NoUpgradeToken,
    NotWebSocket,
    NotVersion13,
    NoKey,
}

impl IntoResponse for HandshakeRefusal {
    fn into_response(self) -> Response {
        let (status, reason) = match self {
            HandshakeRefusal::NotGet => (StatusCode::METHOD_NOT_ALLOWED, "a WebSocket upgrade is a GET"),
            HandshakeRefusal::NoUpgradeToken => {
                (StatusCode::BAD_REQUEST, "the Connection header must include 'upgrade'")
            }
            HandshakeRefusal::NotWebSocket => (StatusCode::BAD_REQUEST, "the Upgrade header must be 'websocket'"),
            HandshakeRefusal::NotVersion13 => (StatusCode::BAD_REQUEST, "the Sec-WebSocket-Version header must be 13"),
            HandshakeRefusal::NoKey => (StatusCode::BAD_REQUEST, "the Sec-WebSocket-Key header is missing"),
        };
        (status, format!("{reason}\n")).into_response()
    }
}

/// Checks an RFC 6455 opening request (what axum's `WebSocketUpgrade` checked) and returns
/// the `Sec-WebSocket-Accept` value for its key.
pub fn check_handshake(method: &Method, headers: &HeaderMap) -> Result<HeaderValue, HandshakeRefusal> {
    if method != Method::GET {
        return Err(HandshakeRefusal::NotGet);
    }
    if !has_token(headers, header::CONNECTION, "upgrade") {
        return Err(HandshakeRefusal::NoUpgradeToken);
    }
    if !headers.get(header::UPGRADE).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket")) {
        return Err(HandshakeRefusal::NotWebSocket);
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION).is_none_or(|v| v != "13") {
        return Err(HandshakeRefusal::NotVersion13);
    }
    let key = headers.get(header::SEC_WEBSOCKET_KEY).ok_or(HandshakeRefusal::NoKey)?;
    Ok(accept_key(key.as_bytes()))
}

/// RFC 6455 4.2.2: base64 of the SHA-1 of the key and the protocol's GUID.
fn accept_key(key: &[u8]) -> HeaderValue {
    let digest = Sha1::new().chain_update(key).chain_update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").finalize();
    let value = base64::engine::general_purpose::STANDARD.encode(digest);
    // Base64 is always a valid header value.
    HeaderValue::from_str(&value).expect("base64 is visible ASCII")
}

/// The client offered the `mqtt` subprotocol (a client that offered none gets none).
fn offers_mqtt(headers: &HeaderMap) -> bool {
    has_token(headers, header::SEC_WEBSOCKET_PROTOCOL, "mqtt")
}

/// One of the comma-separated values of `name` headers is `token` (ASCII case ignored).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (header::HeaderName::from_static(k), HeaderValue::from_static(v))).collect()
    }

    const GOOD: &[(&str, &str)] = &[
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "WebSocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    #[test]
    fn the_accept_key_is_rfc_6455s_example() {
        // RFC 6455 section 1.3's example key and answer.
        assert_eq!(check_handshake(&Method::GET, &request(GOOD)).unwrap(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn requests_that_are_not_upgrades_are_refused_with_the_reason() {
        assert_eq!(check_handshake(&Method::POST, &request(GOOD)), Err(HandshakeRefusal::NotGet));
        let cases = [
            ("connection", "keep-alive", HandshakeRefusal::NoUpgradeToken),
            ("upgrade", "h2c", HandshakeRefusal::NotWebSocket),
            ("sec-websocket-version", "8", HandshakeRefusal::NotVersion13),
        ];
        for (name, value, refusal) in cases {
            let mut headers = request(GOOD);
            headers.insert(name, HeaderValue::from_static(value));
            assert_eq!(check_handshake(&Method::GET, &headers), Err(refusal));
        }
        let mut headers = request(GOOD);
        headers.remove("sec-websocket-key");
        assert_eq!(check_handshake(&Method::GET, &headers), Err(HandshakeRefusal::NoKey));
    }

    /// The size of the future `f` returns, without calling it.
    fn size4<A, B, C, D, Fut>(_: impl FnOnce(A, B, C, D) -> Fut) -> usize {
        std::mem::size_of::<Fut>()
    }

    fn size5<A, B, C, D, E, Fut>(_: impl FnOnce(A, B, C, D, E) -> Fut) -> usize {
        std::mem::size_of::<Fut>()
    }

    #[test]
    fn a_websocket_sessions_task_is_the_gateways_future_and_nothing_more() {
        type Stream = broker::ws::WsStream<TokioIo<hyper::upgrade::Upgraded>>;
        let spawned = size5(session);
        let serve = size4(broker::Gateway::serve::<Stream>);
        assert_eq!(spawned, serve, "the spawned session wraps the gateway's future");
        // broker's `gateway::sizes` bound for a held session's future.
        assert!(spawned <= 480, "a WebSocket session's future is {spawned} bytes");
    }

    #[test]
    fn the_mqtt_subprotocol_is_chosen_only_when_offered() {
        assert!(offers_mqtt(&request(&[("sec-websocket-protocol", "mqttv3.1, mqtt")])));
        assert!(!offers_mqtt(&request(&[("sec-websocket-protocol", "mqttv3.1")])));
        assert!(!offers_mqtt(&request(&[])));
    }
}
