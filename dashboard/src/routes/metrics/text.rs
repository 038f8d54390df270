//! The Prometheus text format (0.0.4): a family's `# HELP` and `# TYPE` lines, then its
//! samples, every sample of a family together (Prometheus refuses a family split in two).

use std::fmt::Write;

/// A page being written.
#[derive(Default)]
pub(super) struct Text(String);

/// A sample's value: an integer as is, a float only when finite (a missing or broken
/// figure is no sample rather than `NaN`).
pub(super) trait Value {
    fn write(self, out: &mut String) -> bool;
}

impl Value for u64 {
    fn write(self, out: &mut String) -> bool {
        let _ = write!(out, "{self}");
        true
    }
}

impl Value for f64 {
    fn write(self, out: &mut String) -> bool {
        if !self.is_finite() {
            return false;
        }
        let _ = write!(out, "{self}");
        true
    }
}

impl Value for bool {
    fn write(self, out: &mut String) -> bool {
        out.push(if self { '1' } else { '0' });
        true
    }
}

impl Text {
    /// Starts a family: its help line and type (`gauge`, `counter`, `histogram`).
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample of the family last started (or one of its `_bucket`, `_sum`, `_count`
    /// series), with its labels in order.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Value) {
        let start = self.0.len();
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                self.0.push_str(label);
                self.0.push_str("=\"");
                escape(&mut self.0, v);
                self.0.push('"');
            }
            self.0.push('}');
        }
        self.0.push(' ');
        if value.write(&mut self.0) {
            self.0.push('\n');
        } else {
            self.0.truncate(start);
        }
    }

    /// A family of one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: impl Value) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// A family of one sample per value of `label` (a reason, a status).
    pub fn by_label<S: AsRef<str>, V: Value>(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        label: &str,
        samples: impl IntoIterator<Item = (S, V)>,
    ) {
        self.family(name, kind, help);
        for (value_of_label, value) in samples {
            self.sample(name, &[(label, value_of_label.as_ref())], value);
        }
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A label value as the format wants it: backslash, double quote and newline escaped.
/// Host ids are validated, but pool, storage and guest names come from the hosts.
fn escape(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_escape_label_values_and_skip_non_finite_values() {
        let mut text = Text::default();
        text.family("pmon_x", "gauge", "An example.");
        text.sample("pmon_x", &[("host", "pve1"), ("pool", "a\"b\\c\nd")], 1.5);
        text.sample("pmon_x", &[("host", "pve2")], f64::NAN);
        text.sample("pmon_x", &[], 7u64);
        text.sample("pmon_x", &[("up", "x")], true);
        assert_eq!(
            text.into_string(),
            "# HELP pmon_x An example.\n# TYPE pmon_x gauge\n\
             pmon_x{host=\"pve1\",pool=\"a\\\"b\\\\c\\nd\"} 1.5\npmon_x 7\npmon_x{up=\"x\"} 1\n"
        );
    }
}
