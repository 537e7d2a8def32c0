//! Opening-hours calendars: is a service open at a given instant, why not, and when does that
//! change.
//!
//! A [`CalendarSpec`] is what an admin writes (weekly hours, a holiday region, closures,
//! overrides); [`Calendar::new`] validates it and [`Calendar::status`] judges one instant. The
//! calendar is pure — it never reads the clock; the caller passes the instant.
//!
//! # What decides a moment
//! All times in a spec are *wall-clock* times in the calendar's time zone (Europe/Berlin for
//! Jena). An instant is first turned into that wall-clock date and time, then, first match wins:
//! 1. a [`ClosurePeriod::Range`] containing it → closed ([`ClosedReason::Closure`]);
//! 2. an entry for that exact date: a [`ClosurePeriod::Date`] → closed, or an [`Override`] → its
//!    hours (an override opens even a holiday);
//! 3. a [`ClosurePeriod::EveryYear`] on that day (24 and 31 December) → closed;
//! 4. a public holiday of the [`HolidayRegion`] → closed ([`ClosedReason::PublicHoliday`]);
//! 5. the weekly hours of that weekday; outside them → closed ([`ClosedReason::OutsideHours`]).
//!
//! # Daylight saving time
//! Because the status is a function of the wall clock, it is defined for every UTC instant:
//! - spring forward (e.g. 2026-03-29, 02:00 → 03:00): wall-clock 02:00–02:59 never happens. An
//!   interval spanning the gap (01:00–04:00) is simply open throughout (two real hours); an
//!   interval that opens inside the gap (02:30–05:00) opens at 03:00, the first instant the clock
//!   shows 02:30 or later.
//! - fall back (e.g. 2026-10-25, 03:00 → 02:00): wall-clock 02:00–02:59 happens twice and both
//!   times are judged alike. An interval ending inside the repeated hour (00:00–02:30) therefore
//!   closes at 02:30 summer time and is open again from 02:00 to 02:30 winter time.
//!
//! `closes_at`/`opens_at` are the exact next instants at which the answer flips, found across
//! midnight (22:00–24:00 followed by 00:00–02:00 is one opening), weekends, holidays and DST
//! changes, looking at most [`SEARCH_HORIZON_DAYS`] ahead.
//!
//! # Example
//! ```
//! use chrono::{DateTime, Utc, Weekday};
//! use zentrale::rules::calendar::{
//!     Calendar, CalendarSpec, Closure, HolidayRegion, WeeklyHours, parse_hours,
//! };
//!
//! let weekly = WeeklyHours::new()
//!     .with(Weekday::Mon, [parse_hours("08:30-13:00")?])
//!     .with(Weekday::Tue, [parse_hours("08:30-18:00")?]);
//! let calendar = Calendar::new(CalendarSpec {
//!     timezone: chrono_tz::Europe::Berlin,
//!     weekly,
//!     public_holidays: Some(HolidayRegion::Thuringia),
//!     closures: vec![Closure::every_year(12, 24, "Heiligabend")],
//!     overrides: Vec::new(),
//! })?;
//! // Tuesday 29 September 2026, 18:00 in Berlin.
//! let at: DateTime<Utc> = "2026-09-29T16:00:00Z".parse()?;
//! assert_eq!(
//!     calendar.status(at).to_string(),
//!     "geschlossen: außerhalb der Öffnungszeiten; öffnet wieder Mo 05.10.2026 08:30"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, TimeZone, Timelike, Utc,
    Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

pub use super::holidays::HolidayRegion;
pub use explain::StatusText;
pub use parse::{
    ParseError, german_weekday, parse_hours, parse_hours_list, parse_weekday, parse_weekdays,
};
pub use validate::{CalendarError, HoursDay};
pub use wall_clock::WallClockTime;

mod explain;
mod parse;
mod validate;
mod wall_clock;

use parse::IntervalProblem;

