//! `Collectors` end to end, against fake `pvesh`/`zpool`/`zfs`/`pveversion` scripts that print
//! the captured fixtures, and `/proc` and `/sys` roots copied from `tests/fixtures/host`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::zpool_status::Format;
use super::Collectors;

const TIMEOUT: Duration = Duration::from_secs(20);

/// `case` arms of a fake pvesh for the backup jobs, the task list and two jobs' logs.
const PVESH_BACKUPS: &str = r#""get /cluster/backup --output-format json") cat "$F/pvesh_cluster_backup.json";;
"get /pools/prod --output-format json") cat "$F/pvesh_pool_prod.json";;
"get /nodes/pve1/tasks --"*) cat "$F/pvesh_tasks.json";;
"get /nodes/pve1/tasks/UPID:pve:00154000:0C6DE000:6AAFDE04:vzdump::root@pam:/log "*) cat "$F/pvesh_task_log_job.json";;
"get /nodes/pve1/tasks/UPID:pve:00150000:0C6DA000:6AAFB6E0:vzdump::root@pam:/log "*) cat "$F/pvesh_task_log_failed.json";;"#;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Copies a fixture tree, symlinks as symlinks.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let kind = e.file_type().unwrap();
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if kind.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// A temp dir holding `bin/` (the fake programs) and `proc/`, `sys/` (copies of the fixture roots).
struct FakeHost {
    dir: tempfile::TempDir,
}

impl FakeHost {
    fn new() -> FakeHost {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["bin", "proc/sys/kernel", "proc/spl/kstat/zfs", "sys/module/zfs"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let host = fixtures().join("host");
        for file in ["proc/stat", "proc/sys/kernel/osrelease", "proc/spl/kstat/zfs/arcstats", "sys/module/zfs/version"]
        {
            std::fs::copy(host.join(file), dir.path().join(file)).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("proc/net")).unwrap();
        std::fs::copy(fixtures().join("proc_net_dev_pve_1.txt"), dir.path().join("proc/net/dev")).unwrap();
        std::fs::copy(fixtures().join("proc_diskstats_pve_1.txt"), dir.path().join("proc/diskstats")).unwrap();
        copy_tree(&fixtures().join("hwmon"), &dir.path().join("sys/class/hwmon"));
        for (name, marker) in [("nic0", "device"), ("nic1", "device"), ("bond0", "bonding"), ("vmbr0", "bridge")] {
            std::fs::create_dir_all(dir.path().join("sys/class/net").join(name).join(marker)).unwrap();
        }
        let by_id = dir.path().join("dev/disk/by-id");
        std::fs::create_dir_all(&by_id).unwrap();
        for (link, target) in [
            ("ata-WDC_WD140EDFZ-11A0VA0_9RK1XXXX", "../../sda"),
            ("ata-WDC_WD140EDFZ-11A0VA0_9RK1XXXX-part1", "../../sda1"),
            ("nvme-INTEL_SSDPEKNW010T8_BTNH93710FS91P0B", "../../nvme0n1"),
        ] {
            std::os::unix::fs::symlink(target, by_id.join(link)).unwrap();
        }
        for name in ["meminfo", "loadavg", "uptime"] {
            std::fs::copy(fixtures().join(format!("{name}.txt")), dir.path().join("proc").join(name)).unwrap();
        }
        FakeHost { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes an executable `bin/<name>` whose body is a POSIX shell `case "$*"` dispatch.
    fn script(&self, name: &str, cases: &str) {
        let body = format!(
            "#!/bin/sh\nF='{}'\necho \"$*\" >> '{}'\ncase \"$*\" in\n{cases}\n*) echo \"unexpected args: $*\" >&2; exit 99;;\nesac\n",
            fixtures().display(),
            self.path("calls").display(),
        );
        let path = self.path("bin").join(name);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A Proxmox VE 8 host with OpenZFS 2.2: `zpool status -j` is refused with a usage message.
    fn pve8(&self) {
        self.script(
            "pvesh",
            &format!(
                r#""get /nodes/pve1/storage --output-format json") cat "$F/storage.json";;
"get /nodes/pve1/qemu --output-format json") cat "$F/qemu.json";;
"get /nodes/pve1/lxc --output-format json") cat "$F/lxc.json";;
{PVESH_BACKUPS}"#
            ),
        );
        self.script(
            "zpool",
            r#""status -j --json-int") echo "invalid option 'j'" >&2; echo "usage:" >&2; exit 2;;
"status -p") cat "$F/zpool_status_healthy.txt"; echo; cat "$F/zpool_status_degraded_scrub.txt";;
"list -Hp -o name,size,alloc,free,frag,cap,dedup,health") cat "$F/zpool_list.txt";;"#,
        );
        self.script("zfs", r#""list -t snapshot -Hp -o name,used,creation") cat "$F/zfs_list_snapshots.txt";;"#);
        self.script("pveversion", r#""") cat "$F/pveversion.txt";;"#);
        self.smartctl("");
    }

    /// A fake smartctl over the captured outputs: sda healthy, sdb failing (exit 216), sdc asleep
    /// (exit 2), nvme0 healthy; `extra` cases come first.
    fn smartctl(&self, extra: &str) {
        self.script(
            "smartctl",
            &format!(
                r#"{extra}
"--scan-open --json") cat "$F/smartctl_scan_open_host.json";;
"--json -a -n standby -d sat /dev/sda") cat "$F/smartctl_ata_healthy.json";;
"--json -a -n standby -d sat /dev/sdb") cat "$F/smartctl_ata_failing.json"; exit 216;;
"--json -a -n standby -d sat /dev/sdc") cat "$F/smartctl_standby.json"; exit 2;;
"--json -a -n standby -d nvme /dev/nvme0") cat "$F/smartctl_nvme.json";;"#
            ),
        );
    }

    fn collectors(&self) -> Collectors {
        Collectors::with_roots("pve1".into(), self.path("proc"), self.path("sys"))
            .with_bin_dir(self.path("bin"))
            .with_rootfs(self.path("."))
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("calls")).unwrap_or_default().lines().map(str::to_string).collect()
    }
}

