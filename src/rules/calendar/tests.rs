//! Tests of the calendar: the Fundbüro's published hours as a table, DST and precedence cases,
//! validation and parsing errors, the German explanations, and property tests against an
//! independent minute-by-minute reference.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc, Weekday};
use chrono_tz::Europe;
use proptest::prelude::*;

use super::*;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// An instant written with its explicit offset, so every test row also states which side of a
/// DST change it means: "2026-09-29T17:59+02:00", or with seconds "2026-09-29T17:59:59.9+02:00".
fn at(text: &str) -> DateTime<Utc> {
    let utc_minutes = |text| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%MZ");
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M%:z"))
        .or_else(|_| utc_minutes(text).map(|naive| naive.and_utc().fixed_offset()))
        .unwrap_or_else(|error| panic!("bad test instant {text:?}: {error}"))
        .with_timezone(&Utc)
}

fn date(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).expect("valid test date")
}

fn local(text: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M").expect("valid test date-time")
}

fn hours(text: &str) -> Vec<OpeningInterval> {
    parse_hours_list(text).expect("valid test hours")
}

fn spec(weekly: WeeklyHours) -> CalendarSpec {
    CalendarSpec {
        timezone: Europe::Berlin,
        weekly,
        public_holidays: Some(HolidayRegion::Thuringia),
        closures: Vec::new(),
        overrides: Vec::new(),
    }
}

/// The Fundbüro exactly as published (shared/seeds): Mon and Fri 08:30–13:00, Tue 08:30–18:00,
/// Wed 09:00–13:00, Thu 08:30–16:00; Thuringia's holidays; closed 24 and 31 December.
fn fundbuero_spec() -> CalendarSpec {
    let weekly = WeeklyHours::new()
        .with(Weekday::Mon, hours("08:30–13:00"))
        .with(Weekday::Tue, hours("08:30–18:00"))
        .with(Weekday::Wed, hours("09:00–13:00"))
        .with(Weekday::Thu, hours("08:30–16:00"))
        .with(Weekday::Fri, hours("08:30–13:00"));
    CalendarSpec {
        closures: vec![
            Closure::every_year(12, 24, "Heiligabend"),
            Closure::every_year(12, 31, "Silvester"),
        ],
        ..spec(weekly)
    }
}

fn fundbuero() -> Calendar {
    Calendar::new(fundbuero_spec()).expect("the Fundbüro calendar is valid")
}

fn open_until(closes_at: &str) -> Status {
    Status::Open {
        closes_at: at(closes_at),
    }
}

fn closed(reason: ClosedReason, opens_at: &str) -> Status {
    Status::Closed {
        reason,
        opens_at: Some(at(opens_at)),
    }
}

fn outside(opens_at: &str) -> Status {
    closed(ClosedReason::OutsideHours, opens_at)
}

fn holiday(name: &str, opens_at: &str) -> Status {
    closed(ClosedReason::PublicHoliday(name.to_owned()), opens_at)
}

fn closure(label: &str, opens_at: &str) -> Status {
    closed(ClosedReason::Closure(label.to_owned()), opens_at)
}