/// How far [`Calendar::status`] looks ahead for the next opening or closing.
pub const SEARCH_HORIZON_DAYS: i64 = 400;

/// The zone in which [`Status`]'s `Display` shows times (the zone of every Jena calendar).
pub const DISPLAY_TIMEZONE: Tz = chrono_tz::Europe::Berlin;

const SECONDS_PER_DAY: u32 = 24 * 60 * 60;

// ---------------------------------------------------------------------------------------------
// The spec an admin writes
// ---------------------------------------------------------------------------------------------

/// Everything that defines when a service is open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CalendarSpec {
    /// The zone of every time in this spec (Europe/Berlin for Jena).
    pub timezone: Tz,
    pub weekly: WeeklyHours,
    /// Closed on this state's statutory public holidays; `None`: holidays are ordinary days.
    pub public_holidays: Option<HolidayRegion>,
    pub closures: Vec<Closure>,
    pub overrides: Vec<Override>,
}

/// One `[open, close)` opening interval of a day in wall-clock time, e.g. 08:30–13:00.
///
/// Always non-empty: the constructors refuse `close <= open`. Opening hours that run past
/// midnight are written as two intervals, `22:00-24:00` and `00:00-02:00` on the next day; the
/// calendar treats them as one opening.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OpeningInterval {
    /// Seconds after midnight, `open < close <= 86 400` (86 400 is 24:00).
    open: u32,
    close: u32,
}

impl OpeningInterval {
    /// The interval `[open, close)`; `close` must be after `open`. For "until midnight" use
    /// [`OpeningInterval::until_midnight`].
    pub fn new(open: NaiveTime, close: NaiveTime) -> Result<Self, ParseError> {
        Self::from_seconds(
            open.num_seconds_from_midnight(),
            close.num_seconds_from_midnight(),
        )
        .map_err(|problem| problem.into_error(format!("{}-{}", clock(open), clock(close))))
    }

    /// The interval from `open` to the end of the day (24:00).
    pub fn until_midnight(open: NaiveTime) -> Self {
        OpeningInterval {
            open: open.num_seconds_from_midnight(),
            close: SECONDS_PER_DAY,
        }
    }

    fn from_seconds(open: u32, close: u32) -> Result<Self, IntervalProblem> {
        if close == open {
            Err(IntervalProblem::Empty)
        } else if close < open {
            Err(IntervalProblem::Inverted)
        } else {
            Ok(OpeningInterval { open, close })
        }
    }

    /// The opening time.
    pub fn open(&self) -> NaiveTime {
        time_of_second(self.open)
    }

    /// The closing time; `None` means 24:00 (end of the day).
    pub fn close(&self) -> Option<NaiveTime> {
        (self.close < SECONDS_PER_DAY).then(|| time_of_second(self.close))
    }

    fn contains(&self, time: NaiveTime) -> bool {
        (self.open..self.close).contains(&time.num_seconds_from_midnight())
    }

    fn overlaps(&self, other: &OpeningInterval) -> bool {
        self.open < other.close && other.open < self.close
    }
}

impl fmt::Display for OpeningInterval {
    /// `08:30-13:00` (`24:00` for the end of the day); parses back with [`parse_hours`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            clock_of_second(self.open),
            clock_of_second(self.close)
        )
    }
}

impl FromStr for OpeningInterval {
    type Err = ParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        parse_hours(input)
    }
}

impl TryFrom<String> for OpeningInterval {
    type Error = ParseError;

    fn try_from(input: String) -> Result<Self, Self::Error> {
        parse_hours(&input)
    }
}

impl From<OpeningInterval> for String {
    fn from(interval: OpeningInterval) -> String {
        interval.to_string()
    }
}

/// Opening intervals for each weekday, as written; [`Calendar::new`] sorts and checks them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WeeklyHours {
    /// Indexed by `Weekday::num_days_from_monday`.
    days: [Vec<OpeningInterval>; 7],
}

