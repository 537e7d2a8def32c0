//! Parsing the opening hours and weekdays admins write in rule files.

use chrono::Weekday;

use super::{OpeningInterval, SECONDS_PER_DAY, day_index};

/// Something in a rule file that is not an opening interval or a weekday.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("\"{input}\" is not an opening interval; write it as HH:MM-HH:MM, e.g. 08:30-13:00")]
    HoursSyntax { input: String },
    #[error(
        "\"{input}\": {time} is not a time of day; write HH:MM from 00:00 to 23:59 \
         (24:00 only as a closing time)"
    )]
    BadTime { input: String, time: String },
    #[error(
        "\"{input}\" closes before it opens; hours past midnight are written as two intervals, \
         e.g. 22:00-24:00 and 00:00-02:00 on the next day"
    )]
    InvertedHours { input: String },
    #[error("\"{input}\" opens and closes at the same time")]
    EmptyHours { input: String },
    #[error(
        "\"{input}\" is not a weekday; write Mo, Di, Mi, Do, Fr, Sa, So (or Montag…, Mon…, \
         Monday…)"
    )]
    UnknownWeekday { input: String },
}

pub(super) enum IntervalProblem {
    Empty,
    Inverted,
}

impl IntervalProblem {
    pub(super) fn into_error(self, input: String) -> ParseError {
        match self {
            IntervalProblem::Empty => ParseError::EmptyHours { input },
            IntervalProblem::Inverted => ParseError::InvertedHours { input },
        }
    }
}

/// Parses one opening interval: `"08:30-13:00"`. Also accepted: an en dash as on the city's web
/// page (`08:30–13:00`), blanks around the dash, one-digit hours (`8:30`), and `24:00` as the
/// closing time.
pub fn parse_hours(input: &str) -> Result<OpeningInterval, ParseError> {
    let syntax = || ParseError::HoursSyntax {
        input: input.to_owned(),
    };
    let (open, close) = input.split_once(['-', '–']).ok_or_else(syntax)?;
    let open = parse_clock(input, open.trim(), false)?;
    let close = parse_clock(input, close.trim(), true)?;
    OpeningInterval::from_seconds(open, close)
        .map_err(|problem| problem.into_error(input.trim().to_owned()))
}

/// Parses several intervals separated by commas: `"08:30-12:00, 13:00-18:00"`.
pub fn parse_hours_list(input: &str) -> Result<Vec<OpeningInterval>, ParseError> {
    input
        .split(',')
        .map(|part| parse_hours(part.trim()))
        .collect()
}

/// `HH:MM` → seconds after midnight; `24:00` only if `closing`.
fn parse_clock(input: &str, time: &str, closing: bool) -> Result<u32, ParseError> {
    let bad_time = || ParseError::BadTime {
        input: input.trim().to_owned(),
        time: time.to_owned(),
    };
    if time.is_empty() {
        return Err(ParseError::HoursSyntax {
            input: input.to_owned(),
        });
    }
    let (hours, minutes) = time.split_once(':').ok_or_else(bad_time)?;
    let digits = |text: &str, max_len: usize| {
        (1..=max_len).contains(&text.len()) && text.bytes().all(|byte| byte.is_ascii_digit())
    };
    if !digits(hours, 2) || minutes.len() != 2 || !digits(minutes, 2) {
        return Err(bad_time());
    }
    let hours: u32 = hours.parse().map_err(|_| bad_time())?;
    let minutes: u32 = minutes.parse().map_err(|_| bad_time())?;
    match (hours, minutes) {
        (24, 0) if closing => Ok(SECONDS_PER_DAY),
        (0..=23, 0..=59) => Ok(hours * 3600 + minutes * 60),
        _ => Err(bad_time()),
    }
}

/// Parses a weekday, German or English, long or short, any case, with or without a trailing dot:
/// `"Mo"`, `"Mon"`, `"Montag"`, `"monday"`, `"Di."`, `"Sonnabend"`.
pub fn parse_weekday(input: &str) -> Result<Weekday, ParseError> {
    let wanted = input.trim().trim_end_matches('.').to_lowercase();
    WEEKDAY_NAMES
        .iter()
        .find(|names| names.accepted.contains(&wanted.as_str()))
        .map(|names| names.day)
        .ok_or_else(|| ParseError::UnknownWeekday {
            input: input.to_owned(),
        })
}

/// Parses a weekday or a range of weekdays: `"Mo-Fr"` → Monday to Friday, `"Sa"` → Saturday.
/// A range may wrap past Sunday (`"Fr-Mo"` → Friday, Saturday, Sunday, Monday).
pub fn parse_weekdays(input: &str) -> Result<Vec<Weekday>, ParseError> {
    let Some((first, last)) = input.split_once(['-', '–']) else {
        return Ok(vec![parse_weekday(input)?]);
    };
    let (first, last) = (parse_weekday(first)?, parse_weekday(last)?);
    let mut days = vec![first];
    let mut day = first;
    while day != last {
        day = day.succ();
        days.push(day);
    }
    Ok(days)
}

struct WeekdayNames {
    day: Weekday,
    german_short: &'static str,
    english: &'static str,
    /// Lower case, as compared.
    accepted: &'static [&'static str],
}

const WEEKDAY_NAMES: [WeekdayNames; 7] = [
    WeekdayNames {
        day: Weekday::Mon,
        german_short: "Mo",
        english: "Monday",
        accepted: &["mo", "mon", "montag", "monday"],
    },
    WeekdayNames {
        day: Weekday::Tue,
        german_short: "Di",
        english: "Tuesday",
        accepted: &["di", "die", "dienstag", "tu", "tue", "tues", "tuesday"],
    },
    WeekdayNames {
        day: Weekday::Wed,
        german_short: "Mi",
        english: "Wednesday",
        accepted: &["mi", "mit", "mittwoch", "we", "wed", "wednesday"],
    },
    WeekdayNames {
        day: Weekday::Thu,
        german_short: "Do",
        english: "Thursday",
        accepted: &[
            "do",
            "don",
            "donnerstag",
            "th",
            "thu",
            "thur",
            "thurs",
            "thursday",
        ],
    },
    WeekdayNames {
        day: Weekday::Fri,
        german_short: "Fr",
        english: "Friday",
        accepted: &["fr", "fre", "freitag", "fri", "friday"],
    },
    WeekdayNames {
        day: Weekday::Sat,
        german_short: "Sa",
        english: "Saturday",
        accepted: &["sa", "sam", "samstag", "sonnabend", "sat", "saturday"],
    },
    WeekdayNames {
        day: Weekday::Sun,
        german_short: "So",
        english: "Sunday",
        accepted: &["so", "son", "sonntag", "su", "sun", "sunday"],
    },
];

/// The German two-letter abbreviation: "Mo", "Di", … "So".
pub fn german_weekday(day: Weekday) -> &'static str {
    WEEKDAY_NAMES[day_index(day)].german_short
}

pub(super) fn english_weekday(day: Weekday) -> &'static str {
    WEEKDAY_NAMES[day_index(day)].english
}