#[test]
fn fast_tier_from_proc_and_statvfs() {
    let host = FakeHost::new();
    host.pve8();
    let mut collectors = host.collectors();

    let (fast, errors) = collectors.fast();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(fast.cpus, Some(2));
    assert_eq!((fast.load1, fast.load5, fast.load15), (Some(1.61), Some(1.69), Some(2.07)));
    assert_eq!(fast.mem_total, Some(24_684_100 * 1024));
    assert_eq!(fast.mem_used, Some((24_684_100 - 23_498_076) * 1024), "MemTotal - MemAvailable");
    assert_eq!(fast.arc_bytes, Some(8_575_205_920));
    assert_eq!((fast.swap_total, fast.swap_used), (Some(0), Some(0)));
    let (total, used) = (fast.rootfs_total.unwrap(), fast.rootfs_used.unwrap());
    assert!(total > 0 && used <= total, "statvfs of the temp dir: {total} {used}");
    assert_eq!(fast.uptime_s, Some(3286));
    assert_eq!((fast.cpu_pct, fast.iowait_pct), (None, None), "the first cycle only records a baseline");
    assert_eq!((&fast.net, &fast.diskio), (&None, &None), "rates need a second sample");
    let temps: Vec<(&str, f64)> = fast.temps.iter().flatten().map(|t| (t.name.as_str(), t.hottest())).collect();
    assert_eq!(temps, [("cpu0", 61.0), ("nvme0", 44.9), ("nvme1", 71.9)]);

    std::fs::copy(fixtures().join("proc_stat_2.txt"), host.path("proc/stat")).unwrap();
    std::fs::copy(fixtures().join("proc_net_dev_pve_2.txt"), host.path("proc/net/dev")).unwrap();
    std::fs::copy(fixtures().join("proc_diskstats_pve_2.txt"), host.path("proc/diskstats")).unwrap();
    let (fast, errors) = collectors.fast();
    assert!(errors.is_empty(), "{errors:?}");
    assert!((fast.cpu_pct.unwrap() - 1.5).abs() < 1e-9, "{:?}", fast.cpu_pct);
    assert_eq!(fast.iowait_pct, Some(0.0));
    use wire::NetKind::{Bond, Bridge, Physical};
    let net: Vec<(&str, wire::NetKind)> = fast.net.iter().flatten().map(|n| (n.name.as_str(), n.kind)).collect();
    assert_eq!(net, [("nic0", Physical), ("nic1", Physical), ("bond0", Bond), ("vmbr0", Bridge)]);
    assert!(fast.net.as_ref().unwrap()[0].rx_bytes > 0);
    let disks: Vec<&str> = fast.diskio.iter().flatten().map(|d| d.name.as_str()).collect();
    assert_eq!(disks, ["sda", "sdb", "nvme0n1", "zvols"]);
}

