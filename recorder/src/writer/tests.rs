use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use super::Writer;
use crate::ingest::{parse, Item, Reject};
use crate::partitions::{hour_of, Series, HOUR_MS};
use crate::read;
use crate::state::{Card, HostState};
use crate::{now_ms, Retention, Stats};

fn setup() -> (tempfile::TempDir, Writer, broadcast::Receiver<Card>) {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = crate::db::open_and_migrate(&dir.path().join("w.db")).unwrap();
    crate::hosts::add_host(&mut conn, "pve1").unwrap();
    let (live, rx) = broadcast::channel(16);
    let writer =
        Writer::new(conn, live, Arc::new(Stats::default()), Retention::raw(Duration::from_secs(3600))).unwrap();
    (dir, writer, rx)
}

fn fast(host: &str, seq: u64, ts_ms: i64, load1: f64) -> Item {
    let json = format!(
        r#"{{"schema":1,"host_id":"{host}","ts_ms":{ts_ms},"boot_id":"b","seq":{seq},"agent_version":"t","data":{{"load1":{load1}}}}}"#
    );
    parse(format!("pmon/v1/{host}/fast").as_bytes(), json.as_bytes(), now_ms()).unwrap()
}

fn count(w: &Writer, sql: &str) -> i64 {
    w.conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn readers_get_the_writers_states_and_the_registry_from_the_database() {
    let (dir, mut w, _live) = setup();
    let fleet = w.fleet();
    let reader = crate::db::open_read(&dir.path().join("w.db")).unwrap();
    w.write_and_settle(&mut vec![fast("pve1", 1, now_ms(), 1.5)]);
    // From the writer's copy, not parsed from `latest`: a spoilt row changes nothing.
    w.conn.execute("UPDATE latest SET payload = '{}'", []).unwrap();
    let states = read::all_hosts(&reader, &fleet).unwrap();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].fast.as_ref().and_then(|p| p.data.load1), Some(1.5));
    // Presence reaches readers at its commit, with the registry, not at the settle.
    assert!(!states[0].online);
    w.write(&mut vec![parse(b"pmon/v1/pve1/status", b"online", now_ms()).unwrap()]);
    assert!(read::all_hosts(&reader, &fleet).unwrap()[0].online);

    // A host registered by another process since the writer started is listed (parsed
    // from the database); a removed one is gone at once.
    let mut other = crate::db::open_and_migrate(&dir.path().join("w.db")).unwrap();
    crate::hosts::add_host(&mut other, "pve2").unwrap();
    let ids = |states: Vec<Arc<HostState>>| states.iter().map(|s| s.host_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(read::all_hosts(&reader, &fleet).unwrap()), ["pve1", "pve2"]);
    crate::hosts::remove_host(&mut other, "pve1").unwrap();
    assert_eq!(ids(read::all_hosts(&reader, &fleet).unwrap()), ["pve2"]);
    assert!(read::one_host(&reader, &fleet, "pve1").unwrap().is_none());
    assert_eq!(read::one_host(&reader, &fleet, "pve2").unwrap().map(|s| s.host_id.clone()).as_deref(), Some("pve2"));
}

#[test]
fn replays_are_stored_once_and_late_ones_do_not_replace_latest() {
    let (_dir, mut w, mut live) = setup();
    let now = now_ms();
    w.write(&mut vec![fast("pve1", 1, now - 2000, 1.0), fast("pve1", 2, now - 1000, 2.0)]);
    w.write(&mut vec![fast("pve1", 1, now - 2000, 1.0), fast("pve1", 2, now - 1000, 2.0)]);
    assert_eq!(count(&w, "SELECT count(*) FROM fast_samples"), 2);
    assert_eq!(w.stats.duplicates.load(Ordering::Relaxed), 2);
    // A replay from the outage buffer arrives after newer data: history, not "latest".
    w.write(&mut vec![fast("pve1", 3, now - 500, 3.0), fast("pve1", 4, now - 60_000, 9.0)]);
    assert_eq!(count(&w, "SELECT count(*) FROM fast_samples"), 4);
    assert_eq!(count(&w, "SELECT count(*) FROM latest"), 0, "latest is written when the writer settles");
    w.write_and_settle(&mut vec![]);
    let latest: String = w.conn.query_row("SELECT payload FROM latest", [], |r| r.get(0)).unwrap();
    assert!(latest.contains("\"load1\":3"), "{latest}");
    assert_eq!(live.try_recv().unwrap().load1, Some(2.0));
}

