//! docs/runbook.md: every `proxmox-monitor` and `proxmox-monitor-agent` command in its `sh`
//! blocks exists with the subcommands and flags shown (each is run with `--help`, which
//! clap refuses for an unknown subcommand or flag). Lines that are shell pipelines or
//! loops are left out: their commands appear on lines of their own too.

use std::process::Command;

use integration::bin;

/// The runbook's commands of our two binaries, one per line, as written.
fn runbook_commands() -> Vec<String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/runbook.md")).unwrap();
    let mut in_sh = false;
    let mut out = Vec::new();
    for line in text.lines() {
        match line.trim() {
            "```sh" => in_sh = true,
            "```" => in_sh = false,
            l if in_sh => {
                let l = l.strip_prefix("runuser -u proxmox-monitor -- ").unwrap_or(l);
                let ours = l.starts_with("proxmox-monitor ") || l.starts_with("proxmox-monitor-agent ");
                if ours && !["|", "$(", ";", "&&"].iter().any(|s| l.contains(s)) {
                    out.push(l.to_owned());
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn every_command_in_the_runbook_exists_as_written() {
    let commands = runbook_commands();
    assert!(commands.len() >= 15, "the runbook's commands were found: {commands:?}");
    for command in &commands {
        let (name, rest) = command.split_once(' ').unwrap();
        // bash for the quoting ("disk swap"); nothing runs but `--help`.
        let line = format!("\"$BIN\" {rest} --help");
        let out = Command::new("bash").args(["-c", &line]).env("BIN", bin(name)).output().unwrap();
        assert!(
            out.status.success(),
            "{command}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
