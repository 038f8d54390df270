//! The wire contract: any string as a topic, host id or discovery prefix, and any bytes as
//! each tier's payload; a payload that decodes must serialize and decode back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::{DiscoveryPrefix, FastPayload, HostId, MediumPayload, ServerKind, SlowPayload, Topic};

fn round_trip<T>(data: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let Ok(payload) = serde_json::from_slice::<T>(data) else { return };
    let json = serde_json::to_vec(&payload).expect("a decoded payload serializes");
    let back: T = serde_json::from_slice(&json).expect("a serialized payload decodes");
    assert_eq!(back, payload);
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(topic) = Topic::parse(&text) {
        assert_eq!(topic.to_string(), text, "a topic parses only in its canonical spelling");
        assert!(!ServerKind::matches(&text), "a server topic parsed as a host's");
    }
    if let Ok(host) = HostId::parse(&text) {
        assert!(!host.as_str().contains(['/', '+', '#', '\0']));
    }
    let _ = DiscoveryPrefix::parse(&text);
    round_trip::<FastPayload>(data);
    round_trip::<MediumPayload>(data);
    round_trip::<SlowPayload>(data);
});