#[test]
fn samples_moved_into_history_are_still_known() {
    let (_dir, mut w, _live) = setup();
    let now = now_ms();
    w.write(&mut vec![fast("pve1", 1, now - 2000, 1.0), fast("pve1", 2, now - 1000, 2.0)]);
    assert_eq!(count(&w, "SELECT count(*) FROM fast_recent"), 2);
    w.write_and_settle(&mut vec![fast("pve1", 3, now, 3.0)]);
    assert_eq!(count(&w, "SELECT count(*) FROM fast_recent"), 0);
    assert_eq!(count(&w, "SELECT count(*) FROM fast_samples"), 3);
    // Replays of moved samples, and of one in each table, are stored once.
    w.write(&mut vec![fast("pve1", 1, now - 2000, 1.0), fast("pve1", 4, now + 1, 4.0)]);
    w.write(&mut vec![fast("pve1", 3, now, 3.0), fast("pve1", 4, now + 1, 4.0)]);
    assert_eq!(count(&w, "SELECT count(*) FROM fast_samples"), 4);
    assert_eq!(count(&w, "SELECT count(DISTINCT seq) FROM fast_samples"), 4);
    assert_eq!(w.stats.duplicates.load(Ordering::Relaxed), 3);
}

#[test]
fn unknown_hosts_are_counted_not_stored() {
    let (_dir, mut w, _live) = setup();
    w.write(&mut vec![fast("ghost", 1, now_ms(), 1.0)]);
    assert_eq!(count(&w, "SELECT count(*) FROM fast_samples"), 0);
    assert_eq!(w.stats.unknown_host.load(Ordering::Relaxed), 1);
}

#[test]
fn presence_changes_are_events() {
    let (_dir, mut w, _live) = setup();
    let status = |online| Item::Status { host: wire::HostId::parse("pve1").unwrap(), online };
    w.write(&mut vec![status(true), status(true), status(false)]);
    assert_eq!(count(&w, "SELECT count(*) FROM events WHERE kind = 'online'"), 1);
    assert_eq!(count(&w, "SELECT count(*) FROM events WHERE kind = 'offline'"), 1);
    assert_eq!(count(&w, "SELECT online FROM hosts"), 0);
}

#[test]
fn a_host_that_just_reconnected_is_not_called_silent() {
    let (_dir, mut w, mut live) = setup();
    let long_ago = now_ms() - 600_000;
    w.write(&mut vec![fast("pve1", 1, long_ago - 1000, 1.0), fast("pve1", 2, long_ago, 1.0)]);
    let state = w.states.get_mut("pve1").unwrap();
    state.fast_received_ms = Some(long_ago);
    w.write(&mut vec![Item::Status { host: wire::HostId::parse("pve1").unwrap(), online: true }]);
    let card = std::iter::from_fn(|| live.try_recv().ok()).last().unwrap();
    assert_eq!(card.status, crate::status::Level::Online, "{:?}", card.reasons);
}

