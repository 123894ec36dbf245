//! A circuit breaker per Nomad client (shared by its clones and by the watches' own
//! pool): when Nomad keeps failing (no leader, unreachable, 5xx), calls stop for a
//! while instead of every object retrying on its own.
//!
//! - **Closed**: every call goes out. [`TRIP_AFTER`] transient failures in a row open it.
//! - **Open**: no call goes out until the pause ends; each refused call gets the failure
//!   that opened the breaker, unchanged (so the status and Events it leads to are the
//!   ones already written, and nothing new is written), plus how long the pause lasts.
//! - **Trial**: after the pause, calls go out again. A success closes the breaker; the
//!   next transient failure opens it again for twice as long (with a random spread of a
//!   fifth either way, up to [`MAX_PAUSE`]).
//!
//! Only failures that say nothing about the request count: transport errors, timeouts
//! and 5xx answers. Any other answer (a 404, a 409, a validation error) shows Nomad is
//! serving, and closes the breaker.

use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::NomadError;

/// Transient failures in a row that open the breaker.
pub const TRIP_AFTER: u32 = 3;
/// The first pause.
pub const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// The longest pause.
pub const MAX_PAUSE: Duration = Duration::from_secs(60);

/// The breaker of one Nomad client.
#[derive(Debug, Default)]
pub struct Breaker {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Transient failures in a row.
    failures: u32,
    /// How many times it opened since it was last closed (the pause doubles each time).
    opened: u32,
    /// While open: when calls may go out again, and the failure that opened it.
    open: Option<(Instant, NomadError)>,
}

/// What the breaker decided about one call.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// The call may go out.
    Go,
    /// The call must not go out: the failure that opened the breaker, and how long the
    /// pause still lasts.
    Refused(NomadError, Duration),
}

