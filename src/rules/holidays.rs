//! Statutory public holidays of a German federal state, from the `holiday_de` crate.
//!
//! A calendar names one [`HolidayRegion`]; on its holidays the calendar is closed all day unless
//! an override for that date says otherwise (see [`super::calendar`]).
//!
//! What `holiday_de` (0.1) counts, and what we rely on:
//! - Only *statewide* holidays. Holidays of single communities are left out on purpose — for
//!   Thuringia that is Fronleichnam (Corpus Christi), a holiday only in the catholic communities
//!   of the Eichsfeld, not in Jena. A site that needs such a day adds it as a dated closure.
//! - Holidays that always fall on a Sunday (Ostersonntag, Pfingstsonntag) are left out; they are
//!   not statutory holidays in Thuringia anyway.
//! - Thuringia: Neujahr, Karfreitag, Ostermontag, 1. Mai, Christi Himmelfahrt, Pfingstmontag,
//!   Weltkindertag (20 September, since 2019), Tag der Deutschen Einheit, Reformationstag
//!   (31 October) and both Christmas days — 11 days a year.
//! - No holidays before 1995. We also ask for none after 9999: `holiday_de` panics on dates near
//!   the end of chrono's range, and a calendar must answer for every instant.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};
use holiday_de::GermanRegion;

/// A German federal state whose statutory public holidays close a calendar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HolidayRegion {
    BadenWuerttemberg,
    Bavaria,
    Berlin,
    Brandenburg,
    Bremen,
    Hamburg,
    Hesse,
    MecklenburgWesternPomerania,
    LowerSaxony,
    NorthRhineWestphalia,
    RhinelandPalatinate,
    Saarland,
    Saxony,
    SaxonyAnhalt,
    SchleswigHolstein,
    /// Jena's state (see the module notes on Fronleichnam).
    Thuringia,
}

/// The last year we ask `holiday_de` about (see the module notes).
const LAST_YEAR: i32 = 9999;

impl HolidayRegion {
    /// Every region, in the order of the enum.
    pub const ALL: [HolidayRegion; 16] = [
        HolidayRegion::BadenWuerttemberg,
        HolidayRegion::Bavaria,
        HolidayRegion::Berlin,
        HolidayRegion::Brandenburg,
        HolidayRegion::Bremen,
        HolidayRegion::Hamburg,
        HolidayRegion::Hesse,
        HolidayRegion::MecklenburgWesternPomerania,
        HolidayRegion::LowerSaxony,
        HolidayRegion::NorthRhineWestphalia,
        HolidayRegion::RhinelandPalatinate,
        HolidayRegion::Saarland,
        HolidayRegion::Saxony,
        HolidayRegion::SaxonyAnhalt,
        HolidayRegion::SchleswigHolstein,
        HolidayRegion::Thuringia,
    ];

