//! Memory per held connection (issue 15 point 2): N agents connect (CONNECT with their
//! token, CONNACK) over plain MQTT or MQTT over WebSocket and stay idle; prints the server's
//! RSS before and after, and the same for Mosquitto 2 over each transport (`/usr/sbin/mosquitto`,
//! anonymous, started here on loopback ports, a fresh process per transport) in the same run.
//!
//! Every host has a fast, medium and slow sample from an earlier run in the database, so
//! the server starts with a realistic state for each.
//!
//! `ulimit -n 65536; target/release/bench_idle --hosts 10000 [--plain-only] [--unseeded]`

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use integration::fleet::Mosquitto;
use integration::load::{packet, put_str};
use integration::samples::seed;
use integration::{proc_stats, Server};

#[derive(Clone, Copy, Debug)]
enum Transport {
    Plain,
    Ws,
}

/// An MQTT 3.1.1 CONNECT with username `host`, password `token`, client id `host`.
fn connect_packet(host: &str, token: &str) -> Vec<u8> {
    let mut body = Vec::new();
    put_str(&mut body, "MQTT");
    body.extend_from_slice(&[4, 0b1100_0010]);
    body.extend_from_slice(&300u16.to_be_bytes());
    put_str(&mut body, host);
    put_str(&mut body, host);
    put_str(&mut body, token);
    packet(0x10, &body)
}

/// How many clients open at once: their upgrade requests are all sent before any answer
/// is read. Mosquitto 2.0.11 answers a WebSocket upgrade only at its main loop's next turn
/// (100–200 ms here), so one client at a time would take half an hour for 10,000; it
/// looked like a stall at a few hundred connections.
const BATCH: usize = 500;

/// Connects and, over WebSocket, sends the upgrade request (the answer is read by [`accept`]).
fn open(addr: SocketAddr, transport: Transport) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    if let Transport::Ws = transport {
        let request = format!(
            "GET /mqtt HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: mqtt\r\n\r\n"
        );
        stream.write_all(request.as_bytes())?;
    }
    Ok(stream)
}

/// Finishes the upgrade, if any, sends CONNECT and waits for CONNACK 0.
fn accept(stream: &mut TcpStream, transport: Transport, host: &str, token: &str) -> std::io::Result<()> {
    let connect = connect_packet(host, token);
    let connack_at = match transport {
        Transport::Plain => {
            stream.write_all(&connect)?;
            0
        }
        Transport::Ws => {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                stream.read_exact(&mut byte)?;
                head.push(byte[0]);
            }
            if !head.starts_with(b"HTTP/1.1 101") {
                return Err(std::io::Error::other(String::from_utf8_lossy(&head).into_owned()));
            }
            // One binary frame, masked with a zero key (so the payload is sent as is).
            assert!(connect.len() < 126);
            let mut frame = vec![0x82, 0x80 | connect.len() as u8, 0, 0, 0, 0];
            frame.extend_from_slice(&connect);
            stream.write_all(&frame)?;
            2
        }
    };
    let mut connack = vec![0u8; connack_at + 4];
    stream.read_exact(&mut connack)?;
    if connack[connack_at] != 0x20 || connack[connack_at + 3] != 0 {
        return Err(std::io::Error::other(format!("CONNACK refused: {connack:?}")));
    }
    Ok(())
}

/// Every client connected and accepted, [`BATCH`] at a time, kept open by the caller.
fn hold_all(addr: SocketAddr, transport: Transport, clients: &[(String, String)]) -> std::io::Result<Vec<TcpStream>> {
    let mut held = Vec::with_capacity(clients.len());
    for batch in clients.chunks(BATCH) {
        let mut opened = batch.iter().map(|_| open(addr, transport)).collect::<std::io::Result<Vec<_>>>()?;
        for (stream, (host, token)) in opened.iter_mut().zip(batch) {
            accept(stream, transport, host, token).map_err(|e| std::io::Error::other(format!("{host}: {e}")))?;
        }
        held.extend(opened);
    }
    Ok(held)
}

fn rss_mib(pid: u32) -> f64 {
    proc_stats(pid).rss_kib as f64 / 1024.0
}

/// Connects every (host, token) to `addr` and reports the RSS of `pid` before and after;
/// returns the RSS with them held (MiB) and the growth per connection (KiB).
fn measure(what: &str, pid: u32, addr: SocketAddr, transport: Transport, clients: &[(String, String)]) -> (f64, f64) {
    std::thread::sleep(Duration::from_secs(2));
    let before = rss_mib(pid);
    let held = hold_all(addr, transport, clients).unwrap_or_else(|e| panic!("{what} {transport:?}: {e}"));
    std::thread::sleep(Duration::from_secs(5));
    let after = rss_mib(pid);
    let per = (after - before) * 1024.0 / held.len() as f64;
    println!(
        "{what} {transport:?}: {n} held, RSS {before:.1} MiB before, {after:.1} MiB after, {per:.1} KiB per connection",
        n = held.len()
    );
    drop(held);
    std::thread::sleep(Duration::from_secs(3));
    (after, per)
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let hosts: usize = argv
        .iter()
        .position(|a| a == "--hosts")
        .map_or(10_000, |i| argv.get(i + 1).and_then(|n| n.parse().ok()).expect("--hosts N"));
    // Plain MQTT and Mosquitto only: the start and the plain connection in half the time.
    let plain_only = argv.iter().any(|a| a == "--plain-only");
    // As deploy/proxmox-monitor.service runs it.
    let mut server = Server::start_with_hosts(hosts, vec![("MALLOC_ARENA_MAX".into(), "2".into())]);
    // Every host as after an earlier run: its latest sample of each tier in the database,
    // so the server starts with every host's state to hold. `--unseeded`: hosts registered
    // and never heard from (the figures before 2026-11-30's seeding).
    if !argv.iter().any(|a| a == "--unseeded") {
        server.stop();
        let names: Vec<String> = server.tokens.iter().map(|(h, _)| h.clone()).collect();
        seed(&server.database(), &names, &["fast", "medium", "slow"]);
        server.start_again();
    }
    let plain = measure("proxmox-monitor", server.child.id(), server.mqtt, Transport::Plain, &server.tokens);
    let ws = (!plain_only).then(|| {
        // A fresh process, so that what the allocator kept from the first run does not
        // hide the second's.
        server.restart();
        measure("proxmox-monitor", server.child.id(), server.http, Transport::Ws, &server.tokens)
    });

    // A fresh Mosquitto per transport too.
    let anonymous: Vec<(String, String)> = server.tokens.iter().map(|(h, _)| (h.clone(), "x".into())).collect();
    let transports: &[Transport] = if plain_only { &[Transport::Plain] } else { &[Transport::Plain, Transport::Ws] };
    let mut reference = Vec::new();
    for &transport in transports {
        let broker = Mosquitto::start().expect("start mosquitto");
        let addr = match transport {
            Transport::Plain => broker.tcp,
            Transport::Ws => broker.ws,
        };
        reference.push(measure("mosquitto", broker.pid(), addr, transport, &anonymous));
    }
    let ours = [("plain", Some(plain)), ("WebSocket", ws)].into_iter().filter_map(|(t, m)| Some((t, m?)));
    for ((transport, (rss, per)), (mosquitto_rss, mosquitto_per)) in ours.zip(reference) {
        println!(
            "ratio to mosquitto, {transport}: RSS with all held {:.1}x, per connection {:.1}x",
            rss / mosquitto_rss,
            per / mosquitto_per
        );
    }
}
