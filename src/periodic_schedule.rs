//! When a Nomad periodic job launches next: the "Next Periodic Launch" that
//! `nomad job status` shows, computed from the job's `Periodic` block.
//!
//! The block is the JSON Nomad serves, e.g. `{"Enabled": true, "SpecType": "cron",
//! "Spec": "*/15 * * * *", "ProhibitOverlap": false, "TimeZone": "UTC"}`.
//! [`next_launch`] answers as Nomad 1.1.2 does, which evaluates the spec with
//! hashicorp/cronexpr v1.1.1 in the block's time zone:
//!
//! - **Fields.** Five fields are `minute hour day-of-month month day-of-week` (second 0,
//!   any year); six add `year` at the end; seven put `second` first. Fields past the
//!   seventh are ignored. `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily` and
//!   `@hourly` stand for their usual specs. An entry is `*` or `?` (every value), a
//!   value, `a-b`, `*/n`, `a/n` (from `a` to the field's end) or `a-b/n`; entries are
//!   separated by commas; names (`jan`, `monday`, ...) are case-insensitive. Years run
//!   from 1970 to 2099 and nothing launches after 2099.
//! - **Days.** Day-of-week numbers run 0-7, with 0 and 7 both Sunday. When both the
//!   day-of-month and the day-of-week field are restricted (anything but a lone `*` or
//!   `?`), a day matches when either does, as in crontab.
//! - **cronexpr's quirks, kept** because Nomad launches by them: a day-of-week range that
//!   ends in 7 or Sunday stops at Saturday (`5-7` is Friday and Saturday only; `1-7/2` is
//!   Monday, Wednesday, Friday), and a two-digit day-of-week number (`01`...`07`) means
//!   Sunday.
//! - **Time zones.** An empty `TimeZone` means UTC; otherwise it is an IANA name looked up
//!   (case-sensitively, as Go does on Linux) in the system time zone database. A wall
//!   clock time that a daylight-saving change skips never launches; one that it repeats
//!   launches at both instants, as with cronexpr. Right at a change made at midnight
//!   (America/Santiago, Asia/Beirut, America/Havana...) or by or at a part of an hour
//!   (Australia/Lord_Howe, Pacific/Chatham), cronexpr's own search can return a time the
//!   spec does not match or skip one it does; this gives the first that matches.
//!
//! The search itself is jiff-cron's: the spec is read here into the values each field
//! matches, by cronexpr's rules, and written out as jiff-cron expressions (seconds first,
//! explicit years, day-of-week names), which are searched one stretch of constant UTC
//! offset at a time. cronexpr's `L`, `W`, `LW`, `nL` and `n#k` have no jiff-cron
//! equivalent: a spec using them gives [`ScheduleError::Unsupported`] rather than a
//! wrong time. `ProhibitOverlap` does not change when the next launch is due (Nomad skips
//! a launch while an earlier child still runs), so it is not read.
//!
//! Everything here is pure but for the time zone lookup.

use std::collections::BTreeSet;
use std::str::FromStr;

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};
use jiff_cron::Schedule;
use serde_json::{Map, Value};

/// The first year cronexpr knows.
const FIRST_YEAR: u16 = 1970;
/// The last year cronexpr knows: nothing launches after it.
const LAST_YEAR: u16 = 2099;
/// Searches start no earlier than 1969-12-30T00:00:00Z (no zone is two days off UTC,
/// so no launch in 1970 can be earlier).
const EARLIEST_SECOND: i64 = -2 * 86_400;
/// Searches end at 2100-01-02T00:00:00Z, after the end of 2099 in every zone.
const LATEST_SECOND: i64 = 4_102_531_200;

/// Why no next launch could be computed. Each message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The `Periodic` value is neither an object nor null.
    #[error("the job's Periodic block must be a JSON object, not {0}")]
    NotAnObject(&'static str),
    /// A field of the block has the wrong JSON type.
    #[error("the Periodic block's {field} must be {expected}")]
    WrongType {
        /// The field, e.g. `Spec`.
        field: &'static str,
        /// What it must be, e.g. `a string`.
        expected: &'static str,
    },
    /// The block is enabled but has no spec.
    #[error(
        "the Periodic block is enabled but its Spec is empty: give it a cron spec such as \"*/15 * * * *\""
    )]
    MissingSpec,
    /// A `SpecType` other than `cron`.
    #[error("periodic SpecType {0:?} is not supported: Nomad evaluates only \"cron\" specs")]
    UnsupportedSpecType(String),
    /// The spec is not one cronexpr accepts (Nomad rejects it too).
    #[error("invalid cron spec {spec:?}: {reason}")]
    InvalidSpec {
        /// The spec as written.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The spec is valid for Nomad but uses a construct that cannot be evaluated here.
    #[error(
        "cron spec {spec:?} uses {construct} in its {field} field, which Nomad accepts but this operator cannot evaluate, so it shows no next launch; list the days explicitly to see one"
    )]
    Unsupported {
        /// The spec as written.
        spec: String,
        /// The cronexpr field name, e.g. `day-of-month`.
        field: &'static str,
        /// The construct, e.g. `L (the last day of the month)`.
        construct: String,
    },
    /// A field matches no value at all, so the spec can never launch.
    #[error(
        "cron spec {spec:?} can never launch: its {field} field matches no value (a range such as 5-2 runs backwards; write low-high, or two ranges to wrap around)"
    )]
    EmptyField {
        /// The spec as written.
        spec: String,
        /// The cronexpr field name (or names).
        field: &'static str,
    },
    /// The `TimeZone` is not one Nomad can load.
    #[error("invalid time zone {name:?} in the Periodic block: {reason}")]
    TimeZone {
        /// The name as written.
        name: String,
        /// Why it is refused.
        reason: String,
    },
    /// The search failed (a date out of range, or a translation jiff-cron refused).
    #[error("could not compute the next launch of cron spec {spec:?}: {reason}")]
    Evaluation {
        /// The spec as written.
        spec: String,
        /// What failed.
        reason: String,
    },
}

