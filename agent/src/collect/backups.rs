//! The medium tier's backups and operators' stops, from the node's task list and
//! `/cluster/backup`, with what was learned kept in memory between cycles.
//!
//! Cost, per medium cycle: one `pvesh get /nodes/<node>/tasks` listing only what started
//! since the last read (all task types at once: the backups and the stops both come from
//! it), a `pvesh get /cluster/backup` every [`JOBS_REFRESH`], and one task log read for
//! each backup job that ended (at most [`LOGS_PER_CYCLE`] a cycle). The first read looks
//! back [`LOOKBACK_S`] at vzdump tasks only.
//!
//! `--since` filters on a task's start, and a backup job runs for hours, so the next read
//! starts no later than the start of any task still running (`--source all` lists those
//! too): a long job is seen when it ends.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::time::Instant;
use wire::{BackupJob, Backups, GuestBackup, OperatorStop};

use super::command::{CommandError, Runner};
use super::tasks::{self, Outcome, Task};
use super::{backup_jobs, command, record, run_parse, CollectError, Errors};

/// How far back the first read looks: past a weekly job's allowed age (8 days).
pub const LOOKBACK_S: i64 = 10 * 86_400;
/// Most tasks one read lists; more would mean a node starting hundreds of tasks a cycle.
pub const LIST_LIMIT: usize = 500;
/// Task logs read per cycle; the rest wait for the next cycles, newest first.
pub const LOGS_PER_CYCLE: usize = 4;
/// How often the job list is read again (jobs change rarely).
pub const JOBS_REFRESH: Duration = Duration::from_secs(30 * 60);
/// An operator's stop is sent for this long after it ended, or two cycles if longer.
pub const STOPS_KEPT_S: i64 = 30 * 60;
/// Slack on `--since` for a task that started in the second of the last read.
const SINCE_SLACK_S: i64 = 60;
/// Ended tasks are remembered this long before the start of the next read.
const DONE_MARGIN_S: i64 = 86_400;
/// Job logs waiting to be read, at most.
const PENDING_CAP: usize = 64;

/// What the agent knows of the node's backups and stops, across cycles.
#[derive(Default)]
pub struct BackupWatch {
    /// Where the next task read starts (Unix seconds); None until a read succeeded.
    since: Option<i64>,
    /// How far back what is known reaches.
    horizon: i64,
    guests: BTreeMap<u32, GuestBackup>,
    /// Ended tasks already taken in, by upid, with their start: a task listed again (its
    /// start is after `since`) is not taken twice.
    done: HashMap<String, i64>,
    /// Ended backup tasks whose log is still to read.
    pending: Vec<Task>,
    jobs: Option<(Instant, Vec<BackupJob>)>,
    stops: Vec<OperatorStop>,
    last_read: Option<i64>,
    /// This pvesh refused `--source all`: running tasks are not listed, so a job that
    /// started before the last read and ended after it is missed.
    finished_only: bool,
}

/// Lists each pool job's guests in its `vmids` (one `pvesh` per pool job, read with the job
/// list). A pool that cannot be read leaves its job's guests unknown, reported in `errors`.
async fn resolve_pools(jobs: &mut [BackupJob], runner: &Runner, timeout: Duration, errors: &mut Errors) {
    for job in jobs.iter_mut() {
        let Some(pool) = job.pool.as_deref() else { continue };
        let args = backup_jobs::pool_args(pool);
        match run_parse(runner, "pvesh", &args, timeout, backup_jobs::parse_pool_members).await {
            Ok(members) => job.vmids = members,
            Err(e) => record(errors, "backup_pool", e),
        }
    }
}

impl BackupWatch {
    /// One cycle at `now` (Unix seconds): the `backups` section (None until both the jobs
    /// and the tasks have been read once) and the recent `operator_stops` (None when this
    /// cycle's task read failed). Every command runs within `timeout` of the call. `on_node`
    /// are the vmids of the node's guests, when read: the section keeps only theirs.
    pub async fn collect(
        &mut self,
        runner: &Runner,
        (node, on_node): (&str, Option<&[u32]>),
        now: i64,
        timeout: Duration,
        errors: &mut Errors,
    ) -> (Option<Backups>, Option<Vec<OperatorStop>>) {
        let deadline = Instant::now() + timeout;
        let left = || deadline.saturating_duration_since(Instant::now());
        self.refresh_jobs(runner, node, left(), errors).await;
        let mut read = runner.run("pvesh", &self.list_args(node, now), left()).await;
        if let Err(CommandError::Failed { detail, .. }) = &read {
            if detail.contains("Parameter verification failed") && !self.finished_only {
                // A pvesh without `--source`: list finished tasks only, from now on.
                self.finished_only = true;
                read = runner.run("pvesh", &self.list_args(node, now), left()).await;
            }
        }
        let listed = match read {
            Ok(text) => tasks::parse_list(&text).map_err(CollectError::from),
            Err(e) => Err(CollectError::from(e)),
        };
        let stops = match listed {
            Ok(list) => {
                if list.len() >= LIST_LIMIT {
                    record(errors, "tasks", format!("the task list was cut at {LIST_LIMIT} tasks"));
                }
                self.take_in(list, now);
                Some(self.stops.clone())
            }
            Err(e) => {
                record(errors, "tasks", e);
                None
            }
        };
        self.read_logs(runner, node, left, errors).await;
        (self.section(on_node), stops)
    }

