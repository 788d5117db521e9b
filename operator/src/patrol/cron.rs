//! Five-field cron schedules (minute hour day-of-month month day-of-week) evaluated in a time zone.
//!
//! Small on purpose: numbers, `*`, ranges, steps, lists, month and weekday names, and the usual
//! `@hourly`/`@daily`/`@weekly`/`@monthly`/`@yearly` macros. As in Vixie cron, when both day fields
//! are restricted a day matching either one runs. Times are matched in civil time of the zone: a
//! time skipped by a daylight-saving change runs at the first instant after the gap, a repeated
//! one runs once (the earlier instant).

use k8s_openapi::jiff::civil::{Date, DateTime};
use k8s_openapi::jiff::tz::TimeZone;
use k8s_openapi::jiff::{Timestamp, ToSpan, Zoned};

/// A parsed schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    any_day: bool,
    any_weekday: bool,
}

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Parses `expression`; the error names the field that is wrong.
pub fn parse(expression: &str) -> Result<Schedule, String> {
    let expanded = match expression.trim() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        other if other.starts_with('@') => return Err(format!("unknown macro {other:?}")),
        other => other,
    };
    let fields: Vec<&str> = expanded.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!("needs 5 fields (minute hour day-of-month month day-of-week), found {}", fields.len()));
    }
    let minutes = field(fields[0], "minute", 0, 59, &[])?;
    let hours = field(fields[1], "hour", 0, 23, &[])?;
    let days = field(fields[2], "day-of-month", 1, 31, &[])?;
    let months = field(fields[3], "month", 1, 12, &MONTHS)?;
    // 7 is Sunday too.
    let weekdays = field(fields[4], "day-of-week", 0, 7, &WEEKDAYS)?;
    let weekdays = (weekdays | (weekdays >> 7)) & 0x7f;
    Ok(Schedule {
        minutes,
        hours: hours as u32,
        days: days as u32,
        months: (months >> 1) as u16,
        weekdays: weekdays as u8,
        any_day: fields[2] == "*" || fields[2] == "?",
        any_weekday: fields[4] == "*" || fields[4] == "?",
    })
}

/// The bit set of one field (bit n = value n).
fn field(text: &str, what: &str, min: u32, max: u32, names: &[&str]) -> Result<u64, String> {
    let value = |s: &str| -> Result<u32, String> {
        let lower = s.to_ascii_lowercase();
        if let Some(index) = names.iter().position(|n| *n == lower) {
            // Month names count from 1, weekday names from 0.
            return Ok(index as u32 + if min == 1 { 1 } else { 0 });
        }
        let n: u32 = s.parse().map_err(|_| format!("{what}: {s:?} is not a number"))?;
        if n < min || n > max {
            return Err(format!("{what}: {n} is outside {min}-{max}"));
        }
        Ok(n)
    };
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step.parse().map_err(|_| format!("{what}: step {step:?} is not a number"))?;
                if step == 0 {
                    return Err(format!("{what}: step 0"));
                }
                (range, step)
            }
            None => (part, 1),
        };
        let (low, high) = match range {
            "*" | "?" => (min, max),
            _ => match range.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                None if step > 1 => (value(range)?, max),
                None => {
                    let v = value(range)?;
                    (v, v)
                }
            },
        };
        if low > high {
            return Err(format!("{what}: range {range:?} runs backwards"));
        }
        let mut n = low;
        while n <= high {
            bits |= 1 << n;
            n += step;
        }
    }
    Ok(bits)
}

impl Schedule {
    fn day_matches(&self, date: Date) -> bool {
        if self.months & (1 << (date.month() as u16 - 1)) == 0 {
            return false;
        }
        let day = self.days & (1 << date.day() as u32) != 0;
        let weekday = self.weekdays & (1 << date.weekday().to_sunday_zero_offset() as u8) != 0;
        match (self.any_day, self.any_weekday) {
            (true, true) => true,
            (false, true) => day,
            (true, false) => weekday,
            (false, false) => day || weekday,
        }
    }

