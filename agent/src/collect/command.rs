//! Runs one read-only host command from an argv, with no shell and a deadline, one at a time.

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::Semaphore;
use tokio::time::{timeout_at, Instant};

/// Why a command gave no usable output.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The program is not installed (or not on PATH); the host lacks that feature.
    #[error("{program}: command not found")]
    NotFound { program: String },
    /// The program ran and failed; `detail` is the first line of its stderr.
    #[error("{program} exited with {status}{}", colon(.detail))]
    Failed { program: String, status: ExitStatus, detail: String },
    /// The program hung (a dead NFS share under pvesh, a stuck pool under zpool) and was killed.
    #[error("{program} timed out after {}s", secs(*.after))]
    TimedOut { program: String, after: Duration },
    /// The deadline passed while other commands of this agent ran (one hung), so it never started.
    #[error("{program} not started: other commands took the whole {}s", secs(*.after))]
    Queued { program: String, after: Duration },
    #[error("failed to run {program}: {source}")]
    Io { program: String, source: io::Error },
}

/// Seconds to a tenth (a deadline shared by a tier's commands leaves 2.98 s, shown as 3).
fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

fn colon(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

/// "Text file busy": exec of a file that some process has open for writing.
const ETXTBSY: i32 = 26;

/// Resolves and runs commands, one at a time.
///
/// Clones share one queue, so an agent (one `Collectors`, one `Runner`) never has two children
/// at once, whichever tiers ask: Perl `pvesh` and `zpool` are what costs CPU on the host, and
/// running them side by side would only add their peaks. The queue is FIFO (tokio's semaphore
/// is fair), so commands start in the order they ask.
#[derive(Debug, Clone)]
pub struct Runner {
    /// Where programs are looked up instead of PATH, for tests with fake programs.
    pub bin_dir: Option<PathBuf>,
    /// One permit, held from spawn until the child has exited. Shared by clones; never closed.
    queue: Arc<Semaphore>,
}

impl Default for Runner {
    fn default() -> Runner {
        Runner { bin_dir: None, queue: Arc::new(Semaphore::new(1)) }
    }
}

impl Runner {
    /// A runner that looks programs up in `dir` only.
    pub fn in_dir(dir: PathBuf) -> Runner {
        Runner { bin_dir: Some(dir), ..Runner::default() }
    }

    /// Runs `program args…` and returns its stdout (lossily decoded: dataset names may hold any bytes).
    ///
    /// `timeout` is a deadline from the call, and waiting for the queue counts against it: a tier
    /// gives all its commands the same deadline, so together they never outlast the tier's budget.
    ///
    /// The child gets null stdin, `LC_ALL=C` and `TZ=UTC`, so that `zpool status` prints English month
    /// names, `.` decimals and UTC times whatever the host's locale and zone (its scan times are
    /// `ctime` strings, parsed as UTC). `kill_on_drop` ends it when the deadline drops the future.
    pub async fn run<S: AsRef<OsStr>>(
        &self,
        program: &str,
        args: &[S],
        timeout: Duration,
    ) -> Result<String, CommandError> {
        let output = self.output(program, args, timeout).await?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let detail = stderr.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
            return Err(CommandError::Failed {
                program: program.to_string(),
                status: output.status,
                detail: truncate(detail, 160),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Like [`Runner::run`], but a non-zero exit is not an error: for programs whose exit status
    /// is a report of its own (smartctl's bit mask). Returns the status and stdout.
    pub async fn run_any_status<S: AsRef<OsStr>>(
        &self,
        program: &str,
        args: &[S],
        timeout: Duration,
    ) -> Result<(ExitStatus, String), CommandError> {
        let output = self.output(program, args, timeout).await?;
        Ok((output.status, String::from_utf8_lossy(&output.stdout).into_owned()))
    }

    async fn output<S: AsRef<OsStr>>(
        &self,
        program: &str,
        args: &[S],
        timeout: Duration,
    ) -> Result<std::process::Output, CommandError> {
        let deadline = Instant::now() + timeout;
        let Ok(permit) = timeout_at(deadline, self.queue.acquire()).await else {
            return Err(CommandError::Queued { program: program.to_string(), after: timeout });
        };
        // The semaphore is never closed, so acquiring can only wait, not fail.
        let _permit = permit.expect("the command queue is never closed");
        // The permit may come in the same tick as the deadline; a child started now would be
        // killed at once.
        if Instant::now() >= deadline {
            return Err(CommandError::Queued { program: program.to_string(), after: timeout });
        }
        let path = self.resolve(program);
        let mut command = Command::new(&path);
        command
            .args(args)
            .env("LC_ALL", "C")
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut attempts = 0;
        let result = loop {
            match timeout_at(deadline, command.output()).await {
                // A program being replaced (a package upgrade) is briefly busy: ask again.
                Ok(Err(e)) if e.raw_os_error() == Some(ETXTBSY) && attempts < 5 => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                result => break result,
            }
        };
        match result {
            Err(_) => Err(CommandError::TimedOut { program: program.to_string(), after: timeout }),
            Ok(Err(e)) if e.kind() == io::ErrorKind::NotFound => {
                Err(CommandError::NotFound { program: program.to_string() })
            }
            Ok(Err(source)) => Err(CommandError::Io { program: program.to_string(), source }),
            Ok(Ok(output)) => Ok(output),
        }
    }

    fn resolve(&self, program: &str) -> PathBuf {
        match &self.bin_dir {
            Some(dir) => dir.join(program),
            None => Path::new(program).to_path_buf(),
        }
    }
}

/// Cuts `s` to at most `max` bytes on a char boundary, so error messages stay one short line.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str) {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[tokio::test]
    async fn returns_stdout_of_a_successful_command() {
        let dir = tempfile::tempdir().unwrap();
        script(dir.path(), "hello", "echo \"$1 $LC_ALL $TZ\"");
        let runner = Runner::in_dir(dir.path().to_path_buf());
        let out = runner.run("hello", &["world"], Duration::from_secs(5)).await.unwrap();
        assert_eq!(out, "world C UTC\n");
    }

    #[tokio::test]
    async fn a_missing_program_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let runner = Runner::in_dir(dir.path().to_path_buf());
        let err = runner.run("zpool", &[] as &[&str], Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(err, CommandError::NotFound { .. }), "{err}");
        assert_eq!(err.to_string(), "zpool: command not found");
    }

    #[tokio::test]
    async fn a_failing_program_reports_status_and_first_stderr_line() {
        let dir = tempfile::tempdir().unwrap();
        script(dir.path(), "zpool", "echo '' >&2; echo \"invalid option 'j'\" >&2; echo usage >&2; exit 2");
        let runner = Runner::in_dir(dir.path().to_path_buf());
        let err = runner.run("zpool", &["status", "-j"], Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(err, CommandError::Failed { .. }), "{err}");
        assert_eq!(err.to_string(), "zpool exited with exit status: 2: invalid option 'j'");
    }

    #[tokio::test]
    async fn a_hanging_program_times_out() {
        let dir = tempfile::tempdir().unwrap();
        script(dir.path(), "pvesh", "sleep 30");
        let runner = Runner::in_dir(dir.path().to_path_buf());
        let started = std::time::Instant::now();
        let err = runner.run("pvesh", &[] as &[&str], Duration::from_millis(200)).await.unwrap_err();
        assert!(matches!(err, CommandError::TimedOut { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(err.to_string(), "pvesh timed out after 0.2s");
    }

    /// Two tiers due together (two clones of one runner, as medium and slow would hold) run
    /// their commands one after the other, never overlapping.
    #[tokio::test]
    async fn clones_run_their_commands_one_after_the_other() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        script(
            dir.path(),
            "pvesh",
            &format!("echo \"start $1\" >> '{0}'; sleep 0.3; echo \"end $1\" >> '{0}'", log.display()),
        );
        script(
            dir.path(),
            "zpool",
            &format!("echo \"start $1\" >> '{0}'; sleep 0.3; echo \"end $1\" >> '{0}'", log.display()),
        );
        let medium = Runner::in_dir(dir.path().to_path_buf());
        let slow = medium.clone();
        let t = Duration::from_secs(20);
        let (a, b, c) =
            tokio::join!(medium.run("pvesh", &["a"], t), slow.run("zpool", &["b"], t), medium.run("pvesh", &["c"], t),);
        for out in [a, b, c] {
            out.unwrap();
        }
        let log = std::fs::read_to_string(log).unwrap();
        assert_eq!(log, "start a\nend a\nstart b\nend b\nstart c\nend c\n", "in the order asked, never two at once");
    }

    #[tokio::test]
    async fn a_command_queued_past_its_deadline_never_starts() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        script(dir.path(), "pvesh", "sleep 30");
        script(dir.path(), "zpool", &format!("echo ran >> '{}'", log.display()));
        let runner = Runner::in_dir(dir.path().to_path_buf());
        let (hung, queued) = tokio::join!(
            runner.run("pvesh", &[] as &[&str], Duration::from_millis(600)),
            runner.run("zpool", &[] as &[&str], Duration::from_millis(300)),
        );
        assert!(matches!(hung, Err(CommandError::TimedOut { .. })), "{hung:?}");
        let queued = queued.unwrap_err();
        assert_eq!(queued.to_string(), "zpool not started: other commands took the whole 0.3s");
        assert!(!log.exists(), "zpool never ran");
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("héllo", 2), "h…");
    }
}