impl Breaker {
    /// Whether a call may go out now.
    pub fn admit(&self) -> Admission {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Admission {
        let state = self.lock();
        match &state.open {
            Some((until, error)) if now < *until => {
                Admission::Refused(error.clone(), until.saturating_duration_since(now))
            }
            _ => Admission::Go,
        }
    }

    /// Records how a call that went out ended: `Ok(())` for any answer that shows
    /// Nomad serving, `Err` with the failure otherwise. Returns the pause when this
    /// failure opened the breaker.
    pub fn record(&self, outcome: Result<(), &NomadError>) -> Option<Duration> {
        self.record_at(outcome, Instant::now(), spread())
    }

    fn record_at(
        &self,
        outcome: Result<(), &NomadError>,
        now: Instant,
        spread: f64,
    ) -> Option<Duration> {
        let mut state = self.lock();
        let error = match outcome {
            Err(error) if counts(error) => error,
            _ => {
                *state = State::default();
                return None;
            }
        };
        if state.open.as_ref().is_some_and(|(until, _)| now < *until) {
            // A call admitted before the breaker opened: the pause already runs.
            return None;
        }
        state.failures = state.failures.saturating_add(1);
        // In trial (it opened before and has not closed since), one failure reopens it.
        if state.failures < TRIP_AFTER && state.opened == 0 {
            return None;
        }
        // Spread first, then capped: no pause is longer than MAX_PAUSE.
        let pause = FIRST_PAUSE
            .saturating_mul(2u32.saturating_pow(state.opened.min(16)))
            .mul_f64(spread)
            .min(MAX_PAUSE);
        state.opened = state.opened.saturating_add(1);
        state.open = Some((now + pause, error.clone()));
        Some(pause)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Failures that say Nomad is not serving: transport errors, timeouts, 5xx answers.
fn counts(error: &NomadError) -> bool {
    match error {
        NomadError::Transport(_) | NomadError::Timeout => true,
        NomadError::Server { status, .. } => *status >= 500,
        _ => false,
    }
}

/// A random factor in `[0.8, 1.2)`, so that clients paused together do not come back
/// together.
fn spread() -> f64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    0.8 + 0.4 * (hasher.finish() % 10_000) as f64 / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_leader() -> NomadError {
        NomadError::Server {
            status: 500,
            message: "No cluster leader".into(),
        }
    }

    #[test]
    fn opens_after_failures_in_a_row_and_refuses_with_the_same_error() {
        let breaker = Breaker::default();
        let now = Instant::now();
        let error = no_leader();
        assert_eq!(breaker.record_at(Err(&error), now, 1.0), None);
        assert_eq!(breaker.record_at(Err(&error), now, 1.0), None);
        assert_eq!(breaker.admit_at(now), Admission::Go, "not yet open");
        assert_eq!(
            breaker.record_at(Err(&error), now, 1.0),
            Some(FIRST_PAUSE),
            "the third failure in a row opens it"
        );
        match breaker.admit_at(now + Duration::from_millis(400)) {
            Admission::Refused(refused, left) => {
                assert_eq!(refused, error, "the refusal is the failure, unchanged");
                assert_eq!(left, Duration::from_millis(600));
            }
            Admission::Go => panic!("open breakers refuse"),
        }
        assert_eq!(breaker.admit_at(now + FIRST_PAUSE), Admission::Go, "trial");
    }

    #[test]
    fn a_failed_trial_doubles_the_pause_up_to_the_cap_and_a_success_closes() {
        let breaker = Breaker::default();
        let mut now = Instant::now();
        let error = NomadError::Transport("cannot connect".into());
        for _ in 0..TRIP_AFTER {
            breaker.record_at(Err(&error), now, 1.0);
        }
        let mut pauses = Vec::new();
        for _ in 0..8 {
            now += MAX_PAUSE;
            pauses.push(
                breaker
                    .record_at(Err(&error), now, 1.0)
                    .map(|d| d.as_secs()),
            );
        }
        assert_eq!(
            pauses,
            [2, 4, 8, 16, 32, 60, 60, 60].map(Some),
            "one failed trial reopens it, for twice as long"
        );
        now += MAX_PAUSE;
        assert_eq!(breaker.record_at(Ok(()), now, 1.0), None);
        assert_eq!(breaker.admit_at(now), Admission::Go);
        assert_eq!(
            breaker.record_at(Err(&error), now, 1.0),
            None,
            "closed again: one failure alone does not open it"
        );
    }

    #[test]
    fn no_pause_is_longer_than_the_cap_whatever_the_spread() {
        let breaker = Breaker::default();
        let mut now = Instant::now();
        let error = no_leader();
        for _ in 0..TRIP_AFTER {
            breaker.record_at(Err(&error), now, 1.19);
        }
        let mut longest = Duration::ZERO;
        for _ in 0..8 {
            now += MAX_PAUSE * 2;
            let pause = breaker.record_at(Err(&error), now, 1.19);
            longest = longest.max(pause.unwrap_or_default());
        }
        assert_eq!(longest, MAX_PAUSE);
    }

    #[test]
    fn answers_that_show_nomad_serving_reset_the_count() {
        let breaker = Breaker::default();
        let now = Instant::now();
        let error = no_leader();
        breaker.record_at(Err(&error), now, 1.0);
        breaker.record_at(Err(&error), now, 1.0);
        let not_found = NomadError::NotFound("job not found".into());
        assert_eq!(breaker.record_at(Err(&not_found), now, 1.0), None);
        let proxy_404 = NomadError::Server {
            status: 404,
            message: "HTTP 404".into(),
        };
        assert_eq!(breaker.record_at(Err(&proxy_404), now, 1.0), None);
        breaker.record_at(Err(&error), now, 1.0);
        assert_eq!(
            breaker.record_at(Err(&error), now, 1.0),
            None,
            "count restarted"
        );
    }

    #[test]
    fn calls_already_out_when_it_opened_do_not_extend_the_pause() {
        let breaker = Breaker::default();
        let now = Instant::now();
        let error = no_leader();
        for _ in 0..TRIP_AFTER {
            breaker.record_at(Err(&error), now, 1.0);
        }
        assert_eq!(breaker.record_at(Err(&error), now, 1.0), None);
        assert_eq!(
            breaker.admit_at(now + FIRST_PAUSE),
            Admission::Go,
            "the pause is the first one"
        );
    }

    #[test]
    fn the_spread_stays_within_a_fifth() {
        for _ in 0..100 {
            let s = spread();
            assert!((0.8..1.2).contains(&s), "{s}");
        }
    }
}
