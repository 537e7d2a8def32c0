//! `[calendar.<id>]`: weekly hours, public holidays, closures and overrides, checked with the
//! calendar's own validation and every problem placed at its line.

use std::ops::Range;
use std::str::FromStr;

use chrono::{NaiveDate, NaiveTime, Weekday};
use chrono_tz::Tz;
use toml::Spanned;

use super::super::calendar::{
    Calendar, CalendarError, CalendarSpec, Closure, ClosurePeriod, HolidayRegion, HoursDay,
    OpeningInterval, Override, WeeklyHours, parse_hours,
};
use super::super::diagnostic::Diagnostic;
use super::super::file::{self, TextList};
use super::super::model::{CalendarRules, WEEKDAYS};
use super::{Entry, Loader};

impl Loader<'_> {
    pub(super) fn calendar(&mut self, entry: &Entry<file::CalendarDef>) -> Option<CalendarRules> {
        let def = &entry.def;
        let file = entry.file;
        let timezone = match &def.timezone {
            None => chrono_tz::Europe::Berlin,
            Some(name) => match Tz::from_str(name.get_ref()) {
                Ok(tz) => tz,
                Err(_) => {
                    self.error(
                        file,
                        name.span(),
                        format!("unknown time zone `{}`", name.get_ref()),
                        "use an IANA name such as \"Europe/Berlin\" (the default)".into(),
                    );
                    chrono_tz::Europe::Berlin
                }
            },
        };
        let public_holidays = match &def.public_holidays {
            None => None,
            Some(region) if region.get_ref().eq_ignore_ascii_case("none") => None,
            Some(region) => match HolidayRegion::from_str(region.get_ref()) {
                Ok(region) => Some(region),
                Err(e) => {
                    self.error(
                        file,
                        region.span(),
                        format!("unknown public-holiday region `{}`", region.get_ref()),
                        format!("{e}; Jena uses \"thuringia\" (or \"none\")"),
                    );
                    None
                }
            },
        };
        if let Some(text) = &def.to_be_confirmed {
            let at = self.at(file, text.span());
            self.diagnostics.push(
                Diagnostic::note(format!(
                    "calendar `{}`: hours to be confirmed by the city: {}",
                    entry.id,
                    text.get_ref()
                ))
                .at(at)
                .hint("once confirmed, remove to_be_confirmed"),
            );
        }
        let week = &def.hours;
        let days = [
            &week.mo, &week.di, &week.mi, &week.r#do, &week.fr, &week.sa, &week.so,
        ];
        let mut weekly = WeeklyHours::new();
        let mut day_spans: Vec<(Weekday, Range<usize>)> = Vec::new();
        for ((name, _, weekday), hours) in WEEKDAYS.iter().zip(days) {
            if let Some(hours) = hours {
                weekly.set(*weekday, self.hours(file, hours, name));
                day_spans.push((*weekday, hours.span()));
            }
        }
        let mut closures = Vec::new();
        let mut closure_spans = Vec::new();
        for closure in &def.closure {
            let c = closure.get_ref();
            let Some(period) = self.closure_period(file, closure.span(), c) else {
                continue;
            };
            closures.push(Closure {
                period,
                label: c.reason.clone(),
            });
            closure_spans.push(closure.span());
        }
        let mut overrides = Vec::new();
        let mut override_spans = Vec::new();
        for item in &def.overrides {
            let o = item.get_ref();
            let Some((from, to)) = self.override_dates(file, item.span(), o) else {
                continue;
            };
            let hours = self.hours(file, &o.hours, &format!("the override from {from}"));
            for date in from.iter_days().take_while(|d| *d <= to) {
                overrides.push(Override {
                    date,
                    hours: hours.clone(),
                    label: o.reason.clone(),
                });
                override_spans.push((item.span(), date));
            }
        }
        let spec = CalendarSpec {
            timezone,
            weekly,
            public_holidays,
            closures,
            overrides,
        };
        let problems = spec.problems();
        let errors_before = self.diagnostics.len();
        for problem in problems {
            self.calendar_problem(
                file,
                entry,
                &problem,
                &day_spans,
                &closure_spans,
                &override_spans,
            );
        }
        if self.diagnostics.len() > errors_before {
            return None;
        }
        match Calendar::new(spec) {
            Ok(calendar) => Some(CalendarRules {
                id: entry.id.clone(),
                name: def.name.clone().unwrap_or_else(|| entry.id.clone()),
                timezone,
                to_be_confirmed: def.to_be_confirmed.as_ref().map(|t| t.get_ref().clone()),
                calendar,
            }),
            Err(e) => {
                self.diagnostics.push(
                    Diagnostic::error(format!("calendar `{}`: {e}", entry.id))
                        .at(entry.at.clone())
                        .hint("see the calendar fields in routing-rules/README.md"),
                );
                None
            }
        }
    }

    /// A [`CalendarError`] at the entry it is about (indices point into closures/overrides).
    fn calendar_problem(
        &mut self,
        file: usize,
        entry: &Entry<file::CalendarDef>,
        problem: &CalendarError,
        days: &[(Weekday, Range<usize>)],
        closures: &[Range<usize>],
        overrides: &[(Range<usize>, NaiveDate)],
    ) {
        use CalendarError as E;
        let closure = |i: &usize| closures.get(*i).cloned();
        let special = |i: &usize| overrides.get(*i).map(|(span, _)| span.clone());
        let (message, span, related, hint) = match problem {
            E::OverlappingHours { day, first, second } => {
                let span = match day {
                    HoursDay::Weekday(weekday) => days
                        .iter()
                        .find(|(d, _)| d == weekday)
                        .map(|(_, span)| span.clone()),
                    HoursDay::Date(date) => overrides
                        .iter()
                        .find(|(_, d)| d == date)
                        .map(|(span, _)| span.clone()),
                };
                (
                    format!("overlapping ranges: {problem}"),
                    span,
                    None,
                    format!(
                        "merge them into one range (e.g. {}-{}) or make them follow each other",
                        first.open().format("%H:%M"),
                        second
                            .close()
                            .map_or("24:00".into(), |t| t.format("%H:%M").to_string())
                    ),
                )
            }
            E::EmptyOverride { index, .. } => (
                problem.to_string(),
                special(index),
                None,
                "an override gives other opening hours; for a closed day use \
                 [[calendar.<id>.closure]]"
                    .to_string(),
            ),
            E::DuplicateOverride { first, second, .. } => (
                format!("overlapping ranges: {problem}"),
                special(second),
                special(first),
                "each date may have one override; merge them".into(),
            ),
            E::DuplicateClosureDate { first, second, .. }
            | E::DuplicateYearlyClosure { first, second, .. }
            | E::OverlappingClosures { first, second, .. } => (
                format!("overlapping ranges: {problem}"),
                closure(second),
                closure(first),
                "each day needs one closure; remove or merge one of them".into(),
            ),
            E::ClosedDateOverridden {
                closure: c,
                override_index,
                ..
            } => (
                problem.to_string(),
                special(override_index),
                closure(c),
                "remove the closure or the override".into(),
            ),
            E::InvalidYearlyDate { index, .. } | E::EmptyClosureRange { index, .. } => (
                problem.to_string(),
                closure(index),
                None,
                "write date = \"12-24\" (every year), date = \"2026-12-24\", or from = \
                 \"2026-12-28\", to = \"2026-12-30\""
                    .into(),
            ),
        };
        let at = match span {
            Some(span) => self.at(file, span),
            None => entry.at.clone(),
        };
        let mut diagnostic = Diagnostic::error(format!("calendar `{}`: {message}", entry.id))
            .at(at)
            .hint(hint);
        if let Some(related) = related {
            diagnostic = diagnostic.related(self.at(file, related));
        }
        self.diagnostics.push(diagnostic);
    }

    /// Parses `"08:30-13:00"` or a list of such ranges (`"closed"` or `[]` = no hours).
    fn hours(&mut self, file: usize, hours: &Spanned<TextList>, day: &str) -> Vec<OpeningInterval> {
        let mut intervals = Vec::new();
        for text in &hours.get_ref().0 {
            let trimmed = text.trim();
            if trimmed.eq_ignore_ascii_case("closed") || trimmed.eq_ignore_ascii_case("geschlossen")
            {
                continue;
            }
            match parse_hours(trimmed) {
                Ok(interval) => intervals.push(interval),
                Err(e) => self.error(
                    file,
                    hours.span(),
                    format!("bad time range on {day}: {e}"),
                    "write opening hours as \"HH:MM-HH:MM\" (24-hour clock, end after start, \
                     24:00 allowed as end), a list of them, or \"closed\""
                        .into(),
                ),
            }
        }
        intervals
    }

    fn date(&mut self, file: usize, text: &Spanned<String>, hint: &str) -> Option<NaiveDate> {
        match NaiveDate::parse_from_str(text.get_ref(), "%Y-%m-%d") {
            Ok(date) => Some(date),
            Err(_) => {
                self.error(
                    file,
                    text.span(),
                    format!("bad date `{}`", text.get_ref()),
                    hint.into(),
                );
                None
            }
        }
    }

    /// `date = "12-24"` (every year), `date = "2026-12-24"`, or `from`/`to` (whole days,
    /// inclusive).
    fn closure_period(
        &mut self,
        file: usize,
        span: Range<usize>,
        c: &file::ClosureDef,
    ) -> Option<ClosurePeriod> {
        const HINT: &str = "write date = \"12-24\" (every year), date = \"2026-12-24\", or from = \
                            \"2026-12-28\", to = \"2026-12-30\" (both days closed)";
        match (&c.date, &c.from, &c.to) {
            (Some(date), None, None) => {
                let text = date.get_ref();
                if let Some((month, day)) = text.split_once('-').filter(|_| text.len() == 5) {
                    match (month.parse::<u32>(), day.parse::<u32>()) {
                        (Ok(month), Ok(day))
                            if NaiveDate::from_ymd_opt(2000, month, day).is_some() =>
                        {
                            Some(ClosurePeriod::EveryYear { month, day })
                        }
                        _ => {
                            self.error(
                                file,
                                date.span(),
                                format!("bad date `{text}`"),
                                HINT.into(),
                            );
                            None
                        }
                    }
                } else {
                    self.date(file, date, HINT).map(ClosurePeriod::Date)
                }
            }
            (None, Some(from), Some(to)) => {
                let start = self.date(file, from, HINT);
                let end = self.date(file, to, HINT);
                let (start, end) = (start?, end?);
                if end < start {
                    self.error(
                        file,
                        to.span(),
                        format!("bad date range: {end} is before {start}"),
                        "`to` is the last closed day and must not be before `from`".into(),
                    );
                    return None;
                }
                Some(ClosurePeriod::Range {
                    from: start.and_time(NaiveTime::MIN),
                    until: end.succ_opt()?.and_time(NaiveTime::MIN),
                })
            }
            _ => {
                self.error(
                    file,
                    span,
                    "give either `date` or both `from` and `to`".into(),
                    HINT.into(),
                );
                None
            }
        }
    }

    /// An override's `date`, or `from`/`to` (inclusive, at most a year).
    fn override_dates(
        &mut self,
        file: usize,
        span: Range<usize>,
        o: &file::OverrideDef,
    ) -> Option<(NaiveDate, NaiveDate)> {
        const HINT: &str =
            "write date = \"2026-11-05\", or from = \"2026-08-03\", to = \"2026-08-14\"";
        match (&o.date, &o.from, &o.to) {
            (Some(date), None, None) => self.date(file, date, HINT).map(|d| (d, d)),
            (None, Some(from), Some(to)) => {
                let start = self.date(file, from, HINT);
                let end = self.date(file, to, HINT);
                let (start, end) = (start?, end?);
                if end < start || (end - start).num_days() > 366 {
                    self.error(
                        file,
                        to.span(),
                        format!("bad date range: {start} to {end}"),
                        "`to` is the last day of the override: not before `from`, at most a \
                         year later"
                            .into(),
                    );
                    return None;
                }
                Some((start, end))
            }
            _ => {
                self.error(
                    file,
                    span,
                    "give either `date` or both `from` and `to`".into(),
                    HINT.into(),
                );
                None
            }
        }
    }
}
