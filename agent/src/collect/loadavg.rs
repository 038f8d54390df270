//! Load averages from `/proc/loadavg` (`1.61 1.69 2.07 4/118 28730`), as pve-common's
//! `PVE::ProcFSTools::read_loadavg` reads them for the node status.

use super::ParseError;

/// The 1, 5 and 15 minute load averages.
pub fn parse(text: &str) -> Result<[f64; 3], ParseError> {
    let mut cols = text.split_whitespace();
    let mut load = [0.0; 3];
    for slot in &mut load {
        let col = cols.next().ok_or_else(|| ParseError::new("fewer than three load averages"))?;
        *slot = col
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| ParseError::new(format!("bad load average {col:?}")))?;
    }
    Ok(load)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOADAVG: &str = include_str!("../../tests/fixtures/loadavg.txt");

    #[test]
    fn parses_captured_loadavg() {
        assert_eq!(parse(LOADAVG).unwrap(), [1.61, 1.69, 2.07]);
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(parse("").is_err());
        assert!(parse("0.1 0.2\n").is_err());
        assert!(parse("0.1 x 0.3 1/2 3\n").is_err());
        assert!(parse("0.1 NaN 0.3 1/2 3\n").is_err());
    }
}
