//! Between instants (UTC) and the wall clock of a zone, including the hours a DST change skips
//! or repeats.

use chrono::{
    DateTime, FixedOffset, MappedLocalTime, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc,
};
use chrono_tz::Tz;

/// The instants at which a zone's wall clock shows a given date and time — what `rules explain
/// --at 2026-03-29T02:30` has to judge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WallClockTime {
    /// Shown once (almost always).
    Once(DateTime<Utc>),
    /// Skipped by spring forward (02:30 on 2026-03-29 in Berlin). `next` is the instant the
    /// clock jumps past it (03:00 summer time = 01:00 UTC), which is also when an opening hour
    /// at that time takes effect.
    Skipped { next: DateTime<Utc> },
    /// Shown twice by fall back (02:30 on 2026-10-25 in Berlin): first in summer time, then in
    /// winter time. A calendar gives the same answer at both.
    Twice {
        first: DateTime<Utc>,
        second: DateTime<Utc>,
    },
}

impl WallClockTime {
    /// Where `local` falls in `timezone`.
    pub fn new(timezone: Tz, local: NaiveDateTime) -> WallClockTime {
        match timezone.from_local_datetime(&local) {
            MappedLocalTime::Single(instant) => WallClockTime::Once(instant.with_timezone(&Utc)),
            MappedLocalTime::Ambiguous(first, second) => WallClockTime::Twice {
                first: first.with_timezone(&Utc),
                second: second.with_timezone(&Utc),
            },
            MappedLocalTime::None => WallClockTime::Skipped {
                next: first_instant_showing(timezone, local),
            },
        }
    }

    /// The first instant at which the wall clock shows `local` or later.
    pub fn earliest(&self) -> DateTime<Utc> {
        match *self {
            WallClockTime::Once(instant) => instant,
            WallClockTime::Skipped { next } => next,
            WallClockTime::Twice { first, .. } => first,
        }
    }
}

/// The transition that skips `local`: the one with the wall clock before it just before, and
/// after it from then on.
fn first_instant_showing(timezone: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let as_utc = local.and_utc();
    let window = (
        as_utc.checked_sub_signed(TimeDelta::days(1)),
        as_utc.checked_add_signed(TimeDelta::days(1)),
    );
    if let (Some(start), Some(end)) = window {
        for transition in offset_transitions(timezone, start, end) {
            let before = local_of(timezone, transition - TimeDelta::nanoseconds(1));
            let after = local_of(timezone, transition);
            if let (Some(before), Some(after)) = (before, after)
                && before < local
                && local <= after
            {
                return transition;
            }
        }
    }
    // Unreachable for real zones (a skipped time lies next to its transition); read it with
    // the offset in force at that time of day rather than fail.
    let offset = TimeDelta::seconds(i64::from(offset_at(timezone, as_utc).local_minus_utc()));
    as_utc.checked_sub_signed(offset).unwrap_or(as_utc)
}

/// The zone's total UTC offset at `at`.
pub(super) fn offset_at(timezone: Tz, at: DateTime<Utc>) -> FixedOffset {
    timezone.offset_from_utc_datetime(&at.naive_utc()).fix()
}

/// The wall clock at `at`; `None` only within a day of the ends of chrono's range.
pub(super) fn local_of(timezone: Tz, at: DateTime<Utc>) -> Option<NaiveDateTime> {
    at.naive_utc().checked_add_offset(offset_at(timezone, at))
}

/// The zone's offset transitions in `(start, end]`, to the second.
pub(super) fn offset_transitions(
    timezone: Tz,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    // No zone changes its offset twice within six hours.
    const STEP: TimeDelta = TimeDelta::hours(6);
    let mut transitions = Vec::new();
    let mut from = start;
    while from < end {
        let to = from.checked_add_signed(STEP).map_or(end, |to| to.min(end));
        let offset = offset_at(timezone, from);
        if offset_at(timezone, to) != offset {
            // Invariant: the offset at `low` is `offset`, at `high` it is not. Transitions fall
            // on whole seconds, so `from` rounded down still has `from`'s offset.
            let mut low = from.timestamp();
            let mut high = to.timestamp() + i64::from(to.timestamp_subsec_nanos() > 0);
            while high - low > 1 {
                let middle = low + (high - low) / 2;
                match DateTime::from_timestamp(middle, 0) {
                    Some(instant) if offset_at(timezone, instant) == offset => low = middle,
                    _ => high = middle,
                }
            }
            if let Some(instant) = DateTime::from_timestamp(high, 0) {
                transitions.push(instant);
            }
        }
        from = to;
    }
    transitions
}