    /// The instants of `date`'s matching times in `zone`, in order.
    fn times_of(&self, date: Date, zone: &TimeZone) -> Vec<Timestamp> {
        let mut out = Vec::new();
        if !self.day_matches(date) {
            return out;
        }
        for hour in (0..24).filter(|h| self.hours & (1 << h) != 0) {
            for minute in (0..60).filter(|m| self.minutes & (1u64 << m) != 0) {
                let civil = DateTime::from_parts(date, k8s_openapi::jiff::civil::time(hour as i8, minute as i8, 0, 0));
                if let Ok(zoned) = zone.to_ambiguous_zoned(civil).compatible() {
                    out.push(zoned.timestamp());
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// The first scheduled instant strictly after `after`, within five years.
    pub fn next_after(&self, after: Timestamp, zone: &TimeZone) -> Option<Zoned> {
        let mut date = after.to_zoned(zone.clone()).date().checked_sub(1.day()).ok()?;
        for _ in 0..(366 * 5 + 2) {
            if let Some(t) = self.times_of(date, zone).into_iter().find(|t| *t > after) {
                return Some(t.to_zoned(zone.clone()));
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    /// The latest scheduled instant at or before `now` and after `since`, if any.
    pub fn latest_between(&self, since: Timestamp, now: Timestamp, zone: &TimeZone) -> Option<Zoned> {
        let mut date = now.to_zoned(zone.clone()).date().checked_add(1.day()).ok()?;
        let first = since.to_zoned(zone.clone()).date().checked_sub(1.day()).ok()?;
        while date >= first {
            if let Some(t) = self.times_of(date, zone).into_iter().rev().find(|t| *t <= now && *t > since) {
                return Some(t.to_zoned(zone.clone()));
            }
            date = date.yesterday().ok()?;
        }
        None
    }
}

/// The time zone `name` (IANA), from the system's zoneinfo database.
pub fn zone(name: Option<&str>) -> Result<TimeZone, String> {
    match name {
        None | Some("UTC") | Some("Etc/UTC") => Ok(TimeZone::UTC),
        Some(name) => TimeZone::get(name).map_err(|e| format!("unknown time zone {name:?}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn next(expr: &str, zone: &TimeZone, after: &str) -> String {
        parse(expr).unwrap().next_after(at(after), zone).unwrap().timestamp().to_string()
    }

    #[test]
    fn fields_ranges_steps_lists_and_names() {
        let utc = TimeZone::UTC;
        assert_eq!(next("0 9 * * *", &utc, "2026-12-01T08:59:59Z"), "2026-12-01T09:00:00Z");
        assert_eq!(next("0 9 * * *", &utc, "2026-12-01T09:00:00Z"), "2026-12-02T09:00:00Z", "strictly after");
        assert_eq!(next("*/15 * * * *", &utc, "2026-12-01T10:16:00Z"), "2026-12-01T10:30:00Z");
        assert_eq!(next("0 9 * * mon-fri", &utc, "2026-12-04T10:00:00Z"), "2026-12-07T09:00:00Z", "Friday → Monday");
        assert_eq!(next("0 9 * * 7", &utc, "2026-12-01T00:00:00Z"), "2026-12-06T09:00:00Z", "7 is Sunday");
        assert_eq!(next("30 8 1,15 * *", &utc, "2026-12-02T00:00:00Z"), "2026-12-15T08:30:00Z");
        assert_eq!(next("0 0 29 feb *", &utc, "2026-03-01T00:00:00Z"), "2028-02-29T00:00:00Z");
        assert_eq!(next("@daily", &utc, "2026-12-01T00:00:00Z"), "2026-12-02T00:00:00Z");
        // Both day fields restricted: either matches (the 13th, or any Friday).
        assert_eq!(next("0 0 13 * 5", &utc, "2026-12-01T00:00:00Z"), "2026-12-04T00:00:00Z");
    }

    #[test]
    fn bad_schedules_name_the_field() {
        for (expr, says) in [
            ("0 9 * *", "5 fields"),
            ("60 9 * * *", "minute"),
            ("0 24 * * *", "hour"),
            ("0 9 0 * *", "day-of-month"),
            ("0 9 * foo *", "month"),
            ("0 9 * * 8", "day-of-week"),
            ("*/0 * * * *", "step 0"),
            ("@fortnightly", "macro"),
        ] {
            let error = parse(expr).unwrap_err();
            assert!(error.contains(says), "{expr}: {error}");
        }
    }

    #[test]
    fn time_zones_and_daylight_saving() {
        let shanghai = zone(Some("Asia/Shanghai")).unwrap();
        assert_eq!(next("0 9 * * *", &shanghai, "2026-12-01T00:00:00Z"), "2026-12-01T01:00:00Z");
        let berlin = zone(Some("Europe/Berlin")).unwrap();
        // 2027-03-28 02:30 does not exist in Berlin: it runs right after the gap, once.
        assert_eq!(next("30 2 * * *", &berlin, "2027-03-27T12:00:00Z"), "2027-03-28T01:30:00Z");
        // 2026-10-25 02:30 happens twice: it runs once, at the earlier one.
        assert_eq!(next("30 2 * * *", &berlin, "2026-10-24T12:00:00Z"), "2026-10-25T00:30:00Z");
        assert_eq!(next("30 2 * * *", &berlin, "2026-10-25T00:30:00Z"), "2026-10-26T01:30:00Z");
        assert!(zone(Some("Mars/Olympus")).unwrap_err().contains("Mars/Olympus"));
    }

    #[test]
    fn zones_resolve_without_a_system_database() {
        // Minimal images (localkube's, scratch) carry no /usr/share/zoneinfo: the bundled copy
        // answers then.
        let bundled = k8s_openapi::jiff::tz::TimeZoneDatabase::bundled();
        assert!(bundled.get("Asia/Shanghai").is_ok());
        assert!(bundled.get("Europe/Berlin").is_ok());
    }

    #[test]
    fn latest_slot_within_a_window() {
        let schedule = parse("0 9 * * *").unwrap();
        let utc = TimeZone::UTC;
        let latest = |since: &str, now: &str| {
            schedule.latest_between(at(since), at(now), &utc).map(|z| z.timestamp().to_string())
        };
        assert_eq!(latest("2026-12-01T08:00:00Z", "2026-12-01T09:30:00Z").as_deref(), Some("2026-12-01T09:00:00Z"));
        assert_eq!(latest("2026-12-01T08:00:00Z", "2026-12-01T09:00:00Z").as_deref(), Some("2026-12-01T09:00:00Z"));
        assert_eq!(latest("2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z"), None, "the window excludes its start");
        assert_eq!(latest("2026-11-28T00:00:00Z", "2026-12-01T08:00:00Z").as_deref(), Some("2026-11-30T09:00:00Z"));
    }
}