#[tokio::test]
async fn an_unreadable_hwmon_or_proc_file_loses_only_its_own_section() {
    let host = FakeHost::new();
    host.pve8();
    // Not a directory: hwmon is there but cannot be read.
    std::fs::remove_dir_all(host.path("sys/class/hwmon")).unwrap();
    std::fs::write(host.path("sys/class/hwmon"), "").unwrap();
    std::fs::write(host.path("proc/diskstats"), "garbage\n").unwrap();
    let mut collectors = host.collectors();
    let (fast, errors) = collectors.fast();
    assert_eq!(errors.keys().collect::<Vec<_>>(), ["diskstats", "hwmon"]);
    assert!(errors["diskstats"].starts_with("unexpected output: 1 fields"), "{}", errors["diskstats"]);
    assert!(errors["hwmon"].starts_with("failed to read "), "{}", errors["hwmon"]);
    assert_eq!((fast.temps, fast.diskio), (None, None));
    assert_eq!(fast.cpus, Some(2), "the other sections still arrive");

    // No hwmon at all (a VM): no temperatures, and nothing to report.
    std::fs::remove_file(host.path("sys/class/hwmon")).unwrap();
    let (fast, errors) = collectors.fast();
    assert!(!errors.contains_key("hwmon"), "{errors:?}");
    assert_eq!(fast.temps, None);
}

#[tokio::test]
async fn slow_tier_reads_every_disk_and_never_wakes_a_sleeping_one() {
    let host = FakeHost::new();
    host.pve8();
    let mut collectors = host.collectors();
    let (slow, errors) = collectors.slow(TIMEOUT).await;
    assert_eq!(errors.keys().collect::<Vec<_>>(), ["smart/bus/0"], "only the RAID controller that cannot be opened");
    assert!(errors["smart/bus/0"].contains("megaraid"), "{}", errors["smart/bus/0"]);
    let disks = slow.disks.unwrap();
    let seen: Vec<(&str, bool, Option<bool>)> =
        disks.iter().map(|d| (d.name.as_str(), d.standby, d.smart_passed)).collect();
    assert_eq!(
        seen,
        [
            ("sda", false, Some(true)),
            ("sdb", false, Some(false)),
            ("sdc", true, None),
            ("nvme0", false, Some(true)),
            ("bus/0", false, None)
        ]
    );
    assert_eq!(disks[0].ids, ["ata-WDC_WD140EDFZ-11A0VA0_9RK1XXXX"]);
    assert_eq!(disks[1].smartctl_status, 216);
    assert_eq!(disks[3].ids, ["nvme-INTEL_SSDPEKNW010T8_BTNH93710FS91P0B"]);
    let calls = host.calls();
    assert!(calls.iter().filter(|c| c.contains("/dev/")).all(|c| c.contains("-n standby")), "{calls:?}");
}

