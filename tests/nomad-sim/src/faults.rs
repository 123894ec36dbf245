//! Fault injection: match requests by method and path glob, then delay them,
//! answer with a canned status/body or a redirect, or drop the connection; or let
//! them through and drop, hold, strip the index headers of, or pad their answer (see
//! [`crate::Fault`]; applied in `http::handle`).

use crate::Fault;
use crate::util::glob_match;

/// A registered fault and how often it has fired.
#[derive(Clone, Debug)]
pub(crate) struct FaultEntry {
    pub id: u64,
    pub fault: Fault,
    pub applied: u32,
}

/// Finds the first fault matching `method`/`path` that still applies (times,
/// probability) and counts it as applied.
pub(crate) fn take_matching(faults: &mut [FaultEntry], method: &str, path: &str) -> Option<Fault> {
    for e in faults.iter_mut() {
        let f = &e.fault;
        if let Some(m) = &f.method
            && !m.eq_ignore_ascii_case(method)
        {
            continue;
        }
        if !glob_match(&f.path, path) {
            continue;
        }
        if let Some(times) = f.times
            && e.applied >= times
        {
            continue;
        }
        if let Some(p) = f.probability
            && fastrand::f64() >= p
        {
            continue;
        }
        e.applied += 1;
        return Some(f.clone());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_method() {
        let mut fs = vec![FaultEntry {
            id: 1,
            fault: Fault {
                method: Some("POST".into()),
                path: "/v1/job/*/plan".into(),
                status: Some(500),
                times: Some(1),
                ..Default::default()
            },
            applied: 0,
        }];
        assert!(take_matching(&mut fs, "GET", "/v1/job/a/plan").is_none());
        assert!(take_matching(&mut fs, "post", "/v1/job/a/plan").is_some());
        assert!(take_matching(&mut fs, "POST", "/v1/job/a/plan").is_none());
    }

    #[test]
    fn probability_zero_never_fires() {
        let mut fs = vec![FaultEntry {
            id: 1,
            fault: Fault {
                path: "*".into(),
                status: Some(500),
                probability: Some(0.0),
                ..Default::default()
            },
            applied: 0,
        }];
        assert!(take_matching(&mut fs, "GET", "/v1/jobs").is_none());
    }
}
