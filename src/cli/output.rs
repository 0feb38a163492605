//! What the command-line client prints: a small JSON writer (the crate has no
//! serde_json, and the client only ever writes JSON, never reads it), aligned
//! text tables for people, and RFC 3339 timestamps.

use std::fmt::{self, Write as _};

/// A JSON value. Objects keep their fields in insertion order, so output is
/// deterministic and follows the order of the .proto fields.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Bool(bool),
    /// Integers up to 32 bits. 64-bit integers are strings in proto3 JSON
    /// (see [`Json::u64`]), because JavaScript numbers lose precision above 2^53.
    Int(i64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(&'static str, Json)>),
}

impl Json {
    pub fn str(s: impl Into<String>) -> Self {
        Json::Str(s.into())
    }

    /// A 64-bit integer, as a string (proto3 JSON mapping).
    pub fn u64(n: u64) -> Self {
        Json::Str(n.to_string())
    }

    pub fn strings(items: &[String]) -> Self {
        Json::Arr(items.iter().map(|s| Json::str(s.as_str())).collect())
    }

    /// The compact (single-line) encoding.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Json::Str(s) => write_string(s, out),
            Json::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Obj(fields) => {
                out.push('{');
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(key, out);
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

/// A JSON string literal. RFC 8259 requires escaping `"`, `\` and U+0000..U+001F;
/// U+2028/U+2029 are escaped too so the output is also valid JavaScript.
/// Everything else is written as UTF-8.
fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A text table: a header row and left-aligned columns two spaces apart.
#[derive(Debug)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self { rows: vec![header.iter().map(|h| h.to_string()).collect()] }
    }

    /// Adds a row; cells are made safe for a terminal (see [`cell`]).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.iter().map(|c| cell(c)).collect());
    }

    pub fn is_empty(&self) -> bool {
        self.rows.len() == 1
    }

    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|i| self.rows.iter().filter_map(|r| r.get(i)).map(|c| c.chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (i, text) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    line.push_str(text);
                } else {
                    let pad = widths[i] - text.chars().count();
                    let _ = write!(line, "{text}{:pad$}  ", "");
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Text from the server made safe to print on a terminal: control characters
/// (which could move the cursor or change colours) are shown escaped.
pub fn cell(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// A protobuf timestamp in RFC 3339 UTC, with 0, 3, 6 or 9 fractional
/// digits as the proto3 JSON mapping writes them.
pub fn rfc3339(ts: &prost_types::Timestamp) -> String {
    let nanos = ts.nanos.clamp(0, 999_999_999);
    let days = ts.seconds.div_euclid(86_400);
    let second_of_day = ts.seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let (h, m, s) = (second_of_day / 3600, second_of_day / 60 % 60, second_of_day % 60);
    let fraction = if nanos == 0 {
        String::new()
    } else if nanos % 1_000_000 == 0 {
        format!(".{:03}", nanos / 1_000_000)
    } else if nanos % 1_000 == 0 {
        format!(".{:06}", nanos / 1_000)
    } else {
        format!(".{nanos:09}")
    };
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}{fraction}Z")
}

/// Proleptic Gregorian date of a day number counted from 1970-01-01
/// (Howard Hinnant's `civil_from_days`), valid for negative days too.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_quotes_backslashes_and_control_characters() {
        let s = Json::str("a\"b\\c\nd\te\u{1}f\u{7f}é😀\u{2028}/");
        assert_eq!(s.encode(), r#""a\"b\\c\nd\te\u0001f"#.to_string() + "\u{7f}é😀\\u2028/\"");
    }

    #[test]
    fn objects_and_arrays_keep_order_and_64_bit_integers_are_strings() {
        let v = Json::Obj(vec![
            ("b", Json::Arr(vec![Json::Int(-1), Json::Bool(true), Json::Bool(false)])),
            ("a", Json::u64(u64::MAX)),
            ("e", Json::Arr(vec![])),
            ("o", Json::Obj(vec![])),
        ]);
        assert_eq!(v.encode(), r#"{"b":[-1,true,false],"a":"18446744073709551615","e":[],"o":{}}"#);
    }

    #[test]
    fn timestamps_use_rfc3339_with_proto3_fraction_digits() {
        let ts = |seconds, nanos| rfc3339(&prost_types::Timestamp { seconds, nanos });
        assert_eq!(ts(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(ts(951_782_400, 0), "2000-02-29T00:00:00Z");
        assert_eq!(ts(1_714_564_800, 21_000_000), "2024-05-01T12:00:00.021Z");
        assert_eq!(ts(1_714_564_800, 1_000), "2024-05-01T12:00:00.000001Z");
        assert_eq!(ts(1_714_564_800, 7), "2024-05-01T12:00:00.000000007Z");
        assert_eq!(ts(-1, 0), "1969-12-31T23:59:59Z");
        assert_eq!(ts(253_402_300_799, 0), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn tables_align_columns_and_escape_control_characters() {
        let mut t = Table::new(&["NAME", "N"]);
        t.row(vec!["R&D".into(), "1".into()]);
        t.row(vec!["Supp\u{1b}[31m".into(), "12".into()]);
        // The escaped cell is 14 characters wide; the others are padded to it.
        assert_eq!(t.render(), "NAME            N\nR&D             1\nSupp\\u{1b}[31m  12\n");
    }
}
