//! `/metrics` and the read-only API tokens (issue #16): the fleet's series on a demo-like
//! fleet seeded through the recorder's writer, `promtool check metrics` on them, the
//! Grafana dashboard's queries against them, and who may read them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use recorder::ingest::Item;
use wire::{Fast, Guest, Medium, Payload, Pool, Scan, Storage, Vdev};

use super::{body, csrf_field, form, page, TestApp, LOOPBACK};

/// A payload of the agent's run `boot`, `seq`, sent 30 s after its predecessor (so a
/// host's fast interval is the agent's default and it is not silent), the last a second ago.
fn envelope<T: serde::Serialize>(host_id: &str, seq: u64, data: T) -> Vec<u8> {
    serde_json::to_vec(&Payload {
        schema: wire::SCHEMA_VERSION,
        host_id: host_id.into(),
        ts_ms: wire::now_ms() - 1_000 - (2 - seq as i64) * 30_000,
        boot_id: "boot".into(),
        seq,
        agent_version: "0.1.0".into(),
        dropped: 0,
        errors: BTreeMap::new(),
        data,
    })
    .unwrap()
}

fn item(host: &str, tier: &str, payload: &[u8]) -> Item {
    recorder::ingest::parse(format!("pmon/v1/{host}/{tier}").as_bytes(), payload, wire::now_ms())
        .unwrap_or_else(|e| panic!("{host}/{tier} refused: {e:?}"))
}

const GIB: u64 = 1 << 30;

/// A host of `cores` cores and `mem_gib` GiB, `busy` (0-1) loaded, as an agent reports it.
fn fast(cores: u32, mem_gib: u64, busy: f64) -> Fast {
    Fast {
        cpus: Some(cores),
        load1: Some(cores as f64 * busy * 1.1),
        load5: Some(cores as f64 * busy),
        load15: Some(cores as f64 * busy * 0.9),
        cpu_pct: Some(busy * 100.0),
        iowait_pct: Some(0.7),
        mem_total: Some(mem_gib * GIB),
        mem_used: Some(mem_gib * GIB * 6 / 10),
        arc_bytes: Some(mem_gib * GIB / 5),
        swap_total: Some(8 * GIB),
        swap_used: Some(GIB / 8),
        rootfs_total: Some(94 * GIB),
        rootfs_used: Some(11 * GIB),
        uptime_s: Some(3_456_789),
        ..Fast::default()
    }
}

fn pool(name: &str, state: &str, cap: f64, checksum_errors: u64) -> Pool {
    let disk = |n: &str, errors: u64| Vdev {
        name: n.into(),
        depth: 1,
        state: if errors > 0 { state.into() } else { "ONLINE".into() },
        checksum_errors: errors,
        ..Vdev::default()
    };
    let size = 4u64 << 40;
    Pool {
        name: name.into(),
        state: state.into(),
        status: (state != "ONLINE").then(|| "One or more devices has experienced an error.".into()),
        action: None,
        size: Some(size),
        alloc: Some((size as f64 * cap / 100.0) as u64),
        free: Some((size as f64 * (1.0 - cap / 100.0)) as u64),
        frag_pct: Some(17.0),
        cap_pct: Some(cap),
        dedup_ratio: Some(1.0),
        vdevs: vec![
            Vdev { name: "mirror-0".into(), state: state.into(), ..Vdev::default() },
            disk("nvme0n1p3", 0),
            disk("nvme1n1p3", checksum_errors),
        ],
        scan: Some(Scan {
            function: "SCRUB".into(),
            state: "FINISHED".into(),
            start: Some(wire::now_ms() / 1000 - 3 * 86_400),
            end: Some(wire::now_ms() / 1000 - 3 * 86_000),
            errors: 0,
        }),
        error_count: 0,
    }
}

fn storage(name: &str, kind: &str, total: Option<u64>, used: Option<u64>) -> Storage {
    Storage {
        name: name.into(),
        kind: kind.into(),
        active: total.is_some(),
        enabled: total.is_some(),
        shared: kind == "nfs",
        content: "images,rootdir".into(),
        total,
        used,
        avail: total.zip(used).map(|(t, u)| t - u),
    }
}

fn guests(first: u32, n: u32, stopped_every: u32) -> Vec<Guest> {
    (first..first + n)
        .map(|vmid| Guest {
            vmid,
            name: format!("app-{vmid}"),
            status: if vmid % stopped_every == 0 { "stopped".into() } else { "running".into() },
            cpu: Some(0.12),
            cpus: Some(4.0),
            mem: Some(3 * GIB),
            maxmem: Some(8 * GIB),
            disk: Some(0),
            maxdisk: Some(64 * GIB),
            uptime_s: Some(86_400),
            tags: vec!["prod".into()],
            lock: None,
        })
        .collect()
}

