//! `zpool status -p` text (OpenZFS 2.2 and older, which have no `-j`).
//!
//! Each pool is a block of `key: value` lines (`pool:`, `state:`, `status:`, `action:`, `see:`,
//! `scan:`, `config:`, `errors:`), right-aligned so that keys sit within the first 8 columns;
//! continuation lines are indented by a tab. The `config:` tree nests by two columns per level
//! under a `NAME STATE READ WRITE CKSUM` header, with `logs`, `cache`, `spares`, `special` and
//! `dedup` sections at the pool's own indentation.

use wire::{Pool, Scan, ScanFunction, ScanState, Vdev};

use super::{normalize_text, CLASSES};
use crate::collect::ParseError;

pub fn parse(text: &str) -> Result<Vec<Pool>, ParseError> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed == "no pools available" {
        return Ok(Vec::new());
    }
    let mut blocks: Vec<Block> = Vec::new();
    for line in text.lines() {
        if let Some((key, value)) = key_line(line) {
            if key == "pool" {
                blocks.push(Block { name: value.to_string(), ..Block::default() });
                continue;
            }
            let block =
                blocks.last_mut().ok_or_else(|| ParseError::new(format!("{key}: line before any pool: line")))?;
            block.sections.push((key.to_string(), vec![value.to_string()]));
        } else if let Some(block) = blocks.last_mut() {
            if let Some((_, lines)) = block.sections.last_mut() {
                lines.push(line.to_string());
            }
        } else if !line.trim().is_empty() {
            return Err(ParseError::new("output does not start with a pool: line"));
        }
    }
    blocks.into_iter().map(Block::into_pool).collect()
}

/// The lines of one pool, grouped by the key that opened them.
#[derive(Default)]
struct Block {
    name: String,
    sections: Vec<(String, Vec<String>)>,
}

impl Block {
    fn section(&self, key: &str) -> Option<&[String]> {
        self.sections.iter().find(|(k, _)| k == key).map(|(_, lines)| lines.as_slice())
    }

    fn text(&self, key: &str) -> Option<String> {
        self.section(key).map(|lines| normalize_text(&lines.join(" "))).filter(|s| !s.is_empty())
    }

    fn into_pool(self) -> Result<Pool, ParseError> {
        let state =
            self.text("state").ok_or_else(|| ParseError::new(format!("pool {} has no state: line", self.name)))?;
        // OpenZFS 2.4 may print two scan: lines (last scrub and last resilver); a running one wins.
        let scans: Vec<Scan> =
            self.sections.iter().filter(|(k, _)| k == "scan").filter_map(|(_, l)| parse_scan(l.first()?)).collect();
        let scan = scans.iter().find(|s| s.state == ScanState::Scanning).or(scans.first()).cloned();
        let vdevs = match self.section("config") {
            Some(lines) => parse_config(lines)?,
            None => Vec::new(),
        };
        Ok(Pool {
            state: state.into(),
            status: self.text("status"),
            action: self.text("action"),
            vdevs,
            scan,
            error_count: self.section("errors").map(error_count).unwrap_or(0),
            name: self.name,
            ..Pool::default()
        })
    }
}

/// `Some((key, value))` when `line` opens a section: a lowercase word and a colon within the
/// first 8 columns. Continuation and config lines start at column 8 or later.
fn key_line(line: &str) -> Option<(&str, &str)> {
    let body = line.trim_start();
    if indent(line) >= 8 {
        return None;
    }
    let (key, value) = body.split_once(':')?;
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    Some((key, value.trim()))
}

/// Leading whitespace in columns, with tabs to the next multiple of 8 as a terminal shows them.
fn indent(line: &str) -> usize {
    let mut col = 0;
    for c in line.chars() {
        match c {
            ' ' => col += 1,
            '\t' => col = (col / 8 + 1) * 8,
            _ => break,
        }
    }
    col
}

fn parse_config(lines: &[String]) -> Result<Vec<Vdev>, ParseError> {
    let mut rows = lines.iter().skip(1).filter(|l| !l.trim().is_empty());
    let header = rows.next().ok_or_else(|| ParseError::new("config: has no vdev table"))?;
    if header.split_whitespace().next() != Some("NAME") {
        return Err(ParseError::new(format!("unexpected config header {:?}", header.trim())));
    }
    let base = indent(header);
    let mut vdevs = Vec::new();
    let mut in_class = false;
    for row in rows {
        // Blank rows were filtered out above, so `cols[0]` (the name) always exists.
        let cols: Vec<&str> = row.split_whitespace().collect();
        let rel = indent(row).checked_sub(base).ok_or_else(|| ParseError::new("vdev row left of the header"))?;
        if rel == 0 {
            // The pool's own row, or a section header such as `logs`.
            in_class = cols.len() == 1 && CLASSES.contains(&cols[0]);
            if in_class {
                vdevs.push(Vdev { name: cols[0].to_string(), depth: 0, ..Vdev::default() });
            }
            continue;
        }
        let level = u8::try_from(rel / 2).map_err(|_| ParseError::new("vdev tree too deep"))?;
        let depth = level.checked_sub(1).ok_or_else(|| ParseError::new("vdev row not indented under its pool"))?;
        let count = |i: usize| cols.get(i).and_then(|c| parse_count(c)).unwrap_or(0);
        vdevs.push(Vdev {
            name: cols[0].to_string(),
            depth: depth + u8::from(in_class),
            state: cols.get(1).map(|s| (*s).into()).unwrap_or_default(),
            read_errors: count(2),
            write_errors: count(3),
            checksum_errors: count(4),
        });
    }
    Ok(vdevs)
}

