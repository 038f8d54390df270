//! Validation at the edge: one MQTT message becomes a typed [`Item`] or a counted
//! [`Reject`]. Pure: no I/O, so every rule is unit-tested.

use broker::CloneDetected;
use wire::{FastPayload, HostId, Kind, MediumPayload, Payload, SlowPayload, Topic, SCHEMA_VERSION};

/// Largest payload the recorder accepts (the gateway already refuses larger ones).
pub const MAX_PAYLOAD: usize = 256 * 1024;

/// How far ahead of the server's clock a timestamp may be, in ms. A skewed clock is
/// corrected by the writer (`clock.rs`); a day ahead is no longer a clock that drifted.
const MAX_FUTURE_MS: i64 = 24 * 3600 * 1000;

/// A validated message.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Status {
        host: HostId,
        online: bool,
    },
    Fast(FastPayload, String),
    Medium(MediumPayload, String),
    Slow(SlowPayload, String),
    /// Not from MQTT: the gateway saw two agents using this host's token.
    SharedToken(CloneDetected),
}

impl Item {
    /// When the agent collected (and sent) it; None for presence.
    pub fn ts_ms(&self) -> Option<i64> {
        match self {
            Item::Status { .. } | Item::SharedToken(_) => None,
            Item::Fast(p, _) => Some(p.ts_ms),
            Item::Medium(p, _) => Some(p.ts_ms),
            Item::Slow(p, _) => Some(p.ts_ms),
        }
    }

    /// The topic it came on, for log lines.
    pub fn topic(&self) -> String {
        let kind = match self {
            Item::Status { .. } | Item::SharedToken(_) => Kind::Status,
            Item::Fast(..) => Kind::Fast,
            Item::Medium(..) => Kind::Medium,
            Item::Slow(..) => Kind::Slow,
        };
        format!("{}/{}/{kind}", wire::PREFIX, self.host())
    }

    pub fn host(&self) -> &str {
        match self {
            Item::Status { host, .. } => host.as_str(),
            Item::SharedToken(detected) => detected.host.as_str(),
            Item::Fast(p, _) => &p.host_id,
            Item::Medium(p, _) => &p.host_id,
            Item::Slow(p, _) => &p.host_id,
        }
    }
}

/// Why a message was dropped; counted by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reject {
    BadTopic,
    Oversized,
    BadJson,
    UnknownSchema,
    HostMismatch,
    Absurd,
    /// Older than the retention window (from an agent's outage buffer, after a long
    /// outage): its hour's tables are gone, or about to go.
    Stale,
}

impl Reject {
    pub const ALL: [Reject; 7] = [
        Reject::BadTopic,
        Reject::Oversized,
        Reject::BadJson,
        Reject::UnknownSchema,
        Reject::HostMismatch,
        Reject::Absurd,
        Reject::Stale,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reject::BadTopic => "bad_topic",
            Reject::Oversized => "oversized",
            Reject::BadJson => "bad_json",
            Reject::UnknownSchema => "unknown_schema",
            Reject::HostMismatch => "host_mismatch",
            Reject::Absurd => "absurd_value",
            Reject::Stale => "stale",
        }
    }
}

/// Parses and validates one message received at `now_ms`.
pub fn parse(topic: &[u8], payload: &[u8], now_ms: i64) -> Result<Item, Reject> {
    let topic = std::str::from_utf8(topic).map_err(|_| Reject::BadTopic)?;
    let topic = Topic::parse(topic).map_err(|_| Reject::BadTopic)?;
    if payload.len() > MAX_PAYLOAD {
        return Err(Reject::Oversized);
    }
    let text = || std::str::from_utf8(payload).map(str::to_owned).map_err(|_| Reject::BadJson);
    match topic.kind {
        Kind::Status => match payload {
            b"online" => Ok(Item::Status { host: topic.host, online: true }),
            b"offline" => Ok(Item::Status { host: topic.host, online: false }),
            _ => Err(Reject::BadJson),
        },
        Kind::Fast => {
            let p: FastPayload = decode(payload, &topic.host, now_ms)?;
            let f = &p.data;
            let floats = [f.load1, f.load5, f.load15, f.cpu_pct, f.iowait_pct];
            if floats.into_iter().flatten().any(|v| !v.is_finite() || v < 0.0) {
                return Err(Reject::Absurd);
            }
            if [f.cpu_pct, f.iowait_pct].into_iter().flatten().any(|v| v > 100.0 + 1e-6) {
                return Err(Reject::Absurd);
            }
            Ok(Item::Fast(p, text()?))
        }
        Kind::Medium => {
            let p: MediumPayload = decode(payload, &topic.host, now_ms)?;
            let pools = p.data.pools.iter().flatten();
            let bad_pool = pools
                .flat_map(|pool| [pool.frag_pct, pool.cap_pct, pool.dedup_ratio])
                .flatten()
                .any(|v| !v.is_finite() || v < 0.0);
            let guests = p.data.vms.iter().chain(p.data.cts.iter()).flatten();
            let bad_guest = guests.flat_map(|g| [g.cpu, g.cpus]).flatten().any(|v| !v.is_finite() || v < 0.0);
            if bad_pool || bad_guest {
                return Err(Reject::Absurd);
            }
            Ok(Item::Medium(p, text()?))
        }
        Kind::Slow => {
            let p: SlowPayload = decode(payload, &topic.host, now_ms)?;
            Ok(Item::Slow(p, text()?))
        }
    }
}

