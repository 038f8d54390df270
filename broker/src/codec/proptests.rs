//! Property tests of MQTT framing (issue 15, "Fuzzing"): any bytes, cut anywhere, give
//! packets or an error, never a panic, and the packets do not depend on where the stream was
//! cut. `fuzz/fuzz_targets/codec.rs` runs the same for longer (docs/RELIABILITY.md).

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use rumqttd::protocol::{Filter, PingReq, Publish, QoS, RetainForwardRule, Subscribe, Unsubscribe};

use super::*;

const MAX_PACKET: usize = 4096;

fn config() -> ProptestConfig {
    ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
}

/// A framer that has already read a CONNECT of `version`, fed by hand.
fn framer(version: Version) -> Framed<tokio::io::DuplexStream> {
    let (stream, _) = tokio::io::duplex(64);
    Framed { stream, version, read: BytesMut::new(), write: BytesMut::new(), max_packet: MAX_PACKET }
}

/// What a stream cut into `chunks` decodes to: the packets, then whether it ended in an error.
fn decode(version: Version, chunks: &[&[u8]]) -> (Vec<Packet>, bool) {
    let mut framed = framer(version);
    let mut packets = Vec::new();
    for chunk in chunks {
        framed.read.extend_from_slice(chunk);
        loop {
            match framed.try_next() {
                Ok(Some(p)) => packets.push(p),
                Ok(None) => break,
                Err(_) => return (packets, true),
            }
        }
    }
    (packets, false)
}

/// `bytes` cut at the given points (indexes into it, in any order).
fn cut(bytes: &[u8], points: &[prop::sample::Index]) -> Vec<Vec<u8>> {
    let mut at: Vec<usize> = points.iter().map(|i| i.index(bytes.len() + 1)).collect();
    at.extend([0, bytes.len()]);
    at.sort_unstable();
    at.windows(2).map(|w| bytes[w[0]..w[1]].to_vec()).collect()
}

fn version() -> impl Strategy<Value = Version> {
    prop_oneof![Just(Version::V4), Just(Version::V5)]
}

/// Bytes that look like MQTT: real fixed-header bytes and lengths, or anything.
fn mqtt_like() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        prop::sample::select(vec![
            0x10u8, 0x20, 0x30, 0x32, 0x3d, 0x40, 0x82, 0xa2, 0xc0, 0xe0, 0xff, 0x80, 0x7f, 0x00
        ])
        .prop_map(|b| vec![b]),
        vec(any::<u8>(), 0..8),
        "pmon/v1/[a-z]{1,4}/fast".prop_map(String::into_bytes),
    ];
    vec(piece, 0..24).prop_map(|p| p.concat())
}

fn packet() -> impl Strategy<Value = Packet> {
    let filter =
        ("[a-z/+#]{1,20}", prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce)]).prop_map(|(path, qos)| Filter {
            path,
            qos,
            nolocal: false,
            preserve_retain: false,
            retain_forward_rule: RetainForwardRule::OnEverySubscribe,
        });
    prop_oneof![
        ("[a-z0-9/]{1,40}", vec(any::<u8>(), 0..600), any::<bool>()).prop_map(|(topic, payload, retain)| {
            Packet::Publish(Publish::new(Bytes::from(topic), Bytes::from(payload), retain), None)
        }),
        Just(Packet::PingReq(PingReq)),
        (1..=u16::MAX, vec(filter, 1..4))
            .prop_map(|(pkid, filters)| Packet::Subscribe(Subscribe { pkid, filters }, None)),
        (1..=u16::MAX, vec("[a-z/+#]{1,20}", 1..4))
            .prop_map(|(pkid, filters)| Packet::Unsubscribe(Unsubscribe { pkid, filters }, None)),
    ]
}

fn encode(version: Version, packets: &[Packet]) -> Result<Vec<u8>, TestCaseError> {
    let mut framed = framer(version);
    for p in packets {
        framed.queue(p.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
    Ok(framed.write.to_vec())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_bytes_cut_anywhere_frame_the_same(v in version(), bytes in mqtt_like(), points in vec(any::<prop::sample::Index>(), 0..6)) {
        let chunks = cut(&bytes, &points);
        let chunks: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        prop_assert_eq!(decode(v, &chunks), decode(v, &[&bytes]));
    }

    #[test]
    fn valid_packets_come_back_whatever_the_cuts(v in version(), packets in vec(packet(), 1..5), points in vec(any::<prop::sample::Index>(), 0..8)) {
        let bytes = encode(v, &packets)?;
        let chunks = cut(&bytes, &points);
        let chunks: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        prop_assert_eq!(decode(v, &chunks), (packets, false));
    }

    #[test]
    fn a_packet_over_the_limit_is_refused(v in version(), extra in 1usize..64) {
        let big = Publish::new(Bytes::from("pmon/v1/h/fast"), Bytes::from(vec![b'x'; MAX_PACKET + extra]), false);
        let bytes = encode(v, &[Packet::Publish(big, None)])?;
        let mut framed = framer(v);
        framed.read.extend_from_slice(&bytes);
        prop_assert!(matches!(framed.try_next(), Err(CodecError::TooLarge(_))));
    }

    #[test]
    fn detection_is_the_same_on_every_prefix(bytes in mqtt_like(), n in any::<prop::sample::Index>()) {
        let prefix = &bytes[..n.index(bytes.len() + 1)];
        match detect(prefix) {
            Ok(None) => {}
            Ok(Some(v)) => prop_assert_eq!(detect(&bytes).ok(), Some(Some(v))),
            Err(_) => prop_assert!(detect(&bytes).is_err()),
        }
    }
}
