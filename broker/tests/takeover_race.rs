//! Two CONNECTs of one host racing each other, through a real gateway on loopback.
//!
//! The clone check (is this CONNECT a takeover from another address?) must judge the
//! session the CONNECT will actually replace. When the check and the join took the
//! presence lock separately, both CONNECTs of a pair could pass the check with no session
//! live and then both join: the second replaced the first without being judged a
//! takeover, so two agents sharing a token were let in during a cool-down, and a
//! takeover went uncounted. Here the detector trips on the first takeover and stays
//! tripped, so every round of two simultaneous CONNECTs from two addresses must end with
//! exactly one accepted and one refused. Likewise a CONNECT racing a token rotation
//! must either be refused or be closed by it, never stay.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use broker::{hash_token, CloneRules, Credential, CredentialTable, Gateway, GatewayConfig, Role, Router};
use bytes::BytesMut;
use rumqttd::protocol::{v4::V4, Connect, Login, Packet, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::{timeout, Instant};

const HOST: &str = "pve-race";
const TOKEN: &str = "race-token";

/// An MQTT 3.1.1 CONNECT of the host with `token`, clean session, keepalive 60 s.
fn connect_packet(token: &str) -> Vec<u8> {
    let connect = Connect { keep_alive: 60, client_id: HOST.to_owned(), clean_session: true };
    let login = Login { username: HOST.to_owned(), password: token.to_owned() };
    let mut out = BytesMut::new();
    V4.write(Packet::Connect(connect, None, None, None, Some(login)), &mut out).unwrap();
    out.to_vec()
}

/// A TCP connection to `server` from `local` (any 127.0.0.0/8 address is loopback).
async fn dial(server: SocketAddr, local: IpAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(local, 0)).unwrap();
    socket.connect(server).await.unwrap()
}

/// Sends the CONNECT and reads the CONNACK's return code (0 accepted, 2 identifier
/// rejected, 5 not authorized).
async fn connack(stream: &mut TcpStream, token: &str) -> u8 {
    stream.write_all(&connect_packet(token)).await.unwrap();
    let mut ack = [0u8; 4];
    timeout(Duration::from_secs(5), stream.read_exact(&mut ack)).await.expect("a CONNACK within 5 s").unwrap();
    assert_eq!(ack[..2], [0x20, 2], "a CONNACK");
    ack[3]
}

/// The host's credential with `token`.
fn table(token: &str) -> CredentialTable {
    let credential = Credential { role: Role::Host, token_hash: hash_token(token) };
    CredentialTable(HashMap::from([(HOST.to_owned(), credential)]))
}

/// A gateway as `serve` builds it (hosts' publishes to an ingest sink, so a host session
/// has no router link), with a detector that trips on the first takeover from another
/// address and then refuses such takeovers for the rest of the test.
async fn start_gateway() -> (Gateway, SocketAddr) {
    let router = Router::start(64);
    let (ingest, mut deliveries) = broker::ingest::channel(broker::ingest::CAPACITY);
    tokio::spawn(async move {
        while let Some(delivery) = deliveries.recv().await {
            if let Some(done) = delivery.done {
                done.complete();
            }
        }
    });
    let clones = CloneRules { takeovers: 1, window: Duration::from_secs(600), cool_down: Duration::from_secs(600) };
    let config = GatewayConfig { clones, ..GatewayConfig::default() };
    let gateway = Gateway::new(router, config, None, Some(ingest)).await.unwrap();
    gateway.set_credentials(table(TOKEN)).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(broker::listener::serve(listener, gateway.clone(), None, std::future::pending()));
    (gateway, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_connects_of_one_host_racing_never_both_get_in_during_a_cool_down() {
    let (gateway, server) = start_gateway().await;
    let (a, b): (IpAddr, IpAddr) = ([127, 0, 0, 1].into(), [127, 0, 0, 2].into());
    let deadline = Instant::now() + Duration::from_secs(60);
    let rounds = 300;
    for round in 0..rounds {
        assert!(Instant::now() < deadline, "{round} of {rounds} rounds in 60 s");
        // The TCP connections first, so the two CONNECTs arrive as close together as
        // the two tasks can make them.
        let (mut first, mut second) = (dial(server, a).await, dial(server, b).await);
        let (x, y) = tokio::join!(
            tokio::spawn(async move { (connack(&mut first, TOKEN).await, first) }),
            tokio::spawn(async move { (connack(&mut second, TOKEN).await, second) }),
        );
        let ((code_a, first), (code_b, second)) = (x.unwrap(), y.unwrap());
        let mut codes = [code_a, code_b];
        codes.sort();
        assert_eq!(codes, [0, 2], "round {round}: one agent in and the other refused as a clone, not both in");
        // Both gone, and the gateway has seen them go, before the next round.
        drop((first, second));
        let gone = Instant::now() + Duration::from_secs(5);
        while !gateway.online_hosts().await.is_empty() {
            assert!(Instant::now() < gone, "round {round}: the session did not end within 5 s");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let stats = gateway.stats();
    assert_eq!(stats.clones_detected.load(std::sync::atomic::Ordering::Relaxed), 1, "tripped once, then refused");
    assert_eq!(stats.refused_clone.load(std::sync::atomic::Ordering::Relaxed), rounds);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connect_racing_a_rotation_is_refused_or_closed_never_kept() {
    let (gateway, server) = start_gateway().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let rounds = 300;
    let mut accepted = 0;
    for round in 0..rounds {
        assert!(Instant::now() < deadline, "{round} of {rounds} rounds in 60 s");
        let (old, new) = (format!("token-{round}"), format!("token-{}", round + 1));
        gateway.set_credentials(table(&old)).await;
        let mut stream = dial(server, [127, 0, 0, 1].into()).await;
        let rotate = {
            let gateway = gateway.clone();
            // A varying head start for the CONNECT, so that the rotation lands at every
            // point of its opening over the rounds.
            async move {
                for _ in 0..round % 40 {
                    tokio::task::yield_now().await;
                }
                gateway.set_credentials(table(&new)).await
            }
        };
        let (code, _) = tokio::join!(connack(&mut stream, &old), rotate);
        if code != 0 {
            assert_eq!(code, 5, "round {round}: refused as not authorized");
            continue;
        }
        accepted += 1;
        let mut buf = [0u8; 64];
        let closed =
            timeout(Duration::from_secs(2), async { while !matches!(stream.read(&mut buf).await, Ok(0) | Err(_)) {} })
                .await;
        assert!(closed.is_ok(), "round {round}: a session whose token was rotated while it connected stayed open");
    }
    // Not asserted: how many rounds the CONNECT won (it depends on the machine).
    println!("{accepted} of {rounds} CONNECTs accepted before their rotation");
}
