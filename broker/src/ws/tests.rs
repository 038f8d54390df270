//! Byte-level cases of the WebSocket stream, against a scripted peer.

use std::collections::VecDeque;
use std::task::Waker;

use super::*;

pub(super) const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
pub(super) const BIN: u8 = 0x2;
pub(super) const CONT: u8 = 0x0;
pub(super) const PING: u8 = 0x9;
pub(super) const FIN: u8 = 0x80;

/// A client's masked frame with the shortest length form.
pub(super) fn frame(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = vec![first];
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// The peer on the other end of the socket: hands out its reads one piece per call, takes
/// at most `write_limit` bytes per write, and says "not now" to every other write if `stall`.
#[derive(Default)]
pub(super) struct Peer {
    pub reads: VecDeque<Vec<u8>>,
    pub written: Vec<u8>,
    pub write_limit: Option<usize>,
    pub stall: bool,
    stalled: bool,
}

impl Peer {
    /// A peer that sends `pieces` (an empty one would be the end of the stream: skipped).
    pub fn sending(pieces: Vec<Vec<u8>>) -> Peer {
        Peer { reads: pieces.into_iter().filter(|p| !p.is_empty()).collect(), ..Peer::default() }
    }

    fn take(&mut self, parts: &[&[u8]]) -> Poll<io::Result<usize>> {
        if self.stall {
            self.stalled = !self.stalled;
            if self.stalled {
                return Poll::Pending;
            }
        }
        let mut room = self.write_limit.unwrap_or(usize::MAX);
        let before = self.written.len();
        for part in parts {
            let n = part.len().min(room);
            self.written.extend_from_slice(&part[..n]);
            room -= n;
        }
        Poll::Ready(Ok(self.written.len() - before))
    }
}

impl AsyncRead for Peer {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if let Some(mut piece) = self.reads.pop_front() {
            let n = piece.len().min(buf.remaining());
            buf.put_slice(&piece[..n]);
            if n < piece.len() {
                piece.drain(..n);
                self.reads.push_front(piece);
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Peer {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.take(&[buf])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let parts: Vec<&[u8]> = bufs.iter().map(|b| &b[..]).collect();
        self.take(&parts)
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Everything the stream yields, reading `chunk` bytes at a time, until the end or an error.
pub(super) fn read_all(ws: &mut WsStream<Peer>, chunk: usize) -> (Vec<u8>, io::Result<()>) {
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    for _ in 0..1_000_000 {
        let mut space = vec![0u8; chunk];
        let mut buf = ReadBuf::new(&mut space);
        match Pin::new(&mut *ws).poll_read(&mut cx, &mut buf) {
            Poll::Pending => continue,
            Poll::Ready(Err(e)) => return (out, Err(e)),
            Poll::Ready(Ok(())) if buf.filled().is_empty() => return (out, Ok(())),
            Poll::Ready(Ok(())) => out.extend_from_slice(buf.filled()),
        }
    }
    panic!("the stream never ended");
}

/// Writes all of `data` in calls of at most `chunk` bytes, as `write_all` would.
pub(super) fn write_all(ws: &mut WsStream<Peer>, data: &[u8], chunk: usize) -> io::Result<()> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut at = 0;
    for _ in 0..1_000_000 {
        if at == data.len() {
            return Ok(());
        }
        let end = data.len().min(at.saturating_add(chunk));
        match Pin::new(&mut *ws).poll_write(&mut cx, &data[at..end]) {
            Poll::Pending => {}
            Poll::Ready(Ok(n)) => at += n,
            Poll::Ready(Err(e)) => return Err(e),
        }
    }
    panic!("the write never ended");
}

/// The server's frames in `bytes`: (first byte, payload), checking they are unmasked.
pub(super) fn server_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        assert_eq!(bytes[1] & 0x80, 0, "server frames are not masked");
        let (len, at) = match bytes[1] {
            126 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            127 => (u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize, 10),
            n => (usize::from(n), 2),
        };
        frames.push((bytes[0], bytes[at..at + len].to_vec()));
        bytes = &bytes[at + len..];
    }
    frames
}

fn stream(pieces: Vec<Vec<u8>>) -> WsStream<Peer> {
    WsStream::new(Peer::sending(pieces), 1 << 20)
}

/// A fragmented message with a ping inside it, a 16-bit length and an empty frame.
fn mixed() -> (Vec<u8>, Vec<u8>) {
    let long: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
    let mut bytes = frame(BIN, b"MQ", MASK);
    bytes.extend(frame(FIN | PING, b"hi", [1, 2, 3, 4]));
    bytes.extend(frame(CONT, b"", MASK));
    bytes.extend(frame(FIN | CONT, b"TT", [9, 8, 7, 6]));
    bytes.extend(frame(FIN | BIN, &long, MASK));
    let mut expected = b"MQTT".to_vec();
    expected.extend(&long);
    (bytes, expected)
}

#[test]
fn binary_frames_in_a_row_give_their_payloads_in_order() {
    let mut bytes = frame(FIN | BIN, b"\x10\x0c", MASK);
    bytes.extend(frame(FIN | BIN, b"rest of it", [0, 0, 0, 0]));
    let (out, end) = read_all(&mut stream(vec![bytes]), 64);
    assert_eq!(out, b"\x10\x0crest of it");
    assert!(end.is_ok());
}

#[test]
fn a_stream_cut_at_every_byte_gives_the_same_bytes() {
    let (bytes, expected) = mixed();
    for cut in 0..=bytes.len() {
        let pieces = vec![bytes[..cut].to_vec(), bytes[cut..].to_vec()];
        let mut ws = stream(pieces);
        let (out, end) = read_all(&mut ws, 64);
        assert_eq!(out, expected, "cut at {cut}");
        assert!(end.is_ok(), "cut at {cut}");
        assert_eq!(server_frames(&ws.io.written), vec![(0x8A, b"hi".to_vec())], "the ping is answered");
    }
    let one_by_one = bytes.iter().map(|b| vec![*b]).collect();
    assert_eq!(read_all(&mut stream(one_by_one), 1).0, expected);
}

#[test]
fn lengths_of_16_and_64_bits() {
    let medium: Vec<u8> = (0..65_535u32).map(|i| (i % 251) as u8).collect();
    let large: Vec<u8> = (0..70_000u32).map(|i| (i % 13) as u8).collect();
    let mut bytes = frame(FIN | BIN, &medium, MASK);
    assert_eq!(bytes[1], 0x80 | 126);
    let big = frame(FIN | BIN, &large, MASK);
    assert_eq!(big[1], 0x80 | 127);
    bytes.extend(big);
    let (out, end) = read_all(&mut stream(vec![bytes]), 4096);
    assert!(end.is_ok());
    assert_eq!(out, [medium, large].concat());
}

#[test]
fn a_close_is_answered_and_ends_the_stream() {
    let mut bytes = frame(FIN | BIN, b"last", MASK);
    bytes.extend(frame(FIN | 0x8, &1001u16.to_be_bytes(), MASK));
    bytes.extend(frame(FIN | BIN, b"after the close", MASK));
    let mut ws = stream(vec![bytes]);
    let (out, end) = read_all(&mut ws, 64);
    assert_eq!(out, b"last");
    assert!(end.is_ok(), "a close is a clean end");
    assert_eq!(ws.io.written, [0x88, 2, 0x03, 0xE9], "the status code is echoed");
    let refused = write_all(&mut ws, b"too late", 64).unwrap_err();
    assert_eq!(refused.kind(), io::ErrorKind::BrokenPipe);
}

#[test]
fn an_end_inside_a_frame_is_an_error_and_between_frames_is_not() {
    let bytes = frame(FIN | BIN, b"cut short", MASK);
    let (out, end) = read_all(&mut stream(vec![bytes[..8].to_vec()]), 64);
    assert_eq!(out, b"cu");
    assert_eq!(end.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    let unfinished = frame(BIN, b"no FIN", MASK);
    assert_eq!(read_all(&mut stream(vec![unfinished]), 64).1.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
}

#[test]
fn frames_a_client_may_not_send_are_refused_with_a_close() {
    let mut unmasked = frame(FIN | BIN, b"x", MASK);
    unmasked[1] &= 0x7F;
    let cases: Vec<(Vec<u8>, WsError)> = vec![
        (frame(FIN | 0x1, b"text", MASK), WsError::Text),
        (unmasked, WsError::Unmasked),
        (frame(FIN | 0x40 | BIN, b"x", MASK), WsError::Reserved),
        (frame(FIN | 0x3, b"x", MASK), WsError::Opcode(3)),
        (frame(FIN | CONT, b"x", MASK), WsError::Fragment),
        ([frame(BIN, b"a", MASK), frame(FIN | BIN, b"b", MASK)].concat(), WsError::Fragment),
        (frame(PING, b"x", MASK), WsError::BadControl),
        (frame(FIN | PING, &[0; 126], MASK), WsError::BadControl),
        (frame(FIN | BIN, &[0; 2000], MASK), WsError::TooLarge(2000)),
    ];
    for (bytes, expected) in cases {
        let mut ws = WsStream::new(Peer::sending(vec![bytes]), 1000);
        let (_, end) = read_all(&mut ws, 64);
        let e = end.expect_err("refused");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(e.into_inner().unwrap().downcast::<WsError>().map(|e| *e).ok(), Some(expected));
        let code = expected.close_code().to_be_bytes();
        assert_eq!(ws.io.written, [0x88, 2, code[0], code[1]], "{expected:?} gets a close");
    }
}

#[test]
fn each_write_is_one_binary_frame_whatever_the_socket_takes() {
    let sizes = [1usize, 125, 126, 65_535, 65_536, 70_000];
    let data: Vec<Vec<u8>> = sizes.iter().map(|&n| (0..n).map(|i| (i % 7) as u8).collect()).collect();
    for (limit, stall) in [(None, false), (Some(1), true), (Some(3), false), (Some(1000), true)] {
        let mut ws = stream(vec![]);
        (ws.io.write_limit, ws.io.stall) = (limit, stall);
        for d in &data {
            write_all(&mut ws, d, usize::MAX).unwrap();
        }
        let frames = server_frames(&ws.io.written);
        let expected: Vec<(u8, Vec<u8>)> = data.iter().map(|d| (0x82, d.clone())).collect();
        assert!(frames == expected, "limit {limit:?}, stall {stall}");
    }
}

#[test]
fn a_pong_waits_for_the_data_frame_being_written() {
    let mut ws = stream(vec![frame(FIN | PING, b"p", MASK), frame(FIN | BIN, b"in", MASK)]);
    ws.io.write_limit = Some(3);
    let mut cx = Context::from_waker(Waker::noop());
    // A 10-byte frame begins: its header and one payload byte go out.
    assert!(matches!(Pin::new(&mut ws).poll_write(&mut cx, b"0123456789"), Poll::Ready(Ok(1))));
    assert_eq!(read_all(&mut ws, 64).0, b"in");
    write_all(&mut ws, b"123456789", 100).unwrap();
    assert!(matches!(Pin::new(&mut ws).poll_flush(&mut cx), Poll::Ready(Ok(()))));
    let frames = server_frames(&ws.io.written);
    assert_eq!(frames, vec![(0x82, b"0123456789".to_vec()), (0x8A, b"p".to_vec())]);
}

#[test]
fn the_newest_ping_is_answered_and_shutdown_sends_a_close() {
    let pings = [frame(FIN | PING, b"1", MASK), frame(FIN | PING, b"2", MASK), frame(FIN | BIN, b"x", MASK)].concat();
    let mut ws = stream(vec![pings]);
    assert_eq!(read_all(&mut ws, 64).0, b"x");
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(Pin::new(&mut ws).poll_shutdown(&mut cx), Poll::Ready(Ok(()))));
    let frames = server_frames(&ws.io.written);
    assert_eq!(frames, vec![(0x8A, b"2".to_vec()), (0x88, 1000u16.to_be_bytes().to_vec())]);
}

#[test]
fn an_idle_stream_holds_under_200_bytes_beyond_its_socket() {
    let own = size_of::<WsStream<()>>();
    assert!(own < 200, "{own} bytes");
    let ws = stream(vec![]);
    assert_eq!(ws.replies.frames.capacity(), 0, "no reply buffer while nothing waits");
}