/// Whether `job` (a Nomad job as JSON) is periodic: it has a `Periodic` block, enabled
/// or not, as Nomad's `Job.IsPeriodic` says. A stopped or parameterized periodic job
/// launches nothing, whatever [`next_launch`] says of its block.
pub fn is_periodic(job: &Value) -> bool {
    job.get("Periodic").is_some_and(Value::is_object)
}

/// The first launch of a periodic job strictly after `after`, from its `Periodic` block
/// (the value of the job's `Periodic` field).
///
/// `Ok(None)` when the block is absent (null), disabled, or launches no more (its years
/// are past, or it falls after 2099). Missing fields default as Nomad's API does:
/// `Enabled` true, `SpecType` `cron`, `TimeZone` UTC.
pub fn next_launch(periodic: &Value, after: Timestamp) -> Result<Option<Timestamp>, ScheduleError> {
    let block = match periodic {
        Value::Null => return Ok(None),
        Value::Object(block) => block,
        other => return Err(ScheduleError::NotAnObject(json_kind(other))),
    };
    if !bool_field(block, "Enabled")?.unwrap_or(true) {
        return Ok(None);
    }
    let spec_type = str_field(block, "SpecType")?.unwrap_or("cron");
    if spec_type != "cron" {
        return Err(ScheduleError::UnsupportedSpecType(spec_type.to_owned()));
    }
    let spec = str_field(block, "Spec")?.unwrap_or("");
    if spec.is_empty() {
        return Err(ScheduleError::MissingSpec);
    }
    let cron = CronSpec::parse(spec)?;
    let time_zone = time_zone(str_field(block, "TimeZone")?.unwrap_or(""))?;
    let searches = cron
        .plans(spec)?
        .iter()
        .map(|plan| Search::new(plan, spec))
        .collect::<Result<Vec<_>, _>>()?;
    next_instant(&searches, &time_zone, after).map_err(|reason| ScheduleError::Evaluation {
        spec: spec.to_owned(),
        reason,
    })
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn bool_field(
    block: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<bool>, ScheduleError> {
    match block.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ScheduleError::WrongType {
            field,
            expected: "true or false",
        }),
    }
}

fn str_field<'a>(
    block: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, ScheduleError> {
    match block.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ScheduleError::WrongType {
            field,
            expected: "a string",
        }),
    }
}

/// The zone Nomad loads for `name` (Go's `time.LoadLocation`).
fn time_zone(name: &str) -> Result<TimeZone, ScheduleError> {
    let refuse = |reason: String| ScheduleError::TimeZone {
        name: name.to_owned(),
        reason,
    };
    match name {
        "" | "UTC" => return Ok(TimeZone::UTC),
        "Local" => {
            return Err(refuse(
                "\"Local\" is the Nomad server's own time zone, which the operator cannot know; name an IANA zone such as \"America/New_York\"".to_owned(),
            ));
        }
        _ => {}
    }
    let zone = TimeZone::get(name).map_err(|e| {
        refuse(format!(
            "{e}; use an IANA time zone name such as \"America/New_York\" or \"Europe/Berlin\""
        ))
    })?;
    if zone.is_unknown() {
        return Err(refuse(
            "it is not a real time zone; use an IANA time zone name such as \"America/New_York\""
                .to_owned(),
        ));
    }
    match zone.iana_name() {
        Some(found) if found != name => Err(refuse(format!(
            "time zone names are case-sensitive for Nomad: did you mean {found:?}?"
        ))),
        _ => Ok(zone),
    }
}

/// One cronexpr field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
    Year,
}

impl Field {
    /// cronexpr's name for the field.
    fn name(self) -> &'static str {
        match self {
            Field::Second => "second",
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
            Field::Year => "year",
        }
    }

    fn min(self) -> u16 {
        match self {
            Field::Second | Field::Minute | Field::Hour | Field::DayOfWeek => 0,
            Field::DayOfMonth | Field::Month => 1,
            Field::Year => FIRST_YEAR,
        }
    }

    /// The field's last value (Saturday, 6, for the day of week).
    fn max(self) -> u16 {
        match self {
            Field::Second | Field::Minute => 59,
            Field::Hour => 23,
            Field::DayOfMonth => 31,
            Field::Month => 12,
            Field::DayOfWeek => 6,
            Field::Year => LAST_YEAR,
        }
    }

    /// The value a lowercased token stands for, if cronexpr takes it as one.
    fn value(self, token: &str) -> Option<u16> {
        if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) {
            let n: u16 = token.parse().ok()?;
            return match self {
                Field::Year => {
                    (token.len() == 4 && (FIRST_YEAR..=LAST_YEAR).contains(&n)).then_some(n)
                }
                _ if token.len() > 2 => None,
                // cronexpr takes 0-7 and 00-07, then maps 7 to Sunday (0) and, having no
                // entry for 00-07 in its table, those too.
                Field::DayOfWeek => match n {
                    0..=6 if token.len() == 1 => Some(n),
                    0..=7 => Some(0),
                    _ => None,
                },
                Field::DayOfMonth | Field::Month if n == 0 => None,
                _ => (n <= self.max()).then_some(n),
            };
        }
        let names: &[&str] = match self {
            Field::Month => &[
                "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
            ],
            Field::DayOfWeek => &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
            _ => return None,
        };
        let full: &[&str] = match self {
            Field::Month => &[
                "january",
                "february",
                "march",
                "april",
                "may",
                "june",
                "july",
                "august",
                "september",
                "october",
                "november",
                "december",
            ],
            _ => &[
                "sunday",
                "monday",
                "tuesday",
                "wednesday",
                "thursday",
                "friday",
                "saturday",
            ],
        };
        let index = names
            .iter()
            .position(|n| *n == token)
            .or_else(|| full.iter().position(|n| *n == token))?;
        Some(self.min() + u16::try_from(index).ok()?)
    }
}