/// An error counter: exact with `-p`, but `13.4M`-style (powers of 1024) without it.
fn parse_count(s: &str) -> Option<u64> {
    if let Ok(n) = s.parse() {
        return Some(n);
    }
    // The unit is the last character, not the last byte: `split_at(len - 1)` panicked on a
    // count ending in a multi-byte character (found by fuzzing).
    let (shift, num) = match s.chars().next_back()? {
        'K' => (10, &s[..s.len() - 1]),
        'M' => (20, &s[..s.len() - 1]),
        'G' => (30, &s[..s.len() - 1]),
        'T' => (40, &s[..s.len() - 1]),
        _ => return None,
    };
    let value: f64 = num.parse().ok()?;
    Some((value * (1u64 << shift) as f64).round() as u64)
}

/// The `errors:` section: "No known data errors", "N data errors, use '-v' for a list", or with
/// `-v` "Permanent errors have been detected in the following files:" and one line per file.
fn error_count(lines: &[String]) -> u64 {
    let Some((first, rest)) = lines.split_first() else { return 0 };
    let first = first.trim();
    if let Some(n) = first.split_whitespace().next().and_then(|w| w.parse().ok()) {
        if first.contains("data error") {
            return n;
        }
    }
    if first.starts_with("Permanent errors") {
        return rest.iter().filter(|l| !l.trim().is_empty()).count() as u64;
    }
    0
}

/// The first line of a `scan:` section, e.g. "scrub repaired 0B in 00:01:23 with 0 errors on
/// Sun Nov  9 00:25:24 2025" or "resilver in progress since Tue Aug  3 22:40:34 2021". Unknown
/// forms give `None` rather than an error: the rest of the pool is still worth reporting.
pub fn parse_scan(line: &str) -> Option<Scan> {
    let line = line.trim();
    let scan =
        |function: &ScanFunction, state: ScanState| Scan { function: function.clone(), state, ..Scan::default() };
    for (prefix, function) in [("scrub", ScanFunction::Scrub), ("resilver", ScanFunction::Resilver)] {
        if let Some(since) = line.strip_prefix(&format!("{prefix} in progress since ")) {
            return Some(Scan { start: parse_ctime(since), ..scan(&function, ScanState::Scanning) });
        }
        if line.starts_with(&format!("{prefix} paused since ")) {
            return Some(scan(&function, ScanState::Scanning));
        }
        if let Some(on) = line.strip_prefix(&format!("{prefix} canceled on ")) {
            return Some(Scan { end: parse_ctime(on), ..scan(&function, ScanState::Canceled) });
        }
    }
    let function = if line.starts_with("scrub repaired ") {
        ScanFunction::Scrub
    } else if line.starts_with("resilvered ") {
        ScanFunction::Resilver
    } else {
        return None;
    };
    let (_, after_in) = line.split_once(" in ")?;
    let (duration, after_with) = after_in.split_once(" with ")?;
    let (errors, on) = after_with.split_once(" errors on ")?;
    let end = parse_ctime(on);
    Some(Scan {
        start: end.zip(parse_duration(duration)).map(|(end, d)| end - d),
        end,
        errors: errors.trim().parse().unwrap_or(0),
        ..scan(&function, ScanState::Finished)
    })
}

/// A scan duration: "00:01:23", "0 days 17:49:44", "1 days 02:55:32", or the old "1h18m".
///
/// Each part is read as a u32, so the sum fits in i64 whatever the digits (an i64 part
/// overflowed on `99999999999999h0m`, found by fuzzing), and a negative part is refused.
fn parse_duration(s: &str) -> Option<i64> {
    let number = |p: &str| p.trim().parse::<u32>().ok().map(i64::from);
    let s = s.trim();
    if let Some((h, rest)) = s.split_once('h') {
        let m = rest.strip_suffix('m')?;
        return Some(number(h)? * 3600 + number(m)? * 60);
    }
    let (days, hms) = match s.split_once(" days ").or_else(|| s.split_once(" day ")) {
        Some((d, hms)) => (number(d)?, hms),
        None => (0, s),
    };
    let mut parts = hms.split(':').map(number);
    let (h, m, sec) = (parts.next()??, parts.next()??, parts.next()??);
    if parts.next().is_some() {
        return None;
    }
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

/// A `ctime(3)` time such as "Sun Nov  9 00:25:24 2025", read as UTC.
///
/// The agent runs zpool with `TZ=UTC`, so this is exact on a live host; a fixture captured in
/// another zone is off by that zone's offset.
pub fn parse_ctime(s: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let words: Vec<&str> = s.split_whitespace().collect();
    let m = words.iter().position(|w| MONTHS.contains(w))?;
    let month = MONTHS.iter().position(|name| *name == words[m])? as u32 + 1;
    let day: u32 = words.get(m + 1)?.parse().ok()?;
    let mut hms = words.get(m + 2)?.split(':').map(|p| p.parse::<u32>().ok());
    let (h, min, sec) = (hms.next()??, hms.next()??, hms.next()??);
    // A u16 year keeps the day arithmetic in range (an i64 year overflowed it, found by fuzzing).
    let year = i64::from(words.get(m + 3)?.parse::<u16>().ok()?);
    if !(1..=31).contains(&day) || h > 23 || min > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + i64::from(h * 3600 + min * 60 + sec))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