    fn list_args(&self, node: &str, now: i64) -> Vec<String> {
        let mut args = vec!["get".to_string(), format!("/nodes/{node}/tasks")];
        let since = match self.since {
            Some(since) => since,
            None => {
                args.extend(["--typefilter".into(), "vzdump".into()]);
                now - LOOKBACK_S
            }
        };
        if !self.finished_only {
            args.extend(["--source".into(), "all".into()]);
        }
        args.extend(["--since".into(), since.to_string()]);
        args.extend(["--limit".into(), LIST_LIMIT.to_string(), "--output-format".into(), "json".into()]);
        args
    }

    async fn refresh_jobs(&mut self, runner: &Runner, node: &str, timeout: Duration, errors: &mut Errors) {
        if self.jobs.as_ref().is_some_and(|(at, _)| at.elapsed() < JOBS_REFRESH) {
            return;
        }
        let read = match runner.run("pvesh", &backup_jobs::args(), timeout).await {
            Ok(text) => backup_jobs::parse(&text, node).map_err(CollectError::from),
            Err(e) => Err(CollectError::from(e)),
        };
        match read {
            Ok(mut jobs) => {
                resolve_pools(&mut jobs, runner, timeout, errors).await;
                self.jobs = Some((Instant::now(), jobs));
            }
            // The jobs read before stay in use until a read works again.
            Err(e) => record(errors, "backup_jobs", e),
        }
    }

    /// Takes in one task list read at `now`.
    fn take_in(&mut self, list: Vec<Task>, now: i64) {
        if self.since.is_none() {
            self.horizon = now - LOOKBACK_S;
        }
        let running_from = list.iter().filter(|t| t.end.is_none()).map(|t| t.start).min();
        let since = running_from.unwrap_or(now).min(now) - SINCE_SLACK_S;
        for task in list {
            let Some(end) = task.end else { continue };
            if self.done.contains_key(&task.upid) {
                continue;
            }
            self.done.insert(task.upid.clone(), task.start);
            if task.kind == "vzdump" {
                match task.vmid() {
                    Some(vmid) if task.succeeded() => self.apply(vmid, end, Outcome::Finished),
                    _ => self.pending.push(task),
                }
            } else if let (Some(vmid), true) = (task.vmid(), OperatorStop::TASKS.contains(&task.kind.as_str())) {
                self.stops.push(OperatorStop { vmid, task: task.kind, user: task.user, end });
            }
        }
        // A task that started before the next read's start is not listed again; a day's
        // margin covers a clock step back.
        self.done.retain(|_, start| *start >= since - DONE_MARGIN_S);
        self.since = Some(since);
        let gap = self.last_read.map_or(0, |last| 2 * (now - last));
        let keep_from = now - STOPS_KEPT_S.max(gap);
        self.stops.retain(|s| s.end >= keep_from);
        self.stops.sort_by_key(|s| std::cmp::Reverse(s.end));
        self.stops.truncate(OperatorStop::CAP);
        self.last_read = Some(now);
        self.pending.sort_by_key(|t| t.end);
        let excess = self.pending.len().saturating_sub(PENDING_CAP);
        self.pending.drain(..excess);
    }

