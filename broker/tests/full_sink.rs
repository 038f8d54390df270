//! A full ingest sink (the recorder's writer on a full disk) must not stall CONNECTs.
//!
//! Through a real gateway on loopback, with a sink of one delivery that nobody drains
//! until the end: host A connects (its `online` fills the sink) and leaves (its `offline`
//! cannot be handed over). When presence was published under the presence lock, that
//! wait held the lock, and every CONNECT, disconnect and rotation queued behind it. Now
//! an observer and a second host still get their CONNACK, a rotation still kicks, and
//! once the sink drains, the recorder and the retained topic get each host's states in
//! order and end on its last state, and a host that published at once has its data
//! stored after its `online` (it came first when the publisher did not hold the session
//! back).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use broker::{hash_token, Credential, CredentialTable, Deliveries, Gateway, GatewayConfig, Role, Router};
use bytes::BytesMut;
use rumqttd::protocol::{v4::V4, Connect, Filter, Login, Packet, Protocol, Publish, QoS, RetainForwardRule, Subscribe};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{timeout, Instant};

/// How long a CONNACK, a rotation or a read may take here: generous for a loaded
/// machine, far shorter than "until the disk has room".
const BOUND: Duration = Duration::from_secs(3);

/// Credentials: hosts `pve-a`, `pve-b` and `pve-c`, and the observer `watch`, each with
/// `token-` and its name; `pve-b`'s token is `b_token`.
fn table(b_token: &str) -> CredentialTable {
    let credential = |role, token: &str| Credential { role, token_hash: hash_token(token) };
    CredentialTable(HashMap::from([
        ("pve-a".to_owned(), credential(Role::Host, "token-a")),
        ("pve-b".to_owned(), credential(Role::Host, b_token)),
        ("pve-c".to_owned(), credential(Role::Host, "token-c")),
        ("watch".to_owned(), credential(Role::Observer, "token-watch")),
    ]))
}

fn encode(packet: Packet) -> Vec<u8> {
    let mut out = BytesMut::new();
    V4.write(packet, &mut out).unwrap();
    out.to_vec()
}

/// Connects as `user` (client id = user) and reads the CONNACK's return code, in `BOUND`.
async fn connect(server: SocketAddr, user: &str, token: &str) -> (TcpStream, u8) {
    let mut stream = TcpStream::connect(server).await.unwrap();
    let connect = Connect { keep_alive: 60, client_id: user.to_owned(), clean_session: true };
    let login = Login { username: user.to_owned(), password: token.to_owned() };
    stream.write_all(&encode(Packet::Connect(connect, None, None, None, Some(login)))).await.unwrap();
    let mut ack = [0u8; 4];
    let read = timeout(BOUND, stream.read_exact(&mut ack)).await;
    read.unwrap_or_else(|_| panic!("{user}: no CONNACK within {BOUND:?} while the sink is full")).unwrap();
    assert_eq!(ack[..2], [0x20, 2], "{user}: a CONNACK");
    (stream, ack[3])
}

/// The next packet the server sends on `stream`, within `BOUND`.
async fn next_packet(stream: &mut TcpStream, buf: &mut BytesMut) -> Packet {
    let deadline = Instant::now() + BOUND;
    loop {
        if let Ok(packet) = V4.read_mut(buf, 1 << 20) {
            return packet;
        }
        let read = timeout(deadline.saturating_duration_since(Instant::now()), stream.read_buf(buf)).await;
        let n = read.expect("a packet within the bound").unwrap();
        assert!(n > 0, "the server closed the observer's connection");
    }
}

/// Deliveries from the sink, as (host, payload), until `count` arrived.
async fn drain(deliveries: &mut Deliveries, count: usize) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    while seen.len() < count {
        let delivery = timeout(BOUND, deliveries.recv()).await.expect("presence reaches the sink").unwrap();
        let topic = String::from_utf8_lossy(&delivery.topic).into_owned();
        let host = topic.split('/').nth(2).unwrap().to_owned();
        seen.push((host, String::from_utf8_lossy(&delivery.payload).into_owned()));
    }
    seen
}

