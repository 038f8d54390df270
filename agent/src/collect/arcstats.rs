//! The current ZFS ARC size, from `/proc/spl/kstat/zfs/arcstats`.
//!
//! The file is a kstat dump: a header line, a `name type data` line, then one row per counter.
//! A host without the ZFS module has no such file; the collector treats that as "no ARC", not an error.

use super::ParseError;

/// The relative path under the `/proc` root.
pub const PATH: &str = "spl/kstat/zfs/arcstats";

/// The `data` column of the `size` row, in bytes.
pub fn parse(text: &str) -> Result<u64, ParseError> {
    let mut lines = text.lines();
    // The second line names the columns; anything else is not a kstat file.
    if lines.nth(1).is_none_or(|l| !l.split_whitespace().eq(["name", "type", "data"])) {
        return Err(ParseError::new("not a kstat file (no \"name type data\" header)"));
    }
    for line in lines {
        let mut cols = line.split_whitespace();
        if cols.next() == Some("size") {
            let data = cols.nth(1).ok_or_else(|| ParseError::new("size row has no data column"))?;
            return data.parse().map_err(|_| ParseError::new(format!("bad ARC size {data:?}")));
        }
    }
    Err(ParseError::new("no size row"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARCSTATS: &str = include_str!("../../tests/fixtures/arcstats.txt");

    #[test]
    fn reads_size_not_c_or_c_max() {
        assert_eq!(parse(ARCSTATS).unwrap(), 8_575_205_920);
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(parse("").is_err());
        assert!(parse("size 4 123\n").is_err());
        assert!(parse("9 1 0x01\nname type data\nhits 4 1\n").is_err());
        assert!(parse("9 1 0x01\nname type data\nsize 4\n").is_err());
        assert!(parse("9 1 0x01\nname type data\nsize 4 -1\n").is_err());
    }
}
