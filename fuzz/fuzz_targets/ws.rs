//! MQTT over WebSocket's frames (`broker::ws::WsStream`): a client's bytes, cut at fuzzed
//! points and read with a fuzzed buffer size, must give the same payload bytes and the same
//! end (clean, cut short, refused) as the uncut stream read whole, and never more bytes
//! than came in. Every reply the server writes must be a well-formed pong or close.
//! The input is `<read size><cut count><cut offsets...><stream>`.
#![no_main]

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use broker::ws::WsStream;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A client that sends its bytes in the given pieces, one per read, and takes any write.
struct Client {
    pieces: VecDeque<Vec<u8>>,
    written: Vec<u8>,
}

impl AsyncRead for Client {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if let Some(mut piece) = self.pieces.pop_front() {
            let n = piece.len().min(buf.remaining());
            buf.put_slice(&piece[..n]);
            if n < piece.len() {
                piece.drain(..n);
                self.pieces.push_front(piece);
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Client {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.written.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// What the stream yields, read `chunk` bytes at a time: the bytes, how it ended, the replies.
fn read_all(pieces: Vec<Vec<u8>>, chunk: usize) -> (Vec<u8>, Option<io::ErrorKind>, Vec<u8>) {
    let pieces = pieces.into_iter().filter(|p| !p.is_empty()).collect();
    let mut ws = WsStream::new(Client { pieces, written: Vec::new() }, 4096);
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    let end = loop {
        let mut space = vec![0u8; chunk];
        let mut buf = ReadBuf::new(&mut space);
        match Pin::new(&mut ws).poll_read(&mut cx, &mut buf) {
            Poll::Pending => unreachable!("the client is always ready"),
            Poll::Ready(Err(e)) => break Some(e.kind()),
            Poll::Ready(Ok(())) if buf.filled().is_empty() => break None,
            Poll::Ready(Ok(())) => out.extend_from_slice(buf.filled()),
        }
    };
    let written = ws.into_inner().written;
    (out, end, written)
}

/// Checks that `bytes` are server control frames: unmasked, final, pong or close.
fn check_replies(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        assert!(bytes[0] == 0x8A || bytes[0] == 0x88, "reply frame {:#x}", bytes[0]);
        let len = usize::from(bytes[1]);
        assert!(len <= 125, "control frame of {len} bytes");
        bytes = &bytes[2 + len..];
    }
}

fuzz_target!(|data: &[u8]| {
    let [chunk, count, rest @ ..] = data else { return };
    let count = usize::from(*count % 8);
    if rest.len() < count {
        return;
    }
    let (cuts, stream) = rest.split_at(count);
    let mut points: Vec<usize> = cuts.iter().map(|c| usize::from(*c) % (stream.len() + 1)).collect();
    points.sort_unstable();
    let mut pieces = Vec::new();
    let mut from = 0;
    for p in points.into_iter().chain([stream.len()]) {
        pieces.push(stream[from..p].to_vec());
        from = p;
    }
    let whole = read_all(vec![stream.to_vec()], 1 << 16);
    let cut = read_all(pieces, usize::from(*chunk).max(1));
    assert!(cut.0.len() <= stream.len(), "more bytes out than in");
    assert_eq!(cut.0, whole.0, "the cuts changed the bytes");
    assert_eq!(cut.1, whole.1, "the cuts changed the end");
    check_replies(&whole.2);
});
