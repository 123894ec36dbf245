//! Blocking queries (`?index=N&wait=D`) over per-table watch channels: a waiting
//! query costs one parked task and no polling.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::Inner;
use crate::jobs::ApiError;
use crate::state::{State, Table};

/// Nomad's default and maximum blocking waits.
pub(crate) const DEFAULT_WAIT: Duration = Duration::from_secs(300);
/// Maximum wait (10 minutes).
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(600);

/// Parses `index` and `wait` like Nomad's `parseWait`/`parseConsistency`.
pub(crate) fn parse_blocking(
    index: Option<&str>,
    wait: Option<&str>,
) -> Result<(u64, Duration), ApiError> {
    let idx = match index {
        None | Some("") => 0,
        Some(s) => s
            .parse::<u64>()
            .map_err(|_| ApiError::BadRequest("Invalid index".into()))?,
    };
    let wait = match wait {
        None | Some("") => DEFAULT_WAIT,
        Some(s) => {
            let ns = crate::util::parse_go_duration(s, false)
                .ok_or_else(|| ApiError::BadRequest("Invalid wait time".into()))?;
            Duration::from_nanos(ns).min(MAX_WAIT)
        }
    };
    Ok((idx, wait))
}

/// Nomad's text (and 500) for a request that needs a leader when there is none.
pub(crate) const NO_LEADER: &str = "No cluster leader";

/// Runs `query` under the state lock; when `min_index > 0` and the returned
/// index is not past it, waits for a write to one of `tables` (or the wait to
/// elapse, or server shutdown) and runs it again. Returns `(index, body)`; the index
/// is 0 for a table never written, as Nomad answers. Without a leader, before or
/// while waiting, it fails at once with a 500 `No cluster leader`.
pub(crate) async fn blocking_query<F, T>(
    inner: &Inner,
    shutdown: &watch::Receiver<bool>,
    tables: &[Table],
    min_index: u64,
    wait: Duration,
    mut query: F,
) -> Result<(u64, T), ApiError>
where
    F: FnMut(&State) -> Result<(u64, T), ApiError>,
{
    let mut rxs: Vec<watch::Receiver<u64>> = tables
        .iter()
        .map(|t| inner.watchers.sender(*t).subscribe())
        .collect();
    let mut shutdown = shutdown.clone();
    let mut leader = inner.leader.subscribe();
    let deadline = Instant::now() + wait;
    loop {
        for rx in rxs.iter_mut() {
            rx.borrow_and_update();
        }
        if !*leader.borrow_and_update() {
            return Err(ApiError::Server(NO_LEADER.into()));
        }
        let (idx, body) = {
            let st = inner.lock_state();
            query(&st)?
        };
        if min_index == 0 || idx > min_index || Instant::now() >= deadline || *shutdown.borrow() {
            return Ok((idx, body));
        }
        let sleep = tokio::time::sleep_until(deadline);
        let _parked = Parked::new(inner);
        match rxs.as_mut_slice() {
            [a] => {
                tokio::select! {
                    _ = a.changed() => {}
                    _ = sleep => {}
                    _ = shutdown.changed() => {}
                    _ = leader.changed() => {}
                }
            }
            [a, b, ..] => {
                tokio::select! {
                    _ = a.changed() => {}
                    _ = b.changed() => {}
                    _ = sleep => {}
                    _ = shutdown.changed() => {}
                    _ = leader.changed() => {}
                }
            }
            [] => {
                tokio::select! {
                    _ = sleep => {}
                    _ = shutdown.changed() => {}
                    _ = leader.changed() => {}
                }
            }
        }
    }
}

/// Counts a blocking query as waiting for as long as it lives.
struct Parked<'a>(&'a Inner);

impl<'a> Parked<'a> {
    fn new(inner: &'a Inner) -> Self {
        inner.waiting_queries.fetch_add(1, Ordering::SeqCst);
        Self(inner)
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0.waiting_queries.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wait() {
        assert_eq!(
            parse_blocking(Some("5"), Some("300ms")).ok(),
            Some((5, Duration::from_millis(300)))
        );
        assert_eq!(parse_blocking(None, None).ok(), Some((0, DEFAULT_WAIT)));
        assert_eq!(parse_blocking(None, Some("1h")).ok(), Some((0, MAX_WAIT)));
        assert!(parse_blocking(Some("x"), None).is_err());
        assert!(parse_blocking(None, Some("10")).is_err());
    }
}
