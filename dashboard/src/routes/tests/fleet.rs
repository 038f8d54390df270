//! The fleet pages (issue #12): the overview's order, filters, sorts and pages, `/search`,
//! `/timeline`, and presence and health shown as two facts on every page.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use wire::{Fast, Guest, Medium, Payload, Pool};

use super::{body, page, TestApp};

/// How a seeded host is doing.
#[derive(Clone, Copy)]
enum Seed {
    Healthy,
    /// Load above its cores.
    Warning,
    /// A degraded pool.
    Critical,
    Offline,
}

fn envelope<T>(host_id: &str, ts_ms: i64, data: T) -> String
where
    Payload<T>: serde::Serialize,
{
    serde_json::to_string(&Payload {
        schema: wire::SCHEMA_VERSION,
        host_id: host_id.into(),
        ts_ms,
        boot_id: "b".into(),
        seq: 1,
        agent_version: "test".into(),
        dropped: 0,
        errors: BTreeMap::new(),
        data,
    })
    .unwrap()
}

fn guest(vmid: u32, name: &str, tags: &[&str]) -> Guest {
    Guest {
        vmid,
        name: name.into(),
        status: "running".into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ..Guest::default()
    }
}

impl TestApp {
    /// Registers `host_id` with a current state, stored as its `latest` rows (the test's
    /// fleet is empty, so the pages parse them): a fast sample with `load1` and a medium
    /// sample with `vms`.
    fn host_with(&self, host_id: &str, seed: Seed, load1: f64, vms: Vec<Guest>) {
        let mut conn = recorder::db::open(&self.state.database).unwrap();
        recorder::hosts::add_host(&mut conn, host_id).unwrap();
        let now = wire::now_ms();
        let online = !matches!(seed, Seed::Offline);
        conn.execute(
            "UPDATE hosts SET online = ?2, last_seen_ms = ?3, online_changed_ms = ?3, agent_version = 'test'
             WHERE host_id = ?1",
            rusqlite::params![host_id, online, now],
        )
        .unwrap();
        let fast = Fast {
            cpus: Some(4),
            load1: Some(load1),
            load15: Some(if matches!(seed, Seed::Warning) { 9.0 } else { 0.5 }),
            mem_total: Some(64 << 30),
            mem_used: Some(16 << 30),
            ..Fast::default()
        };
        let pools = matches!(seed, Seed::Critical)
            .then(|| vec![Pool { name: "rpool".into(), state: "FAULTED".into(), ..Pool::default() }]);
        let medium = Medium { pools, vms: Some(vms), cts: Some(vec![]), ..Medium::default() };
        for (tier, payload) in [("fast", envelope(host_id, now, fast)), ("medium", envelope(host_id, now, medium))] {
            conn.execute(
                "INSERT INTO latest (host_id, tier, ts_ms, received_ms, payload) VALUES (?1, ?2, ?3, ?3, ?4)",
                rusqlite::params![host_id, tier, now, payload],
            )
            .unwrap();
        }
    }

    fn host(&self, host_id: &str, seed: Seed) {
        self.host_with(host_id, seed, 0.1, vec![]);
    }

    async fn get(&self, uri: &str) -> (StatusCode, String) {
        let cookie = self.login().await;
        let response = self.send(page(uri, Some(&cookie))).await;
        (response.status(), body(response).await)
    }

