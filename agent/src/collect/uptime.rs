//! Seconds since boot from `/proc/uptime` (`3286.88 1704.31`: uptime, then idle time summed over
//! CPUs). Whole seconds, truncated, as pve-common's `PVE::ProcFSTools::read_proc_uptime` gives them.

use super::ParseError;

pub fn parse(text: &str) -> Result<u64, ParseError> {
    let first = text.split_whitespace().next().ok_or_else(|| ParseError::new("empty uptime"))?;
    let seconds: f64 = first.parse().map_err(|_| ParseError::new(format!("bad uptime {first:?}")))?;
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(ParseError::new(format!("bad uptime {first:?}")));
    }
    // Truncation is the point: PVE shows whole seconds.
    Ok(seconds as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPTIME: &str = include_str!("../../tests/fixtures/uptime.txt");

    #[test]
    fn parses_captured_uptime_in_whole_seconds() {
        assert_eq!(parse(UPTIME).unwrap(), 3286);
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(parse("").is_err());
        assert!(parse("up 3 days\n").is_err());
        assert!(parse("-1.0 2.0\n").is_err());
    }
}
