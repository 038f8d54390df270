//! `GET /mqtt`: MQTT over WebSocket (subprotocol `mqtt`), handed to the gateway as a
//! plain byte stream.

use std::net::SocketAddr;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::client_addr;
use crate::AppState;

pub async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let client = client_addr(peer, &headers);
    // The per-address limit and the connection cap, before the upgrade: a refused client
    // costs one small HTTP answer. The opening deadline starts here.
    let Some(admission) = state.gateway.admit(client) else {
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "5")], "too many connection attempts\n")
            .into_response();
    };
    let max = state.gateway.config().max_payload + 64 * 1024;
    // Small buffers: an agent's connection is idle but for a few small publishes a minute,
    // and tungstenite's default 128 KiB read buffer, allocated per connection, was most of
    // the server's memory with 10,000 agents (docs/PERFORMANCE.md). A large frame still
    // arrives whole: the buffer grows for it.
    ws.protocols(["mqtt"])
        .read_buffer_size(WS_BUFFER)
        .write_buffer_size(0)
        .max_message_size(max)
        .on_upgrade(move |socket| bridge(socket, state.gateway, client, admission))
}

/// The WebSocket read buffer per connection, and the most the bridge puts in one frame.
const WS_BUFFER: usize = 4 * 1024;
/// What the bridge waits for the gateway's next bytes with.
const IDLE_READ: usize = 64;

/// Pipes WebSocket binary frames to and from the gateway through an in-memory duplex.
async fn bridge(socket: WebSocket, gateway: broker::Gateway, client: SocketAddr, admission: broker::Admission) {
    // The duplex's buffer grows as needed up to this size; idle, it holds nothing.
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let session = tokio::spawn(async move { gateway.serve(theirs, client, admission).await });
    let (mut ws_tx, mut ws_rx) = socket.split();
    let (mut read, mut write) = tokio::io::split(ours);
    let inbound = async {
        while let Some(Ok(message)) = ws_rx.next().await {
            match message {
                Message::Binary(b) if write.write_all(&b).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = write.shutdown().await;
    };
    let outbound = async {
        loop {
            // Idle, the bridge waits with a few bytes of buffer, not a full one (most
            // held connections are idle agents); what else is ready then joins the frame.
            let mut buf = BytesMut::with_capacity(IDLE_READ);
            match read.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            buf.reserve(WS_BUFFER);
            while buf.len() < WS_BUFFER {
                match read.read_buf(&mut buf).now_or_never() {
                    Some(Ok(n)) if n > 0 => {}
                    _ => break,
                }
            }
            if ws_tx.send(Message::Binary(buf.freeze())).await.is_err() {
                break;
            }
        }
        let _ = ws_tx.close().await;
    };
    // Whichever side ends first ends the bridge; the gateway sees EOF and cleans up.
    tokio::select! {
        _ = inbound => {},
        _ = outbound => {},
    }
    let _ = session.await;
}
