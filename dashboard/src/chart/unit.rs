//! What a series measures, and its values as text.

use crate::format;

/// What a chart's values measure; decides the y axis and every label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Sizes: memory, pools, disks. Ticks step in KiB, MiB, GiB, … (powers of 1024).
    Bytes,
    /// Rates: network and disk throughput.
    BytesPerSecond,
    /// 0–100; the axis is fixed at 0–100.
    Percent,
    /// Load averages and other plain numbers.
    Number,
    /// Whole things: guests running, processes. Ticks are whole numbers.
    Count,
    /// Temperatures.
    Celsius,
}

const BYTE_UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

impl Unit {
    /// One value for a tooltip: "1.5 GiB", "12.3%", "0.75", "3", "48.5 °C".
    pub fn format(self, v: f64) -> String {
        match self {
            Unit::Bytes => format::bytes(v.max(0.0).round() as u64),
            Unit::BytesPerSecond => format!("{}/s", format::bytes(v.max(0.0).round() as u64)),
            Unit::Percent => format!("{v:.1}%"),
            Unit::Number => format!("{v:.2}"),
            Unit::Count if v.fract() == 0.0 => format!("{v:.0}"),
            // A rollup's mean of a count.
            Unit::Count => format!("{v:.1}"),
            Unit::Celsius => format!("{v:.1} °C"),
        }
    }

    /// Whether the axis starts at zero whatever the data (a sizes' axis that starts at
    /// 37 GiB exaggerates every wiggle).
    pub(crate) fn starts_at_zero(self) -> bool {
        matches!(self, Unit::Bytes | Unit::BytesPerSecond | Unit::Percent | Unit::Count)
    }

    /// For bytes, the power of 1024 the ticks count in (3 for GiB); 0 for the others.
    pub(crate) fn tick_power(self, max: f64) -> u32 {
        match self {
            Unit::Bytes | Unit::BytesPerSecond if max >= 1024.0 => {
                (max.log2() / 10.0).floor().clamp(0.0, (BYTE_UNITS.len() - 1) as f64) as u32
            }
            _ => 0,
        }
    }

    /// One y tick: `scaled` is the value divided by 1024^`power`, `decimals` enough to
    /// tell the ticks apart. "2 GiB", "20%", "0.5", "45 °C".
    pub(crate) fn tick_label(self, scaled: f64, power: u32, decimals: usize) -> String {
        let n = format!("{:.decimals$}", scaled + 0.0);
        match self {
            Unit::Bytes => format!("{n} {}", BYTE_UNITS[power as usize]),
            Unit::BytesPerSecond => format!("{n} {}/s", BYTE_UNITS[power as usize]),
            Unit::Percent => format!("{n}%"),
            Unit::Number | Unit::Count => n,
            Unit::Celsius => format!("{n} °C"),
        }
    }
}
