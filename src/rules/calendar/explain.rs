//! The calendar's answers as German sentences for admins (`rules explain`).

use std::fmt;

use chrono::{DateTime, Datelike, TimeDelta, TimeZone, Utc};
use chrono_tz::{OffsetComponents, Tz};

use super::{
    Calendar, ClosedReason, DISPLAY_TIMEZONE, HolidayRegion, SEARCH_HORIZON_DAYS, Status,
    german_weekday,
};

impl Calendar {
    /// A German sentence for `status` with the region's name and this calendar's zone:
    /// "geschlossen: Karfreitag (gesetzlicher Feiertag in Thüringen); öffnet wieder Di
    /// 30.03.2027 08:30".
    pub fn describe<'a>(&'a self, status: &'a Status) -> StatusText<'a> {
        StatusText {
            status,
            timezone: self.spec.timezone,
            region: self.spec.public_holidays,
        }
    }
}

impl fmt::Display for ClosedReason {
    /// "außerhalb der Öffnungszeiten", "Karfreitag (gesetzlicher Feiertag)",
    /// "Heiligabend (Schließung)".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_reason(f, self, None)
    }
}

impl fmt::Display for Status {
    /// German, times in Europe/Berlin: "geöffnet bis Di 29.09.2026 18:00", "geschlossen:
    /// außerhalb der Öffnungszeiten; öffnet wieder Mi 30.09.2026 09:00". [`Calendar::describe`]
    /// also names the holiday region.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_status(f, self, DISPLAY_TIMEZONE, None)
    }
}

/// [`Calendar::describe`]'s sentence.
#[derive(Clone, Copy, Debug)]
pub struct StatusText<'a> {
    status: &'a Status,
    timezone: Tz,
    region: Option<HolidayRegion>,
}

impl fmt::Display for StatusText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_status(f, self.status, self.timezone, self.region)
    }
}

fn write_status(
    f: &mut fmt::Formatter<'_>,
    status: &Status,
    timezone: Tz,
    region: Option<HolidayRegion>,
) -> fmt::Result {
    match status {
        Status::Open { closes_at } => {
            write!(f, "geöffnet bis {}", LocalTime(*closes_at, timezone))
        }
        Status::Closed { reason, opens_at } => {
            f.write_str("geschlossen: ")?;
            write_reason(f, reason, region)?;
            match opens_at {
                Some(opens_at) => write!(f, "; öffnet wieder {}", LocalTime(*opens_at, timezone)),
                None => write!(
                    f,
                    "; öffnet in den nächsten {SEARCH_HORIZON_DAYS} Tagen nicht wieder"
                ),
            }
        }
    }
}

fn write_reason(
    f: &mut fmt::Formatter<'_>,
    reason: &ClosedReason,
    region: Option<HolidayRegion>,
) -> fmt::Result {
    match (reason, region) {
        (ClosedReason::OutsideHours, _) => f.write_str("außerhalb der Öffnungszeiten"),
        (ClosedReason::PublicHoliday(name), Some(region)) => {
            write!(f, "{name} (gesetzlicher Feiertag in {region})")
        }
        (ClosedReason::PublicHoliday(name), None) => write!(f, "{name} (gesetzlicher Feiertag)"),
        (ClosedReason::Closure(label), _) => write!(f, "{label} (Schließung)"),
    }
}

/// "Di 30.03.2027 08:30" in `zone`; a time the clock shows twice (the fall-back hour) gets
/// "(Sommerzeit)" or "(Winterzeit)".
struct LocalTime(DateTime<Utc>, Tz);

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let LocalTime(instant, zone) = *self;
        let local = instant.with_timezone(&zone);
        write!(
            f,
            "{} {}",
            german_weekday(local.weekday()),
            local.format("%d.%m.%Y %H:%M")
        )?;
        if zone
            .from_local_datetime(&local.naive_local())
            .single()
            .is_none()
        {
            let summer = local.offset().dst_offset() != TimeDelta::zero();
            f.write_str(if summer {
                " (Sommerzeit)"
            } else {
                " (Winterzeit)"
            })?;
        }
        Ok(())
    }
}
