//! Checks of a [`CalendarSpec`] before it becomes a [`super::Calendar`].

use std::collections::BTreeMap;
use std::fmt;

use chrono::{NaiveDate, NaiveDateTime, Weekday};

use super::parse::english_weekday;
use super::{CalendarSpec, ClosurePeriod, OpeningInterval, WEEKDAYS};

/// Which day's hours an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoursDay {
    Weekday(Weekday),
    /// The override for this date.
    Date(NaiveDate),
}

impl fmt::Display for HoursDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HoursDay::Weekday(day) => f.write_str(english_weekday(*day)),
            HoursDay::Date(date) => write!(f, "the override for {date}"),
        }
    }
}

/// A mistake in a [`CalendarSpec`]. Indices point into `spec.closures` / `spec.overrides` so a
/// caller can show the file position of the entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("opening hours of {day} overlap: {first} and {second}")]
    OverlappingHours {
        day: HoursDay,
        first: OpeningInterval,
        second: OpeningInterval,
    },
    #[error(
        "the override for {date} (\"{label}\") has no opening hours; \
         to close the whole day write a closure instead"
    )]
    EmptyOverride {
        index: usize,
        date: NaiveDate,
        label: String,
    },
    #[error("two overrides for {date}: \"{first_label}\" and \"{second_label}\"")]
    DuplicateOverride {
        date: NaiveDate,
        first: usize,
        first_label: String,
        second: usize,
        second_label: String,
    },
    #[error("two closures for {date}: \"{first_label}\" and \"{second_label}\"")]
    DuplicateClosureDate {
        date: NaiveDate,
        first: usize,
        first_label: String,
        second: usize,
        second_label: String,
    },
    #[error(
        "two yearly closures on {day:02}.{month:02}.: \"{first_label}\" and \"{second_label}\""
    )]
    DuplicateYearlyClosure {
        month: u32,
        day: u32,
        first: usize,
        first_label: String,
        second: usize,
        second_label: String,
    },
    #[error(
        "{date} is both closed (\"{closure_label}\") and has special hours (\"{override_label}\"); \
         keep one of them"
    )]
    ClosedDateOverridden {
        date: NaiveDate,
        closure: usize,
        closure_label: String,
        override_index: usize,
        override_label: String,
    },
    #[error("yearly closure \"{label}\": {day:02}.{month:02}. is not a day of the year")]
    InvalidYearlyDate {
        index: usize,
        month: u32,
        day: u32,
        label: String,
    },
    #[error(
        "closure \"{label}\" ends ({until}) {} it starts ({from}); the end is exclusive and must \
         be later than the start",
        if until == from { "when" } else { "before" }
    )]
    EmptyClosureRange {
        index: usize,
        from: NaiveDateTime,
        until: NaiveDateTime,
        label: String,
    },
    #[error("closures \"{first_label}\" and \"{second_label}\" overlap")]
    OverlappingClosures {
        first: usize,
        first_label: String,
        second: usize,
        second_label: String,
    },
}

impl CalendarSpec {
    /// Every mistake in the spec, in a stable order (weekly hours, overrides, closures);
    /// [`super::Calendar::new`] fails with the first.
    pub fn problems(&self) -> Vec<CalendarError> {
        let mut problems = Vec::new();
        for day in WEEKDAYS {
            check_hours(HoursDay::Weekday(day), self.weekly.on(day), &mut problems);
        }

        let mut override_dates: BTreeMap<NaiveDate, usize> = BTreeMap::new();
        for (index, special) in self.overrides.iter().enumerate() {
            if special.hours.is_empty() {
                problems.push(CalendarError::EmptyOverride {
                    index,
                    date: special.date,
                    label: special.label.clone(),
                });
            }
            check_hours(HoursDay::Date(special.date), &special.hours, &mut problems);
            if let Some(&first) = override_dates.get(&special.date) {
                problems.push(CalendarError::DuplicateOverride {
                    date: special.date,
                    first,
                    first_label: self.overrides[first].label.clone(),
                    second: index,
                    second_label: special.label.clone(),
                });
            } else {
                override_dates.insert(special.date, index);
            }
        }

        let mut closure_dates: BTreeMap<NaiveDate, usize> = BTreeMap::new();
        let mut yearly: BTreeMap<(u32, u32), usize> = BTreeMap::new();
        let mut ranges: Vec<usize> = Vec::new();
        for (index, closure) in self.closures.iter().enumerate() {
            let label = || closure.label.clone();
            match closure.period {
                ClosurePeriod::Date(date) => {
                    if let Some(&first) = closure_dates.get(&date) {
                        problems.push(CalendarError::DuplicateClosureDate {
                            date,
                            first,
                            first_label: self.closures[first].label.clone(),
                            second: index,
                            second_label: label(),
                        });
                    } else {
                        closure_dates.insert(date, index);
                    }
                    if let Some(&override_index) = override_dates.get(&date) {
                        problems.push(CalendarError::ClosedDateOverridden {
                            date,
                            closure: index,
                            closure_label: label(),
                            override_index,
                            override_label: self.overrides[override_index].label.clone(),
                        });
                    }
                }
                ClosurePeriod::EveryYear { month, day } => {
                    // 2000 is a leap year: 29 February is a valid yearly date (closed in leap
                    // years only).
                    if NaiveDate::from_ymd_opt(2000, month, day).is_none() {
                        problems.push(CalendarError::InvalidYearlyDate {
                            index,
                            month,
                            day,
                            label: label(),
                        });
                    } else if let Some(&first) = yearly.get(&(month, day)) {
                        problems.push(CalendarError::DuplicateYearlyClosure {
                            month,
                            day,
                            first,
                            first_label: self.closures[first].label.clone(),
                            second: index,
                            second_label: label(),
                        });
                    } else {
                        yearly.insert((month, day), index);
                    }
                }
                ClosurePeriod::Range { from, until } => {
                    if until <= from {
                        problems.push(CalendarError::EmptyClosureRange {
                            index,
                            from,
                            until,
                            label: label(),
                        });
                        continue;
                    }
                    for &first in &ranges {
                        if let ClosurePeriod::Range {
                            from: first_from,
                            until: first_until,
                        } = self.closures[first].period
                            && from < first_until
                            && first_from < until
                        {
                            problems.push(CalendarError::OverlappingClosures {
                                first,
                                first_label: self.closures[first].label.clone(),
                                second: index,
                                second_label: label(),
                            });
                        }
                    }
                    ranges.push(index);
                }
            }
        }
        problems
    }
}

/// Reports overlaps among one day's intervals (in any order they were written).
fn check_hours(day: HoursDay, intervals: &[OpeningInterval], problems: &mut Vec<CalendarError>) {
    let mut sorted = intervals.to_vec();
    sorted.sort();
    for pair in sorted.windows(2) {
        if pair[0].overlaps(&pair[1]) {
            problems.push(CalendarError::OverlappingHours {
                day,
                first: pair[0],
                second: pair[1],
            });
        }
    }
}