impl WeeklyHours {
    /// No opening hours on any day.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `intervals` to `day` (builder style).
    pub fn with(
        mut self,
        day: Weekday,
        intervals: impl IntoIterator<Item = OpeningInterval>,
    ) -> Self {
        self.days[day_index(day)].extend(intervals);
        self
    }

    /// Adds one interval to `day`.
    pub fn add(&mut self, day: Weekday, interval: OpeningInterval) {
        self.days[day_index(day)].push(interval);
    }

    /// Replaces the intervals of `day`.
    pub fn set(&mut self, day: Weekday, intervals: Vec<OpeningInterval>) {
        self.days[day_index(day)] = intervals;
    }

    /// The intervals of `day` (sorted once the hours are part of a [`Calendar`]).
    pub fn on(&self, day: Weekday) -> &[OpeningInterval] {
        &self.days[day_index(day)]
    }
}

/// A time the service is closed regardless of its weekly hours, with the label callers hear
/// about ("Heiligabend", "Betriebsversammlung").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closure {
    pub period: ClosurePeriod,
    pub label: String,
}

/// When a [`Closure`] applies; dates and times are wall-clock in the calendar's zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClosurePeriod {
    /// One whole date.
    Date(NaiveDate),
    /// The same day every year (24 December). An [`Override`] on a particular date wins over it.
    EveryYear { month: u32, day: u32 },
    /// From `from` (inclusive) until `until` (exclusive); may span days. Wins over everything.
    Range {
        from: NaiveDateTime,
        until: NaiveDateTime,
    },
}

impl Closure {
    /// Closed all day on `date`.
    pub fn on(date: NaiveDate, label: impl Into<String>) -> Self {
        Self::new(ClosurePeriod::Date(date), label)
    }

    /// Closed all day on `day`.`month`. every year.
    pub fn every_year(month: u32, day: u32, label: impl Into<String>) -> Self {
        Self::new(ClosurePeriod::EveryYear { month, day }, label)
    }

    /// Closed from `from` until (excluding) `until`.
    pub fn between(from: NaiveDateTime, until: NaiveDateTime, label: impl Into<String>) -> Self {
        Self::new(ClosurePeriod::Range { from, until }, label)
    }

    fn new(period: ClosurePeriod, label: impl Into<String>) -> Self {
        Closure {
            period,
            label: label.into(),
        }
    }
}

/// Special hours for one date; wins over the weekly hours, holidays and yearly closures (but
/// not over a closure [`ClosurePeriod::Range`]). To close a whole date, use a [`Closure`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override {
    pub date: NaiveDate,
    pub hours: Vec<OpeningInterval>,
    pub label: String,
}

// ---------------------------------------------------------------------------------------------
// The validated calendar
// ---------------------------------------------------------------------------------------------

/// A validated [`CalendarSpec`], ready to judge instants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Calendar {
    /// The spec, with every day's intervals sorted.
    spec: CalendarSpec,
    /// Dated closures and overrides by date (at most one per date, checked).
    dated: BTreeMap<NaiveDate, DatedEntry>,
    /// Yearly closures by (month, day): index into `spec.closures`.
    yearly: BTreeMap<(u32, u32), usize>,
    /// Indices of the `Range` closures in `spec.closures`.
    ranges: Vec<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DatedEntry {
    Closure(usize),
    Override(usize),
}

/// Whether a service is open at an instant, and until when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Status {
    /// Open; `closes_at` is the first instant at which it is closed. If no closing lies within
    /// [`SEARCH_HORIZON_DAYS`] (a calendar open around the clock), it is the end of that horizon.
    Open { closes_at: DateTime<Utc> },
    /// Closed; `opens_at` is the first instant at which it is open, `None` if it does not open
    /// within [`SEARCH_HORIZON_DAYS`].
    Closed {
        reason: ClosedReason,
        opens_at: Option<DateTime<Utc>>,
    },
}