#[test]
fn retention_drops_stale_hours_and_refuses_stale_samples() {
    let (_dir, mut w, _live) = setup();
    let now = now_ms();
    let old = now - 3 * HOUR_MS;
    w.retention_ms = 4 * HOUR_MS;
    w.write_and_settle(&mut vec![fast("pve1", 1, old, 1.0), fast("pve1", 2, now, 2.0)]);
    // A sample of the stale hour still in fast_recent (the writer has not settled since).
    w.write(&mut vec![fast("pve1", 3, old + 1, 1.0)]);
    assert_eq!(count(&w, "SELECT count(*) FROM fast_recent"), 1);
    let stale_table = Series::Fast.table(hour_of(old));
    assert_eq!(count(&w, &format!("SELECT count(*) FROM {stale_table}")), 1);

    w.retention_ms = HOUR_MS;
    w.prune_now();
    w.write_and_settle(&mut vec![]);
    assert_eq!(count(&w, "SELECT count(*) FROM fast_samples"), 1);
    assert_eq!(count(&w, "SELECT count(*) FROM latest"), 1, "latest is never pruned");
    let exists = format!("SELECT count(*) FROM sqlite_schema WHERE name = '{stale_table}'");
    assert_eq!(count(&w, &exists), 0, "the stale hour's tables are dropped");
    assert_eq!(count(&w, "SELECT count(*) FROM sample_hours"), 1);

    // A replay from before the window is refused, not stored in a new stale hour.
    w.write_and_settle(&mut vec![fast("pve1", 4, old + 2, 1.0)]);
    assert_eq!(count(&w, "SELECT count(*) FROM fast_samples"), 1);
    assert_eq!(count(&w, &exists), 0);
    let stale = w.stats.rejected().into_iter().find(|(r, _)| *r == Reject::Stale).unwrap().1;
    assert_eq!(stale, 1);
}

#[test]
fn samples_go_into_the_table_of_their_hour() {
    let (_dir, mut w, _live) = setup();
    let hour = hour_of(now_ms());
    let (a, b) = ((hour - 1) * HOUR_MS + 5, hour * HOUR_MS + 5);
    w.write_and_settle(&mut vec![fast("pve1", 1, a, 1.0), fast("pve1", 2, b, 2.0), fast("pve1", 3, b + 1, 3.0)]);
    assert_eq!(count(&w, &format!("SELECT count(*) FROM {}", Series::Fast.table(hour - 1))), 1);
    assert_eq!(count(&w, &format!("SELECT count(*) FROM {}", Series::Fast.table(hour))), 2);
    assert_eq!(count(&w, &format!("SELECT rows FROM sample_hours WHERE hour = {hour}")), 2);
    // The hour's tables are created once: a restart finds them.
    let stats = Arc::new(Stats::default());
    let conn = crate::db::open(&_dir.path().join("w.db")).unwrap();
    let mut again = Writer::new(conn, w.live.clone(), stats, Retention::raw(Duration::from_secs(3600))).unwrap();
    again.write_and_settle(&mut vec![fast("pve1", 4, b + 2, 4.0), fast("pve1", 2, b, 2.0)]);
    assert_eq!(count(&again, "SELECT count(*) FROM fast_samples"), 4);
    assert_eq!(again.stats.duplicates.load(Ordering::Relaxed), 1);
}

#[test]
fn settled_samples_reach_the_rollups_once_even_when_replayed() {
    let (_dir, mut w, _live) = setup();
    let now = now_ms();
    let minute = now - now.rem_euclid(60_000);
    w.write(&mut vec![fast("pve1", 1, minute, 1.0), fast("pve1", 2, minute + 1, 3.0)]);
    w.write_and_settle(&mut vec![fast("pve1", 2, minute + 1, 3.0)]);
    // A replay after the settle (the agent resent from its outage buffer).
    w.write_and_settle(&mut vec![fast("pve1", 1, minute, 1.0)]);
    let day = crate::history::read(&w.conn, crate::rollup::Group::Host, "pve1", now - 7 * 86_400_000, now + 1).unwrap();
    let load = day.subjects[0].series(crate::rollup::Group::Host, "load1");
    assert_eq!(load.len(), 1);
    assert_eq!((load[0].min, load[0].mean, load[0].max), (Some(1.0), Some(2.0), Some(3.0)));
}

