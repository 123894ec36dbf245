//! Pure helpers: percentiles, endpoint names for request-log paths, and table text.

use std::collections::BTreeMap;

/// The `p`-th percentile (0..=100) of `samples` by the nearest-rank method; `None` when
/// there are no samples.
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    sorted.get(index).copied()
}

/// Summary of a set of latency samples, in seconds.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Summary {
    /// How many samples.
    pub samples: usize,
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Largest sample.
    pub max: Option<f64>,
}

impl Summary {
    /// Summarises `samples`.
    pub fn of(samples: &[f64]) -> Self {
        Self {
            samples: samples.len(),
            p50: percentile(samples, 50.0),
            p90: percentile(samples, 90.0),
            p99: percentile(samples, 99.0),
            max: percentile(samples, 100.0),
        }
    }
}

/// The endpoint of a logged Nomad request: `METHOD /v1/path` with IDs replaced by `:id`,
/// and ` (blocking)` for blocking queries (`index=` in the query).
///
/// `/v1/job/web/plan` -> `POST /v1/job/:id/plan`; `/v1/jobs?index=7` -> `GET /v1/jobs
/// (blocking)`.
pub fn endpoint(method: &str, path: &str, query: &str) -> String {
    const SINGULAR: [&str; 6] = [
        "job",
        "allocation",
        "deployment",
        "evaluation",
        "node",
        "client",
    ];
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    for (i, segment) in segments.iter().enumerate() {
        let is_id = i == 2
            && segments.first() == Some(&"v1")
            && segments.get(1).is_some_and(|s| SINGULAR.contains(s));
        out.push(if is_id { ":id" } else { segment });
    }
    let blocking = query
        .split('&')
        .any(|kv| kv.starts_with("index=") && kv != "index=0");
    format!(
        "{method} /{}{}",
        out.join("/"),
        if blocking { " (blocking)" } else { "" }
    )
}

/// Whether an [`endpoint`] writes to Nomad: anything but GET/HEAD, except a plan
/// (`POST /v1/job/:id/plan` is a dry run: it changes nothing).
pub fn is_write(endpoint: &str) -> bool {
    let method = endpoint.split(' ').next().unwrap_or("GET");
    !matches!(method, "GET" | "HEAD") && !endpoint.ends_with("/plan")
}

/// Adds the requests in `log` to `counts` by [`endpoint`].
pub fn count_endpoints<'a>(
    counts: &mut BTreeMap<String, u64>,
    log: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
) {
    for (method, path, query) in log {
        *counts.entry(endpoint(method, path, query)).or_default() += 1;
    }
}

/// A plain-text table: a header row and rows, columns padded to their widest cell,
/// markdown pipes so that it pastes into the README as is.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = widths[i]))
            .collect();
        format!("| {} |", padded.join(" | "))
    };
    let mut out = String::new();
    out.push_str(&line(header.to_vec()));
    out.push('\n');
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&format!("|-{}-|\n", rule.join("-|-")));
    for row in rows {
        let mut cells: Vec<&str> = row.iter().map(String::as_str).take(columns).collect();
        cells.resize(columns, "");
        out.push_str(&line(cells));
        out.push('\n');
    }
    out
}

/// Seconds with a precision that suits them (`0.123 s`, `12.3 s`, `-` for none).
pub fn secs(value: Option<f64>) -> String {
    match value {
        None => "-".into(),
        Some(v) if v < 1.0 => format!("{v:.3} s"),
        Some(v) if v < 100.0 => format!("{v:.1} s"),
        Some(v) => format!("{v:.0} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(percentile(&samples, 50.0), Some(100.0));
        assert_eq!(percentile(&samples, 99.0), Some(198.0));
        assert_eq!(percentile(&samples, 100.0), Some(200.0));
        assert_eq!(percentile(&samples, 0.0), Some(1.0));
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50.0), Some(2.0));
        assert_eq!(percentile(&[], 50.0), None);
        let s = Summary::of(&[0.5]);
        assert_eq!(
            (s.samples, s.p50, s.p99, s.max),
            (1, Some(0.5), Some(0.5), Some(0.5))
        );
    }

    #[test]
    fn endpoints_hide_ids_and_mark_blocking_queries() {
        assert_eq!(
            endpoint("POST", "/v1/job/web-1/plan", ""),
            "POST /v1/job/:id/plan"
        );
        assert_eq!(
            endpoint("GET", "/v1/job/web-1", "namespace=default"),
            "GET /v1/job/:id"
        );
        assert_eq!(
            endpoint("GET", "/v1/jobs", "namespace=*&index=42&wait=300s"),
            "GET /v1/jobs (blocking)"
        );
        assert_eq!(endpoint("GET", "/v1/jobs", "index=0"), "GET /v1/jobs");
        assert_eq!(
            endpoint("GET", "/v1/allocation/abc", ""),
            "GET /v1/allocation/:id"
        );
        assert!(is_write("POST /v1/job/:id") && is_write("DELETE /v1/job/:id"));
        assert!(!is_write("GET /v1/job/:id") && !is_write("POST /v1/job/:id/plan"));
        let mut counts = BTreeMap::new();
        count_endpoints(
            &mut counts,
            [("GET", "/v1/job/a", ""), ("GET", "/v1/job/b", "")],
        );
        assert_eq!(counts.get("GET /v1/job/:id"), Some(&2));
    }

    #[test]
    fn tables_pad_columns() {
        let text = table(
            &["N", "converge"],
            &[vec!["100".into(), "1.2 s".into()], vec!["10000".into()]],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "| N     | converge |");
        assert_eq!(lines[1], "|-------|----------|");
        assert_eq!(lines[2], "| 100   | 1.2 s    |");
        assert_eq!(lines[3], "| 10000 |          |");
        assert_eq!(secs(Some(0.1234)), "0.123 s");
        assert_eq!(secs(Some(12.34)), "12.3 s");
        assert_eq!(secs(None), "-");
    }
}