fn medium(i: u32, degraded: bool) -> Medium {
    let tank = if degraded { pool("tank", "DEGRADED", 91.5, 12) } else { pool("tank", "ONLINE", 40.0 + i as f64, 0) };
    Medium {
        pools: Some(vec![pool("rpool", "ONLINE", 23.0, 0), tank]),
        storages: Some(vec![
            storage("local", "dir", Some(94 * GIB), Some(11 * GIB)),
            storage("local-zfs", "zfspool", Some(3 << 40), Some(1 << 40)),
            storage("pbs-backup", "pbs", Some(16 << 40), Some(9 << 40)),
            // A disabled NFS share reports no sizes.
            storage("nfs-iso", "nfs", None, None),
        ]),
        vms: Some(guests(100 + i * 10, 6, 4)),
        cts: Some(guests(1000 + i * 10, 3, 3)),
        ..Medium::default()
    }
}

impl TestApp {
    /// A dozen hosts like the demo's: 12 registered, 10 online and reporting (one with a
    /// degraded pool, one loaded past its cores), one offline after reporting, one that
    /// never sent anything. Seeded through the recorder's writer, whose fleet the app
    /// then reads, as `serve` does.
    fn seed_fleet(&mut self) {
        let mut conn = recorder::db::open(&self.state.database).unwrap();
        let hosts: Vec<String> = (1..=12).map(|i| format!("pve-{i:02}")).collect();
        for host in &hosts {
            recorder::hosts::add_host(&mut conn, host).unwrap();
        }
        let (live, _) = tokio::sync::broadcast::channel(64);
        let mut writer = recorder::writer::Writer::new(
            recorder::db::open_writer(&self.state.database).unwrap(),
            live,
            Arc::default(),
            recorder::Retention::raw(Duration::from_secs(48 * 3600)),
        )
        .unwrap();
        let mut batch = Vec::new();
        for (i, host) in hosts.iter().enumerate().take(11) {
            let i = i as u32;
            let busy = if i == 4 { 1.6 } else { 0.1 + i as f64 * 0.05 };
            let (cores, mem) = ([8, 16, 32, 64][i as usize % 4], [32, 64, 128, 512][i as usize % 4]);
            batch.push(item(host, "status", b"online"));
            batch.push(item(host, "fast", &envelope(host, 1, fast(cores, mem, busy.min(1.0)))));
            let mut f = fast(cores, mem, busy.min(1.0));
            (f.load1, f.load15) = (Some(cores as f64 * busy), Some(cores as f64 * busy));
            batch.push(item(host, "fast", &envelope(host, 2, f)));
            batch.push(item(host, "medium", &envelope(host, 1, medium(i, i == 2))));
        }
        batch.push(item("pve-11", "status", b"offline"));
        writer.write_and_settle(&mut batch);
        self.state.fleet = writer.fleet();
    }

    /// `token add NAME` as the CLI does it.
    fn add_token(&self, name: &str) -> String {
        let mut conn = recorder::db::open(&self.state.database).unwrap();
        recorder::api_tokens::add(&mut conn, name).unwrap()
    }

    /// A GET as a script sends it: no cookie, optionally a Bearer token.
    async fn get_as_script(&self, uri: &str, token: Option<&str>) -> (StatusCode, String) {
        let mut request = Request::get(uri).extension(ConnectInfo(std::net::SocketAddr::from(LOOPBACK)));
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = self.send(request.body(Body::empty()).unwrap()).await;
        (response.status(), body(response).await)
    }

    async fn metrics_text(&self) -> String {
        let token = self.add_token(&format!("scrape-{}", rand_suffix()));
        let (status, text) = self.get_as_script("/metrics", Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        text
    }
}

fn rand_suffix() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// `promtool check metrics` on `text`: None when promtool is not installed, else its
/// complaints (empty when there are none).
fn promtool(text: &str) -> Option<String> {
    use std::io::Write;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("SKIPPED: promtool is not installed (Debian package `prometheus`; scripts/test installs it)");
        return None;
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let complaints = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() || !complaints.is_empty(), "promtool failed without a word");
    Some(complaints)
}