/// Decodes an envelope and checks what every tier shares. Negative sizes fail here,
/// since sizes are unsigned; NaN can't appear in JSON.
fn decode<T: serde::de::DeserializeOwned>(payload: &[u8], host: &HostId, now_ms: i64) -> Result<Payload<T>, Reject> {
    #[derive(serde::Deserialize)]
    struct Version {
        schema: u32,
    }
    match serde_json::from_slice::<Version>(payload) {
        Ok(v) if v.schema != SCHEMA_VERSION => return Err(Reject::UnknownSchema),
        Ok(_) => {}
        Err(_) => return Err(Reject::BadJson),
    }
    let p: Payload<T> = serde_json::from_slice(payload).map_err(|e| {
        if e.is_data() && e.to_string().contains("invalid value") {
            Reject::Absurd
        } else {
            Reject::BadJson
        }
    })?;
    if p.host_id != host.as_str() {
        return Err(Reject::HostMismatch);
    }
    if p.ts_ms > now_ms + MAX_FUTURE_MS || p.ts_ms <= 0 || p.seq == 0 || p.boot_id.is_empty() {
        return Err(Reject::Absurd);
    }
    Ok(p)
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_000_000_000;

    fn fast(host: &str, data: &str) -> String {
        format!(
            r#"{{"schema":1,"host_id":"{host}","ts_ms":{NOW},"boot_id":"b","seq":1,"agent_version":"0.1.0","data":{data}}}"#
        )
    }

    #[test]
    fn a_good_fast_payload_is_accepted() {
        let item = parse(b"pmon/v1/pve1/fast", fast("pve1", r#"{"load1":0.5}"#).as_bytes(), NOW).unwrap();
        let Item::Fast(p, raw) = item else { panic!("not fast") };
        assert_eq!(p.data.load1, Some(0.5));
        assert!(raw.contains("load1"));
    }

    #[test]
    fn status_is_online_or_offline_only() {
        assert_eq!(
            parse(b"pmon/v1/pve1/status", b"online", NOW),
            Ok(Item::Status { host: HostId::parse("pve1").unwrap(), online: true })
        );
        assert_eq!(parse(b"pmon/v1/pve1/status", b"maybe", NOW), Err(Reject::BadJson));
    }

    #[test]
    fn each_bad_input_is_rejected_with_its_reason() {
        let ok = fast("pve1", "{}");
        let cases: Vec<(&[u8], Vec<u8>, Reject)> = vec![
            (b"pmon/v1/pve1/other", ok.clone().into(), Reject::BadTopic),
            (b"pmon/v1/pve1/fast", b"{not json".to_vec(), Reject::BadJson),
            (b"pmon/v1/pve1/fast", ok.replace("\"schema\":1", "\"schema\":9").into(), Reject::UnknownSchema),
            (b"pmon/v1/pve2/fast", ok.clone().into(), Reject::HostMismatch),
            (b"pmon/v1/pve1/fast", fast("pve1", r#"{"load1":-1}"#).into(), Reject::Absurd),
            (b"pmon/v1/pve1/fast", fast("pve1", r#"{"cpu_pct":250}"#).into(), Reject::Absurd),
            (b"pmon/v1/pve1/fast", fast("pve1", r#"{"mem_used":-5}"#).into(), Reject::Absurd),
            (
                b"pmon/v1/pve1/fast",
                ok.replace(&NOW.to_string(), &(NOW + 2 * 86_400_000).to_string()).into(),
                Reject::Absurd,
            ),
            (b"pmon/v1/pve1/fast", vec![b' '; MAX_PAYLOAD + 1], Reject::Oversized),
        ];
        for (topic, payload, want) in cases {
            assert_eq!(
                parse(topic, &payload, NOW),
                Err(want),
                "{}",
                String::from_utf8_lossy(&payload[..payload.len().min(80)])
            );
        }
    }
}
