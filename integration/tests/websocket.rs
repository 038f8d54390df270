//! MQTT over WebSocket at the frame level (issue 15 point 2: `/mqtt` does its own upgrade
//! and `broker::ws` turns frames into the gateway's byte stream): what a raw client sees
//! from the real server over loopback.

use std::io::{Read, Write};
use std::net::TcpStream;

use integration::*;

use crate::gateway::{raw_connect, ws_upgrade_answer};

const MASK: [u8; 4] = [0xa1, 0x5b, 0x07, 0x3c];

/// A client's masked frame (payloads under 126 bytes).
fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut out = vec![first, 0x80 | payload.len() as u8];
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    out
}

/// The next server frame: (first byte, payload). Server frames are unmasked and short here.
fn server_frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    s.read_exact(&mut head).expect("a frame from the server");
    assert!(head[1] < 126, "a short unmasked frame: {head:?}");
    let mut payload = vec![0u8; usize::from(head[1])];
    s.read_exact(&mut payload).unwrap();
    (head[0], payload)
}

/// Upgrades `/mqtt` and returns the answer's head, lowercased.
fn upgrade(server: &InProcessServer) -> (String, TcpStream) {
    let (head, s) = ws_upgrade_answer(server.http, None);
    (head.to_lowercase(), s)
}

/// Reads until the server closes the connection (bounded by the read timeout).
fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).expect("the server closes the connection");
    rest
}

#[test]
fn a_fragmented_connect_with_a_ping_inside_is_served_and_a_close_is_answered() {
    let server = InProcessServer::start();
    let token = server.add_host("pve-frames");
    let (head, mut s) = upgrade(&server);
    assert!(head.starts_with("http/1.1 101"), "{head}");
    // RFC 6455 section 1.3's example key and its answer.
    assert!(head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n"), "{head}");
    assert!(head.contains("sec-websocket-protocol: mqtt\r\n"), "{head}");

    // CONNECT in two fragments of one message, a ping between them, in one write.
    let connect = raw_connect("pve-frames", "pve-frames", &token, 60);
    let (first, second) = connect.split_at(7);
    let mut bytes = client_frame(0x02, first);
    bytes.extend(client_frame(0x89, b"hi"));
    bytes.extend(client_frame(0x80, second));
    s.write_all(&bytes).unwrap();
    let mut frames = vec![server_frame(&mut s), server_frame(&mut s)];
    frames.sort();
    assert_eq!(frames, vec![(0x82, vec![0x20, 2, 0, 0]), (0x8A, b"hi".to_vec())], "CONNACK and the pong");

    // A PINGREQ byte by byte, each byte its own frame: one PINGRESP.
    s.write_all(&[client_frame(0x02, &[0xC0]), client_frame(0x80, &[0])].concat()).unwrap();
    assert_eq!(server_frame(&mut s), (0x82, vec![0xD0, 0]));

    // A close (1001, going away) is answered with the same code, then the connection ends.
    s.write_all(&client_frame(0x88, &1001u16.to_be_bytes())).unwrap();
    assert_eq!(server_frame(&mut s), (0x88, 1001u16.to_be_bytes().to_vec()));
    assert_eq!(read_to_end(&mut s), Vec::<u8>::new());
}

#[test]
fn a_text_frame_ends_the_connection_with_close_1003() {
    let server = InProcessServer::start();
    let token = server.add_host("pve-text");
    let (head, mut s) = upgrade(&server);
    assert!(head.starts_with("http/1.1 101"), "{head}");
    s.write_all(&client_frame(0x82, &raw_connect("pve-text", "pve-text", &token, 60))).unwrap();
    assert_eq!(server_frame(&mut s), (0x82, vec![0x20, 2, 0, 0]));
    s.write_all(&client_frame(0x81, b"{\"text\": true}")).unwrap();
    assert_eq!(server_frame(&mut s), (0x88, 1003u16.to_be_bytes().to_vec()));
    // What follows the close frame, if anything, is a close too; then the end.
    let rest = read_to_end(&mut s);
    assert!(rest.is_empty() || rest.starts_with(&[0x88]), "{rest:?}");
}