    /// The German name of the state, as an admin writes it: "Thüringen".
    pub fn german_name(self) -> &'static str {
        self.names().german
    }

    /// The ISO 3166-2 code without the country: "TH".
    pub fn code(self) -> &'static str {
        self.names().code
    }

    /// The name of the public holiday on `date` in German ("Karfreitag"), if it is one.
    pub fn holiday_on(self, date: NaiveDate) -> Option<&'static str> {
        if date.year() > LAST_YEAR {
            return None;
        }
        self.german_region()
            .holiday_from_date(date)
            .map(|holiday| holiday.description())
    }

    /// All public holidays of `year`, sorted by date, with their German names.
    pub fn holidays_in_year(self, year: i32) -> Vec<(NaiveDate, &'static str)> {
        if year > LAST_YEAR {
            return Vec::new();
        }
        self.german_region()
            .holiday_dates_in_year(year)
            .into_iter()
            .map(|(date, holiday)| (date, holiday.description()))
            .collect()
    }

    fn german_region(self) -> GermanRegion {
        match self {
            HolidayRegion::BadenWuerttemberg => GermanRegion::BadenWuerttemberg,
            HolidayRegion::Bavaria => GermanRegion::Bayern,
            HolidayRegion::Berlin => GermanRegion::Berlin,
            HolidayRegion::Brandenburg => GermanRegion::Brandenburg,
            HolidayRegion::Bremen => GermanRegion::Bremen,
            HolidayRegion::Hamburg => GermanRegion::Hamburg,
            HolidayRegion::Hesse => GermanRegion::Hessen,
            HolidayRegion::MecklenburgWesternPomerania => GermanRegion::MechlenburgVorpommern,
            HolidayRegion::LowerSaxony => GermanRegion::Niedersachsen,
            HolidayRegion::NorthRhineWestphalia => GermanRegion::NordrheinWestfalen,
            HolidayRegion::RhinelandPalatinate => GermanRegion::RheinlandPfalz,
            HolidayRegion::Saarland => GermanRegion::Saarland,
            HolidayRegion::Saxony => GermanRegion::Sachsen,
            HolidayRegion::SaxonyAnhalt => GermanRegion::SachsenAnhalt,
            HolidayRegion::SchleswigHolstein => GermanRegion::SchleswigHolstein,
            HolidayRegion::Thuringia => GermanRegion::Thueringen,
        }
    }

    fn names(self) -> RegionNames {
        let (german, ascii, english, code) = match self {
            HolidayRegion::BadenWuerttemberg => (
                "Baden-Württemberg",
                "Baden-Wuerttemberg",
                "Baden-Wurttemberg",
                "BW",
            ),
            HolidayRegion::Bavaria => ("Bayern", "Bayern", "Bavaria", "BY"),
            HolidayRegion::Berlin => ("Berlin", "Berlin", "Berlin", "BE"),
            HolidayRegion::Brandenburg => ("Brandenburg", "Brandenburg", "Brandenburg", "BB"),
            HolidayRegion::Bremen => ("Bremen", "Bremen", "Bremen", "HB"),
            HolidayRegion::Hamburg => ("Hamburg", "Hamburg", "Hamburg", "HH"),
            HolidayRegion::Hesse => ("Hessen", "Hessen", "Hesse", "HE"),
            HolidayRegion::MecklenburgWesternPomerania => (
                "Mecklenburg-Vorpommern",
                "Mecklenburg-Vorpommern",
                "Mecklenburg-Western Pomerania",
                "MV",
            ),
            HolidayRegion::LowerSaxony => ("Niedersachsen", "Niedersachsen", "Lower Saxony", "NI"),
            HolidayRegion::NorthRhineWestphalia => (
                "Nordrhein-Westfalen",
                "Nordrhein-Westfalen",
                "North Rhine-Westphalia",
                "NW",
            ),
            HolidayRegion::RhinelandPalatinate => (
                "Rheinland-Pfalz",
                "Rheinland-Pfalz",
                "Rhineland-Palatinate",
                "RP",
            ),
            HolidayRegion::Saarland => ("Saarland", "Saarland", "Saarland", "SL"),
            HolidayRegion::Saxony => ("Sachsen", "Sachsen", "Saxony", "SN"),
            HolidayRegion::SaxonyAnhalt => {
                ("Sachsen-Anhalt", "Sachsen-Anhalt", "Saxony-Anhalt", "ST")
            }
            HolidayRegion::SchleswigHolstein => (
                "Schleswig-Holstein",
                "Schleswig-Holstein",
                "Schleswig-Holstein",
                "SH",
            ),
            HolidayRegion::Thuringia => ("Thüringen", "Thueringen", "Thuringia", "TH"),
        };
        RegionNames {
            german,
            ascii,
            english,
            code,
        }
    }
}

struct RegionNames {
    german: &'static str,
    ascii: &'static str,
    english: &'static str,
    code: &'static str,
}

impl fmt::Display for HolidayRegion {
    /// The German name: "Thüringen".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.german_name())
    }
}

/// A region name that matches no German state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "\"{input}\" is not a German state; write its German name (e.g. \"Thüringen\"), \
     its English name (\"Thuringia\") or its code (\"TH\" or \"DE-TH\")"
)]
pub struct UnknownRegion {
    pub input: String,
}

impl FromStr for HolidayRegion {
    type Err = UnknownRegion;