    /// Reads the newest pending job logs, within the cycle's deadline.
    async fn read_logs(&mut self, runner: &Runner, node: &str, left: impl Fn() -> Duration, errors: &mut Errors) {
        for _ in 0..LOGS_PER_CYCLE {
            let Some(task) = self.pending.pop() else { return };
            let end = task.end.unwrap_or(0);
            let path = format!("/nodes/{node}/tasks/{}/log", task.upid);
            let args = ["get", &path, "--limit", "100000", "--output-format", "json"];
            let outcomes = match run_parse(runner, "pvesh", &args, left(), tasks::parse_log).await {
                Ok(outcomes) => outcomes,
                Err(e) => {
                    // Its status still says how a one-guest backup went; a job's guests
                    // are only in its log, which a later cycle would not find either.
                    record(errors, "backup_log", format!("{}: {e}", task.upid));
                    Vec::new()
                }
            };
            if let (true, Some(vmid)) = (outcomes.is_empty(), task.vmid()) {
                let status = task.status.clone().unwrap_or_default();
                self.apply(vmid, end, if task.succeeded() { Outcome::Finished } else { Outcome::Failed(status) });
            }
            for (vmid, outcome) in outcomes {
                self.apply(vmid, end, outcome);
            }
        }
    }

    /// Records one guest's backup that ended at `end`, unless a later one is known.
    fn apply(&mut self, vmid: u32, end: i64, outcome: Outcome) {
        let entry = self.guests.entry(vmid).or_insert(GuestBackup { vmid, end: i64::MIN, ..GuestBackup::default() });
        let ok = outcome == Outcome::Finished;
        if ok {
            entry.last_ok = entry.last_ok.max(Some(end));
        }
        if end >= entry.end {
            entry.end = end;
            entry.ok = ok;
            entry.error = match outcome {
                Outcome::Finished => None,
                Outcome::Failed(why) => Some(command::truncate(&why, Backups::ERROR_CAP)),
            };
        }
        if self.guests.len() > Backups::GUESTS_CAP {
            // The guest backed up longest ago goes first.
            if let Some(oldest) = self.guests.values().min_by_key(|g| g.end).map(|g| g.vmid) {
                self.guests.remove(&oldest);
            }
        }
    }

