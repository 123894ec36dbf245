//! Small pure helpers: IDs, clocks, Go-style durations and timestamps, URL
//! decoding, glob matching and HashiCorp multierror formatting.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall-clock time in Unix nanoseconds.
pub(crate) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A random UUID v4 shaped identifier, e.g. `ed344e0a-7290-4117-81d3-a64f853ca3c2`.
pub(crate) fn new_uuid() -> String {
    let hi = fastrand::u64(..);
    let lo = fastrand::u64(..);
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&hi.to_be_bytes());
    b[8..].copy_from_slice(&lo.to_be_bytes());
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Days since 1970-01-01 to a civil (year, month, day) date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Formats Unix nanoseconds like Go's `time.Time` JSON (RFC 3339 with trimmed
/// nanoseconds, UTC). `0` is Go's zero time `0001-01-01T00:00:00Z`.
pub(crate) fn rfc3339(ns: i64) -> String {
    if ns == 0 {
        return "0001-01-01T00:00:00Z".to_string();
    }
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    );
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Parses a Go duration string (`300ms`, `5s`, `1h30m`, `1.5s`). A bare number is
/// read as seconds when `bare_secs`, else rejected.
pub(crate) fn parse_go_duration(s: &str, bare_secs: bool) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s == "0" {
        return Some(0);
    }
    if let Ok(n) = s.parse::<u64>() {
        return if bare_secs {
            n.checked_mul(1_000_000_000)
        } else {
            None
        };
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let num: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let mult = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += num * mult;
    }
    Some(total as u64)
}

/// Formats nanoseconds like Go's `time.Duration.String()` (`30m0s`, `15s`, `1.5ms`).
pub(crate) fn format_go_duration(ns: u64) -> String {
    if ns == 0 {
        return "0s".to_string();
    }
    fn frac(v: u64, unit: u64) -> String {
        let whole = v / unit;
        let rem = v % unit;
        if rem == 0 {
            return whole.to_string();
        }
        let width = unit.to_string().len() - 1;
        let f = format!("{rem:0width$}");
        format!("{whole}.{}", f.trim_end_matches('0'))
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", frac(ns, 1_000));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", frac(ns, 1_000_000));
    }
    let h = ns / 3_600_000_000_000;
    let m = (ns % 3_600_000_000_000) / 60_000_000_000;
    let s = ns % 60_000_000_000;
    let secs = format!("{}s", frac(s, 1_000_000_000));
    if h > 0 {
        format!("{h}h{m}m{secs}")
    } else if m > 0 {
        format!("{m}m{secs}")
    } else {
        secs
    }
}

/// Percent-decodes a URL component; `plus_space` turns `+` into a space (query strings).
pub(crate) fn percent_decode(s: &str, plus_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a raw query string into decoded `(key, value)` pairs.
pub(crate) fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k, true), percent_decode(v, true)),
            None => (percent_decode(p, true), String::new()),
        })
        .collect()
}

/// Glob match where `*` matches any run of characters (including `/`) and every
/// other character matches itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Formats errors like `hashicorp/go-multierror`:
/// `1 error occurred:\n\t* Missing job task groups\n\n`.
pub(crate) fn multierror(errors: &[String]) -> String {
    let points: Vec<String> = errors.iter().map(|e| format!("* {e}")).collect();
    if errors.len() == 1 {
        format!("1 error occurred:\n\t{}\n\n", points.join("\n\t"))
    } else {
        format!(
            "{} errors occurred:\n\t{}\n\n",
            errors.len(),
            points.join("\n\t")
        )
    }
}

/// Scales a simulated duration (ns) by the time scale into a real `Duration`.
pub(crate) fn scaled(ns: u64, time_scale: f64) -> Duration {
    let scale = if time_scale.is_finite() && time_scale > 0.0 {
        time_scale
    } else {
        1.0
    };
    Duration::from_nanos((ns as f64 / scale) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_shape() {
        let u = new_uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_eq!(u.matches('-').count(), 4);
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "0001-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(1_495_755_675_956_923_000),
            "2017-05-25T23:41:15.956923Z"
        );
        assert_eq!(rfc3339(86_400_000_000_000), "1970-01-02T00:00:00Z");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_go_duration("5s", false), Some(5_000_000_000));
        assert_eq!(parse_go_duration("300ms", false), Some(300_000_000));
        assert_eq!(parse_go_duration("1h30m", false), Some(5_400_000_000_000));
        assert_eq!(parse_go_duration("1.5s", false), Some(1_500_000_000));
        assert_eq!(parse_go_duration("10", true), Some(10_000_000_000));
        assert_eq!(parse_go_duration("10", false), None);
        assert_eq!(parse_go_duration("5x", false), None);
        assert_eq!(format_go_duration(1_800_000_000_000), "30m0s");
        assert_eq!(format_go_duration(15_000_000_000), "15s");
        assert_eq!(format_go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(format_go_duration(1_500_000), "1.5ms");
        assert_eq!(format_go_duration(90_500_000_000), "1m30.5s");
    }

    #[test]
    fn query_and_decode() {
        assert_eq!(percent_decode("a%2Fb+c", true), "a/b c");
        assert_eq!(percent_decode("a%2", false), "a%2");
        let q = parse_query("index=5&wait=300ms&prefix=");
        assert_eq!(q[0], ("index".into(), "5".into()));
        assert_eq!(q[2], ("prefix".into(), String::new()));
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", "/v1/jobs"));
        assert!(glob_match("/v1/job/*/plan", "/v1/job/web/plan"));
        assert!(glob_match("/v1/job/*/plan", "/v1/job/a/b/plan"));
        assert!(!glob_match("/v1/job/*/plan", "/v1/job/web"));
        assert!(glob_match("/v1/jobs", "/v1/jobs"));
        assert!(!glob_match("/v1/jobs", "/v1/jobs/parse"));
    }

    #[test]
    fn multierror_format() {
        assert_eq!(
            multierror(&["Missing job task groups".into()]),
            "1 error occurred:\n\t* Missing job task groups\n\n"
        );
        assert_eq!(
            multierror(&["a".into(), "b".into()]),
            "2 errors occurred:\n\t* a\n\t* b\n\n"
        );
    }
}
