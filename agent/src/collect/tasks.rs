//! `pvesh get /nodes/<node>/tasks` (the node's task list) and
//! `pvesh get /nodes/<node>/tasks/<upid>/log` (one task's log), parsed.
//!
//! A task is `{upid, type, id, user, starttime, endtime, status}` (PVE::API2::Tasks in
//! pve-manager): `endtime` and `status` only once it has ended. A vzdump task started for
//! one guest has that guest's vmid as its `id`; one started by a backup job (or with
//! several guests) has an empty `id` (or, on newer releases, the job's id), and which
//! guests it backed up, and how each went, is only in its log: `Starting Backup of VM n`,
//! then `Finished Backup of VM n (hh:mm:ss)` or `ERROR: Backup of VM n failed - why`.

use serde_json::Value;

use super::lenient::{field, i64_of, string_of};
use super::ParseError;

/// One entry of the task list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub upid: String,
    /// `vzdump`, `qmstop`, `vzshutdown`, ...
    pub kind: String,
    /// The guest's vmid, a job's id, or empty.
    pub id: String,
    pub user: String,
    pub start: i64,
    /// None while it runs.
    pub end: Option<i64>,
    /// `OK`, `WARNINGS: n`, `job errors`, or an error message; None while it runs.
    pub status: Option<String>,
}

impl Task {
    /// The vmid in `id`, for a task about one guest.
    pub fn vmid(&self) -> Option<u32> {
        self.id.parse().ok()
    }

    /// Ended, and not in error: `OK`, or `WARNINGS: n` (vzdump finished every guest but
    /// warned, e.g. about an EFI disk's certificates).
    pub fn succeeded(&self) -> bool {
        self.status.as_deref().is_some_and(|s| s == "OK" || s.starts_with("WARNINGS"))
    }
}

/// The tasks of the list; an entry without a upid, type or start time is skipped (it
/// cannot be matched to anything), not fatal.
pub fn parse_list(text: &str) -> Result<Vec<Task>, ParseError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ParseError::new(format!("invalid JSON: {e}")))?;
    let items = value.as_array().ok_or_else(|| ParseError::new("task list is not a JSON array"))?;
    Ok(items.iter().filter_map(task).collect())
}

fn task(item: &Value) -> Option<Task> {
    Some(Task {
        upid: field(item, "upid", string_of)?,
        kind: field(item, "type", string_of)?,
        id: field(item, "id", string_of).unwrap_or_default(),
        user: field(item, "user", string_of).unwrap_or_default(),
        start: field(item, "starttime", i64_of)?,
        end: field(item, "endtime", i64_of),
        status: field(item, "status", string_of).filter(|s| !s.is_empty()),
    })
}

/// How one guest's backup went, from a job's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Finished,
    /// The error after `failed - `, or why no verdict was found.
    Failed(String),
}

/// Each guest the log's job started, in order, with its outcome. A guest that started
/// but has neither a `Finished` nor an `ERROR` line (the job was killed) failed.
pub fn parse_log(text: &str) -> Result<Vec<(u32, Outcome)>, ParseError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ParseError::new(format!("invalid JSON: {e}")))?;
    let lines = value.as_array().ok_or_else(|| ParseError::new("task log is not a JSON array"))?;
    let mut out: Vec<(u32, Option<Outcome>)> = Vec::new();
    for line in lines.iter().filter_map(|l| field(l, "t", string_of)) {
        if let Some(vmid) = after_vmid(&line, "INFO: Starting Backup of VM ") {
            if !out.iter().any(|(v, _)| *v == vmid) {
                out.push((vmid, None));
            }
        } else if let Some(vmid) = after_vmid(&line, "INFO: Finished Backup of VM ") {
            set(&mut out, vmid, Outcome::Finished);
        } else if let Some(vmid) = after_vmid(&line, "ERROR: Backup of VM ") {
            let why = line.split_once(" failed - ").map_or("failed", |(_, why)| why.trim());
            set(&mut out, vmid, Outcome::Failed(why.to_string()));
        }
    }
    let unfinished = || Outcome::Failed("no result in the task log (the job was interrupted)".into());
    Ok(out.into_iter().map(|(vmid, o)| (vmid, o.unwrap_or_else(unfinished))).collect())
}