#[tokio::test]
async fn the_fleet_metrics_describe_every_host_pool_and_storage_and_promtool_is_silent() {
    let mut app = TestApp::new().await;
    app.seed_fleet();
    let text = app.metrics_text().await;
    for line in [
        r#"pmon_hosts{status="online"} 8"#,
        r#"pmon_hosts{status="warning"} 1"#,
        r#"pmon_hosts{status="critical"} 1"#,
        r#"pmon_hosts{status="offline"} 2"#,
        r#"pmon_host_up{host="pve-01"} 1"#,
        r#"pmon_host_up{host="pve-11"} 0"#,
        r#"pmon_host_up{host="pve-12"} 0"#,
        r#"pmon_host_status{host="pve-03",status="critical"} 1"#,
        r#"pmon_host_status{host="pve-03",status="online"} 0"#,
        r#"pmon_host_status{host="pve-05",status="warning"} 1"#,
        r#"pmon_host_status{host="pve-12",status="offline"} 1"#,
        r#"pmon_host_cpus{host="pve-02"} 16"#,
        r#"pmon_host_load5{host="pve-01"} 0.8"#,
        r#"pmon_host_cpu_busy_ratio{host="pve-01"} 0.1"#,
        r#"pmon_host_memory_total_bytes{host="pve-01"} 34359738368"#,
        r#"pmon_host_memory_used_without_arc_bytes{host="pve-01"} 13743895347"#,
        r#"pmon_host_arc_size_bytes{host="pve-01"} 6871947673"#,
        r#"pmon_host_rootfs_used_bytes{host="pve-01"} 11811160064"#,
        r#"pmon_pool_health{host="pve-03",pool="tank",state="DEGRADED"} 1"#,
        r#"pmon_pool_health{host="pve-03",pool="tank",state="ONLINE"} 0"#,
        r#"pmon_pool_health{host="pve-03",pool="tank",state="OTHER"} 0"#,
        r#"pmon_pool_capacity_ratio{host="pve-03",pool="tank"} 0.915"#,
        r#"pmon_pool_fragmentation_ratio{host="pve-01",pool="rpool"} 0.17"#,
        r#"pmon_pool_vdev_errors{host="pve-03",pool="tank",type="checksum"} 12"#,
        r#"pmon_pool_data_errors{host="pve-03",pool="tank"} 0"#,
        r#"pmon_storage_size_bytes{host="pve-01",storage="pbs-backup"} 17592186044416"#,
        r#"pmon_storage_active{host="pve-01",storage="nfs-iso"} 0"#,
        r#"pmon_host_guests{host="pve-01",kind="vm"} 6"#,
        r#"pmon_host_guests_running{host="pve-01",kind="ct"} 2"#,
        r#"pmon_recorder_last_batch_seconds 0"#,
        r#"pmon_retention_last_pass_seconds 0"#,
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    let last_seen = text.lines().find(|l| l.starts_with(r#"pmon_host_last_seen_timestamp_seconds{host="pve-01"} "#));
    let seconds: f64 = last_seen.expect("pve-01 last seen").rsplit(' ').next().unwrap().parse().unwrap();
    assert!((seconds - wire::now_ms() as f64 / 1000.0).abs() < 600.0, "seconds since the epoch: {seconds}");
    // Units in base units only, and an offline host's figures are not repeated as if live.
    assert!(!text.contains("_microseconds") && !text.contains("_milliseconds"), "{text}");
    assert!(!text.contains(r#"pmon_host_load1{host="pve-11"}"#), "stale figures of an offline host");
    assert!(!text.contains(r#"pmon_storage_size_bytes{host="pve-01",storage="nfs-iso"}"#), "no size, no sample");
    assert!(!text.contains("pmon_guest_"), "no per-guest series by default");
    assert!(!text.contains("NaN"));

    let Some(complaints) = promtool(&text) else { return };
    assert_eq!(complaints, "", "promtool check metrics:\n{complaints}");
}

#[tokio::test]
async fn metrics_guests_adds_per_guest_series_and_promtool_is_still_silent() {
    let mut app = TestApp::new().await;
    app.state.metrics.guests = true;
    app.seed_fleet();
    let text = app.metrics_text().await;
    let line = r#"pmon_guest_running{host="pve-01",kind="vm",vmid="100",name="app-100"} 0"#;
    assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    assert!(text.contains(r#"pmon_guest_memory_max_bytes{host="pve-02",kind="ct",vmid="1010",name="app-1010"} "#));
    let Some(complaints) = promtool(&text) else { return };
    assert_eq!(complaints, "", "promtool check metrics:\n{complaints}");
}

/// Every `pmon_…` name in the Grafana dashboard's queries.
fn grafana_metric_names(dashboard: &serde_json::Value) -> BTreeSet<String> {
    fn exprs<'v>(v: &'v serde_json::Value, out: &mut Vec<&'v str>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr" | "query", serde_json::Value::String(s)) => out.push(s),
                        _ => exprs(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    exprs(dashboard, &mut found);
    assert!(found.len() >= 10, "the dashboard has queries: {found:?}");
    let mut names = BTreeSet::new();
    for expr in found {
        let mut rest = expr;
        while let Some(at) = rest.find("pmon_") {
            let name: String = rest[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            rest = &rest[at + name.len()..];
            names.insert(name);
        }
    }
    names
}

#[tokio::test]
async fn every_series_the_grafana_dashboard_queries_is_on_metrics() {
    let json = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/grafana-dashboard.json"));
    let dashboard: serde_json::Value = serde_json::from_str(json).expect("deploy/grafana-dashboard.json parses");
    let names = grafana_metric_names(&dashboard);
    let mut app = TestApp::new().await;
    app.seed_fleet();
    let text = app.metrics_text().await;
    let exported: BTreeSet<&str> =
        text.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split(['{', ' ']).next()).collect();
    let missing: Vec<&String> = names.iter().filter(|n| !exported.contains(n.as_str())).collect();
    assert!(missing.is_empty(), "the dashboard queries series /metrics does not have: {missing:?}");
    for must in ["pmon_host_status", "pmon_host_cpu_busy_ratio", "pmon_pool_capacity_ratio", "pmon_storage_used_bytes"]
    {
        assert!(names.contains(must), "the dashboard should use {must}: {names:?}");
    }
}

#[tokio::test]
async fn metrics_and_the_api_need_a_token_or_a_session() {
    let app = TestApp::new().await;
    for uri in ["/metrics", "/api/v1/hosts"] {
        let (status, text) = app.get_as_script(uri, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}: {text}");
        let (status, _) = app.get_as_script(uri, Some("pmon_0123")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}: an unknown token");
    }
    let token = app.add_token("prometheus");
    for uri in ["/metrics", "/api/v1/hosts"] {
        let (status, text) = app.get_as_script(uri, Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {text}");
    }
    let response = app
        .send(
            Request::get("/metrics")
                .extension(ConnectInfo(std::net::SocketAddr::from(LOOPBACK)))
                .header(header::AUTHORIZATION, "Basic cHJvbWV0aGV1czp4")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "only Bearer");
    assert!(response.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().starts_with("Bearer"));
    // A signed-in browser reads them too.
    let cookie = app.login().await;
    for uri in ["/metrics", "/api/v1/hosts"] {
        let response = app.send(page(uri, Some(&cookie))).await;
        assert_eq!(response.status(), StatusCode::OK, "{uri} with a session");
    }
    // Revoked: refused at the next request.
    let conn = recorder::db::open(&app.state.database).unwrap();
    recorder::api_tokens::remove(&conn, "prometheus").unwrap();
    let (status, _) = app.get_as_script("/metrics", Some(&token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a revoked token");
}

#[tokio::test]
async fn an_api_token_cannot_change_anything_or_open_a_page() {
    let app = TestApp::new().await;
    let token = app.add_token("script");
    let bearer = format!("Bearer {token}");
    // The admin form, with a real CSRF token from a real session but the API token
    // instead of the cookie.
    let cookie = app.login().await;
    let csrf = app.csrf(&cookie).await;
    let mut request = form("/admin/hosts", &format!("host_id=pve-sneaky&csrf={csrf}"), None);
    request.headers_mut().insert(header::AUTHORIZATION, bearer.parse().unwrap());
    let response = app.send(request).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "to the sign-in page");
    assert!(app.host_ids().is_empty(), "nothing added");
    for uri in ["/admin/hosts", "/", "/timeline"] {
        let mut request = page(uri, None);
        request.headers_mut().insert(header::AUTHORIZATION, bearer.parse().unwrap());
        let response = app.send(request).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{uri} is for signed-in browsers");
    }
    // On the API a token only reads: any other method is refused before routing.
    let response = app
        .send(
            Request::post("/api/v1/hosts")
                .extension(ConnectInfo(std::net::SocketAddr::from(LOOPBACK)))
                .header(header::AUTHORIZATION, &bearer)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // And a browser's session still works beside it (the token is no session).
    let html = body(app.send(page("/admin/hosts", Some(&cookie))).await).await;
    assert!(!csrf_field(&html).is_empty());
}

#[tokio::test]
async fn metrics_public_opens_metrics_only() {
    let mut app = TestApp::new().await;
    app.state.metrics.public = true;
    let (status, text) = app.get_as_script("/metrics", None).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("# TYPE pmon_host_up gauge"));
    let (status, _) = app.get_as_script("/api/v1/hosts", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the API still needs a token");
}
