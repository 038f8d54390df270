//! The generic webhook: Alertmanager's webhook body (version 4), so receivers written
//! for Alertmanager work unchanged, with an optional HMAC-SHA256 signature of the body.

use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::{Channel, Notification};
use crate::http::Request;
use crate::notify::{Item, ItemKind};

/// Header carrying `sha256=<hex HMAC-SHA256 of the body keyed by the channel's secret>`.
pub const SIGNATURE_HEADER: &str = "x-pmon-signature";

pub(super) fn request(channel: &Channel, n: &Notification) -> Request {
    let body = serde_json::to_vec(&body(channel, n)).unwrap_or_default();
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    if let Some(secret) = &channel.secret {
        headers.push((SIGNATURE_HEADER.into(), format!("sha256={}", sign(secret, &body))));
    }
    Request { url: channel.url.clone(), headers, body }
}

pub fn sign(secret: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn body(channel: &Channel, n: &Notification) -> Value {
    let mut alerts: Vec<Value> = n.items.iter().map(|i| alert(&n.host, i)).collect();
    if alerts.is_empty() {
        // A summary or a test still carries one alert: some receivers expect at least one.
        let name = if n.test { "test" } else { "notifications_suppressed" };
        alerts.push(json!({
            "status": "firing",
            "labels": {"alertname": name, "host": n.host, "severity": "info"},
            "annotations": {"summary": n.suppressed_line().unwrap_or_else(|| n.title())},
            "startsAt": rfc3339(wire::now_ms()),
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": fingerprint(&format!("{}/{name}", n.host)),
        }));
    }
    let firing = n.items.is_empty() || n.items.iter().any(|i| i.kind != ItemKind::Resolved);
    let mut common = Map::new();
    if let Some(line) = n.suppressed_line() {
        common.insert("suppressed".into(), line.into());
    }
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{host=\"{}\"}}", n.host),
        "truncatedAlerts": 0,
        "status": if firing { "firing" } else { "resolved" },
        "receiver": channel.name,
        "groupLabels": {"host": n.host},
        "commonLabels": {"host": n.host},
        "commonAnnotations": common,
        "externalURL": "",
        "alerts": alerts,
    })
}

fn alert(host: &str, i: &Item) -> Value {
    let mut labels = Map::new();
    labels.insert("alertname".into(), i.identity.rule.as_str().into());
    labels.insert("host".into(), host.into());
    if !i.identity.subject.is_empty() {
        labels.insert("subject".into(), i.identity.subject.clone().into());
    }
    labels.insert("severity".into(), i.severity.as_str().into());
    let mut annotations = Map::new();
    annotations.insert("summary".into(), i.message.clone().into());
    annotations.insert("alert_id".into(), i.id.to_string().into());
    if i.kind == ItemKind::Flapping {
        annotations
            .insert("description".into(), "changing state too often; no more notifications until it is stable".into());
        annotations.insert("flapping".into(), "true".into());
    }
    json!({
        "status": if i.kind == ItemKind::Resolved { "resolved" } else { "firing" },
        "labels": labels,
        "annotations": annotations,
        "startsAt": rfc3339(i.started_ms),
        "endsAt": i.ended_ms.map_or_else(|| "0001-01-01T00:00:00Z".to_owned(), rfc3339),
        "generatorURL": "",
        "fingerprint": fingerprint(&i.identity.to_string()),
    })
}

fn fingerprint(key: &str) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// `ms` since the epoch as RFC 3339 in UTC, with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let (secs, millis) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = wire::civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Identity;
    use recorder::status::{Level, Rule};

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_764_000_000_123), "2025-11-24T16:00:00.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn alertmanager_v4_body_and_signature() {
        let channel = Channel::new("ops", "webhook", "http://127.0.0.1:9/hook", None, Some("k".into())).unwrap();
        let item = Item {
            id: 7,
            identity: Identity { host: "pve1".into(), rule: Rule::PoolState, subject: "rpool".into() },
            kind: ItemKind::Firing,
            severity: Level::Warning,
            message: "pool rpool is DEGRADED".into(),
            started_ms: 0,
            ended_ms: None,
        };
        let n = Notification::new("pve1", vec![item], 3);
        let r = channel.request(&n);
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["version"], "4");
        assert_eq!(v["status"], "firing");
        assert_eq!(v["receiver"], "ops");
        assert_eq!(v["alerts"][0]["labels"]["alertname"], "pool_state");
        assert_eq!(v["alerts"][0]["labels"]["subject"], "rpool");
        assert_eq!(v["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
        assert!(v["commonAnnotations"]["suppressed"].as_str().unwrap().starts_with("3 more"));
        let header = |name: &str| r.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        assert_eq!(header(SIGNATURE_HEADER), Some(format!("sha256={}", sign("k", &r.body))));
        assert_eq!(header("x-pmon-event-id"), Some(n.event_id.clone()));
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