fn states_of(seen: &[(String, String)], host: &str) -> Vec<String> {
    seen.iter().filter(|(h, _)| h == host).map(|(_, s)| s.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sink_stalls_no_connect_and_presence_ends_on_each_hosts_last_state() {
    let router = Router::start(64);
    // One delivery, and nobody reads it until the end: the writer on a full disk.
    let (ingest, mut deliveries) = broker::ingest::channel(1);
    let gateway = Gateway::new(router, GatewayConfig::default(), None, Some(ingest)).await.unwrap();
    gateway.set_credentials(table("token-b")).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    tokio::spawn(broker::listener::serve(listener, gateway.clone(), None, std::future::pending()));

    // A's `online` fills the sink; its `offline` has to wait for room.
    let (host_a, code) = connect(server, "pve-a", "token-a").await;
    assert_eq!(code, 0);
    drop(host_a);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (mut observer, code) = connect(server, "watch", "token-watch").await;
    assert_eq!(code, 0, "an observer gets in while the sink is full");
    let (mut host_b, code) = connect(server, "pve-b", "token-b").await;
    assert_eq!(code, 0, "a host gets in while the sink is full");

    // A host that publishes at once: its data must reach the sink after its `online`.
    let (mut host_c, code) = connect(server, "pve-c", "token-c").await;
    assert_eq!(code, 0, "a second host gets in while the sink is full");
    let sample = Publish::new("pmon/v1/pve-c/fast", "sample", false);
    host_c.write_all(&encode(Packet::Publish(sample, None))).await.unwrap();

    let kicked = timeout(BOUND, gateway.set_credentials(table("token-b-rotated"))).await;
    assert_eq!(kicked.expect("a rotation while the sink is full"), 1, "pve-b's session closed");
    let mut rest = Vec::new();
    let read = timeout(BOUND, host_b.read_to_end(&mut rest)).await;
    read.expect("pve-b's connection closed by the rotation").unwrap();
    let online = timeout(BOUND, gateway.online_hosts()).await.expect("the presence table answers");
    assert_eq!(online, ["pve-c"]);

    let filter = Filter {
        path: "pmon/v1/+/status".to_owned(),
        qos: QoS::AtMostOnce,
        nolocal: false,
        preserve_retain: false,
        retain_forward_rule: RetainForwardRule::OnEverySubscribe,
    };
    observer.write_all(&encode(Packet::Subscribe(Subscribe { pkid: 1, filters: vec![filter] }, None))).await.unwrap();
    let mut buf = BytesMut::new();
    let suback = next_packet(&mut observer, &mut buf).await;
    assert!(matches!(suback, Packet::SubAck(..)), "{suback:?}");

    // Room again: every state reaches the recorder, each host's in order, and a host's
    // data after its `online`.
    let stored = drain(&mut deliveries, 6).await;
    assert_eq!(states_of(&stored, "pve-a"), ["online", "offline"], "{stored:?}");
    assert_eq!(states_of(&stored, "pve-b"), ["online", "offline"], "{stored:?}");
    assert_eq!(states_of(&stored, "pve-c"), ["online", "sample"], "{stored:?}");

    // The observer's subscription: the retained states and what followed, each host's
    // last one its real state.
    let mut last = HashMap::new();
    let real = HashMap::from([("pve-a", "offline"), ("pve-b", "offline"), ("pve-c", "online")])
        .into_iter()
        .map(|(h, s)| (h.to_owned(), s.to_owned()))
        .collect::<HashMap<_, _>>();
    while last != real {
        match next_packet(&mut observer, &mut buf).await {
            Packet::Publish(publish, _) => {
                let topic = String::from_utf8_lossy(&publish.topic).into_owned();
                let host = topic.split('/').nth(2).unwrap().to_owned();
                last.insert(host, String::from_utf8_lossy(&publish.payload).into_owned());
            }
            other => panic!("a publish, not {other:?}"),
        }
    }
    let more = timeout(Duration::from_millis(300), observer.read_buf(&mut buf)).await;
    assert!(more.is_err() && buf.is_empty(), "nothing after each host's last state: {buf:?}");
}
