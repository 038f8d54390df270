//! MQTT over WebSocket as one byte stream for [`crate::Gateway::serve`]: the server side of
//! RFC 6455 over a connection the HTTP server has upgraded.
//!
//! A WebSocket library (tungstenite) kept a read buffer of its own per connection, and the
//! bridge to the gateway a second task and an in-memory duplex: 6 KiB more per held
//! connection than plain MQTT (docs/PERFORMANCE.md). Here the gateway's own read buffer is
//! the only one: a read takes the client's frames into it and unmasks their payload in
//! place, and a write sends the gateway's bytes as one binary frame, header and payload in
//! one vectored write. Idle, a connection holds under 200 bytes of frame state.
//!
//! Message boundaries mean nothing to MQTT (RFC 6455 carries a byte stream here, as the
//! MQTT spec's section 6 says), so binary and continuation frames are simply concatenated.
//! Pings are answered with pongs; a close is answered with a close, then reads end. Text
//! frames, unmasked frames, reserved bits, unknown opcodes and oversize frames are errors,
//! sent to the client as a close frame with the matching code.
//!
//! Here and not in the dashboard, which does the HTTP upgrade: the frames are the transport
//! the gateway reads, and the fuzz targets reach the broker without the web UI.

mod decode;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub use decode::{Decoder, WsError};

/// The most a read takes from the socket at once (the caller's buffer is zeroed up to it).
const MAX_READ: usize = 16 * 1024;
/// The longest header of a server frame: 2 bytes and a 64-bit length (no mask).
const MAX_OUT_HEAD: usize = 10;

/// An upgraded connection as the MQTT byte stream inside its binary frames.
///
/// Read and write it from one task, as the gateway does: a read may write a pong, and a
/// socket keeps one waker per direction, so a reader and a writer in two tasks could
/// each take the other's wake-up.
pub struct WsStream<S> {
    io: S,
    decoder: Decoder,
    replies: Replies,
    out: OutFrame,
}

impl<S> WsStream<S> {
    /// `io` is the connection after the 101 answer; frames over `max_frame` bytes are refused.
    pub fn new(io: S, max_frame: u64) -> WsStream<S> {
        WsStream { io, decoder: Decoder::new(max_frame), replies: Replies::default(), out: OutFrame::default() }
    }

    /// The connection underneath (what the fuzz target checks the replies on).
    pub fn into_inner(self) -> S {
        self.io
    }
}

/// Control frames to send: the answer to a ping or to a close, or our own close.
#[derive(Debug, Default)]
pub struct Replies {
    /// Whole frames, the first `sent` bytes already written; allocated only while waiting.
    frames: Vec<u8>,
    sent: usize,
    /// The queued frames hold a pong alone (which a newer ping's pong may replace).
    pong_only: bool,
    /// A close frame is queued or sent: no data frame may follow it.
    closing: bool,
}

impl Replies {
    /// Queues the pong for a ping. A pong not yet begun gives way to the newer one (RFC 6455
    /// 5.5.3 allows answering only the latest ping); behind other frames it is dropped.
    pub fn pong(&mut self, payload: &[u8]) {
        let replaceable = self.frames.is_empty() || (self.pong_only && self.sent == 0);
        if self.closing || !replaceable {
            return;
        }
        self.frames.clear();
        self.push(0x8A, payload);
        self.pong_only = true;
    }

    /// Queues a close frame with `code`, once.
    pub fn close(&mut self, code: Option<u16>) {
        if self.closing {
            return;
        }
        let code = code.map(u16::to_be_bytes);
        let payload = code.as_ref().map_or(&[][..], |c| &c[..]);
        self.push(0x88, payload);
        self.pong_only = false;
        self.closing = true;
    }

    fn push(&mut self, first: u8, payload: &[u8]) {
        let (head, len) = frame_head(first, payload.len());
        self.frames.extend_from_slice(&head[..len]);
        self.frames.extend_from_slice(payload);
    }