fn check_table(calendar: &Calendar, table: &[(&str, Status)]) {
    let mut failures = Vec::new();
    for (instant, expected) in table {
        let actual = calendar.status(at(instant));
        if actual != *expected {
            failures.push(format!(
                "{instant}: expected {expected:?} ({expected}), got {actual:?} ({actual})"
            ));
        }
        if calendar.is_open(at(instant)) != expected.is_open() {
            failures.push(format!("{instant}: is_open disagrees with status"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// The Fundbüro, row by row
// ---------------------------------------------------------------------------------------------

#[test]
fn fundbuero_hours_holidays_closures_and_dst_sundays() {
    #[rustfmt::skip]
    let table = [
        // Tuesday 29 Sep 2026: open until 18:00, then closed until Wednesday 09:00.
        ("2026-09-29T08:29:59+02:00", outside("2026-09-29T08:30+02:00")),
        ("2026-09-29T08:30+02:00", open_until("2026-09-29T18:00+02:00")),
        ("2026-09-29T17:59+02:00", open_until("2026-09-29T18:00+02:00")),
        ("2026-09-29T17:59:59.999+02:00", open_until("2026-09-29T18:00+02:00")),
        ("2026-09-29T18:00+02:00", outside("2026-09-30T09:00+02:00")),
        // Wednesday: 09:00–13:00.
        ("2026-09-30T08:45+02:00", outside("2026-09-30T09:00+02:00")),
        ("2026-09-30T12:59+02:00", open_until("2026-09-30T13:00+02:00")),
        ("2026-09-30T13:05+02:00", outside("2026-10-01T08:30+02:00")),
        // Thursday until 16:00; Friday until 13:00, then the weekend.
        ("2026-10-01T15:59+02:00", open_until("2026-10-01T16:00+02:00")),
        ("2026-10-01T16:00+02:00", outside("2026-10-02T08:30+02:00")),
        ("2026-10-02T13:00+02:00", outside("2026-10-05T08:30+02:00")),
        // Monday: 08:30–13:00.
        ("2026-10-05T12:59+02:00", open_until("2026-10-05T13:00+02:00")),
        // Good Friday and Easter Monday 2027; DST starts on Easter Sunday in between.
        ("2027-03-25T15:00+01:00", open_until("2027-03-25T16:00+01:00")),
        ("2027-03-25T16:00+01:00", outside("2027-03-30T08:30+02:00")),
        ("2027-03-26T10:00+01:00", holiday("Karfreitag", "2027-03-30T08:30+02:00")),
        ("2027-03-29T10:00+02:00", holiday("Ostermontag", "2027-03-30T08:30+02:00")),
        ("2027-03-30T08:30+02:00", open_until("2027-03-30T18:00+02:00")),
        // Weltkindertag: a Sunday in 2026, a Monday in 2027.
        ("2026-09-20T10:00+02:00", holiday("Weltkindertag", "2026-09-21T08:30+02:00")),
        ("2027-09-20T10:00+02:00", holiday("Weltkindertag", "2027-09-21T08:30+02:00")),
        ("2027-09-21T09:00+02:00", open_until("2027-09-21T18:00+02:00")),
        // Reformationstag 2026 is a Saturday; Monday 2 Nov is already winter time.
        ("2026-10-31T10:00+01:00", holiday("Reformationstag", "2026-11-02T08:30+01:00")),
        // Christmas 2026: 24 Dec (Thu) closure, 25/26 holidays, Sunday → Monday 28 Dec.
        ("2026-12-23T12:00+01:00", open_until("2026-12-23T13:00+01:00")),
        ("2026-12-23T13:00+01:00", outside("2026-12-28T08:30+01:00")),
        ("2026-12-24T10:00+01:00", closure("Heiligabend", "2026-12-28T08:30+01:00")),
        ("2026-12-25T10:00+01:00", holiday("Erster Weihnachtsfeiertag", "2026-12-28T08:30+01:00")),
        ("2026-12-26T10:00+01:00", holiday("Zweiter Weihnachtsfeiertag", "2026-12-28T08:30+01:00")),
        // 31 Dec (Thu) closure, Neujahr (Fri), weekend → Monday 4 Jan 2027.
        ("2026-12-31T10:00+01:00", closure("Silvester", "2027-01-04T08:30+01:00")),
        ("2027-01-01T10:00+01:00", holiday("Neujahr", "2027-01-04T08:30+01:00")),
        // More of Thuringia's holidays in 2026.
        ("2026-04-03T10:00+02:00", holiday("Karfreitag", "2026-04-07T08:30+02:00")),
        ("2026-05-01T10:00+02:00", holiday("Erster Mai", "2026-05-04T08:30+02:00")),
        ("2026-05-14T10:00+02:00", holiday("Christi Himmelfahrt", "2026-05-15T08:30+02:00")),
        ("2026-05-25T10:00+02:00", holiday("Pfingstmontag", "2026-05-26T08:30+02:00")),
        ("2026-10-03T10:00+02:00", holiday("Tag der Deutschen Einheit", "2026-10-05T08:30+02:00")),
        // Fronleichnam (Thu 4 Jun 2026) is a holiday only in the Eichsfeld: open in Jena.
        ("2026-06-04T10:00+02:00", open_until("2026-06-04T16:00+02:00")),
        // Spring forward, Sunday 29 Mar 2026: 02:30 does not exist; the instants around it.
        ("2026-03-29T01:59:59+01:00", outside("2026-03-30T08:30+02:00")),
        ("2026-03-29T03:00+02:00", outside("2026-03-30T08:30+02:00")),
        ("2026-03-29T03:30+02:00", outside("2026-03-30T08:30+02:00")),
        // Fall back, Sunday 25 Oct 2026: 02:30 happens twice, both closed.
        ("2026-10-25T02:30+02:00", outside("2026-10-26T08:30+01:00")),
        ("2026-10-25T02:30+01:00", outside("2026-10-26T08:30+01:00")),
        // The last Friday before the fall-back: the weekend crosses the DST change.
        ("2026-10-23T13:00+02:00", outside("2026-10-26T08:30+01:00")),
        ("2026-10-26T08:30+01:00", open_until("2026-10-26T13:00+01:00")),
    ];
    check_table(&fundbuero(), &table);
}

#[test]
fn a_sunday_holiday_is_reported_as_the_holiday_not_as_outside_hours() {
    let status = fundbuero().status(at("2026-09-20T23:59+02:00"));
    assert_eq!(status, holiday("Weltkindertag", "2026-09-21T08:30+02:00"));
}

// ---------------------------------------------------------------------------------------------
// DST: intervals that span or touch the changed hour
// ---------------------------------------------------------------------------------------------

fn sundays(intervals: &str) -> Calendar {
    let mut spec = spec(WeeklyHours::new().with(Weekday::Sun, hours(intervals)));
    spec.public_holidays = None;
    Calendar::new(spec).expect("valid")
}

#[test]
fn an_interval_spanning_the_spring_gap_is_open_throughout() {
    // 01:00–04:00 on 29 Mar 2026 lasts two real hours.
    #[rustfmt::skip]
    let table = [
        ("2026-03-29T00:59+01:00", outside("2026-03-29T01:00+01:00")),
        ("2026-03-29T01:00+01:00", open_until("2026-03-29T04:00+02:00")),
        ("2026-03-29T01:59:59+01:00", open_until("2026-03-29T04:00+02:00")),
        ("2026-03-29T03:00+02:00", open_until("2026-03-29T04:00+02:00")),
        ("2026-03-29T04:00+02:00", outside("2026-04-05T01:00+02:00")),
    ];
    check_table(&sundays("01:00-04:00"), &table);
    let opened = at("2026-03-29T01:00+01:00");
    let closed = at("2026-03-29T04:00+02:00");
    assert_eq!(closed - opened, TimeDelta::hours(2));
}

#[test]
fn an_interval_opening_inside_the_spring_gap_opens_when_the_clock_jumps_past_it() {
    #[rustfmt::skip]
    let table = [
        ("2026-03-29T01:30+01:00", outside("2026-03-29T03:00+02:00")),
        ("2026-03-29T03:00+02:00", open_until("2026-03-29T05:00+02:00")),
    ];
    check_table(&sundays("02:30-05:00"), &table);
    // Entirely inside the gap: that Sunday it never opens; the next Sunday it does.
    #[rustfmt::skip]
    let table = [(
        "2026-03-29T01:30+01:00",
        outside("2026-04-05T02:00+02:00"),
    )];
    check_table(&sundays("02:00-02:59"), &table);
}

#[test]
fn the_repeated_fall_back_hour_is_judged_by_the_wall_clock_both_times() {
    // 00:00–02:30 on 25 Oct 2026: closes at 02:30 summer time, the clock goes back to 02:00,
    // open again until 02:30 winter time (documented in the module).
    #[rustfmt::skip]
    let table = [
        ("2026-10-25T01:00+02:00", open_until("2026-10-25T02:30+02:00")),
        ("2026-10-25T02:30+02:00", outside("2026-10-25T02:00+01:00")),
        ("2026-10-25T02:59:59+02:00", outside("2026-10-25T02:00+01:00")),
        ("2026-10-25T02:00+01:00", open_until("2026-10-25T02:30+01:00")),
        ("2026-10-25T02:30+01:00", outside("2026-11-01T00:00+01:00")),
    ];
    check_table(&sundays("00:00-02:30"), &table);
    // Spanning the whole fold: open for five real hours.
    #[rustfmt::skip]
    let table = [(
        "2026-10-25T01:00+02:00",
        open_until("2026-10-25T05:00+01:00"),
    )];
    check_table(&sundays("01:00-05:00"), &table);
}

#[test]
fn a_status_exists_for_every_minute_around_both_2026_changes() {
    let calendar = sundays("01:00-02:15, 02:45-03:30");
    for start in ["2026-03-28T22:00Z", "2026-10-24T22:00Z"] {
        let start = at(start);
        for minute in 0..(6 * 60) {
            let instant = start + TimeDelta::minutes(minute);
            let status = calendar.status(instant);
            assert_eq!(status.is_open(), calendar.is_open(instant));
            match status {
                Status::Open { closes_at } => assert!(closes_at > instant),
                Status::Closed { opens_at, .. } => assert!(opens_at.expect("opens") > instant),
            }
        }
    }
}

#[test]
fn wall_clock_times_skipped_and_repeated_on_the_dst_sundays() {
    let skipped = WallClockTime::new(Europe::Berlin, local("2026-03-29T02:30"));
    assert_eq!(
        skipped,
        WallClockTime::Skipped {
            next: at("2026-03-29T03:00+02:00")
        }
    );
    let repeated = WallClockTime::new(Europe::Berlin, local("2026-10-25T02:30"));
    assert_eq!(
        repeated,
        WallClockTime::Twice {
            first: at("2026-10-25T02:30+02:00"),
            second: at("2026-10-25T02:30+01:00"),
        }
    );
    assert_eq!(
        WallClockTime::new(Europe::Berlin, local("2026-09-29T17:59")),
        WallClockTime::Once(at("2026-09-29T17:59+02:00"))
    );
    // Santiago skips from Saturday 24:00 straight to Sunday 01:00.
    assert_eq!(
        WallClockTime::new(chrono_tz::America::Santiago, local("2026-09-06T00:30")),
        WallClockTime::Skipped {
            next: at("2026-09-06T01:00-03:00")
        }
    );
    assert_eq!(repeated.earliest(), at("2026-10-25T00:30Z"));

    // What `rules explain --at <DST Sunday>T02:30` judges for the Fundbüro: closed, every time.
    let calendar = fundbuero();
    let WallClockTime::Twice { first, second } = repeated else {
        unreachable!()
    };
    for instant in [first, second] {
        assert_eq!(calendar.status(instant), outside("2026-10-26T08:30+01:00"));
    }
    assert_eq!(
        calendar.status(skipped.earliest()),
        outside("2026-03-30T08:30+02:00")
    );
}

#[test]
fn a_zone_whose_clock_falls_back_across_midnight() {
    // America/Santiago, 5 Apr 2026: Sunday 00:00 (-03) becomes Saturday 23:00 (-04) again.
    let weekly = WeeklyHours::new()
        .with(Weekday::Sat, hours("23:30-24:00"))
        .with(Weekday::Sun, hours("00:00-00:30"));
    let calendar = Calendar::new(CalendarSpec {
        timezone: chrono_tz::America::Santiago,
        public_holidays: None,
        ..spec(weekly)
    })
    .expect("valid");
    #[rustfmt::skip]
    let table = [
        (
            "2026-04-04T23:30-03:00",
            open_until("2026-04-05T03:00Z"),
        ),
        (
            "2026-04-04T23:00-04:00",
            outside("2026-04-04T23:30-04:00"),
        ),
        (
            "2026-04-04T23:45-04:00",
            open_until("2026-04-05T00:30-04:00"),
        ),
    ];
    check_table(&calendar, &table);
    let start = at("2026-04-04T22:00-03:00");
    for minute in 0..(4 * 60) {
        check_consistency(
            &calendar,
            start + TimeDelta::minutes(minute) + TimeDelta::seconds(7),
        )
        .unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Midnight, precedence, horizons
// ---------------------------------------------------------------------------------------------

#[test]
fn hours_across_midnight_are_one_opening() {
    let weekly = WeeklyHours::new()
        .with(Weekday::Fri, hours("22:00-24:00"))
        .with(Weekday::Sat, hours("00:00-02:00, 22:00-24:00"))
        .with(Weekday::Sun, hours("00:00-03:00"));
    let calendar = Calendar::new(spec(weekly)).expect("valid");
    #[rustfmt::skip]
    let table = [
        ("2026-06-12T21:00+02:00", outside("2026-06-12T22:00+02:00")),
        ("2026-06-12T23:00+02:00", open_until("2026-06-13T02:00+02:00")),
        ("2026-06-13T23:00+02:00", open_until("2026-06-14T03:00+02:00")),
        ("2026-06-14T03:00+02:00", outside("2026-06-19T22:00+02:00")),
    ];
    check_table(&calendar, &table);
}

#[test]
fn an_override_opens_a_holiday_and_sets_special_hours() {
    let mut spec = fundbuero_spec();
    spec.overrides = vec![
        Override {
            date: date(2026, 10, 3),
            hours: hours("10:00-12:00"),
            label: "Tag der offenen Tür".into(),
        },
        Override {
            date: date(2026, 10, 6),
            hours: hours("12:00-14:00"),
            label: "Personalversammlung vormittags".into(),
        },
        // A dated override wins over the yearly 24 Dec closure.
        Override {
            date: date(2027, 12, 24),
            hours: hours("09:00-11:00"),
            label: "Heiligabend 2027 ausnahmsweise".into(),
        },
    ];
    let calendar = Calendar::new(spec).expect("valid");
    #[rustfmt::skip]
    let table = [
        ("2026-10-03T09:00+02:00", outside("2026-10-03T10:00+02:00")),
        ("2026-10-03T11:00+02:00", open_until("2026-10-03T12:00+02:00")),
        ("2026-10-03T12:00+02:00", outside("2026-10-05T08:30+02:00")),
        ("2026-10-06T09:00+02:00", outside("2026-10-06T12:00+02:00")),
        ("2026-10-06T13:00+02:00", open_until("2026-10-06T14:00+02:00")),
        ("2027-12-24T10:00+01:00", open_until("2027-12-24T11:00+01:00")),
        ("2026-12-24T10:00+01:00", closure("Heiligabend", "2026-12-28T08:30+01:00")),
    ];
    check_table(&calendar, &table);
}

#[test]
fn a_closure_range_wins_over_hours_and_overrides_and_may_span_days() {
    let mut spec = fundbuero_spec();
    spec.closures.push(Closure::between(
        local("2026-09-29T12:00"),
        local("2026-09-29T14:00"),
        "Betriebsversammlung",
    ));
    spec.closures.push(Closure::between(
        local("2026-10-07T00:00"),
        local("2026-10-09T10:00"),
        "Umzug",
    ));
    spec.overrides.push(Override {
        date: date(2026, 10, 8),
        hours: hours("08:00-20:00"),
        label: "lange Öffnung".into(),
    });
    let calendar = Calendar::new(spec).expect("valid");
    #[rustfmt::skip]
    let table = [
        ("2026-09-29T11:00+02:00", open_until("2026-09-29T12:00+02:00")),
        ("2026-09-29T12:00+02:00", closure("Betriebsversammlung", "2026-09-29T14:00+02:00")),
        ("2026-09-29T14:00+02:00", open_until("2026-09-29T18:00+02:00")),
        ("2026-10-06T17:00+02:00", open_until("2026-10-06T18:00+02:00")),
        ("2026-10-08T12:00+02:00", closure("Umzug", "2026-10-09T10:00+02:00")),
        ("2026-10-09T10:00+02:00", open_until("2026-10-09T13:00+02:00")),
    ];
    check_table(&calendar, &table);
}

#[test]
fn a_dated_closure_closes_the_whole_day() {
    let mut spec = fundbuero_spec();
    spec.closures
        .push(Closure::on(date(2026, 9, 29), "Inventur"));
    let calendar = Calendar::new(spec).expect("valid");
    #[rustfmt::skip]
    let table = [(
        "2026-09-29T10:00+02:00",
        closure("Inventur", "2026-09-30T09:00+02:00"),
    )];
    check_table(&calendar, &table);
}

#[test]
fn never_open_has_no_opening_and_always_open_closes_at_the_horizon() {
    let never = Calendar::new(spec(WeeklyHours::new())).expect("valid");
    let instant = at("2026-09-29T10:00+02:00");
    assert_eq!(
        never.status(instant),
        Status::Closed {
            reason: ClosedReason::OutsideHours,
            opens_at: None
        }
    );

    let mut always = WeeklyHours::new();
    for day in WEEKDAYS {
        always.set(day, hours("00:00-24:00"));
    }
    let mut always_spec = spec(always);
    always_spec.public_holidays = None;
    let always = Calendar::new(always_spec.clone()).expect("valid");
    assert_eq!(
        always.status(instant),
        Status::Open {
            closes_at: instant + TimeDelta::days(SEARCH_HORIZON_DAYS)
        }
    );
    // With holidays, a 24/7 service closes at the next one, Saturday 3 Oct 00:00.
    always_spec.public_holidays = Some(HolidayRegion::Thuringia);
    let always = Calendar::new(always_spec).expect("valid");
    assert_eq!(always.status(instant), open_until("2026-10-03T00:00+02:00"));
}

#[test]
fn the_ends_of_time_do_not_panic() {
    let calendar = fundbuero();
    for instant in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
        let _ = calendar.status(instant);
        let _ = calendar.is_open(instant);
    }
    let _ = calendar.status(DateTime::<Utc>::MAX_UTC - TimeDelta::days(3));
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

fn first_problem(spec: CalendarSpec) -> String {
    Calendar::new(spec)
        .expect_err("the spec has a mistake")
        .to_string()
}

#[test]
fn overlapping_weekly_hours_name_the_day_and_both_intervals() {
    let weekly = WeeklyHours::new().with(Weekday::Tue, hours("12:00-18:00, 08:30-13:00"));
    assert_eq!(
        first_problem(spec(weekly)),
        "opening hours of Tuesday overlap: 08:30-13:00 and 12:00-18:00"
    );
    // Touching intervals are fine, and the input order does not matter.
    let weekly = WeeklyHours::new().with(Weekday::Tue, hours("13:00-18:00, 08:30-13:00"));
    let calendar = Calendar::new(spec(weekly)).expect("touching intervals are valid");
    assert_eq!(
        calendar.spec().weekly.on(Weekday::Tue),
        hours("08:30-13:00, 13:00-18:00")
    );
}

#[test]
fn override_mistakes_are_reported() {
    let mut with_overlap = fundbuero_spec();
    with_overlap.overrides.push(Override {
        date: date(2026, 12, 23),
        hours: hours("08:00-12:00, 08:00-10:00"),
        label: "x".into(),
    });
    assert_eq!(
        first_problem(with_overlap),
        "opening hours of the override for 2026-12-23 overlap: 08:00-10:00 and 08:00-12:00"
    );

    let mut empty = fundbuero_spec();
    empty.overrides.push(Override {
        date: date(2026, 12, 23),
        hours: Vec::new(),
        label: "zu".into(),
    });
    assert_eq!(
        first_problem(empty),
        "the override for 2026-12-23 (\"zu\") has no opening hours; to close the whole day \
         write a closure instead"
    );

    let mut twice = fundbuero_spec();
    for label in ["a", "b"] {
        twice.overrides.push(Override {
            date: date(2026, 12, 23),
            hours: hours("08:00-12:00"),
            label: label.into(),
        });
    }
    assert_eq!(
        Calendar::new(twice).unwrap_err(),
        CalendarError::DuplicateOverride {
            date: date(2026, 12, 23),
            first: 0,
            first_label: "a".into(),
            second: 1,
            second_label: "b".into(),
        }
    );
}

#[test]
fn closure_mistakes_are_reported() {
    let with = |closures: Vec<Closure>| {
        let mut spec = fundbuero_spec();
        spec.closures.extend(closures);
        first_problem(spec)
    };
    assert_eq!(
        with(vec![Closure::every_year(12, 24, "nochmal")]),
        "two yearly closures on 24.12.: \"Heiligabend\" and \"nochmal\""
    );
    assert_eq!(
        with(vec![Closure::every_year(2, 30, "Phantasietag")]),
        "yearly closure \"Phantasietag\": 30.02. is not a day of the year"
    );
    assert_eq!(
        with(vec![
            Closure::on(date(2026, 7, 1), "a"),
            Closure::on(date(2026, 7, 1), "b"),
        ]),
        "two closures for 2026-07-01: \"a\" and \"b\""
    );
    assert_eq!(
        with(vec![Closure::between(
            local("2026-07-01T12:00"),
            local("2026-07-01T11:00"),
            "verkehrt"
        )]),
        "closure \"verkehrt\" ends (2026-07-01 11:00:00) before it starts (2026-07-01 12:00:00); \
         the end is exclusive and must be later than the start"
    );
    assert_eq!(
        with(vec![Closure::between(
            local("2026-07-01T12:00"),
            local("2026-07-01T12:00"),
            "leer"
        )]),
        "closure \"leer\" ends (2026-07-01 12:00:00) when it starts (2026-07-01 12:00:00); \
         the end is exclusive and must be later than the start"
    );
    assert_eq!(
        with(vec![
            Closure::between(local("2026-07-01T08:00"), local("2026-07-01T12:00"), "a"),
            Closure::between(local("2026-07-01T11:00"), local("2026-07-02T12:00"), "b"),
        ]),
        "closures \"a\" and \"b\" overlap"
    );
    // 29 February is a valid yearly date (it applies in leap years).
    let mut leap = fundbuero_spec();
    leap.closures.push(Closure::every_year(2, 29, "Schalttag"));
    assert!(Calendar::new(leap).is_ok());
}

#[test]
fn a_date_cannot_be_both_closed_and_overridden() {
    let mut spec = fundbuero_spec();
    spec.closures
        .push(Closure::on(date(2026, 7, 1), "Inventur"));
    spec.overrides.push(Override {
        date: date(2026, 7, 1),
        hours: hours("08:00-10:00"),
        label: "Sonderöffnung".into(),
    });
    assert_eq!(
        first_problem(spec),
        "2026-07-01 is both closed (\"Inventur\") and has special hours (\"Sonderöffnung\"); \
         keep one of them"
    );
}

#[test]
fn problems_lists_every_mistake_with_indices() {
    let mut spec = spec(WeeklyHours::new().with(Weekday::Mon, hours("08:00-10:00, 09:00-11:00")));
    spec.closures = vec![
        Closure::every_year(13, 1, "a"),
        Closure::between(local("2026-07-01T12:00"), local("2026-07-01T11:00"), "b"),
    ];
    let problems = spec.problems();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(matches!(
        problems[1],
        CalendarError::InvalidYearlyDate { index: 0, .. }
    ));
    assert!(matches!(
        problems[2],
        CalendarError::EmptyClosureRange { index: 1, .. }
    ));
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

#[test]
fn hours_parse_in_the_forms_admins_write() {
    let expected = OpeningInterval::new(
        NaiveTime::from_hms_opt(8, 30, 0).unwrap(),
        NaiveTime::from_hms_opt(13, 0, 0).unwrap(),
    )
    .unwrap();
    for input in [
        "08:30-13:00",
        "8:30-13:00",
        " 08:30 - 13:00 ",
        "08:30–13:00",
    ] {
        assert_eq!(parse_hours(input), Ok(expected), "{input:?}");
    }
    let whole_day = parse_hours("00:00-24:00").unwrap();
    assert_eq!(whole_day.open(), NaiveTime::MIN);
    assert_eq!(whole_day.close(), None);
    assert_eq!(whole_day.to_string(), "00:00-24:00");
    assert_eq!(whole_day, OpeningInterval::until_midnight(NaiveTime::MIN));
    assert_eq!(
        parse_hours_list("08:30-12:00, 13:00-18:00").unwrap(),
        vec![
            parse_hours("08:30-12:00").unwrap(),
            parse_hours("13:00-18:00").unwrap()
        ]
    );
}

#[test]
fn bad_hours_say_what_is_wrong() {
    let message = |input: &str| parse_hours(input).unwrap_err().to_string();
    assert_eq!(
        message("08:30"),
        "\"08:30\" is not an opening interval; write it as HH:MM-HH:MM, e.g. 08:30-13:00"
    );
    assert_eq!(
        message("08:30-"),
        "\"08:30-\" is not an opening interval; write it as HH:MM-HH:MM, e.g. 08:30-13:00"
    );
    assert_eq!(
        message("08:30-25:00"),
        "\"08:30-25:00\": 25:00 is not a time of day; write HH:MM from 00:00 to 23:59 \
         (24:00 only as a closing time)"
    );
    for bad_time in [
        "8.30-13:00",
        "08:3-13:00",
        "08:60-13:00",
        "24:00-24:00",
        "-1:00-13:00",
    ] {
        assert!(
            matches!(
                parse_hours(bad_time),
                Err(ParseError::BadTime { .. } | ParseError::HoursSyntax { .. })
            ),
            "{bad_time:?} → {:?}",
            parse_hours(bad_time)
        );
    }
    assert_eq!(
        message("18:00-08:30"),
        "\"18:00-08:30\" closes before it opens; hours past midnight are written as two \
         intervals, e.g. 22:00-24:00 and 00:00-02:00 on the next day"
    );
    assert_eq!(
        message("08:30-08:30"),
        "\"08:30-08:30\" opens and closes at the same time"
    );
    assert!(matches!(
        OpeningInterval::new(NaiveTime::MIN, NaiveTime::MIN),
        Err(ParseError::EmptyHours { .. })
    ));
}

#[test]
fn weekdays_parse_in_german_and_english() {
    let cases = [
        (Weekday::Mon, ["Mo", "Mon", "Montag", "monday"]),
        (Weekday::Tue, ["Di", "Tue", "Dienstag", "TUESDAY"]),
        (Weekday::Wed, ["Mi", "Wed", "Mittwoch", "Wednesday"]),
        (Weekday::Thu, ["Do", "Thu", "Donnerstag", "Thursday"]),
        (Weekday::Fri, ["Fr", "Fri", "Freitag", "Friday"]),
        (Weekday::Sat, ["Sa", "Sat", "Sonnabend", "Samstag"]),
        (Weekday::Sun, ["So", "Sun", "Sonntag", "Su."]),
    ];
    for (day, inputs) in cases {
        for input in inputs {
            assert_eq!(parse_weekday(input), Ok(day), "{input:?}");
        }
        assert_eq!(parse_weekday(&format!("{}.", german_weekday(day))), Ok(day));
    }
    assert_eq!(
        parse_weekday("Moontag").unwrap_err().to_string(),
        "\"Moontag\" is not a weekday; write Mo, Di, Mi, Do, Fr, Sa, So (or Montag…, Mon…, \
         Monday…)"
    );
    assert_eq!(
        parse_weekdays("Mo-Fr").unwrap(),
        vec![
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri
        ]
    );
    assert_eq!(parse_weekdays("Sa").unwrap(), vec![Weekday::Sat]);
    assert_eq!(
        parse_weekdays("Fr–Mo").unwrap(),
        vec![Weekday::Fri, Weekday::Sat, Weekday::Sun, Weekday::Mon]
    );
    assert!(parse_weekdays("Mo-Xy").is_err());
}

#[test]
fn intervals_deserialize_from_strings() {
    #[derive(Debug, Deserialize)]
    struct Day {
        hours: Vec<OpeningInterval>,
    }
    let day: Day = serde_json::from_str(r#"{"hours": ["08:30-13:00", "14:00-24:00"]}"#).unwrap();
    assert_eq!(day.hours, hours("08:30-13:00, 14:00-24:00"));
    let error = serde_json::from_str::<Day>(r#"{"hours": ["13:00-08:30"]}"#).unwrap_err();
    assert!(
        error.to_string().contains("closes before it opens"),
        "{error}"
    );
    assert_eq!(
        serde_json::to_string(&hours("08:30-13:00")).unwrap(),
        r#"["08:30-13:00"]"#
    );
}

// ---------------------------------------------------------------------------------------------
// Explanations
// ---------------------------------------------------------------------------------------------

#[test]
fn status_reads_as_a_german_sentence_in_berlin_time() {
    let calendar = fundbuero();
    let text = |instant: &str| calendar.status(at(instant)).to_string();
    assert_eq!(
        text("2026-09-29T17:59+02:00"),
        "geöffnet bis Di 29.09.2026 18:00"
    );
    assert_eq!(
        text("2026-09-29T18:00+02:00"),
        "geschlossen: außerhalb der Öffnungszeiten; öffnet wieder Mi 30.09.2026 09:00"
    );
    assert_eq!(
        text("2027-03-26T10:00+01:00"),
        "geschlossen: Karfreitag (gesetzlicher Feiertag); öffnet wieder Di 30.03.2027 08:30"
    );
    assert_eq!(
        text("2026-12-24T10:00+01:00"),
        "geschlossen: Heiligabend (Schließung); öffnet wieder Mo 28.12.2026 08:30"
    );
    let status = calendar.status(at("2027-03-26T10:00+01:00"));
    assert_eq!(
        calendar.describe(&status).to_string(),
        "geschlossen: Karfreitag (gesetzlicher Feiertag in Thüringen); öffnet wieder Di \
         30.03.2027 08:30"
    );
    let never = Calendar::new(spec(WeeklyHours::new())).unwrap();
    assert_eq!(
        never.status(at("2026-09-29T10:00+02:00")).to_string(),
        "geschlossen: außerhalb der Öffnungszeiten; öffnet in den nächsten 400 Tagen nicht wieder"
    );
}

#[test]
fn a_time_in_the_repeated_hour_says_which_one() {
    let calendar = sundays("00:00-02:30");
    assert_eq!(
        calendar.status(at("2026-10-25T02:40+02:00")).to_string(),
        "geschlossen: außerhalb der Öffnungszeiten; öffnet wieder So 25.10.2026 02:00 (Winterzeit)"
    );
    assert_eq!(
        calendar.status(at("2026-10-25T01:00+02:00")).to_string(),
        "geöffnet bis So 25.10.2026 02:30 (Sommerzeit)"
    );
}

#[test]
fn status_serializes_for_json_output() {
    let calendar = fundbuero();
    let json = |instant: &str| serde_json::to_value(calendar.status(at(instant))).unwrap();
    assert_eq!(
        json("2026-09-29T17:59+02:00"),
        serde_json::json!({"state": "open", "closes_at": "2026-09-29T16:00:00Z"})
    );
    assert_eq!(
        json("2027-03-26T10:00+01:00"),
        serde_json::json!({
            "state": "closed",
            "reason": {"kind": "public_holiday", "name": "Karfreitag"},
            "opens_at": "2027-03-30T06:30:00Z"
        })
    );
    assert_eq!(
        json("2026-09-29T18:00+02:00")["reason"],
        serde_json::json!({"kind": "outside_hours"})
    );
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

/// An independent Fundbüro for 2026–2028: the published hours as a minute table, Thuringia's
/// holidays typed from the Feiertagsgesetz and the Easter dates, the two closure days, and the
/// EU summer-time rule as hard-coded transition instants — no chrono-tz, no holiday_de, no
/// code shared with the calendar.
mod reference {
    use chrono::{DateTime, Datelike, NaiveDate, Utc};

    /// Minutes after midnight, Monday first.
    const HOURS: [&[(i64, i64)]; 7] = [
        &[(8 * 60 + 30, 13 * 60)],
        &[(8 * 60 + 30, 18 * 60)],
        &[(9 * 60, 13 * 60)],
        &[(8 * 60 + 30, 16 * 60)],
        &[(8 * 60 + 30, 13 * 60)],
        &[],
        &[],
    ];

    const HOLIDAYS: &[((i32, u32, u32), &str)] = &[
        ((2026, 1, 1), "Neujahr"),
        ((2026, 4, 3), "Karfreitag"),
        ((2026, 4, 6), "Ostermontag"),
        ((2026, 5, 1), "Erster Mai"),
        ((2026, 5, 14), "Christi Himmelfahrt"),
        ((2026, 5, 25), "Pfingstmontag"),
        ((2026, 9, 20), "Weltkindertag"),
        ((2026, 10, 3), "Tag der Deutschen Einheit"),
        ((2026, 10, 31), "Reformationstag"),
        ((2026, 12, 25), "Erster Weihnachtsfeiertag"),
        ((2026, 12, 26), "Zweiter Weihnachtsfeiertag"),
        ((2027, 1, 1), "Neujahr"),
        ((2027, 3, 26), "Karfreitag"),
        ((2027, 3, 29), "Ostermontag"),
        ((2027, 5, 1), "Erster Mai"),
        ((2027, 5, 6), "Christi Himmelfahrt"),
        ((2027, 5, 17), "Pfingstmontag"),
        ((2027, 9, 20), "Weltkindertag"),
        ((2027, 10, 3), "Tag der Deutschen Einheit"),
        ((2027, 10, 31), "Reformationstag"),
        ((2027, 12, 25), "Erster Weihnachtsfeiertag"),
        ((2027, 12, 26), "Zweiter Weihnachtsfeiertag"),
        ((2028, 1, 1), "Neujahr"),
        ((2028, 4, 14), "Karfreitag"),
        ((2028, 4, 17), "Ostermontag"),
        ((2028, 5, 1), "Erster Mai"),
        ((2028, 5, 25), "Christi Himmelfahrt"),
        ((2028, 6, 5), "Pfingstmontag"),
        ((2028, 9, 20), "Weltkindertag"),
        ((2028, 10, 3), "Tag der Deutschen Einheit"),
        ((2028, 10, 31), "Reformationstag"),
        ((2028, 12, 25), "Erster Weihnachtsfeiertag"),
        ((2028, 12, 26), "Zweiter Weihnachtsfeiertag"),
        ((2029, 1, 1), "Neujahr"),
    ];

    /// Summer time (UTC+2) from the last Sunday of March to the last Sunday of October,
    /// 01:00 UTC each; as (year, March day, October day).
    const SUMMER_TIME: [(i32, u32, u32); 3] = [(2026, 29, 25), (2027, 28, 31), (2028, 26, 29)];

    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum State {
        Open,
        OutsideHours,
        Holiday(&'static str),
        Closure(&'static str),
    }

    fn utc_offset_minutes(unix_seconds: i64) -> i64 {
        let summer = SUMMER_TIME.iter().any(|&(year, march, october)| {
            let start = unix_at_1am_utc(year, 3, march);
            let end = unix_at_1am_utc(year, 10, october);
            (start..end).contains(&unix_seconds)
        });
        if summer { 120 } else { 60 }
    }

    fn unix_at_1am_utc(year: i32, month: u32, day: u32) -> i64 {
        let days = NaiveDate::from_ymd_opt(year, month, day)
            .unwrap()
            .signed_duration_since(NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
            .num_days();
        days * 86_400 + 3600
    }

    /// The state during the UTC minute containing `unix_seconds`.
    pub fn state(unix_seconds: i64) -> State {
        let local_minutes = unix_seconds.div_euclid(60) + utc_offset_minutes(unix_seconds);
        let days = local_minutes.div_euclid(24 * 60);
        let minute_of_day = local_minutes.rem_euclid(24 * 60);
        let date = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Days::new(days as u64);
        // 1970-01-01 was a Thursday (index 3, Monday = 0).
        let weekday = (days + 3).rem_euclid(7) as usize;
        if (date.month(), date.day()) == (12, 24) {
            return State::Closure("Heiligabend");
        }
        if (date.month(), date.day()) == (12, 31) {
            return State::Closure("Silvester");
        }
        let ymd = (date.year(), date.month(), date.day());
        if let Some((_, name)) = HOLIDAYS.iter().find(|(day, _)| *day == ymd) {
            return State::Holiday(name);
        }
        if HOURS[weekday]
            .iter()
            .any(|&(open, close)| (open..close).contains(&minute_of_day))
        {
            State::Open
        } else {
            State::OutsideHours
        }
    }

    /// The first whole minute after `at` at which open/closed flips, stepping minute by minute
    /// (every boundary of the published hours and of summer time is a whole minute).
    pub fn next_flip(at: DateTime<Utc>) -> DateTime<Utc> {
        let open = state(at.timestamp()) == State::Open;
        let mut minute = at.timestamp().div_euclid(60) * 60 + 60;
        for _ in 0..(10 * 24 * 60) {
            if (state(minute) == State::Open) != open {
                return DateTime::from_timestamp(minute, 0).unwrap();
            }
            minute += 60;
        }
        panic!("the reference found no change within ten days of {at}");
    }
}

/// 2026-01-01T00:00Z up to 2029-01-01T00:00Z.
const FROM_2026: i64 = 1_767_225_600;
const UNTIL_2029: i64 = 1_861_920_000;

/// The Sundays of the DST changes 2026–2028 at 00:00 UTC.
const DST_SUNDAYS: [i64; 6] = [
    1_774_742_400, // 2026-03-29
    1_792_886_400, // 2026-10-25
    1_806_192_000, // 2027-03-28
    1_824_940_800, // 2027-10-31
    1_837_641_600, // 2028-03-26
    1_856_390_400, // 2028-10-29
];

#[test]
fn the_property_test_constants_are_what_they_say() {
    assert_eq!(at("2026-01-01T00:00Z").timestamp(), FROM_2026);
    assert_eq!(at("2029-01-01T00:00Z").timestamp(), UNTIL_2029);
    let sundays = [
        "2026-03-29",
        "2026-10-25",
        "2027-03-28",
        "2027-10-31",
        "2028-03-26",
        "2028-10-29",
    ];
    for (timestamp, day) in DST_SUNDAYS.iter().zip(sundays) {
        assert_eq!(
            at(&format!("{day}T00:00:00Z")).timestamp(),
            *timestamp,
            "{day}"
        );
    }
}

/// Random instants in 2026–2028 (with sub-second parts), a third of them within a day of a DST
/// change.
fn instant_2026_to_2028() -> impl Strategy<Value = DateTime<Utc>> {
    let anywhere = (FROM_2026..UNTIL_2029, 0u32..1_000_000_000);
    let near_dst = (
        proptest::sample::select(DST_SUNDAYS.to_vec()),
        -86_400i64..2 * 86_400,
        0u32..1_000_000_000,
    )
        .prop_map(|(sunday, offset, nanos)| (sunday + offset, nanos));
    prop_oneof![2 => anywhere, 1 => near_dst]
        .prop_map(|(seconds, nanos)| DateTime::from_timestamp(seconds, nanos).unwrap())
}

/// A night service whose hours touch both DST hours, with overrides and closure ranges inside
/// them, to exercise the edge cases the Fundbüro never reaches.
fn night_service() -> Calendar {
    let mut weekly = WeeklyHours::new();
    for day in [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
    ] {
        weekly.set(day, hours("00:00-02:30, 07:00-19:00, 22:00-24:00"));
    }
    weekly.set(Weekday::Sun, hours("01:30-02:15, 02:45-03:30, 23:00-24:00"));
    let mut spec = spec(weekly);
    spec.closures = vec![
        Closure::every_year(12, 24, "Heiligabend"),
        Closure::between(
            local("2026-10-25T02:10"),
            local("2026-10-25T02:50"),
            "Wartung",
        ),
        Closure::between(
            local("2027-03-28T01:50"),
            local("2027-03-28T03:10"),
            "Umstellung",
        ),
        Closure::between(
            local("2028-10-28T23:30"),
            local("2028-10-29T02:20"),
            "Update",
        ),
    ];
    spec.overrides = vec![
        Override {
            date: date(2026, 3, 29),
            hours: hours("02:00-02:59, 03:00-03:01"),
            label: "nur in der Lücke".into(),
        },
        Override {
            date: date(2027, 10, 31),
            hours: hours("02:00-02:01, 02:59-04:00"),
            label: "Minuten in der doppelten Stunde".into(),
        },
        Override {
            date: date(2026, 10, 3),
            hours: hours("10:00-12:00"),
            label: "Tag der offenen Tür".into(),
        },
    ];
    Calendar::new(spec).expect("valid")
}

/// Checks `closes_at`/`opens_at` of `status(at)` by stepping minute by minute with `is_open`:
/// nothing flips before the reported instant, and it flips exactly there.
fn check_consistency(calendar: &Calendar, at: DateTime<Utc>) -> Result<(), TestCaseError> {
    let status = calendar.status(at);
    let open = status.is_open();
    prop_assert_eq!(calendar.is_open(at), open, "is_open vs status at {}", at);
    let change = match &status {
        Status::Open { closes_at } => *closes_at,
        Status::Closed { opens_at, .. } => {
            prop_assert!(opens_at.is_some(), "never opens after {}", at);
            opens_at.unwrap()
        }
    };
    prop_assert!(change > at, "{:?} at {}", status, at);
    prop_assert_eq!(
        calendar.is_open(change),
        !open,
        "at the change {} from {}",
        change,
        at
    );
    prop_assert_eq!(
        calendar.is_open(change - TimeDelta::nanoseconds(1)),
        open,
        "just before the change {} from {}",
        change,
        at
    );
    let mut step = at;
    while step < change {
        prop_assert_eq!(
            calendar.is_open(step),
            open,
            "flip at {} before {}",
            step,
            change
        );
        step += TimeDelta::minutes(1);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The calendar agrees with the independent reference on open/closed, the reason, and the
    /// instant of the next change.
    #[test]
    fn fundbuero_agrees_with_the_minute_table(instant in instant_2026_to_2028()) {
        let calendar = fundbuero();
        let expected_state = reference::state(instant.timestamp());
        let expected_change = reference::next_flip(instant);
        let expected = match expected_state {
            reference::State::Open => Status::Open { closes_at: expected_change },
            reference::State::OutsideHours => Status::Closed {
                reason: ClosedReason::OutsideHours,
                opens_at: Some(expected_change),
            },
            reference::State::Holiday(name) => Status::Closed {
                reason: ClosedReason::PublicHoliday(name.to_owned()),
                opens_at: Some(expected_change),
            },
            reference::State::Closure(label) => Status::Closed {
                reason: ClosedReason::Closure(label.to_owned()),
                opens_at: Some(expected_change),
            },
        };
        prop_assert_eq!(calendar.status(instant), expected, "at {}", instant);
    }

    /// `closes_at`/`opens_at` are where the open/closed answer really flips.
    #[test]
    fn fundbuero_changes_are_consistent(instant in instant_2026_to_2028()) {
        check_consistency(&fundbuero(), instant)?;
    }

    /// The same for hours, overrides and closures inside the DST hours.
    #[test]
    fn night_service_changes_are_consistent(instant in instant_2026_to_2028()) {
        check_consistency(&night_service(), instant)?;
    }

    /// Every interval prints in a form that parses back to it.
    #[test]
    fn hours_print_and_parse_back(open in 0u32..1440, length in 1u32..1440) {
        let close = (open + length).min(1440);
        prop_assume!(close > open);
        let text = format!("{:02}:{:02}-{:02}:{:02}", open / 60, open % 60, close / 60, close % 60);
        let interval = parse_hours(&text).unwrap();
        prop_assert_eq!(interval.to_string(), text.clone());
        prop_assert_eq!(parse_hours(&interval.to_string()), Ok(interval));
    }
}