/// The vmid right after `prefix` in `line`.
fn after_vmid(line: &str, prefix: &str) -> Option<u32> {
    let rest = line.trim_start().strip_prefix(prefix)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn set(out: &mut Vec<(u32, Option<Outcome>)>, vmid: u32, outcome: Outcome) {
    match out.iter_mut().find(|(v, _)| *v == vmid) {
        Some((_, o)) => *o = Some(outcome),
        None => out.push((vmid, Some(outcome))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = include_str!("../../tests/fixtures/pvesh_tasks.json");
    const LOG_JOB: &str = include_str!("../../tests/fixtures/pvesh_task_log_job.json");
    const LOG_FAILED: &str = include_str!("../../tests/fixtures/pvesh_task_log_failed.json");

    #[test]
    fn the_task_list_keeps_every_task_with_its_guest_and_result() {
        let tasks = parse_list(LIST).unwrap();
        assert_eq!(tasks.len(), 6);
        let job = &tasks[0];
        assert_eq!((job.kind.as_str(), job.id.as_str(), job.vmid()), ("vzdump", "", None));
        assert_eq!((job.start, job.end), (1_789_910_532, Some(1_789_910_600)));
        assert!(job.succeeded(), "WARNINGS: 1 is a finished backup");
        let stop = tasks.iter().find(|t| t.kind == "qmshutdown").unwrap();
        assert_eq!((stop.vmid(), stop.user.as_str(), stop.end), (Some(101), "root@pam", Some(1_789_911_040)));
        let running = tasks.iter().find(|t| t.end.is_none()).unwrap();
        assert_eq!((running.kind.as_str(), running.status.as_deref()), ("vzdump", None));
        assert!(!running.succeeded());
        let failed = tasks.iter().find(|t| t.status.as_deref() == Some("job errors")).unwrap();
        assert!(!failed.succeeded());
        let manual = tasks.iter().find(|t| t.kind == "vzdump" && t.vmid().is_some()).unwrap();
        assert_eq!((manual.vmid(), manual.succeeded()), (Some(105), true));
    }

    #[test]
    fn a_jobs_log_gives_each_guests_outcome() {
        assert_eq!(
            parse_log(LOG_JOB).unwrap(),
            [(106, Outcome::Finished), (107, Outcome::Finished), (108, Outcome::Finished)]
        );
        assert_eq!(
            parse_log(LOG_FAILED).unwrap(),
            [
                (110, Outcome::Finished),
                (111, Outcome::Failed("VM 111 qmp command 'backup' failed - got timeout".into())),
            ]
        );
    }

    #[test]
    fn a_guest_without_a_verdict_failed() {
        let log = r#"[{"n":1,"t":"INFO: starting new backup job: vzdump 100 --mode snapshot"},
            {"n":2,"t":"INFO: Starting Backup of VM 100 (qemu)"},{"n":3,"t":"INFO: status = running"}]"#;
        let out = parse_log(log).unwrap();
        assert_eq!(out.len(), 1);
        assert!(matches!(&out[0], (100, Outcome::Failed(why)) if why.contains("interrupted")));
    }

    #[test]
    fn malformed_and_empty_input() {
        assert!(parse_list("").is_err());
        assert!(parse_list("{}").is_err());
        assert_eq!(parse_list("[]").unwrap(), vec![]);
        // One entry without a upid or start time is skipped, the rest kept.
        let list = r#"[{"type":"vzdump","starttime":1},{"upid":"U","type":"qmstop","id":"100","starttime":"5"}]"#;
        assert_eq!(parse_list(list).unwrap().len(), 1);
        assert!(parse_log("not json").is_err());
        assert!(parse_log("{}").is_err());
        // The API answers an empty log with one "no content" line.
        assert_eq!(parse_log(r#"[{"n":1,"t":"no content"}]"#).unwrap(), vec![]);
    }
}