impl Status {
    pub fn is_open(&self) -> bool {
        matches!(self, Status::Open { .. })
    }
}

/// Why a calendar is closed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum ClosedReason {
    /// Outside the day's opening hours (or a day without any).
    OutsideHours,
    /// A statutory public holiday, by its German name ("Karfreitag").
    PublicHoliday(String),
    /// A closure, by its label.
    Closure(String),
}

impl Calendar {
    /// Validates `spec`; fails with the first of [`CalendarSpec::problems`].
    pub fn new(mut spec: CalendarSpec) -> Result<Calendar, CalendarError> {
        if let Some(problem) = spec.problems().into_iter().next() {
            return Err(problem);
        }
        for day in &mut spec.weekly.days {
            day.sort();
        }
        for special in &mut spec.overrides {
            special.hours.sort();
        }
        let mut dated = BTreeMap::new();
        let mut yearly = BTreeMap::new();
        let mut ranges = Vec::new();
        for (index, closure) in spec.closures.iter().enumerate() {
            match closure.period {
                ClosurePeriod::Date(date) => {
                    dated.insert(date, DatedEntry::Closure(index));
                }
                ClosurePeriod::EveryYear { month, day } => {
                    yearly.insert((month, day), index);
                }
                ClosurePeriod::Range { .. } => ranges.push(index),
            }
        }
        for (index, special) in spec.overrides.iter().enumerate() {
            dated.insert(special.date, DatedEntry::Override(index));
        }
        Ok(Calendar {
            spec,
            dated,
            yearly,
            ranges,
        })
    }

    /// The validated spec (intervals sorted).
    pub fn spec(&self) -> &CalendarSpec {
        &self.spec
    }

    pub fn timezone(&self) -> Tz {
        self.spec.timezone
    }