/// A step (`/n`) as cronexpr reads it: digits it has in its number table, else 0.
fn step_value(digits: &str) -> Option<u16> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u16 = match digits.len() {
        1 | 2 => digits.parse().ok()?,
        4 => digits.parse().ok()?,
        _ => return Some(0),
    };
    let known = match digits.len() {
        4 => (FIRST_YEAR..=LAST_YEAR).contains(&n),
        _ => n <= 59,
    };
    Some(if known { n } else { 0 })
}

/// One comma-separated entry of a field.
#[derive(Debug)]
enum Directive {
    All,
    One(u16),
    Span {
        first: u16,
        last: u16,
        step: u16,
    },
    /// Not a plain entry: `L`, `15W`, `5#3`..., or a syntax error.
    Other(String),
}

/// Reads a field's entries as cronexpr's `genericFieldParse` does. The error is its
/// reason text.
fn parse_entries(text: &str, field: Field) -> Result<Vec<Directive>, String> {
    let entries: Vec<&str> = text.split(',').filter(|e| !e.is_empty()).collect();
    if entries.is_empty() {
        return Err(format!("{} field: missing directive", field.name()));
    }
    let checked_step = |entry: &str, digits: &str| -> Result<Option<u16>, String> {
        match step_value(digits) {
            None => Ok(None),
            Some(step) if (1..=field.max()).contains(&step) => Ok(Some(step)),
            Some(_) => Err(format!(
                "invalid interval {entry} in the {} field: the step must be 1 to {}",
                field.name(),
                field.max()
            )),
        }
    };
    let range = |text: &str| -> Option<(u16, u16)> {
        let (a, b) = text.split_once('-')?;
        Some((field.value(a)?, field.value(b)?))
    };
    let mut directives = Vec::with_capacity(entries.len());
    for entry in entries {
        let lower = entry.to_ascii_lowercase();
        let directive = if lower == "*" || lower == "?" {
            Directive::All
        } else if let Some(v) = field.value(&lower) {
            Directive::One(v)
        } else if let Some((first, last)) = range(&lower) {
            Directive::Span {
                first,
                last,
                step: 1,
            }
        } else if let Some((start, digits)) = lower.split_once('/') {
            // `*/n`, `a/n` (to the field's end) or `a-b/n`.
            let bounds = match start {
                "*" => Some((field.min(), field.max())),
                _ => field
                    .value(start)
                    .map(|first| (first, field.max()))
                    .or_else(|| range(start)),
            };
            match bounds {
                Some((first, last)) => match checked_step(&lower, digits)? {
                    Some(step) => Directive::Span { first, last, step },
                    None => Directive::Other(entry.to_owned()),
                },
                None => Directive::Other(entry.to_owned()),
            }
        } else {
            Directive::Other(entry.to_owned())
        };
        directives.push(directive);
    }
    Ok(directives)
}

fn populate(values: &mut BTreeSet<u16>, first: u16, last: u16, step: u16) {
    let mut v = first;
    while v <= last {
        values.insert(v);
        v += step;
    }
}

/// A day field: the values it lists and whether it restricts the day at all.
#[derive(Debug, Default)]
struct DayField {
    values: BTreeSet<u16>,
    restricted: bool,
}

/// A spec read as cronexpr reads it: the values each field matches.
#[derive(Debug)]
struct CronSpec {
    seconds: BTreeSet<u16>,
    minutes: BTreeSet<u16>,
    hours: BTreeSet<u16>,
    days_of_month: DayField,
    months: BTreeSet<u16>,
    days_of_week: DayField,
    years: BTreeSet<u16>,
}

/// What a parse found that cronexpr accepts but jiff-cron cannot express.
type Unsupported = Option<(Field, String)>;

impl CronSpec {
    fn parse(spec: &str) -> Result<CronSpec, ScheduleError> {
        let invalid = |reason: String| ScheduleError::InvalidSpec {
            spec: spec.to_owned(),
            reason,
        };
        let mut line = spec.to_owned();
        for (alias, expansion) in [
            ("@yearly", "0 0 0 1 1 * *"),
            ("@annually", "0 0 0 1 1 * *"),
            ("@monthly", "0 0 0 1 * * *"),
            ("@weekly", "0 0 0 * * 0 *"),
            ("@daily", "0 0 0 * * * *"),
            ("@hourly", "0 0 * * * * *"),
        ] {
            line = line.replace(alias, expansion);
        }
        let fields: Vec<&str> = line.split_ascii_whitespace().take(7).collect();
        if fields.len() < 5 {
            return Err(invalid(
                "missing field(s): a spec has 5 fields (minute hour day-of-month month day-of-week), 6 (then year) or 7 (second first)".to_owned(),
            ));
        }
        let (second, rest) = match fields.len() {
            7 => (Some(fields[0]), &fields[1..]),
            _ => (None, &fields[..]),
        };
        let mut unsupported: Unsupported = None;
        let seconds = match second {
            Some(text) => generic(text, Field::Second).map_err(invalid)?,
            None => BTreeSet::from([0]),
        };
        let minutes = generic(rest[0], Field::Minute).map_err(invalid)?;
        let hours = generic(rest[1], Field::Hour).map_err(invalid)?;
        let days_of_month = day_of_month(rest[2], &mut unsupported).map_err(invalid)?;
        let months = generic(rest[3], Field::Month).map_err(invalid)?;
        let days_of_week = day_of_week(rest[4], &mut unsupported).map_err(invalid)?;
        let years = match rest.get(5) {
            Some(text) => generic(text, Field::Year).map_err(invalid)?,
            None => (FIRST_YEAR..=LAST_YEAR).collect(),
        };
        if let Some((field, construct)) = unsupported {
            return Err(ScheduleError::Unsupported {
                spec: spec.to_owned(),
                field: field.name(),
                construct,
            });
        }
        Ok(CronSpec {
            seconds,
            minutes,
            hours,
            days_of_month,
            months,
            days_of_week,
            years,
        })
    }