#[test]
fn a_shared_token_is_an_event_and_a_reason_on_the_card_at_its_commit() {
    let (_dir, mut w, mut live) = setup();
    let fleet = w.fleet();
    w.write(&mut vec![parse(b"pmon/v1/pve1/status", b"online", now_ms()).unwrap()]);
    let detected = broker::CloneDetected {
        host: wire::HostId::parse("pve1").unwrap(),
        addresses: vec![[10, 0, 0, 5].into(), [10, 0, 0, 9].into()],
        kept: [10, 0, 0, 9].into(),
        cool_down: Duration::from_secs(600),
    };
    w.write(&mut vec![Item::SharedToken(detected)]);
    let message: String =
        w.conn.query_row("SELECT message FROM events WHERE kind = 'clone'", [], |r| r.get(0)).unwrap();
    assert_eq!(
        message,
        "two agents use this host's token: 10.0.0.5 and 10.0.0.9; 10.0.0.9 stays connected, \
         the others are refused for 10 min"
    );
    let reason = "two agents use this host's token: 10.0.0.5 and 10.0.0.9";
    let card = fleet.get("pve1").unwrap().card(now_ms());
    assert_eq!((card.status, card.reasons), (crate::status::Level::Critical, vec![reason.to_owned()]));
    let _online = live.try_recv().unwrap();
    assert_eq!(live.try_recv().unwrap().reasons, [reason], "pushed live too");
}

const MIN: i64 = 60_000;

fn medium(host: &str, seq: u64, ts_ms: i64) -> Item {
    let json = format!(
        r#"{{"schema":1,"host_id":"{host}","ts_ms":{ts_ms},"boot_id":"b","seq":{seq},"agent_version":"t","data":{{}}}}"#
    );
    parse(format!("pmon/v1/{host}/medium").as_bytes(), json.as_bytes(), now_ms()).unwrap()
}

fn stored_times(w: &Writer) -> Vec<(i64, i64)> {
    let mut stmt = w.conn.prepare("SELECT seq, ts_ms FROM fast_samples ORDER BY seq").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().collect::<rusqlite::Result<_>>().unwrap()
}

#[test]
fn a_clock_ten_minutes_off_either_way_is_measured_and_nothing_is_lost() {
    for skew in [10 * MIN, -10 * MIN] {
        let (_dir, mut w, mut live) = setup();
        w.write(&mut vec![Item::Status { host: wire::HostId::parse("pve1").unwrap(), online: true }]);
        // Live samples, as an agent sends them: one per interval, stamped by its own clock.
        for seq in 1..=5 {
            w.write(&mut vec![fast("pve1", seq, now_ms() + skew, seq as f64)]);
            std::thread::sleep(Duration::from_millis(150));
        }
        w.write_and_settle(&mut vec![]);
        let now = now_ms();
        assert_eq!(w.states["pve1"].clock_skew_ms, Some(skew), "measured from the paced samples");
        let times = stored_times(&w);
        assert_eq!(times.len(), 5, "every sample is stored: {times:?}");
        // From the fourth sample (three paced offsets) on, at the server's time.
        for (seq, ts) in &times[3..] {
            assert!((now - ts).abs() < 2_000, "seq {seq} stored at {} ms from now", ts - now);
        }
        // Before the measure: a clock ahead lands when it arrived (never in the future), one
        // behind where it said (it could be a replay).
        for (seq, ts) in &times[..3] {
            let off = ts - now;
            let expect = if skew > 0 { off <= 0 && off > -2_000 } else { (off - skew).abs() < 2_000 };
            assert!(expect, "seq {seq} stored {off} ms from now");
        }
        // The agent's time is kept in the stored payload.
        let latest: String = w.conn.query_row("SELECT payload FROM latest", [], |r| r.get(0)).unwrap();
        assert!(latest.contains("\"agent_ts_ms\""), "{latest}");
        assert_eq!(read::stored_skew(&latest), Some(skew));
        // The card warns.
        let card = std::iter::from_fn(|| live.try_recv().ok()).last().unwrap();
        let side = if skew > 0 { "ahead of" } else { "behind" };
        assert!(card.reasons.contains(&format!("clock is 10 min 0 s {side} the server")), "{:?}", card.reasons);
        // A restart measures nothing anew: the skew comes back with the latest sample.
        let conn = crate::db::open(&_dir.path().join("w.db")).unwrap();
        let again =
            Writer::new(conn, w.live.clone(), w.stats.clone(), Retention::raw(Duration::from_secs(3600))).unwrap();
        assert_eq!(again.clocks["pve1"].skew_ms(), Some(skew));
    }
}