    /// Open at `at`? The cheap question (no search for the next change).
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        self.state_at(at, &mut HolidayCache::new(self.spec.public_holidays))
            .is_open()
    }

    /// Open or closed at `at` and why, without searching for the next change: `closes_at` and
    /// `opens_at` are left at `at` (for deciding, not for telling).
    pub fn status_without_change(&self, at: DateTime<Utc>) -> Status {
        match self.state_at(at, &mut HolidayCache::new(self.spec.public_holidays)) {
            State::Open => Status::Open { closes_at: at },
            State::Closed(reason) => Status::Closed {
                reason: reason.into_closed_reason(),
                opens_at: Some(at),
            },
        }
    }

    /// Open or closed at `at`, why, and until when.
    pub fn status(&self, at: DateTime<Utc>) -> Status {
        let mut holidays = HolidayCache::new(self.spec.public_holidays);
        match self.state_at(at, &mut holidays) {
            State::Open => Status::Open {
                closes_at: self
                    .next_change(at, false, &mut holidays)
                    .unwrap_or_else(|| horizon_end(at)),
            },
            State::Closed(reason) => Status::Closed {
                reason: reason.into_closed_reason(),
                opens_at: self.next_change(at, true, &mut holidays),
            },
        }
    }

    fn local(&self, at: DateTime<Utc>) -> Option<NaiveDateTime> {
        wall_clock::local_of(self.spec.timezone, at)
    }

    fn state_at(&self, at: DateTime<Utc>, holidays: &mut HolidayCache) -> State<'_> {
        match self.local(at) {
            Some(local) => self.state_at_local(local, holidays),
            // Only within a day of the end of chrono's range: no wall clock, no hours.
            None => State::Closed(Reason::OutsideHours),
        }
    }

    fn state_at_local(&self, local: NaiveDateTime, holidays: &mut HolidayCache) -> State<'_> {
        for &index in &self.ranges {
            let closure = &self.spec.closures[index];
            if let ClosurePeriod::Range { from, until } = closure.period
                && (from..until).contains(&local)
            {
                return State::Closed(Reason::Closure(&closure.label));
            }
        }
        match self.day_rule(local.date(), holidays) {
            DayRule::Closed(reason) => State::Closed(reason),
            DayRule::Hours(intervals) => {
                if intervals
                    .iter()
                    .any(|interval| interval.contains(local.time()))
                {
                    State::Open
                } else {
                    State::Closed(Reason::OutsideHours)
                }
            }
        }
    }

    /// Rules 2–5 of the module documentation: what applies to the whole of `date`.
    fn day_rule(&self, date: NaiveDate, holidays: &mut HolidayCache) -> DayRule<'_> {
        match self.dated.get(&date) {
            Some(DatedEntry::Closure(index)) => {
                return DayRule::Closed(Reason::Closure(&self.spec.closures[*index].label));
            }
            Some(DatedEntry::Override(index)) => {
                return DayRule::Hours(&self.spec.overrides[*index].hours);
            }
            None => {}
        }
        if let Some(index) = self.yearly.get(&(date.month(), date.day())) {
            return DayRule::Closed(Reason::Closure(&self.spec.closures[*index].label));
        }
        if let Some(name) = holidays.holiday_on(date) {
            return DayRule::Closed(Reason::PublicHoliday(name));
        }
        DayRule::Hours(self.spec.weekly.on(date.weekday()))
    }

    /// The first instant after `at`, within the horizon, at which the calendar is open (if
    /// `want_open`) or closed.
    ///
    /// The answer is a function of the wall clock, which only changes at (a) the instants at
    /// which the wall clock shows a boundary — midnight, an opening or closing time, the start
    /// or end of a closure range — and (b) the zone's offset transitions, where the wall clock
    /// jumps. Between two such candidates nothing changes, so the first candidate with the
    /// wanted state is the answer. The search walks forward in one-day UTC windows and checks
    /// each window's candidates in order, so it stops early and never needs the candidates of
    /// the whole horizon at once.
    fn next_change(
        &self,
        at: DateTime<Utc>,
        want_open: bool,
        holidays: &mut HolidayCache,
    ) -> Option<DateTime<Utc>> {
        let horizon = horizon_end(at);
        let mut window_start = at;
        let mut candidates = Vec::new();
        while window_start < horizon {
            let window_end = window_start
                .checked_add_signed(TimeDelta::days(1))
                .map_or(horizon, |end| end.min(horizon));
            candidates.clear();
            self.candidates_in(window_start, window_end, holidays, &mut candidates);
            candidates.sort_unstable();
            candidates.dedup();
            for &candidate in &candidates {
                if self.state_at(candidate, holidays).is_open() == want_open {
                    return Some(candidate);
                }
            }
            window_start = window_end;
        }
        None
    }

    /// Pushes every instant in `(start, end]` at which the state may change.
    fn candidates_in(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        holidays: &mut HolidayCache,
        candidates: &mut Vec<DateTime<Utc>>,
    ) {
        let transitions = wall_clock::offset_transitions(self.spec.timezone, start, end);
        candidates.extend_from_slice(&transitions);

        // The wall clock runs continuously between transitions; collect the dates it shows.
        let mut piece_starts = vec![start];
        piece_starts.extend_from_slice(&transitions);
        let mut dates: Vec<NaiveDate> = Vec::new();
        for (index, &piece_start) in piece_starts.iter().enumerate() {
            let piece_end = piece_starts
                .get(index + 1)
                .map_or(end, |next| *next - TimeDelta::nanoseconds(1));
            let (Some(first), Some(last)) = (self.local(piece_start), self.local(piece_end)) else {
                continue;
            };
            let mut date = first.date();
            while date <= last.date() {
                dates.push(date);
                match date.succ_opt() {
                    Some(next) => date = next,
                    None => break,
                }
            }
        }
        dates.sort_unstable();
        dates.dedup();

        let in_window = |instant: &DateTime<Utc>| start < *instant && *instant <= end;
        for date in dates {
            let mut boundaries = vec![date.and_time(NaiveTime::MIN)];
            if let DayRule::Hours(intervals) = self.day_rule(date, holidays) {
                for interval in intervals {
                    boundaries.push(date.and_time(interval.open()));
                    if let Some(close) = interval.close() {
                        boundaries.push(date.and_time(close));
                    }
                }
            }
            for &index in &self.ranges {
                if let ClosurePeriod::Range { from, until } = self.spec.closures[index].period {
                    boundaries.extend([from, until].into_iter().filter(|b| b.date() == date));
                }
            }
            for boundary in boundaries {
                // A boundary inside a spring-forward gap is never shown by the clock; the change
                // happens at the transition, which is already a candidate. One in a fall-back
                // fold is shown twice.
                let instants = self.spec.timezone.from_local_datetime(&boundary);
                candidates.extend(
                    instants
                        .earliest()
                        .into_iter()
                        .chain(instants.latest())
                        .map(|instant| instant.with_timezone(&Utc))
                        .filter(in_window),
                );
            }
        }
    }
}