    /// The searches whose earliest match is this spec's next launch: one, or two when
    /// both day fields are restricted (cronexpr takes a day either matches).
    fn plans(&self, spec: &str) -> Result<Vec<Plan>, ScheduleError> {
        let empty = |field: &'static str| ScheduleError::EmptyField {
            spec: spec.to_owned(),
            field,
        };
        for (field, values) in [
            (Field::Second, &self.seconds),
            (Field::Minute, &self.minutes),
            (Field::Hour, &self.hours),
            (Field::Month, &self.months),
            (Field::Year, &self.years),
        ] {
            if values.is_empty() {
                return Err(empty(field.name()));
            }
        }
        let numbers = |values: &BTreeSet<u16>| render(values, |v| v.to_string());
        let (second, minute, hour, month, year) = (
            numbers(&self.seconds),
            numbers(&self.minutes),
            numbers(&self.hours),
            numbers(&self.months),
            numbers(&self.years),
        );
        let dom = &self.days_of_month;
        let dow = &self.days_of_week;
        let on_days = |days_of_month: &str| {
            Plan::Times(format!(
                "{second} {minute} {hour} {days_of_month} {month} * {year}"
            ))
        };
        let on_weekdays = || Plan::Weekdays {
            times: format!("{second} {minute} {hour} * {month} * {year}"),
            days: format!(
                "0 0 0 * {month} {} {year}",
                render_days_of_week(&dow.values)
            ),
        };
        match (dom.restricted, dow.restricted) {
            (false, false) => Ok(vec![on_days("*")]),
            (true, false) if dom.values.is_empty() => Err(empty(Field::DayOfMonth.name())),
            (true, false) => Ok(vec![on_days(&numbers(&dom.values))]),
            (false, true) if dow.values.is_empty() => Err(empty(Field::DayOfWeek.name())),
            (false, true) => Ok(vec![on_weekdays()]),
            (true, true) => {
                let mut plans = Vec::new();
                if !dom.values.is_empty() {
                    plans.push(on_days(&numbers(&dom.values)));
                }
                if !dow.values.is_empty() {
                    plans.push(on_weekdays());
                }
                if plans.is_empty() {
                    return Err(empty("day-of-month and day-of-week"));
                }
                Ok(plans)
            }
        }
    }
}

/// A search for a spec's times, as jiff-cron expressions.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Plan {
    /// Every day, or the listed days of the month.
    Times(String),
    /// Days picked by weekday: `times` holds the times of day (on every day), `days` the
    /// midnights of the matching days. (One expression holding both would make jiff-cron
    /// step through every time of day on each wrong weekday.)
    Weekdays { times: String, days: String },
}

/// A [`Plan`], parsed.
struct Search {
    /// The times to consider.
    times: Schedule,
    /// For [`Plan::Weekdays`], the midnights of the days the times must fall on.
    days: Option<Schedule>,
}

impl Search {
    fn new(plan: &Plan, spec: &str) -> Result<Search, ScheduleError> {
        let parse = |expression: &str| {
            Schedule::from_str(expression).map_err(|e| ScheduleError::Evaluation {
                spec: spec.to_owned(),
                reason: format!("jiff-cron refused {expression:?}: {e}"),
            })
        };
        Ok(match plan {
            Plan::Times(times) => Search {
                times: parse(times)?,
                days: None,
            },
            Plan::Weekdays { times, days } => Search {
                times: parse(times)?,
                days: Some(parse(days)?),
            },
        })
    }

    /// The first match strictly after `from`, on `from`'s (fixed-offset) clock.
    fn after(&self, from: &Zoned) -> Result<Option<Zoned>, String> {
        let Some(days) = &self.days else {
            return Ok(self.times.after(from.clone()).next());
        };
        let mut from = from.clone();
        loop {
            let Some(time) = self.times.after(from).next() else {
                return Ok(None);
            };
            let midnight = time.start_of_day().map_err(|e| e.to_string())?;
            if days.includes(midnight.clone()) {
                return Ok(Some(time));
            }
            // A wrong weekday: on to the last second before the next right one.
            let Some(day) = days.after(midnight).next() else {
                return Ok(None);
            };
            from = day.checked_sub(1.second()).map_err(|e| e.to_string())?;
        }
    }
}

/// A generic field (not a day field), as cronexpr's `genericFieldHandler` reads it:
/// the first `*` ends the field, whatever follows.
fn generic(text: &str, field: Field) -> Result<BTreeSet<u16>, String> {
    let mut values = BTreeSet::new();
    for directive in parse_entries(text, field)? {
        match directive {
            Directive::All => return Ok((field.min()..=field.max()).collect()),
            Directive::One(v) => {
                values.insert(v);
            }
            Directive::Span { first, last, step } => populate(&mut values, first, last, step),
            Directive::Other(entry) => {
                return Err(format!("syntax error in {} field: '{entry}'", field.name()));
            }
        }
    }
    Ok(values)
}

fn note(unsupported: &mut Unsupported, field: Field, construct: &str) {
    if unsupported.is_none() {
        *unsupported = Some((field, construct.to_owned()));
    }
}

fn day_of_month(text: &str, unsupported: &mut Unsupported) -> Result<DayField, String> {
    let field = Field::DayOfMonth;
    let mut day = DayField {
        restricted: true,
        ..DayField::default()
    };
    for directive in parse_entries(text, field)? {
        match directive {
            Directive::All => {
                populate(&mut day.values, field.min(), field.max(), 1);
                day.restricted = false;
            }
            Directive::One(v) => {
                day.values.insert(v);
            }
            Directive::Span { first, last, step } => populate(&mut day.values, first, last, step),
            Directive::Other(entry) => {
                let lower = entry.to_ascii_lowercase();
                if lower == "l" {
                    note(unsupported, field, "L (the last day of the month)");
                } else if lower == "lw" {
                    note(unsupported, field, "LW (the last weekday of the month)");
                } else if lower
                    .strip_suffix('w')
                    .is_some_and(|d| field.value(d).is_some())
                {
                    note(
                        unsupported,
                        field,
                        &format!("{entry} (the weekday nearest a day)"),
                    );
                } else {
                    return Err(format!("syntax error in day-of-month field: '{entry}'"));
                }
            }
        }
    }
    Ok(day)
}

