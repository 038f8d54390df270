//! `zpool status`: pool state, status and action texts, the vdev tree, the last scan, data errors.
//!
//! OpenZFS 2.3 added `zpool status -j --json-int`, which is parsed by [`json`]; 2.2 (Proxmox VE 8.0
//! to 8.2) rejects `-j` with a usage message and a non-zero exit, and its text is parsed by [`text`].
//! The collector tries JSON first and remembers which form worked, so later cycles run one command.
//!
//! Both parsers give the same flattened tree: top-level vdevs at depth 0, their members at 1, and
//! so on; the `dedup`, `special`, `logs`, `cache` and `spares` sections appear as a state-less
//! entry at depth 0 with their members from depth 1, as `zpool status` prints them.

use std::time::Duration;

use tokio::time::Instant;
use wire::Pool;

use super::command::{CommandError, Runner};
use super::CollectError;

pub mod json;
#[cfg(test)]
mod tests;
pub mod text;

pub const JSON_ARGS: &[&str] = &["status", "-j", "--json-int"];
/// `-p` prints exact error counters instead of `1.2K`.
pub const TEXT_ARGS: &[&str] = &["status", "-p"];

/// Section names of the vdev tree, in the order `zpool status` prints them; JSON's `l2cache`
/// is called `cache` as in the text.
pub(crate) const CLASSES: [&str; 5] = ["dedup", "special", "logs", "cache", "spares"];

/// Which form of `zpool status` this host's OpenZFS speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Unknown,
    Json,
    Text,
}

/// Runs `zpool status` in the remembered form, or finds the form on the first successful run.
pub async fn collect(runner: &Runner, format: &mut Format, timeout: Duration) -> Result<Vec<Pool>, CollectError> {
    match *format {
        Format::Json => Ok(json::parse(&runner.run("zpool", JSON_ARGS, timeout).await?)?),
        Format::Text => Ok(text::parse(&runner.run("zpool", TEXT_ARGS, timeout).await?)?),
        Format::Unknown => {
            let deadline = Instant::now() + timeout;
            let remember_text = match runner.run("zpool", JSON_ARGS, timeout).await {
                Ok(out) => match json::parse(&out) {
                    Ok(pools) => {
                        *format = Format::Json;
                        return Ok(pools);
                    }
                    // JSON that does not parse is a real failure, not an old zpool.
                    Err(e) if out.trim_start().starts_with('{') => return Err(e.into()),
                    // Exit 0 without JSON ("no pools available"): read the text this time only.
                    Err(_) => false,
                },
                Err(CommandError::Failed { .. }) => true,
                Err(e) => return Err(e.into()),
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let pools = text::parse(&runner.run("zpool", TEXT_ARGS, left).await?)?;
            if remember_text {
                *format = Format::Text;
            }
            Ok(pools)
        }
    }
}

/// Status and action texts with their line breaks and tab indents folded into single spaces,
/// so that the JSON and text forms of the same message compare equal.
pub(crate) fn normalize_text(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