fn horizon_end(at: DateTime<Utc>) -> DateTime<Utc> {
    at.checked_add_signed(TimeDelta::days(SEARCH_HORIZON_DAYS))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The state at one instant, borrowing labels from the calendar (no allocation while
/// searching).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State<'a> {
    Open,
    Closed(Reason<'a>),
}

impl State<'_> {
    fn is_open(&self) -> bool {
        matches!(self, State::Open)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reason<'a> {
    OutsideHours,
    PublicHoliday(&'static str),
    Closure(&'a str),
}

impl Reason<'_> {
    fn into_closed_reason(self) -> ClosedReason {
        match self {
            Reason::OutsideHours => ClosedReason::OutsideHours,
            Reason::PublicHoliday(name) => ClosedReason::PublicHoliday(name.to_owned()),
            Reason::Closure(label) => ClosedReason::Closure(label.to_owned()),
        }
    }
}

enum DayRule<'a> {
    Hours(&'a [OpeningInterval]),
    Closed(Reason<'a>),
}

/// One year's holidays at a time: a search asks about the same few dates over and over, and
/// `holiday_de` recomputes Easter on every question.
struct HolidayCache {
    region: Option<HolidayRegion>,
    year: Option<i32>,
    dates: Vec<(NaiveDate, &'static str)>,
}

impl HolidayCache {
    fn new(region: Option<HolidayRegion>) -> Self {
        HolidayCache {
            region,
            year: None,
            dates: Vec::new(),
        }
    }

    fn holiday_on(&mut self, date: NaiveDate) -> Option<&'static str> {
        let region = self.region?;
        if self.year != Some(date.year()) {
            self.year = Some(date.year());
            self.dates = region.holidays_in_year(date.year());
        }
        self.dates
            .iter()
            .find(|(holiday, _)| *holiday == date)
            .map(|(_, name)| *name)
    }
}

const WEEKDAYS: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

fn day_index(day: Weekday) -> usize {
    day.num_days_from_monday() as usize
}

fn time_of_second(second: u32) -> NaiveTime {
    NaiveTime::from_num_seconds_from_midnight_opt(second, 0).unwrap_or(NaiveTime::MIN)
}

/// "08:30", "24:00", or "08:30:15" when the interval was built from a time with seconds.
fn clock_of_second(second: u32) -> String {
    let (hours, minutes, seconds) = (second / 3600, second / 60 % 60, second % 60);
    if seconds == 0 {
        format!("{hours:02}:{minutes:02}")
    } else {
        format!("{hours:02}:{minutes:02}:{seconds:02}")
    }
}

fn clock(time: NaiveTime) -> String {
    clock_of_second(time.num_seconds_from_midnight())
}

#[cfg(test)]
mod tests;
