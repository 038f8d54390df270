//! Faults of the server's surroundings (#15), each automated and bounded; what happened
//! is written down in docs/RELIABILITY.md.

use std::process::Command;
use std::time::Duration;

use integration::load::Publisher;
use integration::*;

/// A tmpfs mounted on a fresh directory, unmounted (and the directory removed) on drop.
struct Tmpfs {
    path: std::path::PathBuf,
}

impl Tmpfs {
    /// Mounts `size` (e.g. `16m`) on a new temporary directory; Err says why it cannot
    /// (mounting needs root, or CAP_SYS_ADMIN in a container).
    fn mount(size: &str) -> Result<(tempfile::TempDir, Tmpfs), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount -t tmpfs failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        let path = dir.path().to_owned();
        Ok((dir, Tmpfs { path }))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Writes zeros to `path` until the filesystem refuses (ENOSPC); returns the bytes written.
fn fill(path: &std::path::Path) -> u64 {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0;
    while let Ok(n) = file.write(&chunk) {
        if n == 0 {
            break;
        }
        written += n as u64;
    }
    let _ = file.sync_all();
    written
}

fn stored(server: &Server, host: &str) -> i64 {
    server.sql(&format!("SELECT count(DISTINCT seq) FROM fast_samples WHERE host_id = '{host}'"))
}

/// The names of a process's threads (truncated to 15 characters by the kernel).
fn threads(pid: u32) -> Vec<String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok()).map(|c| c.trim().into()).collect()
}

/// #15: the server's database on a filesystem that fills up. While full, `/health` says
/// so and the writer holds its batch; nothing crashes; once space returns, ingest resumes
/// by itself and every sample published meanwhile is stored, once.
#[test]
fn a_full_disk_holds_ingest_and_loses_nothing_when_space_returns() {
    let (dir, tmpfs) = match Tmpfs::mount("16m") {
        Ok(mounted) => mounted,
        Err(why) => {
            eprintln!("SKIPPED a_full_disk_holds_ingest_and_loses_nothing_when_space_returns: {why}");
            return;
        }
    };
    let mut server = Server::start_in_dir(dir, vec![]);
    let token = server.add_host("pve-full");
    let mut agent = Publisher::connect(server.mqtt, "pve-full", &token).unwrap();
    let topic = "pmon/v1/pve-full/fast";
    let mut seq = 0;
    let mut publish = |agent: &mut Publisher, n: u64| {
        for _ in 0..n {
            seq += 1;
            agent.publish(topic, fast_json("pve-full", "full", seq, wire::now_ms()).as_bytes()).unwrap();
        }
        seq
    };
    let sent = publish(&mut agent, 20);
    wait_for("the first samples", Duration::from_secs(20), || {
        (stored(&server, "pve-full") == sent as i64).then_some(())
    });

    // Reading /metrics makes an API token (a database write): make it while there is room.
    assert_eq!(server.metric("pmon_recorder_disk_full"), 0);
    let filler = tmpfs.path.join("filler");
    let filled = fill(&filler);
    assert!(filled > 0, "the filler took the free space");
    // Publish until a commit needs a page the disk no longer has: the WAL reuses its own
    // space at first.
    let health = format!("http://{}/health", server.http);
    wait_for("/health to report the full disk", Duration::from_secs(60), || {
        publish(&mut agent, 50);
        agent.flush().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        http_get(&health).filter(|(code, body)| *code == 503 && body.contains("disk_full"))
    });
    assert_eq!(server.metric("pmon_recorder_disk_full"), 1);
    // Nothing crashed: the server answers pages and stays up while full.
    let mut sent = 0;
    for _ in 0..3 {
        std::thread::sleep(Duration::from_secs(1));
        sent = publish(&mut agent, 20);
        let _ = agent.flush();
        assert!(server.child.try_wait().unwrap().is_none(), "the server exited on a full disk");
        assert_eq!(http_get(&health).map(|(c, _)| c), Some(503));
    }

    std::fs::remove_file(&filler).unwrap();
    wait_for("/health to be 200 again", Duration::from_secs(30), || {
        let _ = agent.flush();
        http_get(&health).filter(|(code, _)| *code == 200)
    });
    wait_for("every sample published while full", Duration::from_secs(60), || {
        let _ = agent.flush();
        (stored(&server, "pve-full") == sent as i64).then_some(())
    });
    let rows: i64 = server.sql("SELECT count(*) FROM fast_samples WHERE host_id = 'pve-full'");
    assert_eq!(rows, sent as i64, "each stored once");
    assert_eq!(server.metric("pmon_recorder_lost_total"), 0);
    assert_eq!(server.metric("pmon_recorder_disk_full"), 0);
    assert!(server.metric("pmon_recorder_write_errors_total") > 0, "the failed commits are counted");
    let names = threads(server.child.id());
    for thread in ["recorder-writer", "recorder-checkp"] {
        assert!(names.iter().any(|n| n == thread), "{thread} survived: {names:?}");
    }
    // And ingest goes on.
    let more = publish(&mut agent, 5);
    wait_for("ingest after the fault", Duration::from_secs(20), || {
        let _ = agent.flush();
        (stored(&server, "pve-full") == more as i64).then_some(())
    });
    assert_eq!(server.integrity(), "ok");
    drop(server);
    drop(tmpfs);
}