#[test]
fn replays_are_keyed_by_the_agents_time_whatever_the_correction() {
    use crate::clock::Clock;
    let (_dir, mut w, _live) = setup();
    let agent_at = now_ms() + 5 * MIN - MIN;
    w.clocks.insert("pve1".into(), Clock::restored(5 * MIN));
    w.write(&mut vec![fast("pve1", 1, agent_at, 1.0), medium("pve1", 1, agent_at)]);
    w.write_and_settle(&mut vec![fast("pve1", 2, agent_at + 1000, 2.0)]);
    // The estimate changed (the clock drifted) before the agent replayed, stored or not.
    w.clocks.insert("pve1".into(), Clock::restored(3 * MIN));
    w.write(&mut vec![fast("pve1", 1, agent_at, 1.0), fast("pve1", 2, agent_at + 1000, 2.0)]);
    w.write(&mut vec![medium("pve1", 1, agent_at)]);
    assert_eq!(count(&w, "SELECT count(*) FROM fast_samples"), 2);
    let ingested: i64 = crate::db::tables_matching(&w.conn, "ingested_h*")
        .unwrap()
        .iter()
        .map(|t| count(&w, &format!("SELECT count(*) FROM {t} WHERE tier = 'medium'")))
        .sum();
    assert_eq!(ingested, 1);
    assert_eq!(w.stats.duplicates.load(Ordering::Relaxed), 3);

    // A host first stored as sent (its clock not measured yet), then measured: its
    // replays are found at the agent's time, in fast_recent and in the hour table.
    crate::hosts::add_host(&mut w.conn, "pve2").unwrap();
    let behind = now_ms() - 10 * MIN;
    w.write_and_settle(&mut vec![fast("pve2", 1, behind, 1.0)]);
    w.write(&mut vec![fast("pve2", 2, behind + 1000, 2.0)]);
    w.clocks.insert("pve2".into(), Clock::restored(-10 * MIN));
    w.write(&mut vec![fast("pve2", 1, behind, 1.0), fast("pve2", 2, behind + 1000, 2.0)]);
    assert_eq!(count(&w, "SELECT count(*) FROM fast_samples WHERE host_id = 'pve2'"), 2);
    assert_eq!(w.stats.duplicates.load(Ordering::Relaxed), 5);
    // A new sample is stored at its corrected time.
    w.write(&mut vec![fast("pve2", 3, behind + 2000, 3.0)]);
    let ts: i64 = w
        .conn
        .query_row("SELECT ts_ms FROM fast_samples WHERE host_id = 'pve2' AND seq = 3", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ts, behind + 2000 + 10 * MIN);
}

