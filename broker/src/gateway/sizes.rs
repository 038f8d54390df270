//! How large a held connection's task is. A task is as large as its future's largest
//! state, for as long as the connection lives: 10,000 idle agents each holding room for
//! states they passed through once (the opening, a router notification, a decoded
//! packet) was most of the server's memory per connection (docs/PERFORMANCE.md,
//! "Memory per held connection").

use std::mem::size_of;

use tokio::net::TcpStream;

use super::Gateway;
use crate::ws::WsStream;

/// The size of the future `f` returns, without calling it.
fn size1<A, Fut>(_: impl FnOnce(A) -> Fut) -> usize {
    size_of::<Fut>()
}

fn size4<A, B, C, D, Fut>(_: impl FnOnce(A, B, C, D) -> Fut) -> usize {
    size_of::<Fut>()
}

#[test]
fn a_held_sessions_future_stays_small() {
    // Measured 432 bytes (debug and release, rustc 1.95), from 2,816 (debug) before the
    // opening, the ending, a notification and a decoded packet were kept out of the idle
    // state, and the session's parts were boxed once instead of copied into each async
    // fn's arguments. tokio's task is the future and about 110 bytes of its own, rounded
    // up to 128 (its cache-line alignment): 640 bytes now, and the same up to about 520.
    // A change that goes over the bound should box what it adds.
    const BOUND: usize = 480;
    let plain = size4(Gateway::serve::<TcpStream>);
    let websocket = size4(Gateway::serve::<WsStream<TcpStream>>);
    assert!(plain <= BOUND, "a plain session's future is {plain} bytes, over {BOUND}");
    assert!(websocket <= BOUND, "a WebSocket session's future is {websocket} bytes, over {BOUND}");
    // The read the idle session waits on: bytes into the buffer, not a decoded packet.
    let read = size1(crate::codec::Framed::<TcpStream>::fill);
    assert!(read <= 64, "the idle read's future is {read} bytes");
}
