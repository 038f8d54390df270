//! The recorder's edge: the input is `<topic>\n<payload>`; every message must become an
//! `Item` for the topic it came on or a counted `Reject`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use recorder::ingest::{parse, Reject};

/// A fixed "now" (2025-11-24), so that a crash reproduces.
const NOW: i64 = 1_764_000_000_000;

fuzz_target!(|data: &[u8]| {
    let (topic, payload) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    match parse(topic, payload, NOW) {
        Ok(item) => assert_eq!(item.topic().as_bytes(), topic, "an item is for the topic it came on"),
        Err(reject) => assert!(Reject::ALL.contains(&reject)),
    }
});