/// While the disk is full long enough for the ingest sink to fill, a CONNECT still gets
/// its CONNACK within a few seconds. Presence used to be handed to the sink under the
/// presence lock: a host's `online` waiting for room held every CONNECT (an observer's
/// too, so nobody could watch the outage), every disconnect and every rotation until the
/// disk had room again. The states queued meanwhile are stored, in order, afterwards.
#[test]
fn a_full_disk_stalls_no_connect() {
    let (dir, tmpfs) = match Tmpfs::mount("16m") {
        Ok(mounted) => mounted,
        Err(why) => {
            eprintln!("SKIPPED a_full_disk_stalls_no_connect: {why}");
            return;
        }
    };
    let server = Server::start_in_dir(dir, vec![]);
    let token = server.add_host("pve-full");
    let second = server.add_host("pve-second");
    let watch = server.add_observer("watch");
    let mut agent = Publisher::connect(server.mqtt, "pve-full", &token).unwrap();
    let topic = "pmon/v1/pve-full/fast";
    let mut seq = 0;
    let mut publish = |agent: &mut Publisher, n: u64| {
        for _ in 0..n {
            seq += 1;
            agent.publish(topic, fast_json("pve-full", "full", seq, wire::now_ms()).as_bytes()).unwrap();
        }
        seq
    };
    // Reading /metrics makes an API token (a database write): make it while there is room.
    assert_eq!(server.metric("pmon_recorder_disk_full"), 0);
    let filler = tmpfs.path.join("filler");
    assert!(fill(&filler) > 0, "the filler took the free space");
    let health = format!("http://{}/health", server.http);
    wait_for("/health to report the full disk", Duration::from_secs(60), || {
        publish(&mut agent, 50);
        agent.flush().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        http_get(&health).filter(|(code, body)| *code == 503 && body.contains("disk_full"))
    });
    // Behind the held batch: the writer's queue (10,000) and then the sink (4,096) fill.
    let sent = publish(&mut agent, 20_000);
    let mut received = 0;
    wait_for("the ingest sink to fill", Duration::from_secs(60), || {
        let _ = agent.flush();
        std::thread::sleep(Duration::from_millis(500));
        let before = std::mem::replace(&mut received, server.metric("pmon_recorder_received_total"));
        (received == before && received + 5_000 < sent).then_some(())
    });

    let started = std::time::Instant::now();
    let host = Publisher::connect(server.mqtt, "pve-second", &second).expect("a host's CONNACK while full");
    drop(host);
    let observer = Publisher::connect(server.mqtt, "watch", &watch).expect("an observer's CONNACK while full");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "two CONNACKs took {took:?} while the disk was full");
    drop(observer);

    std::fs::remove_file(&filler).unwrap();
    wait_for("every sample published while full", Duration::from_secs(60), || {
        let _ = agent.flush();
        (stored(&server, "pve-full") == sent as i64).then_some(())
    });
    let events = "SELECT group_concat(kind) FROM (SELECT kind FROM events WHERE host_id = 'pve-second' ORDER BY id)";
    wait_for("pve-second's presence stored", Duration::from_secs(20), || {
        (server.sql::<Option<String>>(events).as_deref() == Some("online,offline")).then_some(())
    });
    assert_eq!(server.status_of("pve-second").as_deref(), Some("offline"));
    assert_eq!(server.metric("pmon_recorder_lost_total"), 0);
    drop(server);
    drop(tmpfs);
}