    /// Accepts the German name (with or without umlauts), the English name or the ISO code
    /// ("TH", "DE-TH"), ignoring case and surrounding blanks.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let wanted = input.trim();
        let code = wanted
            .get(..3)
            .filter(|prefix| prefix.eq_ignore_ascii_case("DE-"))
            .map_or(wanted, |_| &wanted[3..]);
        HolidayRegion::ALL
            .into_iter()
            .find(|region| {
                let names = region.names();
                [names.german, names.ascii, names.english]
                    .iter()
                    .any(|name| name.to_lowercase() == wanted.to_lowercase())
                    || names.code.eq_ignore_ascii_case(code)
            })
            .ok_or_else(|| UnknownRegion {
                input: input.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(year: i32, month: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, month, day).expect("valid test date")
    }

    /// The statutory list of the Thüringer Feiertagsgesetz, typed by hand for two years.
    #[test]
    fn thuringia_has_exactly_its_eleven_holidays_in_2026_and_2027() {
        let expected_2026 = [
            (date(2026, 1, 1), "Neujahr"),
            (date(2026, 4, 3), "Karfreitag"),
            (date(2026, 4, 6), "Ostermontag"),
            (date(2026, 5, 1), "Erster Mai"),
            (date(2026, 5, 14), "Christi Himmelfahrt"),
            (date(2026, 5, 25), "Pfingstmontag"),
            (date(2026, 9, 20), "Weltkindertag"),
            (date(2026, 10, 3), "Tag der Deutschen Einheit"),
            (date(2026, 10, 31), "Reformationstag"),
            (date(2026, 12, 25), "Erster Weihnachtsfeiertag"),
            (date(2026, 12, 26), "Zweiter Weihnachtsfeiertag"),
        ];
        let expected_2027 = [
            (date(2027, 1, 1), "Neujahr"),
            (date(2027, 3, 26), "Karfreitag"),
            (date(2027, 3, 29), "Ostermontag"),
            (date(2027, 5, 1), "Erster Mai"),
            (date(2027, 5, 6), "Christi Himmelfahrt"),
            (date(2027, 5, 17), "Pfingstmontag"),
            (date(2027, 9, 20), "Weltkindertag"),
            (date(2027, 10, 3), "Tag der Deutschen Einheit"),
            (date(2027, 10, 31), "Reformationstag"),
            (date(2027, 12, 25), "Erster Weihnachtsfeiertag"),
            (date(2027, 12, 26), "Zweiter Weihnachtsfeiertag"),
        ];
        assert_eq!(
            HolidayRegion::Thuringia.holidays_in_year(2026),
            expected_2026
        );
        assert_eq!(
            HolidayRegion::Thuringia.holidays_in_year(2027),
            expected_2027
        );
        for (day, name) in expected_2026.iter().chain(&expected_2027) {
            assert_eq!(HolidayRegion::Thuringia.holiday_on(*day), Some(*name));
        }
    }

    #[test]
    fn fronleichnam_is_not_a_holiday_in_thuringia_by_default() {
        // Corpus Christi 2026 (Easter + 60 days): a holiday only in the Eichsfeld.
        assert_eq!(HolidayRegion::Thuringia.holiday_on(date(2026, 6, 4)), None);
        assert_eq!(
            HolidayRegion::Bavaria.holiday_on(date(2026, 6, 4)),
            Some("Fronleichnam")
        );
    }

    #[test]
    fn weltkindertag_only_since_2019() {
        assert_eq!(HolidayRegion::Thuringia.holiday_on(date(2018, 9, 20)), None);
        assert_eq!(
            HolidayRegion::Thuringia.holiday_on(date(2019, 9, 20)),
            Some("Weltkindertag")
        );
        // Not a holiday next door in Saxony.
        assert_eq!(HolidayRegion::Saxony.holiday_on(date(2026, 9, 20)), None);
    }

    #[test]
    fn no_holidays_outside_the_supported_years_and_no_panic_at_the_ends_of_time() {
        assert!(HolidayRegion::Thuringia.holidays_in_year(1994).is_empty());
        for region in HolidayRegion::ALL {
            assert_eq!(region.holiday_on(NaiveDate::MAX), None);
            assert_eq!(region.holiday_on(NaiveDate::MIN), None);
            assert!(region.holidays_in_year(NaiveDate::MAX.year()).is_empty());
        }
    }

    #[test]
    fn regions_parse_from_german_english_and_code() {
        for input in [
            "Thüringen",
            "thüringen",
            "Thueringen",
            "Thuringia",
            "TH",
            "de-th",
            " TH ",
        ] {
            assert_eq!(input.parse(), Ok(HolidayRegion::Thuringia), "{input:?}");
        }
        assert_eq!("Bayern".parse(), Ok(HolidayRegion::Bavaria));
        assert_eq!("NW".parse(), Ok(HolidayRegion::NorthRhineWestphalia));
        let error = "Thüringia".parse::<HolidayRegion>().unwrap_err();
        assert!(
            error
                .to_string()
                .contains("\"Thüringia\" is not a German state")
        );
        for region in HolidayRegion::ALL {
            assert_eq!(region.german_name().parse(), Ok(region));
            assert_eq!(region.code().parse(), Ok(region));
        }
    }
}
