//! Lenient readers for JSON values that Proxmox and ZFS send as numbers or as strings.
//!
//! pvesh passes through whatever Perl held (`"loadavg": ["0.51", ...]`, `"hvm": "1"`), and
//! `zpool status -j` without `--json-int` prints every number as a string.

use serde_json::Value;

/// A non-negative integer from a number or a decimal string; fractions are truncated.
pub fn u64_of(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().filter(|f| *f >= 0.0 && f.is_finite()).map(|f| f as u64)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<u64>()
                .ok()
                .or_else(|| s.parse::<f64>().ok().filter(|f| *f >= 0.0 && f.is_finite()).map(|f| f as u64))
        }
        _ => None,
    }
}

/// A signed integer from a number or a decimal string.
pub fn i64_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

/// A float from a number or a decimal string.
pub fn f64_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// A flag from `1`/`0`, `true`/`false` or their string forms.
pub fn bool_of(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|f| f != 0.0),
        Value::String(s) => match s.trim() {
            "1" | "true" | "yes" | "on" => Some(true),
            "0" | "false" | "no" | "off" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A string field, also accepting a number (Proxmox sends some names and ids either way).
pub fn string_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `obj[key]` read with one of the functions above; absent and `null` give `None`.
pub fn field<T>(obj: &Value, key: &str, read: fn(&Value) -> Option<T>) -> Option<T> {
    obj.get(key).and_then(read)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_arrive_as_numbers_or_strings() {
        assert_eq!(u64_of(&json!(5)), Some(5));
        assert_eq!(u64_of(&json!("5")), Some(5));
        assert_eq!(u64_of(&json!(" 7 ")), Some(7));
        assert_eq!(u64_of(&json!(2.9)), Some(2));
        assert_eq!(u64_of(&json!("12.5")), Some(12));
        assert_eq!(u64_of(&json!(-1)), None);
        assert_eq!(u64_of(&json!("3.64T")), None);
        assert_eq!(u64_of(&json!(null)), None);
        assert_eq!(i64_of(&json!("-3")), Some(-3));
        assert_eq!(f64_of(&json!("0.51")), Some(0.51));
        assert_eq!(f64_of(&json!("NaN")), None);
    }

    #[test]
    fn flags_arrive_in_several_forms() {
        assert_eq!(bool_of(&json!(1)), Some(true));
        assert_eq!(bool_of(&json!(0)), Some(false));
        assert_eq!(bool_of(&json!("1")), Some(true));
        assert_eq!(bool_of(&json!(true)), Some(true));
        assert_eq!(bool_of(&json!("maybe")), None);
    }
}