#[tokio::test]
async fn a_disk_that_does_not_answer_loses_only_its_own_reading() {
    let host = FakeHost::new();
    host.pve8();
    host.smartctl(r#""--json -a -n standby -d sat /dev/sda") sleep 30;;"#);
    let mut collectors = host.collectors();
    let (slow, errors) = collectors.slow(Duration::from_secs(2)).await;
    assert_eq!(errors["smart/sda"], "smartctl timed out after 2s");
    let disks = slow.disks.unwrap();
    assert_eq!((disks[0].name.as_str(), disks[0].smart_passed), ("sda", None));
    assert_eq!(disks[3].smart_passed, Some(true), "the disks after it are still read");
}

/// Issue 14: the fast tier starts no process. Every fake program records its call; none may run.
#[test]
fn fast_tier_runs_no_command() {
    let host = FakeHost::new();
    host.pve8();
    for name in ["smartctl", "pveversion", "sh", "cat", "df"] {
        host.script(name, "");
    }
    let mut collectors = host.collectors();
    for _ in 0..3 {
        let (_, errors) = collectors.fast();
        assert!(errors.is_empty(), "{errors:?}");
    }
    assert_eq!(host.calls(), Vec::<String>::new());
}

/// Never two commands at once: each fake records when it starts and ends, and sleeps between.
#[tokio::test]
async fn medium_tier_runs_its_commands_one_at_a_time() {
    let host = FakeHost::new();
    host.pve8();
    let log = host.path("spans");
    for name in ["pvesh", "zpool"] {
        let real = host.path("bin").join(name);
        std::fs::rename(&real, host.path("bin").join(format!("{name}.real"))).unwrap();
        let body = format!(
            "#!/bin/sh\necho start >> '{log}'\nsleep 0.1\n'{real}.real' \"$@\"\nrc=$?\necho end >> '{log}'\nexit $rc\n",
            log = log.display(),
            real = real.display()
        );
        std::fs::write(&real, body).unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut collectors = host.collectors();
    let (_, errors) = collectors.medium(TIMEOUT).await;
    assert!(errors.is_empty(), "{errors:?}");
    let spans = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        spans,
        "start\nend\n".repeat(11),
        "zpool status twice (JSON refused), zpool list, qemu, lxc, backup jobs, a pool's members, tasks, two job logs, storage"
    );
}

#[tokio::test]
async fn medium_tier_falls_back_to_text_zpool_status_and_remembers() {
    let host = FakeHost::new();
    host.pve8();
    let mut collectors = host.collectors();

    let (medium, errors) = collectors.medium(TIMEOUT).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(collectors.zpool_format(), Format::Text);
    let pools = medium.pools.unwrap();
    let names: Vec<(&str, &str)> = pools.iter().map(|p| (p.name.as_str(), p.state.as_str())).collect();
    assert_eq!(names, [("lwastor04", "ONLINE"), ("rpool", "DEGRADED"), ("store", "DEGRADED")]);
    let rpool = &pools[1];
    assert_eq!((rpool.size, rpool.cap_pct, rpool.frag_pct), (Some(59_055_800_320), Some(36.0), None));
    assert_eq!((rpool.vdevs.len(), rpool.vdevs[2].checksum_errors, rpool.error_count), (3, 104, 2));
    assert!(pools[2].vdevs.is_empty(), "store is only known to zpool list");
    assert_eq!(medium.storages.unwrap().len(), 5);
    assert_eq!(medium.vms.unwrap().iter().map(|g| g.vmid).collect::<Vec<_>>(), [100, 101, 200, 9000]);
    assert_eq!(medium.cts.unwrap()[1].lock.as_deref(), Some("snapshot"));
    let backups = medium.backups.unwrap();
    assert_eq!(backups.jobs.len(), 3, "the jobs of node pve left out: {backups:?}");
    assert_eq!(backups.guests, [], "the fixture's backups are of guests on another node");
    assert_eq!(medium.operator_stops, Some(vec![]), "the fixture's stops are long past");

    let (_, errors) = collectors.medium(TIMEOUT).await;
    assert!(errors.is_empty(), "{errors:?}");
    let json_tries = host.calls().iter().filter(|c| c.as_str() == "status -j --json-int").count();
    assert_eq!(json_tries, 1, "the text form is remembered after the first cycle");
}

#[tokio::test]
async fn medium_tier_reads_json_zpool_status_on_openzfs_2_3() {
    let host = FakeHost::new();
    host.pve8();
    host.script(
        "zpool",
        r#""status -j --json-int") cat "$F/zpool_status_degraded_mirror.json";;
"list -Hp -o name,size,alloc,free,frag,cap,dedup,health") printf 'tank\t5083496448\t233472\t5083262976\t0\t0\t1.00\tDEGRADED\n';;"#,
    );
    let mut collectors = host.collectors();
    let (medium, errors) = collectors.medium(TIMEOUT).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(collectors.zpool_format(), Format::Json);
    let pools = medium.pools.unwrap();
    assert_eq!(pools.len(), 1);
    assert_eq!((pools[0].name.as_str(), pools[0].state.as_str()), ("tank", "DEGRADED"));
    assert_eq!((pools[0].size, pools[0].alloc, pools[0].dedup_ratio), (Some(5_083_496_448), Some(233_472), Some(1.0)));
    assert_eq!(pools[0].vdevs[2].checksum_errors, 7);
    assert!(host.calls().iter().all(|c| c != "status -p"), "no text fallback when JSON works");
}