#[test]
fn the_first_packing_pass_converts_hours_left_open_by_an_older_version() {
    use crate::rollup::{self, Group, Parts};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let mut conn = crate::db::open_and_migrate(&path).unwrap();
    // Hour rows as a version without packing left them: 10 days of hourly samples.
    let now = now_ms();
    let start = now - now.rem_euclid(HOUR_MS) - 10 * 24 * HOUR_MS;
    let tx = conn.transaction().unwrap();
    for h in 0..240 {
        tx.execute(
            "INSERT INTO fast_recent (host_id, ts_ms, seq, load1) VALUES ('pve1', ?1, ?1, ?2)",
            rusqlite::params![start + h * HOUR_MS, (h % 10) as f64],
        )
        .unwrap();
    }
    rollup::fold(&tx, &mut Parts::default(), Group::Host, "fast_recent", "1", &[]).unwrap();
    tx.execute("DELETE FROM fast_recent", []).unwrap();
    tx.commit().unwrap();
    let read = |conn: &rusqlite::Connection| {
        let h = crate::history::read(conn, Group::Host, "pve1", now - 30 * 24 * HOUR_MS, now).unwrap();
        h.subjects[0].series(Group::Host, "load1").iter().map(|p| p.mean).collect::<Vec<_>>()
    };
    let before = read(&conn);
    assert_eq!(before.len(), 240);

    let (live, _rx) = broadcast::channel(16);
    let mut w = Writer::new(conn, live, Arc::new(Stats::default()), Retention::raw(Duration::from_secs(3600))).unwrap();
    w.pack_now();
    assert!(count(&w, "SELECT count(*) FROM rollup_packs") > 0, "ended blocks were packed");
    let open: i64 = crate::db::tables_matching(&w.conn, "roll_host_h_p*")
        .unwrap()
        .iter()
        .map(|t| {
            count(
                &w,
                &format!(
                    "SELECT count(*) FROM {t} WHERE t < {}",
                    rollup::pack::first_open_block(now) * rollup::block::BLOCK_HOURS
                ),
            )
        })
        .sum();
    assert_eq!(open, 0, "no ended hour is left open");
    assert_eq!(read(&w.conn), before, "every value kept");
}

#[test]
fn a_hosts_state_holds_its_slow_payload_without_the_snapshot_list_the_api_reads_it_whole() {
    let (dir, mut w, _live) = setup();
    let fleet = w.fleet();
    let json = format!(
        r#"{{"schema":1,"host_id":"pve1","ts_ms":{},"boot_id":"b","seq":1,"agent_version":"t","data":{{"snapshots":{{"total":2,"datasets":[{{"dataset":"rpool/data","count":2,"oldest":1,"newest":2,"used":3}}],"recent":[{{"name":"rpool/data@a","used":1,"creation":1}},{{"name":"rpool/data@b","used":2,"creation":2}}],"truncated":false}}}}}}"#,
        now_ms()
    );
    w.write_and_settle(&mut vec![parse(b"pmon/v1/pve1/slow", json.as_bytes(), now_ms()).unwrap()]);
    let reader = crate::db::open_read(&dir.path().join("w.db")).unwrap();
    let held = |state: &HostState| {
        let snapshots = state.slow.as_ref().unwrap().get().data.snapshots.unwrap();
        (snapshots.total, snapshots.datasets.len(), snapshots.recent.len())
    };
    assert_eq!(held(&fleet.get("pve1").unwrap()), (2, 1, 0), "the writer's state");
    let restarted = read::parse_states(&reader).unwrap();
    assert_eq!(held(&restarted[0]), (2, 1, 0), "the state parsed at a restart");
    let whole = read::latest_slow(&reader, "pve1").unwrap().unwrap();
    let names: Vec<String> = whole.data.snapshots.unwrap().recent.into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["rpool/data@a", "rpool/data@b"]);
    assert!(read::latest_slow(&reader, "pve2").unwrap().is_none());
}

#[test]
fn latest_keeps_a_payload_as_sent_unless_its_time_was_corrected() {
    let raw = r#"{"host_id":"pve1","ts_ms":1000,"seq":1}"#;
    assert!(matches!(super::skew::stored_json(raw, 1000, 1000), std::borrow::Cow::Borrowed(r) if r == raw));
    let fields: serde_json::Value = serde_json::from_str(&super::skew::stored_json(raw, 400, 1000)).unwrap();
    assert_eq!(fields, serde_json::json!({"host_id": "pve1", "ts_ms": 400, "agent_ts_ms": 1000, "seq": 1}));
}
