//! Property tests of the WebSocket stream (issue 15, "Fuzzing"): any sequence of client
//! frames carrying bytes B, cut anywhere and read with any buffer, yields exactly B; any
//! writes come out as binary frames carrying exactly what was written; any bytes at all
//! give the same bytes and the same end however they are cut, never a panic.
//! `fuzz/fuzz_targets/ws.rs` runs the last for longer.

use proptest::collection::vec;
use proptest::prelude::*;

use super::tests::{frame, read_all, server_frames, write_all, Peer, BIN, CONT, FIN, PING};
use super::*;

fn config() -> ProptestConfig {
    ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
}

/// One message: its payload in fragments, each with a mask and maybe a ping before it.
type Message = Vec<(Vec<u8>, [u8; 4], Option<Vec<u8>>)>;

fn messages() -> impl Strategy<Value = Vec<Message>> {
    let fragment = (vec(any::<u8>(), 0..300), any::<[u8; 4]>(), proptest::option::of(vec(any::<u8>(), 0..=125)));
    vec(vec(fragment, 1..4), 0..6)
}

/// The client's bytes for `messages`, and the payload they carry.
fn encode(messages: &[Message]) -> (Vec<u8>, Vec<u8>) {
    let (mut bytes, mut payload) = (Vec::new(), Vec::new());
    for message in messages {
        for (i, (data, mask, ping)) in message.iter().enumerate() {
            if let Some(p) = ping {
                bytes.extend(frame(FIN | PING, p, *mask));
            }
            let opcode = if i == 0 { BIN } else { CONT };
            let fin = if i + 1 == message.len() { FIN } else { 0 };
            bytes.extend(frame(fin | opcode, data, *mask));
            payload.extend(data);
        }
    }
    (bytes, payload)
}

/// `bytes` cut at the given points (taken modulo its length).
fn cut(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut pieces = Vec::new();
    let mut from = 0;
    for p in points.into_iter().chain([bytes.len()]) {
        pieces.push(bytes[from..p].to_vec());
        from = p;
    }
    pieces
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn client_frames_carrying_bytes_yield_exactly_those_bytes(
        messages in messages(),
        cuts in vec(any::<usize>(), 0..20),
        chunk in 1usize..200,
    ) {
        let (bytes, payload) = encode(&messages);
        let mut ws = WsStream::new(Peer::sending(cut(&bytes, &cuts)), 1 << 20);
        let (out, end) = read_all(&mut ws, chunk);
        prop_assert!(end.is_ok(), "{end:?}");
        prop_assert_eq!(out, payload);
        // Every reply is a pong carrying one of the pings' payloads.
        let pings: Vec<Vec<u8>> = messages.iter().flatten().filter_map(|f| f.2.clone()).collect();
        for (first, body) in server_frames(&ws.io.written) {
            prop_assert_eq!(first, 0x8A);
            prop_assert!(pings.contains(&body));
        }
    }

    #[test]
    fn writes_come_out_as_frames_carrying_exactly_them(
        writes in vec(vec(any::<u8>(), 1..500), 0..10),
        limit in proptest::option::of(1usize..50),
        stall in any::<bool>(),
        chunk in 1usize..600,
    ) {
        let mut ws = WsStream::new(Peer::default(), 1 << 20);
        (ws.io.write_limit, ws.io.stall) = (limit, stall);
        for w in &writes {
            write_all(&mut ws, w, chunk).unwrap();
        }
        let frames = server_frames(&ws.io.written);
        prop_assert!(frames.iter().all(|(first, _)| *first == 0x82));
        let carried: Vec<u8> = frames.into_iter().flat_map(|(_, body)| body).collect();
        prop_assert_eq!(carried, writes.concat());
    }

    #[test]
    fn any_bytes_give_the_same_bytes_and_end_however_cut(
        bytes in prop_oneof![vec(any::<u8>(), 0..600), messages().prop_map(|m| encode(&m).0)],
        noise in vec((any::<usize>(), any::<u8>()), 0..4),
        cuts in vec(any::<usize>(), 0..10),
        chunk in 1usize..100,
    ) {
        let mut bytes = bytes;
        for (at, value) in noise {
            if !bytes.is_empty() {
                let i = at % bytes.len();
                bytes[i] = value;
            }
        }
        let whole = read_all(&mut WsStream::new(Peer::sending(vec![bytes.clone()]), 4096), 1 << 16);
        let cut = read_all(&mut WsStream::new(Peer::sending(cut(&bytes, &cuts)), 4096), chunk);
        prop_assert!(cut.0.len() <= bytes.len());
        prop_assert_eq!(&cut.0, &whole.0);
        prop_assert_eq!(cut.1.map_err(|e| e.to_string()), whole.1.map_err(|e| e.to_string()));
    }
}