fn day_of_week(text: &str, unsupported: &mut Unsupported) -> Result<DayField, String> {
    let field = Field::DayOfWeek;
    let mut day = DayField {
        restricted: true,
        ..DayField::default()
    };
    for directive in parse_entries(text, field)? {
        match directive {
            Directive::All => {
                populate(&mut day.values, field.min(), field.max(), 1);
                day.restricted = false;
            }
            Directive::One(v) => {
                day.values.insert(v);
            }
            Directive::Span {
                first,
                mut last,
                step,
            } => {
                // cronexpr's handling of a range ending in Sunday (7 or 0): up to Saturday.
                if last == 0 {
                    last = field.max();
                }
                populate(&mut day.values, first, last, step);
            }
            Directive::Other(entry) => {
                let lower = entry.to_ascii_lowercase();
                let nth = lower.split_once('#').is_some_and(|(d, n)| {
                    field.value(d).is_some() && matches!(n, "1" | "2" | "3" | "4" | "5")
                });
                if nth {
                    note(
                        unsupported,
                        field,
                        &format!("{entry} (the nth such weekday of the month)"),
                    );
                } else if lower
                    .strip_suffix('l')
                    .is_some_and(|d| field.value(d).is_some())
                {
                    note(
                        unsupported,
                        field,
                        &format!("{entry} (the last such weekday of the month)"),
                    );
                } else {
                    return Err(format!("syntax error in day-of-week field: '{entry}'"));
                }
            }
        }
    }
    Ok(day)
}

/// `values` as a jiff-cron list: runs as `a-b`, the rest one by one.
fn render(values: &BTreeSet<u16>, show: impl Fn(u16) -> String) -> String {
    let mut parts = Vec::new();
    let mut iter = values.iter().copied().peekable();
    while let Some(first) = iter.next() {
        let mut last = first;
        while iter.peek() == Some(&(last + 1)) {
            last += 1;
            iter.next();
        }
        parts.push(match last - first {
            0 => show(first),
            1 => format!("{},{}", show(first), show(last)),
            _ => format!("{}-{}", show(first), show(last)),
        });
    }
    parts.join(",")
}

/// cronexpr's days of week (0 = Sunday) as jiff-cron names, which cannot be misread
/// (jiff-cron's numbers run 1-7 from Sunday).
fn render_days_of_week(values: &BTreeSet<u16>) -> String {
    const NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    values
        .iter()
        .map(|&v| NAMES[usize::from(v)])
        .collect::<Vec<_>>()
        .join(",")
}