    fn section(&self, on_node: Option<&[u32]>) -> Option<Backups> {
        let (_, jobs) = self.jobs.as_ref()?;
        self.since?;
        let here = |g: &&GuestBackup| on_node.is_none_or(|ids| ids.contains(&g.vmid));
        // A successful last backup's `last_ok` is its `end`, not sent twice.
        let guests = self
            .guests
            .values()
            .filter(here)
            .map(|g| GuestBackup { last_ok: g.last_ok.filter(|_| !g.ok), ..g.clone() });
        Some(Backups { jobs: jobs.clone(), guests: guests.collect(), since: self.horizon })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(20);
    /// A little after the fixture's last task ended.
    const NOW: i64 = 1_789_912_000;

    const TASKS_OK: &str = r#"cat "$F/pvesh_tasks.json""#;

    /// A fake `pvesh` in `dir` printing the fixtures (and recording its calls), whose task
    /// list does `tasks` (a shell command).
    fn fake_pvesh(dir: &Path, tasks: &str) {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let body = format!(
            r#"#!/bin/sh
F='{f}'
echo "$*" >> '{calls}'
case "$*" in
"get /cluster/backup --output-format json") cat "$F/pvesh_cluster_backup.json";;
"get /pools/prod --output-format json") cat "$F/pvesh_pool_prod.json";;
"get /nodes/pve/tasks --"*) {tasks};;
"get /nodes/pve/tasks/UPID:pve:00154000:0C6DE000:6AAFDE04:vzdump::root@pam:/log --limit 100000 --output-format json") cat "$F/pvesh_task_log_job.json";;
"get /nodes/pve/tasks/UPID:pve:00150000:0C6DA000:6AAFB6E0:vzdump::root@pam:/log --limit 100000 --output-format json") cat "$F/pvesh_task_log_failed.json";;
*) echo "unexpected args: $*" >&2; exit 99;;
esac
"#,
            f = fixtures.display(),
            calls = dir.join("calls").display(),
        );
        let path = dir.join("pvesh");
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn calls(dir: &Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("calls")).unwrap().lines().map(str::to_string).collect()
    }

    fn ok(vmid: u32, end: i64) -> GuestBackup {
        GuestBackup { vmid, end, ok: true, error: None, last_ok: None }
    }

    #[tokio::test]
    async fn the_first_cycle_learns_each_guests_last_backup_and_the_recent_stops() {
        let dir = tempfile::tempdir().unwrap();
        fake_pvesh(dir.path(), TASKS_OK);
        let runner = Runner::in_dir(dir.path().to_path_buf());
        let mut watch = BackupWatch::default();
        let mut errors = Errors::new();
        let (backups, stops) = watch.collect(&runner, ("pve", None), NOW, TIMEOUT, &mut errors).await;
        assert!(errors.is_empty(), "{errors:?}");
        let backups = backups.unwrap();
        assert_eq!(backups.jobs.len(), 4);
        assert_eq!(backups.since, NOW - LOOKBACK_S);
        let job_end = 1_789_910_600;
        let failed = GuestBackup {
            vmid: 111,
            end: 1_789_900_690,
            ok: false,
            error: Some("VM 111 qmp command 'backup' failed - got timeout".into()),
            last_ok: None,
        };
        assert_eq!(
            backups.guests,
            [
                ok(105, 1_789_901_074),
                ok(106, job_end),
                ok(107, job_end),
                ok(108, job_end),
                ok(110, 1_789_900_690),
                failed
            ]
        );
        let stop = OperatorStop { vmid: 101, task: "qmshutdown".into(), user: "root@pam".into(), end: 1_789_911_040 };
        assert_eq!(stops.unwrap(), [stop], "the vzstop of CT 200 ended more than 30 min ago");
        let pool_job = backups.jobs.iter().find(|j| j.pool.as_deref() == Some("prod")).unwrap();
        assert_eq!(pool_job.vmids, [104, 205], "the pool's guests, not its storage");
        assert_eq!(backups.coverage(104), wire::Coverage::Yes);
        let calls = calls(dir.path());
        assert_eq!(calls[1], "get /pools/prod --output-format json");
        assert_eq!(
            calls[2],
            format!(
                "get /nodes/pve/tasks --typefilter vzdump --source all --since {} --limit 500 --output-format json",
                NOW - LOOKBACK_S
            )
        );
        assert_eq!(calls.len(), 5, "jobs, the pool's members, tasks, two job logs: {calls:?}");
    }

    #[tokio::test]
    async fn later_cycles_list_only_what_started_since_and_read_no_log_twice() {
        let dir = tempfile::tempdir().unwrap();
        fake_pvesh(dir.path(), TASKS_OK);
        let runner = Runner::in_dir(dir.path().to_path_buf());
        let mut watch = BackupWatch::default();
        let mut errors = Errors::new();
        let (first, _) = watch.collect(&runner, ("pve", None), NOW, TIMEOUT, &mut errors).await;
        let (second, stops) = watch.collect(&runner, ("pve", None), NOW + 300, TIMEOUT, &mut errors).await;
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(first, second, "the same tasks listed again change nothing");
        assert_eq!(stops.unwrap().len(), 1);
        let calls = calls(dir.path());
        // The running job started at 1789911532: the next read starts before it.
        assert_eq!(
            calls[5], "get /nodes/pve/tasks --source all --since 1789911472 --limit 500 --output-format json",
            "all task types, from the running job's start"
        );
        assert_eq!(calls.len(), 6, "no second job read within 30 min, no log read twice: {calls:?}");
    }

    #[tokio::test]
    async fn a_failed_task_read_loses_only_these_sections() {
        let dir = tempfile::tempdir().unwrap();
        fake_pvesh(dir.path(), "echo 'got timeout' >&2; exit 255");
        let runner = Runner::in_dir(dir.path().to_path_buf());
        let mut watch = BackupWatch::default();
        let mut errors = Errors::new();
        let (backups, stops) = watch.collect(&runner, ("pve", None), NOW, TIMEOUT, &mut errors).await;
        assert_eq!((backups, stops), (None, None));
        assert_eq!(errors.keys().collect::<Vec<_>>(), ["tasks"]);
        assert_eq!(errors["tasks"], "pvesh exited with exit status: 255: got timeout");
    }

    #[tokio::test]
    async fn a_pvesh_without_source_lists_finished_tasks_only() {
        let dir = tempfile::tempdir().unwrap();
        let refuse = r#"case "$*" in *--source*) echo '400 Parameter verification failed.' >&2;
echo 'source: property is not defined in schema' >&2; exit 255;; *) cat "$F/pvesh_tasks.json";; esac"#;
        fake_pvesh(dir.path(), refuse);
        let runner = Runner::in_dir(dir.path().to_path_buf());
        let mut watch = BackupWatch::default();
        let mut errors = Errors::new();
        let (backups, _) = watch.collect(&runner, ("pve", None), NOW, TIMEOUT, &mut errors).await;
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(backups.unwrap().guests.len(), 6);
        let first = calls(dir.path());
        assert!(first[2].contains("--source all") && !first[3].contains("--source"), "{first:?}");
        watch.collect(&runner, ("pve", None), NOW + 300, TIMEOUT, &mut errors).await;
        assert!(!calls(dir.path()).last().unwrap().contains("--source"), "remembered");
    }
}
