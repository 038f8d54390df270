//! Property tests of the topic ACL (issue 15, "Fuzzing"), against MQTT's own matching rules
//! (MQTT 3.1.1 §4.7): a host never publishes another host's topic, and no filter an observer
//! or Home Assistant may subscribe reaches outside what it may read.

use std::sync::Arc;

use proptest::collection::vec;
use proptest::prelude::*;
use wire::{DiscoveryPrefix, HostId, Kind, Topic};

use super::*;

fn config() -> ProptestConfig {
    ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() }
}

/// Whether `filter` matches `topic` as an MQTT broker decides it: `+` is one level, `#` the
/// rest including none (so `a/#` matches `a`), and a wildcard first level never matches a
/// topic starting with `$`.
fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let (mut f, mut t) = (filter.split('/'), topic.split('/'));
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return f.next().is_none(),
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

fn host() -> impl Strategy<Value = HostId> {
    "[a-z0-9][a-z0-9._-]{0,8}".prop_map(|h| HostId::parse(&h).expect("the pattern is a valid host id"))
}

/// Topic levels that matter here: the protocol's own, host-like ones, Home Assistant's,
/// wildcards, `$SYS`, empty, and noise.
fn level() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "pmon",
            "v1",
            "v2",
            "status",
            "fast",
            "medium",
            "slow",
            "alerts",
            "events",
            "ha",
            "homeassistant",
            "device",
            "config",
            "+",
            "#",
            "$SYS",
            "",
            "pve1",
            "pve2",
        ])
        .prop_map(String::from),
        "[a-z0-9._-]{1,6}",
        ".{1,3}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    let prefix = prop::sample::select(vec!["", "pmon/v1/", "pmon/v1/pve1/", "homeassistant/", "pmon/"]);
    (prefix, vec(level(), 0..6)).prop_map(|(p, levels)| format!("{p}{}", levels.join("/")))
}

/// Topics a message can have: no wildcards, not empty.
fn topic() -> impl Strategy<Value = String> {
    path().prop_filter("a topic name", |t| !t.is_empty() && !t.contains(['+', '#']))
}

fn home_assistant() -> Identity {
    Identity::HomeAssistant("ha".into(), Arc::new(DiscoveryPrefix::default()))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_host_publishes_only_its_own_four_topics(me in host(), topic in prop_oneof![topic(), ".{0,30}"], len in 0usize..200) {
        let allowed = check_publish(&Identity::Host(me.clone()), &topic, len, 100).is_ok();
        let own = Kind::ALL.iter().any(|k| me.topic(*k) == topic);
        prop_assert_eq!(allowed, own && len <= 100, "{}", topic);
        if allowed {
            prop_assert_eq!(Topic::parse(&topic).map(|t| t.host), Ok(me));
        }
    }

    #[test]
    fn a_host_can_never_publish_another_hosts_topic(me in host(), other in host(), kind in prop::sample::select(Kind::ALL.to_vec())) {
        prop_assume!(me != other);
        let who = Identity::Host(me);
        prop_assert_eq!(check_publish(&who, &other.topic(kind), 1, 100), Err(Violation::ForeignTopic));
        prop_assert_eq!(check_will(&who, &other.topic(kind)), Err(Violation::ForeignWill));
    }

    #[test]
    fn a_will_is_only_the_own_status(me in host(), topic in topic()) {
        let ok = check_will(&Identity::Host(me.clone()), &topic).is_ok();
        prop_assert_eq!(ok, topic == me.topic(Kind::Status));
    }

    #[test]
    fn no_filter_an_observer_may_subscribe_reaches_outside_pmon(filter in path(), topic in topic()) {
        let observer = Identity::Observer("ops".into());
        if check_subscribe(&observer, &filter).is_ok() && matches(&filter, &topic) {
            // `pmon/v1/#` also matches its parent `pmon/v1`, which nobody may publish.
            prop_assert!(topic.starts_with("pmon/v1/") || topic == "pmon/v1", "{} reaches {}", filter, topic);
        }
        for who in [observer, home_assistant(), Identity::Host(HostId::parse("pve1").expect("valid"))] {
            prop_assert!(check_publish(&who, "pmon/v1", 1, 100).is_err());
        }
    }

    #[test]
    fn a_hosts_filters_reach_only_its_own_topics(me in host(), filter in path(), topic in topic()) {
        if check_subscribe(&Identity::Host(me.clone()), &filter).is_ok() && matches(&filter, &topic) {
            let own = format!("pmon/v1/{me}");
            prop_assert!(topic == own || topic.starts_with(&format!("{own}/")), "{} reaches {}", filter, topic);
        }
    }

    #[test]
    fn home_assistant_reads_pmon_and_its_prefix_and_publishes_only_its_status(filter in path(), topic in topic()) {
        let ha = home_assistant();
        if check_subscribe(&ha, &filter).is_ok() && matches(&filter, &topic) {
            let inside = ["pmon/v1", "homeassistant"].iter().any(|p| topic == *p || topic.starts_with(&format!("{p}/")));
            prop_assert!(inside, "{} reaches {}", filter, topic);
        }
        prop_assert_eq!(check_publish(&ha, &topic, 1, 100).is_ok(), topic == "homeassistant/status");
    }
}

#[test]
fn the_matcher_follows_mqtt() {
    assert!(matches("pmon/v1/#", "pmon/v1/a/fast") && matches("pmon/v1/#", "pmon/v1"));
    assert!(matches("pmon/+/a", "pmon/v1/a") && !matches("pmon/+", "pmon/v1/a"));
    assert!(!matches("#", "$SYS/x") && matches("$SYS/#", "$SYS/x") && matches("#", "a"));
    assert!(matches("a//b", "a//b") && !matches("a/b", "a/b/"));
}