/// The first instant strictly after `after` at which any of `searches` matches the wall
/// clock of `zone`. Searched one stretch of constant UTC offset at a time, each with
/// jiff-cron in that fixed offset: wall times a transition skips are in no stretch, and
/// those it repeats are in two.
fn next_instant(
    searches: &[Search],
    zone: &TimeZone,
    after: Timestamp,
) -> Result<Option<Timestamp>, String> {
    let instant = |second: i64| Timestamp::from_second(second).map_err(|e| e.to_string());
    let floor = after.as_second() - i64::from(after.subsec_nanosecond() < 0);
    // The first instant of the stretch being searched that may launch.
    let mut begin = floor.max(EARLIEST_SECOND) + 1;
    while begin <= LATEST_SECOND {
        let begin_at = instant(begin)?;
        let offset = zone.to_offset(begin_at);
        let end = zone
            .following(begin_at)
            .map(|t| t.timestamp())
            .find(|t| *t > begin_at);
        let start = instant(begin - 1)?.to_zoned(TimeZone::fixed(offset));
        let mut found = None;
        for search in searches {
            if let Some(zoned) = search.after(&start)? {
                let t = zoned.timestamp();
                found = Some(found.map_or(t, |f: Timestamp| f.min(t)));
            }
        }
        match (found, end) {
            (Some(t), Some(end)) if t < end => return Ok(Some(t)),
            (Some(t), None) => return Ok(Some(t)),
            (_, Some(end)) => {
                // A transition's instant is a whole second; round up should one not be.
                begin = end.as_second() + i64::from(end.subsec_nanosecond() > 0);
            }
            (None, None) => return Ok(None),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("a test timestamp")
    }

    fn block(spec: &str, time_zone: &str) -> Value {
        json!({
            "Enabled": true,
            "SpecType": "cron",
            "Spec": spec,
            "ProhibitOverlap": false,
            "TimeZone": time_zone,
        })
    }

    /// The next launch of `spec` in `time_zone` after `after`, as RFC 3339 in UTC.
    fn next(spec: &str, time_zone: &str, after: &str) -> Option<String> {
        next_launch(&block(spec, time_zone), at(after))
            .unwrap_or_else(|e| panic!("{spec:?} in {time_zone:?}: {e}"))
            .map(|t| t.to_string())
    }

    /// The next `count` launches, each after the one before.
    fn launches(spec: &str, time_zone: &str, after: &str, count: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut from = at(after);
        for _ in 0..count {
            match next_launch(&block(spec, time_zone), from)
                .unwrap_or_else(|e| panic!("{spec:?} in {time_zone:?}: {e}"))
            {
                Some(t) => {
                    out.push(t.to_string());
                    from = t;
                }
                None => break,
            }
        }
        out
    }

    fn error(spec: &str, time_zone: &str) -> ScheduleError {
        match next_launch(&block(spec, time_zone), at("2021-06-01T00:00:00Z")) {
            Err(e) => e,
            Ok(t) => panic!("{spec:?} in {time_zone:?} gave {t:?}, not an error"),
        }
    }

    #[test]
    fn every_fifteen_minutes() {
        let got = launches("*/15 * * * *", "UTC", "2021-06-01T10:07:30Z", 4);
        assert_eq!(
            got,
            [
                "2021-06-01T10:15:00Z",
                "2021-06-01T10:30:00Z",
                "2021-06-01T10:45:00Z",
                "2021-06-01T11:00:00Z",
            ]
        );
        // Strictly after: a launch instant is not its own next launch, not even with
        // a fraction of a second on top.
        assert_eq!(
            next("*/15 * * * *", "", "2021-06-01T10:15:00Z").as_deref(),
            Some("2021-06-01T10:30:00Z")
        );
        assert_eq!(
            next("*/15 * * * *", "", "2021-06-01T10:14:59.999Z").as_deref(),
            Some("2021-06-01T10:15:00Z")
        );
    }

    #[test]
    fn daily_at_half_past_two_in_new_york_across_both_dst_changes() {
        // 2021-03-14 02:30 does not exist in New York: that day has no launch.
        assert_eq!(
            launches("30 2 * * *", "America/New_York", "2021-03-12T12:00:00Z", 3),
            [
                "2021-03-13T07:30:00Z", // 02:30 EST
                "2021-03-15T06:30:00Z", // 02:30 EDT
                "2021-03-16T06:30:00Z",
            ]
        );
        // 2021-11-07 02:30 exists once, after the repeated hour.
        assert_eq!(
            launches("30 2 * * *", "America/New_York", "2021-11-05T12:00:00Z", 3),
            [
                "2021-11-06T06:30:00Z", // 02:30 EDT
                "2021-11-07T07:30:00Z", // 02:30 EST
                "2021-11-08T07:30:00Z",
            ]
        );
    }

    #[test]
    fn a_repeated_wall_time_launches_twice() {
        assert_eq!(
            launches("30 1 * * *", "America/New_York", "2021-11-06T12:00:00Z", 3),
            [
                "2021-11-07T05:30:00Z", // 01:30 EDT
                "2021-11-07T06:30:00Z", // 01:30 EST
                "2021-11-08T06:30:00Z",
            ]
        );
        // Between the two 01:30s, 01:40 EDT comes before 01:30 EST.
        assert_eq!(
            next("30,40 1 * * *", "America/New_York", "2021-11-07T05:35:00Z").as_deref(),
            Some("2021-11-07T05:40:00Z")
        );
        // Hourly keeps an hour apart through both changes.
        assert_eq!(
            launches("0 * * * *", "America/New_York", "2021-11-07T04:30:00Z", 4),
            [
                "2021-11-07T05:00:00Z",
                "2021-11-07T06:00:00Z",
                "2021-11-07T07:00:00Z",
                "2021-11-07T08:00:00Z",
            ]
        );
        assert_eq!(
            launches("0 * * * *", "America/New_York", "2021-03-14T05:30:00Z", 3),
            [
                "2021-03-14T06:00:00Z", // 01:00 EST
                "2021-03-14T07:00:00Z", // 03:00 EDT
                "2021-03-14T08:00:00Z",
            ]
        );
    }

    #[test]
    fn hourly_and_weekly_and_the_other_aliases() {
        assert_eq!(
            next("@hourly", "UTC", "2021-06-01T10:07:30Z").as_deref(),
            Some("2021-06-01T11:00:00Z")
        );
        // 2021-06-01 is a Tuesday; @weekly is Sunday midnight.
        assert_eq!(
            launches("@weekly", "UTC", "2021-06-01T10:07:30Z", 2),
            ["2021-06-06T00:00:00Z", "2021-06-13T00:00:00Z"]
        );
        assert_eq!(
            next("@daily", "UTC", "2021-06-01T10:07:30Z").as_deref(),
            Some("2021-06-02T00:00:00Z")
        );
        assert_eq!(
            next("@monthly", "UTC", "2021-06-01T10:07:30Z").as_deref(),
            Some("2021-07-01T00:00:00Z")
        );
        for alias in ["@yearly", "@annually"] {
            assert_eq!(
                next(alias, "UTC", "2021-06-01T10:07:30Z").as_deref(),
                Some("2022-01-01T00:00:00Z")
            );
        }
        // In a zone, at that zone's midnight.
        assert_eq!(
            next("@daily", "America/New_York", "2021-06-01T10:07:30Z").as_deref(),
            Some("2021-06-02T04:00:00Z")
        );
    }

    #[test]
    fn sunday_is_zero_and_seven() {
        // From Tuesday 2021-06-01.
        for dow in ["0", "7", "sun", "SUNDAY"] {
            assert_eq!(
                next(&format!("0 9 * * {dow}"), "UTC", "2021-06-01T10:00:00Z").as_deref(),
                Some("2021-06-06T09:00:00Z"),
                "day of week {dow}"
            );
        }
        assert_eq!(
            next("0 9 * * 6", "UTC", "2021-06-01T10:00:00Z").as_deref(),
            Some("2021-06-05T09:00:00Z")
        );
    }

    #[test]
    fn weekdays_one_to_five() {
        // From Friday 2021-06-04 10:00: Monday.
        for dow in ["1-5", "mon-fri", "1,2,3,4,5"] {
            assert_eq!(
                launches(&format!("0 9 * * {dow}"), "UTC", "2021-06-04T08:00:00Z", 3),
                [
                    "2021-06-04T09:00:00Z",
                    "2021-06-07T09:00:00Z",
                    "2021-06-08T09:00:00Z",
                ],
                "day of week {dow}"
            );
        }
    }

    #[test]
    fn every_second_day_of_the_week_from_sunday() {
        // */2 is Sunday, Tuesday, Thursday, Saturday; from Tuesday 2021-06-01.
        assert_eq!(
            launches("0 0 * * */2", "UTC", "2021-06-01T00:00:00Z", 4),
            [
                "2021-06-03T00:00:00Z",
                "2021-06-05T00:00:00Z",
                "2021-06-06T00:00:00Z",
                "2021-06-08T00:00:00Z",
            ]
        );
        // 1/2 runs to Saturday: Monday, Wednesday, Friday.
        assert_eq!(
            launches("0 0 * * 1/2", "UTC", "2021-06-01T00:00:00Z", 3),
            [
                "2021-06-02T00:00:00Z",
                "2021-06-04T00:00:00Z",
                "2021-06-07T00:00:00Z",
            ]
        );
    }

    #[test]
    fn cronexpr_quirks_are_kept() {
        // A range ending in 7 stops at Saturday: Friday 2021-06-04, Saturday, then the
        // next Friday (no Sunday).
        assert_eq!(
            launches("0 0 * * 5-7", "UTC", "2021-06-03T12:00:00Z", 3),
            [
                "2021-06-04T00:00:00Z",
                "2021-06-05T00:00:00Z",
                "2021-06-11T00:00:00Z",
            ]
        );
        // A two-digit day of week is Sunday.
        assert_eq!(
            next("0 0 * * 05", "UTC", "2021-06-01T00:00:00Z").as_deref(),
            Some("2021-06-06T00:00:00Z")
        );
        // A * ends a field; what follows it is not read.
        assert_eq!(
            next("*,nonsense 3 * * *", "UTC", "2021-06-01T00:00:00Z").as_deref(),
            Some("2021-06-01T03:00:00Z")
        );
        // Fields past the seventh are ignored.
        assert_eq!(
            next("0 0 3 * * * * extra", "UTC", "2021-06-01T00:00:00Z").as_deref(),
            Some("2021-06-01T03:00:00Z")
        );
    }

    #[test]
    fn a_day_matches_when_either_day_field_does() {
        // The 13th, or any Friday: from Wednesday 2021-09-01, Friday the 3rd and 10th,
        // Monday the 13th, Friday the 17th.
        assert_eq!(
            launches("0 0 13 * 5", "UTC", "2021-09-01T00:00:00Z", 4),
            [
                "2021-09-03T00:00:00Z",
                "2021-09-10T00:00:00Z",
                "2021-09-13T00:00:00Z",
                "2021-09-17T00:00:00Z",
            ]
        );
        // A * in either field leaves the other alone.
        assert_eq!(
            next("0 0 13 * *", "UTC", "2021-08-01T00:00:00Z").as_deref(),
            Some("2021-08-13T00:00:00Z")
        );
        assert_eq!(
            next("0 0 ? * fri", "UTC", "2021-08-01T00:00:00Z").as_deref(),
            Some("2021-08-06T00:00:00Z")
        );
    }

    #[test]
    fn six_and_seven_field_forms() {
        // Six fields: the sixth is the year.
        assert_eq!(
            next("0 12 1 1 * 2030", "UTC", "2021-06-01T00:00:00Z").as_deref(),
            Some("2030-01-01T12:00:00Z")
        );
        // Seven: seconds first.
        assert_eq!(
            next("30 0 12 1 1 * 2030", "UTC", "2021-06-01T00:00:00Z").as_deref(),
            Some("2030-01-01T12:00:30Z")
        );
        assert_eq!(
            launches("*/20 * * * * * *", "UTC", "2021-06-01T10:00:05Z", 3),
            [
                "2021-06-01T10:00:20Z",
                "2021-06-01T10:00:40Z",
                "2021-06-01T10:01:00Z",
            ]
        );
        // Names, leading zeros, lists and ranges with steps.
        assert_eq!(
            launches(
                "0 05 1-10/4 jan,JUL * 2022-2023",
                "UTC",
                "2021-06-01T00:00:00Z",
                4
            ),
            [
                "2022-01-01T05:00:00Z",
                "2022-01-05T05:00:00Z",
                "2022-01-09T05:00:00Z",
                "2022-07-01T05:00:00Z",
            ]
        );
    }

    #[test]
    fn nothing_after_the_last_year() {
        assert_eq!(next("0 0 1 1 * 2020", "UTC", "2021-06-01T00:00:00Z"), None);
        assert_eq!(
            next("0 0 1 1 * 2020", "America/New_York", "2021-06-01T00:00:00Z"),
            None
        );
        // cronexpr's years end with 2099.
        assert_eq!(
            next("@yearly", "UTC", "2098-06-01T00:00:00Z").as_deref(),
            Some("2099-01-01T00:00:00Z")
        );
        assert_eq!(next("@yearly", "UTC", "2099-06-01T00:00:00Z"), None);
        assert_eq!(
            next("@hourly", "Europe/Berlin", "2400-01-01T00:00:00Z"),
            None
        );
        // A day that never comes.
        assert_eq!(
            next("0 0 30 2 *", "America/New_York", "2021-06-01T00:00:00Z"),
            None
        );
        // Before 1970, the first launch is in 1970.
        assert_eq!(
            next("@yearly", "UTC", "1960-06-01T00:00:00Z").as_deref(),
            Some("1970-01-01T00:00:00Z")
        );
    }

    #[test]
    fn absent_or_disabled_blocks_launch_nothing() {
        let after = at("2021-06-01T00:00:00Z");
        assert_eq!(next_launch(&Value::Null, after), Ok(None));
        let mut disabled = block("*/15 * * * *", "UTC");
        disabled["Enabled"] = json!(false);
        assert_eq!(next_launch(&disabled, after), Ok(None));
        // A disabled block is not checked further.
        let mut broken = block("not a spec", "Mars/Olympus");
        broken["Enabled"] = json!(false);
        assert_eq!(next_launch(&broken, after), Ok(None));
        // Missing fields default as in Nomad's API.
        assert_eq!(
            next_launch(&json!({"Spec": "@hourly"}), after),
            Ok(Some(at("2021-06-01T01:00:00Z")))
        );
    }

    #[test]
    fn is_periodic_reads_the_periodic_block() {
        assert!(is_periodic(
            &json!({"ID": "a", "Periodic": block("@daily", "UTC")})
        ));
        assert!(is_periodic(&json!({"Periodic": {"Enabled": false}})));
        assert!(!is_periodic(&json!({"ID": "a", "Periodic": null})));
        assert!(!is_periodic(&json!({"ID": "a"})));
    }

    #[test]
    fn invalid_specs_are_errors() {
        for spec in [
            "61 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * * 13 *",
            "* * * * 8",
            "* * * *",
            "*/0 * * * *",
            "*/60 * * * *",
            "* * * * */7",
            "* * * * * 1969",
            "x * * * *",
            "@midnight",
            "1,,L * * * *",
        ] {
            assert!(
                matches!(error(spec, "UTC"), ScheduleError::InvalidSpec { .. }),
                "{spec:?}: {}",
                error(spec, "UTC")
            );
        }
        assert_eq!(
            error("61 * * * *", "UTC").to_string(),
            "invalid cron spec \"61 * * * *\": syntax error in minute field: '61'"
        );
        assert!(matches!(error("", "UTC"), ScheduleError::MissingSpec));
        assert!(matches!(
            next_launch(
                &json!({"Spec": "@daily", "SpecType": "_internal_test"}),
                at("2021-06-01T00:00:00Z")
            ),
            Err(ScheduleError::UnsupportedSpecType(_))
        ));
        assert_eq!(
            next_launch(&json!({"Spec": 5}), at("2021-06-01T00:00:00Z")),
            Err(ScheduleError::WrongType {
                field: "Spec",
                expected: "a string"
            })
        );
        assert_eq!(
            next_launch(&json!("@daily"), at("2021-06-01T00:00:00Z")),
            Err(ScheduleError::NotAnObject("a string"))
        );
        // A range that runs backwards leaves a field with nothing to match.
        assert_eq!(
            error("0 5-2 * * *", "UTC"),
            ScheduleError::EmptyField {
                spec: "0 5-2 * * *".to_owned(),
                field: "hour"
            }
        );
        assert!(matches!(
            error("0 0 5-2 * *", "UTC"),
            ScheduleError::EmptyField { .. }
        ));
        // ...unless the other day field matches days.
        assert_eq!(
            next("0 0 5-2 * mon", "UTC", "2021-06-01T00:00:00Z").as_deref(),
            Some("2021-06-07T00:00:00Z")
        );
    }

    #[test]
    fn last_nearest_and_nth_are_unsupported() {
        for (spec, field) in [
            ("0 0 L * *", "day-of-month"),
            ("0 0 l * *", "day-of-month"),
            ("0 0 LW * *", "day-of-month"),
            ("0 0 15W * *", "day-of-month"),
            ("0 0 * * 5L", "day-of-week"),
            ("0 0 * * fri#3", "day-of-week"),
            ("0 0 1,L * *", "day-of-month"),
        ] {
            match error(spec, "UTC") {
                ScheduleError::Unsupported { field: f, .. } => assert_eq!(f, field, "{spec:?}"),
                other => panic!("{spec:?}: {other}"),
            }
        }
        // A syntax error elsewhere makes the spec invalid, as Nomad says.
        assert!(matches!(
            error("0 0 L 13 *", "UTC"),
            ScheduleError::InvalidSpec { .. }
        ));
        assert!(matches!(
            error("0 0 * * 5#6", "UTC"),
            ScheduleError::InvalidSpec { .. }
        ));
    }

    #[test]
    fn time_zones_must_be_real_and_spelled_exactly() {
        for name in [
            "Mars/Olympus",
            "america/new_york",
            "Local",
            "utc",
            "Etc/Unknown",
        ] {
            assert!(
                matches!(error("@daily", name), ScheduleError::TimeZone { .. }),
                "{name:?}: {}",
                error("@daily", name)
            );
        }
        let message = error("@daily", "america/new_york").to_string();
        assert!(message.contains("\"America/New_York\""), "{message}");
        // A zone with no daylight saving time, and a link name.
        assert_eq!(
            next("0 9 * * *", "Asia/Kolkata", "2021-06-01T00:00:00Z").as_deref(),
            Some("2021-06-01T03:30:00Z")
        );
        assert_eq!(
            next("0 9 * * *", "US/Eastern", "2021-06-01T00:00:00Z").as_deref(),
            Some("2021-06-01T13:00:00Z")
        );
    }

    #[test]
    fn translation_to_jiff_cron() {
        let plans = |spec: &str| {
            CronSpec::parse(spec)
                .and_then(|c| c.plans(spec))
                .expect("a valid spec")
        };
        let times = |e: &str| Plan::Times(e.to_owned());
        let weekdays = |times: &str, days: &str| Plan::Weekdays {
            times: times.to_owned(),
            days: days.to_owned(),
        };
        assert_eq!(
            plans("*/15 * * * *"),
            [times("0 0,15,30,45 0-23 * 1-12 * 1970-2099")]
        );
        assert_eq!(
            plans("0 9 * * 7,1-5"),
            [weekdays(
                "0 0 9 * 1-12 * 1970-2099",
                "0 0 0 * 1-12 SUN,MON,TUE,WED,THU,FRI 1970-2099"
            )]
        );
        assert_eq!(
            plans("0 0 13 * 5"),
            [
                times("0 0 0 13 1-12 * 1970-2099"),
                weekdays("0 0 0 * 1-12 * 1970-2099", "0 0 0 * 1-12 FRI 1970-2099")
            ]
        );
        assert_eq!(
            plans("@weekly"),
            [weekdays(
                "0 0 0 * 1-12 * 1970-2099",
                "0 0 0 * 1-12 SUN 1970-2099"
            )]
        );
    }

    #[test]
    fn weekdays_with_every_second_are_found_at_once() {
        // Every second of Saturdays, from a Sunday: no walk through the week's seconds.
        assert_eq!(
            launches("* * * * * sat *", "UTC", "2021-06-06T00:00:00Z", 2),
            ["2021-06-12T00:00:00Z", "2021-06-12T00:00:01Z"]
        );
        assert_eq!(
            next("* * * * * sat *", "UTC", "2021-06-12T23:59:59Z").as_deref(),
            Some("2021-06-19T00:00:00Z")
        );
        assert_eq!(
            next("* * * * 5 6 */12", "Europe/London", "2026-11-20T17:16:41Z").as_deref(),
            Some("2030-05-03T23:00:00Z") // 00:00 BST on the first Saturday of May 2030
        );
    }
}