    async fn ok(&self, uri: &str) -> String {
        let (status, html) = self.get(uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {html}");
        html
    }
}

/// The host ids of the overview's cards, in page order.
fn card_ids(html: &str) -> Vec<&str> {
    html.split(r#"<a class="card" id="card-"#).skip(1).map(|s| &s[..s.find('"').unwrap()]).collect()
}

/// The `href` of the link with element id `id`, unescaped.
fn href_of(html: &str, id: &str) -> String {
    let at = html.find(&format!(r#"id="{id}""#)).unwrap_or_else(|| panic!("no #{id}:\n{html}"));
    let start = html[..at].rfind("href=\"").unwrap() + 6;
    html[start..start + html[start..].find('"').unwrap()].replace("&#38;", "&")
}

#[tokio::test]
async fn the_overview_lists_problems_first_and_pages_the_healthy_ones() {
    let app = TestApp::new().await;
    // Names chosen so that name order alone would mix them up.
    for (id, seed) in [
        ("a-offline", Seed::Offline),
        ("b-warning", Seed::Warning),
        ("m-critical", Seed::Critical),
        ("c-critical", Seed::Critical),
        ("z-warning", Seed::Warning),
    ] {
        app.host(id, seed);
    }
    let healthy: Vec<String> = (0..150).map(|i| format!("h-{i:03}")).collect();
    for id in &healthy {
        app.host(id, Seed::Healthy);
    }

    let html = app.ok("/").await;
    let ids = card_ids(&html);
    assert_eq!(ids.len(), 100, "a page of cards");
    assert_eq!(ids[..5], ["c-critical", "m-critical", "b-warning", "z-warning", "a-offline"]);
    assert_eq!(ids[5..], healthy[..95].iter().map(String::as_str).collect::<Vec<_>>()[..]);
    for (level, n) in [("critical", 2), ("warning", 2), ("offline", 1), ("online", 150)] {
        assert!(html.contains(&format!(r#"id="count-{level}" data-count="{n}">{level} {n}</a>"#)), "{level}: {html}");
    }
    assert!(html.contains("hosts 1–100 of 155"));
    assert!(!html.contains(">connecting…<"), "the live indicator starts empty, the script fills it");

    assert!(html.contains(r#"<a href="/?page=2">next › (2)</a>"#), "{html}");
    let html = app.ok("/?page=2").await;
    assert_eq!(card_ids(&html), healthy[95..].iter().map(String::as_str).collect::<Vec<_>>(), "page 2 has the rest");
    assert!(html.contains("hosts 101–155 of 155"));
    assert!(html.contains(r#"href="/">« first (1)</a>"#), "{html}");

    let html = app.ok("/?status=warning").await;
    assert_eq!(card_ids(&html), ["b-warning", "z-warning"]);
    assert!(html.contains(r#"class="on" aria-current="page" id="count-warning""#), "{html}");
    assert!(html.contains(r#"id="count-online" data-count="150""#), "the counts stay the fleet's");

    let html = app.ok("/?page=9").await;
    assert!(card_ids(&html).is_empty());
    assert!(html.contains("No hosts on this page."));
}

#[tokio::test]
async fn sort_links_order_the_hosts_and_flip_the_direction() {
    let app = TestApp::new().await;
    for (id, load) in [("pve-a", 2.0), ("pve-b", 7.0), ("pve-c", 0.5)] {
        app.host_with(id, Seed::Healthy, load, vec![]);
    }
    // Offline, with its last load; and registered but never heard from: no load at all.
    app.host_with("pve-d", Seed::Offline, 0.1, vec![]);
    app.add_host("pve-e");

    let html = app.ok("/").await;
    assert_eq!(card_ids(&html), ["pve-d", "pve-e", "pve-a", "pve-b", "pve-c"], "status first, then name");
    let by_load = href_of(&html, "sort-load");
    assert_eq!(by_load, "/?sort=load");
    let html = app.ok(&by_load).await;
    assert_eq!(card_ids(&html), ["pve-b", "pve-a", "pve-c", "pve-d", "pve-e"], "busiest first; no load, last");
    let flipped = href_of(&html, "sort-load");
    assert_eq!(flipped, "/?sort=load&dir=asc");
    assert_eq!(card_ids(&app.ok(&flipped).await), ["pve-d", "pve-c", "pve-a", "pve-b", "pve-e"], "no load, still last");
    assert_eq!(card_ids(&app.ok("/?sort=name&dir=desc").await), ["pve-e", "pve-d", "pve-c", "pve-b", "pve-a"]);
    let html = app.ok("/?status=online&sort=name").await;
    assert_eq!(href_of(&html, "sort-load"), "/?status=online&sort=load", "a sort keeps the filter");
}

#[tokio::test]
async fn unknown_sort_page_status_or_kind_is_400_never_500() {
    let app = TestApp::new().await;
    app.host("pve1", Seed::Healthy);
    for uri in [
        "/?sort=cpu",
        "/?dir=up",
        "/?page=x",
        "/?page=0",
        "/?page=-1",
        "/?status=purple",
        "/timeline?kind=reboot",
        "/timeline?host=not%20a%20host",
        "/timeline?before=soon",
        "/timeline?before_id=4",
    ] {
        let (status, text) = app.get(uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {text}");
        assert!(!text.contains('\n'), "one line: {text}");
    }
}

#[tokio::test]
async fn the_old_search_box_address_leads_to_search() {
    let app = TestApp::new().await;
    let cookie = app.login().await;
    let response = app.send(page("/?q=web%2001", Some(&cookie))).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(super::location(&response), "/search?q=web%2001");
}

#[tokio::test]
async fn search_finds_a_vm_by_name_id_or_tag_on_its_host() {
    let app = TestApp::new().await;
    app.host_with("pve-a", Seed::Healthy, 0.1, vec![guest(100, "db-main", &["prod"]), guest(101, "cache", &[])]);
    app.host_with("pve-b", Seed::Critical, 0.1, vec![guest(200, "Web-Frontend", &["edge", "Prod"])]);
    app.host("web-host", Seed::Offline);

    let html = app.ok("/search?q=FRONT").await;
    let rows: Vec<&str> = html.split(r#"<tr class="guest-hit">"#).skip(1).collect();
    assert_eq!(rows.len(), 1, "{html}");
    assert!(rows[0].contains("<td>VM</td><td>200</td><td>Web-Frontend</td><td>running</td>"), "{}", rows[0]);
    assert!(rows[0].contains(r#"<a href="/hosts/pve-b">pve-b</a>"#), "on exactly its host: {}", rows[0]);
    assert!(rows[0].contains(r#"<span class="presence online""#) && rows[0].contains("health-critical"));
    assert!(html.contains(r#"id="no-hosts""#), "no host is called that");

    let html = app.ok("/search?q=prod").await;
    let hits = html.matches(r#"<tr class="guest-hit">"#).count();
    assert_eq!(hits, 2, "by tag, in any case:\n{html}");
    assert!(html.contains("db-main") && html.contains("Web-Frontend") && !html.contains(">cache<"));

    let html = app.ok("/search?q=101").await;
    assert!(html.contains("<td>101</td><td>cache</td>"), "by id");

    let html = app.ok("/search?q=web").await;
    assert_eq!(html.matches(r#"<tr class="host-hit">"#).count(), 1, "hosts by name:\n{html}");
    assert!(html.contains(r#"<a href="/hosts/web-host">web-host</a>"#));

    for uri in ["/search", "/search?q=", "/search?q=++"] {
        let html = app.ok(uri).await;
        assert!(html.contains(r#"id="search-hint""#), "{uri}");
        assert!(!html.contains("guest-hits"), "{uri}");
    }
}

#[test]
fn search_results_are_capped_and_the_rest_counted() {
    let vms: Vec<Guest> = (0..600).map(|i| guest(i, &format!("vm-{i}"), &[])).collect();
    let state = recorder::state::HostState {
        host_id: "pve1".into(),
        online: true,
        medium: Some(wire::Held::new(&Payload {
            schema: 1,
            host_id: "pve1".into(),
            ts_ms: 0,
            boot_id: "b".into(),
            seq: 1,
            agent_version: "t".into(),
            dropped: 0,
            errors: BTreeMap::new(),
            data: Medium { vms: Some(vms), ..Medium::default() },
        })),
        ..Default::default()
    };
    let hits = crate::routes::search::search(
        &[std::sync::Arc::new(state)],
        "VM-",
        crate::routes::search::BackupFilter::Any,
        0,
    );
    assert_eq!(hits.guests.len(), crate::routes::search::RESULTS_CAP);
    assert_eq!(hits.more_guests, 100);
    assert_eq!(hits.guests[0].vmid, 0);
}

impl TestApp {
    fn event(&self, host_id: &str, ts_ms: i64, kind: &str, message: &str) {
        let conn = recorder::db::open(&self.state.database).unwrap();
        conn.execute(
            "INSERT INTO events (host_id, ts_ms, kind, message) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![host_id, ts_ms, kind, message],
        )
        .unwrap();
    }
}

/// The messages of the timeline's rows, in page order.
fn event_messages(html: &str) -> Vec<&str> {
    html.split(r#"<tr class="event">"#)
        .skip(1)
        .map(|row| {
            let start = row.find(r#"<td class="wrap">"#).unwrap() + 17;
            &row[start..start + row[start..].find("</td>").unwrap()]
        })
        .collect()
}

#[tokio::test]
async fn the_timeline_lists_every_hosts_events_newest_first_filtered_and_paged() {
    let app = TestApp::new().await;
    let t0 = wire::now_ms() - 3_600_000;
    // 150 events, pve1 and pve2 taking turns; events 49 and 50 share a millisecond, and
    // the first page ends between them.
    for i in 0..150 {
        let (host, kind) = if i % 2 == 0 { ("pve1", "guest") } else { ("pve2", "pool") };
        let ts = if i == 49 { t0 + 50_000 } else { t0 + i * 1000 };
        app.event(host, ts, kind, &format!("event {i}"));
    }

    let html = app.ok("/timeline").await;
    let messages = event_messages(&html);
    assert_eq!(messages.len(), 100);
    assert_eq!(messages[0], "event 149", "newest first");
    assert_eq!(messages[98..], ["event 51", "event 50"]);
    assert!(html.contains(r#"<a href="/hosts/pve2">pve2</a>"#));
    let older = href_of(&html, "older");
    assert!(older.starts_with(&format!("/timeline?before={}&before_id=", t0 + 50_000)), "{older}");

    let html = app.ok(&older).await;
    let messages = event_messages(&html);
    assert_eq!(messages.len(), 50, "{messages:?}");
    assert_eq!(messages[0], "event 49", "the event sharing the last one's millisecond is not lost");
    assert_eq!(messages[49], "event 0");
    assert!(!html.contains(r#"id="older""#));
    assert_eq!(href_of(&html, "newest"), "/timeline");

    let html = app.ok("/timeline?host=pve2").await;
    let messages = event_messages(&html);
    assert_eq!(messages.len(), 75);
    assert_eq!(messages[0], "event 149");
    assert!(!html.contains(r#"<a href="/hosts/pve1">"#));
    assert!(html.contains(r#"href="/timeline?host=pve2&#38;kind=guest""#), "the kind links keep the host");

    let html = app.ok("/timeline?kind=guest").await;
    let messages = event_messages(&html);
    assert_eq!(messages.len(), 75);
    assert_eq!(messages[0], "event 148");
    assert!(event_messages(&app.ok("/timeline?host=pve2&kind=guest").await).is_empty());

    let html = app.ok(&format!("/timeline?before={}", t0 + 2000)).await;
    assert_eq!(event_messages(&html), ["event 1", "event 0"], "a time typed by hand");
}

#[tokio::test]
async fn every_page_shows_presence_and_health_as_two_facts() {
    let app = TestApp::new().await;
    app.host("pve-crit", Seed::Critical);
    app.host("pve-gone", Seed::Offline);

    let admin = app.ok("/admin/hosts").await;
    let row = |html: &str, id: &str| {
        let start = html.find(&format!(r#"<tr id="host-{id}">"#)).unwrap_or_else(|| panic!("no {id}:\n{html}"));
        html[start..start + html[start..].find("</tr>").unwrap()].to_owned()
    };
    let crit = row(&admin, "pve-crit");
    assert!(crit.contains(r#"<span class="presence online""#), "connected: {crit}");
    assert!(crit.contains(r#"<span class="badge health-critical""#), "and critical: {crit}");
    let gone = row(&admin, "pve-gone");
    assert!(gone.contains(r#"<span class="presence offline""#) && gone.contains("health-unknown"), "{gone}");
    assert!(
        !admin.contains("connecting…") && !admin.contains(r#"id="live""#),
        "no live indicator without live updates"
    );

    // The same partial on the overview's card, the host page and the search results.
    let status = r#"<span class="presence online" title="agent connected">online</span> <span class="badge health-critical" title="health">critical</span>"#;
    assert!(crit.contains(status), "{crit}");
    assert!(app.ok("/").await.contains(status));
    assert!(app.ok("/hosts/pve-crit").await.contains(status));
    assert!(app.ok("/search?q=crit").await.contains(status));
}

#[tokio::test]
async fn the_nav_bar_links_every_page() {
    let app = TestApp::new().await;
    for uri in ["/", "/search", "/timeline", "/admin/hosts"] {
        let html = app.ok(uri).await;
        for link in [
            r#"href="/">Overview"#,
            r#"href="/search">Search"#,
            r#"href="/timeline">Timeline"#,
            r#"href="/admin/hosts">Admin"#,
        ] {
            assert!(html.contains(link), "{uri} lacks {link}");
        }
    }
}

impl TestApp {
    /// Replaces `host_id`'s latest medium payload (after [`TestApp::host_with`]).
    fn medium(&self, host_id: &str, medium: Medium) {
        let conn = recorder::db::open(&self.state.database).unwrap();
        let payload = envelope(host_id, wire::now_ms(), medium);
        conn.execute(
            "UPDATE latest SET payload = ?2 WHERE host_id = ?1 AND tier = 'medium'",
            rusqlite::params![host_id, payload],
        )
        .unwrap();
    }
}

/// The guest rows of a search page.
fn guest_rows(html: &str) -> Vec<&str> {
    html.split(r#"<tr class="guest-hit">"#).skip(1).collect()
}

#[tokio::test]
async fn search_filters_the_guests_not_backed_up_and_the_host_page_shows_each_backup() {
    let app = TestApp::new().await;
    let now_s = wire::now_ms() / 1000;
    let vms = vec![guest(100, "db", &[]), guest(101, "web", &[]), guest(102, "scratch", &[])];
    app.host_with("pve-a", Seed::Healthy, 0.1, vms.clone());
    let backups = wire::Backups {
        jobs: vec![wire::BackupJob {
            id: "backup-nightly".into(),
            schedule: "21:00".into(),
            vmids: vec![100, 101],
            ..Default::default()
        }],
        guests: vec![
            wire::GuestBackup { vmid: 100, end: now_s - 3 * 3600, ok: true, error: None, last_ok: None },
            wire::GuestBackup {
                vmid: 101,
                end: now_s - 2 * 3600,
                ok: false,
                error: Some("VM 101 qmp command 'backup' failed - got timeout".into()),
                last_ok: Some(now_s - 26 * 3600),
            },
        ],
        since: now_s - 10 * 86_400,
    };
    app.medium("pve-a", Medium { vms: Some(vms), backups: Some(backups), ..Medium::default() });
    // An agent that sends no backups: nothing is known, nothing is listed.
    app.host_with("pve-b", Seed::Healthy, 0.1, vec![guest(200, "old-agent", &[])]);

    let html = app.ok("/search?q=&backup=missing").await;
    let rows = guest_rows(&html);
    assert_eq!(rows.len(), 2, "{html}");
    assert!(rows[0].contains("<td>101</td><td>web</td>") && rows[0].contains("FAILED 2 h ago"), "{}", rows[0]);
    assert!(rows[1].contains("<td>102</td><td>scratch</td>") && rows[1].contains("not covered"), "{}", rows[1]);
    assert!(html.contains(r#"id="backup-missing" checked"#), "the filter shows as on");
    assert!(!html.contains("host-hits"), "hosts are not backed up or not");

    let html = app.ok("/search?q=scratch&backup=missing").await;
    assert_eq!(guest_rows(&html).len(), 1, "q narrows the filter");
    let html = app.ok("/search?q=db&backup=missing").await;
    assert!(html.contains(r#"id="no-guests""#) && html.contains("is not backed up"), "db's backup is fine");
    let html = app.ok("/search?q=db").await;
    assert!(guest_rows(&html)[0].contains("ok, 3 h ago"), "every search shows the backup column");

    let (status, text) = app.get("/search?q=&backup=sometimes").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");

    let html = app.ok("/hosts/pve-a").await;
    assert!(html.contains("<th>Backup</th>"), "{html}");
    assert!(html.contains("<td>ok, 3 h ago</td>"));
    assert!(html.contains(
        "<td>FAILED 2 h ago: VM 101 qmp command &#39;backup&#39; failed - got timeout (last ok 1 d ago)</td>"
    ));
    assert!(html.contains("<td>not covered (none seen since 10 d ago)</td>"));
    assert!(html.contains("last backup failed"), "the card's reason");
}

#[tokio::test]
async fn the_api_shows_a_hosts_whole_slow_payload_and_the_page_its_datasets() {
    let app = TestApp::new().await;
    app.add_host("pve1");
    let snapshots = wire::Snapshots {
        total: 1,
        datasets: vec![wire::DatasetSnapshots {
            dataset: "rpool/data/vm-100-disk-0".into(),
            count: 1,
            oldest: 1_764_000_000,
            newest: 1_764_000_000,
            used: 1 << 20,
        }],
        recent: vec![wire::Snapshot { name: "rpool/data/vm-100-disk-0@nightly".into(), used: 1 << 20, creation: 1 }],
        truncated: false,
    };
    let slow = envelope("pve1", wire::now_ms(), wire::Slow { snapshots: Some(snapshots), ..wire::Slow::default() });
    let conn = recorder::db::open(&app.state.database).unwrap();
    conn.execute(
        "INSERT INTO latest (host_id, tier, ts_ms, received_ms, payload) VALUES ('pve1', 'slow', 1, 1, ?1)",
        [slow],
    )
    .unwrap();
    let cookie = app.login().await;
    let api: serde_json::Value =
        serde_json::from_str(&body(app.send(page("/api/v1/hosts/pve1", Some(&cookie))).await).await).unwrap();
    assert_eq!(api["slow"]["data"]["snapshots"]["recent"][0]["name"], "rpool/data/vm-100-disk-0@nightly", "{api}");
    let host_page = body(app.send(page("/hosts/pve1", Some(&cookie))).await).await;
    assert!(host_page.contains("<td>rpool/data/vm-100-disk-0</td>"), "the Snapshots section: {host_page}");
}