#[tokio::test]
async fn a_hanging_storage_call_only_empties_storages() {
    let host = FakeHost::new();
    host.pve8();
    host.script(
        "pvesh",
        &format!(
            r#""get /nodes/pve1/storage --output-format json") sleep 30;;
"get /nodes/pve1/qemu --output-format json") cat "$F/qemu.json";;
"get /nodes/pve1/lxc --output-format json") echo "unable to open file '/etc/pve/nodes/pve1/lxc' - Permission denied" >&2; exit 255;;
{PVESH_BACKUPS}"#
        ),
    );
    let mut collectors = host.collectors();
    let (medium, errors) = collectors.medium(Duration::from_secs(3)).await;
    assert_eq!(errors.keys().collect::<Vec<_>>(), ["lxc", "storage"]);
    // What the commands before it left of the 3 s.
    assert!(errors["storage"].starts_with("pvesh timed out after "), "{}", errors["storage"]);
    assert_eq!(
        errors["lxc"],
        "pvesh exited with exit status: 255: unable to open file '/etc/pve/nodes/pve1/lxc' - Permission denied"
    );
    assert_eq!((medium.storages, medium.cts), (None, None));
    assert_eq!(medium.vms.unwrap().len(), 4);
    assert_eq!(medium.pools.unwrap().len(), 3);
}

#[tokio::test]
async fn slow_tier_snapshots_and_versions() {
    let host = FakeHost::new();
    host.pve8();
    let mut collectors = host.collectors();
    let (slow, errors) = collectors.slow(TIMEOUT).await;
    assert_eq!(errors.keys().collect::<Vec<_>>(), ["smart/bus/0"], "{errors:?}");
    let snapshots = slow.snapshots.unwrap();
    assert_eq!((snapshots.total, snapshots.datasets.len(), snapshots.truncated), (9, 5, false));
    let versions = slow.versions.unwrap();
    assert_eq!(versions.pve_manager.as_deref(), Some("8.0.3"));
    assert_eq!(versions.kernel.as_deref(), Some("6.2.16-3-pve"));
    assert_eq!(versions.zfs.as_deref(), Some("2.1.12-pve1"));
}

#[tokio::test]
async fn a_bare_host_reports_every_missing_source_and_panics_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    let mut collectors = Collectors::with_roots("pve1".into(), dir.path().join("proc"), dir.path().join("sys"))
        .with_bin_dir(dir.path().join("bin"));

    let (fast, errors) = collectors.fast();
    assert_eq!(
        errors.keys().collect::<Vec<_>>(),
        ["diskstats", "loadavg", "meminfo", "net_dev", "proc_stat", "uptime"],
        "no ARC is not an error"
    );
    assert!(errors["meminfo"].starts_with("failed to read "), "{}", errors["meminfo"]);
    let rootfs_only =
        wire::Fast { rootfs_total: fast.rootfs_total, rootfs_used: fast.rootfs_used, ..Default::default() };
    assert_eq!(fast, rootfs_only, "only statvfs of / answers");

    let (medium, errors) = collectors.medium(TIMEOUT).await;
    assert_eq!(
        errors.keys().collect::<Vec<_>>(),
        ["backup_jobs", "lxc", "qemu", "storage", "tasks", "zpool_list", "zpool_status"]
    );
    assert_eq!(errors["zpool_status"], "zpool: command not found");
    assert_eq!(medium, wire::Medium::default());
    assert_eq!(collectors.zpool_format(), Format::Unknown);

    let (slow, errors) = collectors.slow(TIMEOUT).await;
    assert_eq!(errors.keys().collect::<Vec<_>>(), ["smart", "snapshots", "versions"]);
    assert_eq!(errors["smart"], "smartctl: command not found");
    assert!(errors["versions"].starts_with("pveversion: pveversion: command not found; kernel: failed to read"));
    assert_eq!(slow, wire::Slow::default());
}

#[tokio::test]
async fn unparseable_output_is_an_error_for_that_section_only() {
    let host = FakeHost::new();
    host.pve8();
    host.script("zfs", r#""list -t snapshot -Hp -o name,used,creation") printf 'rpool@x\tlots\tyesterday\n';;"#);
    let mut collectors = host.collectors();
    let (slow, errors) = collectors.slow(TIMEOUT).await;
    assert_eq!(errors.keys().collect::<Vec<_>>(), ["smart/bus/0", "snapshots"]);
    assert_eq!(errors["snapshots"], "unexpected output: bad used bytes \"lots\"");
    assert_eq!(slow.snapshots, None);
    assert_eq!(slow.versions.unwrap().pve_manager.as_deref(), Some("8.0.3"));
}