    /// Writes what is queued.
    fn poll_send<S: AsyncWrite + Unpin>(&mut self, io: &mut S, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.frames.len() {
            let n = ready!(Pin::new(&mut *io).poll_write(cx, &self.frames[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        // Sent: let go of the allocation.
        (self.frames, self.sent, self.pong_only) = (Vec::new(), 0, false);
        Poll::Ready(Ok(()))
    }
}

/// The data frame being written: its header's unsent bytes and its payload still to come.
#[derive(Debug, Default)]
struct OutFrame {
    head: [u8; MAX_OUT_HEAD],
    head_len: u8,
    head_sent: u8,
    remaining: u64,
}

impl OutFrame {
    fn busy(&self) -> bool {
        self.head_sent < self.head_len || self.remaining > 0
    }

    fn begin(&mut self, len: usize) {
        let (head, head_len) = frame_head(0x82, len);
        (self.head, self.head_len, self.head_sent, self.remaining) = (head, head_len as u8, 0, len as u64);
    }

    fn unsent_head(&self) -> &[u8] {
        &self.head[usize::from(self.head_sent)..usize::from(self.head_len)]
    }

    /// `n` bytes went out, header first; returns how many of them were payload.
    fn advance(&mut self, n: usize) -> usize {
        let head = n.min(self.unsent_head().len());
        self.head_sent += head as u8; // At most MAX_OUT_HEAD.
        let payload = n - head;
        self.remaining -= payload as u64;
        payload
    }
}

/// An unmasked, final frame's header with `first` (FIN and opcode) for `len` bytes, and
/// its length.
fn frame_head(first: u8, len: usize) -> ([u8; MAX_OUT_HEAD], usize) {
    let mut head = [first, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    // Each arm's cast is in range by the arm's pattern.
    match len {
        0..=125 => {
            head[1] = len as u8;
            (head, 2)
        }
        126..=0xFFFF => {
            head[1] = 126;
            head[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            (head, 4)
        }
        _ => {
            head[1] = 127;
            head[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            (head, 10)
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            // Answers go out before more is read, so a client that pings and never reads
            // the pongs is held back by TCP, not queued in our memory. Not in the middle
            // of a data frame: that one ends first, and its write sends them.
            if !this.out.busy() {
                ready!(this.replies.poll_send(&mut this.io, cx))?;
            }
            if let Some(e) = this.decoder.failed() {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
            }
            if this.decoder.closed() || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            let room = buf.initialize_unfilled_to(buf.remaining().min(MAX_READ));
            let mut from_socket = ReadBuf::new(room);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut from_socket))?;
            let got = from_socket.filled().len();
            if got == 0 {
                return Poll::Ready(match this.decoder.partway() {
                    true => Err(io::ErrorKind::UnexpectedEof.into()),
                    false => Ok(()),
                });
            }
            // None: only headers, control frames or a refused frame; the loop's top says which.
            let n = this.decoder.decode(&mut room[..got], &mut this.replies);
            if n > 0 {
                buf.advance(n);
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if !this.out.busy() {
            ready!(this.replies.poll_send(&mut this.io, cx))?;
            if this.replies.closing {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            this.out.begin(buf.len());
        }
        // The frame may have begun in an earlier call with a longer buffer: what is still
        // due of its payload comes from this one.
        let due = buf.len().min(usize::try_from(this.out.remaining).unwrap_or(usize::MAX));
        loop {
            let parts = [IoSlice::new(this.out.unsent_head()), IoSlice::new(&buf[..due])];
            let n = ready!(Pin::new(&mut this.io).poll_write_vectored(cx, &parts))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let payload = this.out.advance(n);
            if payload > 0 {
                return Poll::Ready(Ok(payload));
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.out.busy() {
            ready!(this.replies.poll_send(&mut this.io, cx))?;
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    /// Sends a close frame (1000, or the answer to the client's), then ends the stream.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.out.busy() {
            this.replies.close(Some(1000));
            // A peer that is gone cannot take the close frame: end the stream anyway.
            let _ = ready!(this.replies.poll_send(&mut this.io, cx));
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}
