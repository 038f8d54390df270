//! The gateway's packet inspection: a connection's bytes, cut at fuzzed points, through
//! `Framed::accept` (protocol detection) and `Framed::next` (rumqttd's decoders), each
//! packet through the ACL as a host and as an observer. The packets must not depend on the
//! cuts. The input is `<flags><cut offsets...><stream>`: flag bit 0 puts a valid MQTT 5
//! CONNECT in front (else 3.1.1), bit 1 none at all (the stream is the client's first bytes).
#![no_main]

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use broker::acl;
use broker::codec::Framed;
use broker::Identity;
use libfuzzer_sys::fuzz_target;
use rumqttd::protocol::Packet;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const CONNECT_V4: &[u8] = &[0x10, 0x0d, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 1, b'c'];
const CONNECT_V5: &[u8] = &[0x10, 0x0e, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60, 0, 0, 1, b'c'];
const MAX_PACKET: usize = 64 * 1024;

/// A client that sends its bytes in the given pieces, one per read, and takes any write.
struct Client(VecDeque<Vec<u8>>);

impl AsyncRead for Client {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if let Some(mut piece) = self.0.pop_front() {
            let n = piece.len().min(buf.remaining());
            buf.put_slice(&piece[..n]);
            if n < piece.len() {
                piece.drain(..n);
                self.0.push_front(piece);
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Client {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The packets a connection decodes to, and whether it ended in a protocol error (rather
/// than the client closing).
async fn serve(pieces: VecDeque<Vec<u8>>) -> (Vec<Packet>, bool) {
    let mut framed = match Framed::accept(Client(pieces), MAX_PACKET).await {
        Ok(f) => f,
        Err(e) => return (Vec::new(), !matches!(e, broker::codec::CodecError::Closed)),
    };
    let host = Identity::Host(wire::HostId::parse("pve1").expect("a valid host id"));
    let observer = Identity::Observer("ops".into());
    let mut packets = Vec::new();
    loop {
        match framed.next().await {
            Ok(packet) => {
                for who in [&host, &observer] {
                    check(who, &packet);
                }
                packets.push(packet);
            }
            Err(e) => return (packets, !matches!(e, broker::codec::CodecError::Closed)),
        }
    }
}

/// The ACL as the gateway applies it; a host's allowed publish must be its own topic.
fn check(who: &Identity, packet: &Packet) {
    match packet {
        Packet::Publish(publish, _) => {
            let topic = String::from_utf8_lossy(&publish.topic);
            if acl::check_publish(who, &topic, publish.payload.len(), MAX_PACKET).is_ok() {
                let parsed = wire::Topic::parse(&topic).expect("an allowed publish is a host topic");
                assert_eq!(parsed.host.as_str(), who.name());
            }
        }
        Packet::Subscribe(subscribe, _) => {
            for f in &subscribe.filters {
                if acl::check_subscribe(who, &f.path).is_ok() {
                    assert!(f.path.starts_with("pmon/v1/"), "{:?} may subscribe {:?}", who.name(), f.path);
                }
            }
        }
        _ => {}
    }
}

fn run(pieces: VecDeque<Vec<u8>>) -> (Vec<Packet>, bool) {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime =
            tokio::runtime::Builder::new_current_thread().build().expect("a current-thread runtime");
    }
    RUNTIME.with(|rt| rt.block_on(serve(pieces)))
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let cuts = usize::from(flags >> 4).min(rest.len());
    let (offsets, body) = rest.split_at(cuts);
    let connect: &[u8] = match flags & 3 {
        0 => CONNECT_V4,
        1 => CONNECT_V5,
        _ => &[],
    };
    let stream: Vec<u8> = [connect, body].concat();
    let mut at: Vec<usize> = offsets.iter().map(|o| usize::from(*o) * stream.len() / 256).collect();
    at.extend([0, stream.len()]);
    at.sort_unstable();
    at.dedup();
    let pieces: VecDeque<Vec<u8>> = at.windows(2).map(|w| stream[w[0]..w[1]].to_vec()).collect();
    let whole = run(VecDeque::from([stream.clone()]));
    assert_eq!(run(pieces), whole, "the packets depend on where the stream was cut");
});
