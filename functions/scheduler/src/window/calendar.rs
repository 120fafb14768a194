//! The UTC calendar, as pure integer arithmetic: which date and weekday a day
//! since the Unix epoch is. Enough for rotation windows; no time zones, no
//! leap seconds (Secrets Manager's schedules are in UTC, and so are the tags).

/// Seconds in a day.
pub const DAY: i64 = 86_400;
/// Seconds in an hour.
pub const HOUR: i64 = 3_600;

/// A day of the proleptic Gregorian calendar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Date {
    /// The year, such as 2026.
    pub year: i64,
    /// The month, 1 (January) to 12.
    pub month: u32,
    /// The day of the month, from 1.
    pub day: u32,
    /// The day of the week as cron numbers it: 1 (Sunday) to 7 (Saturday).
    pub weekday: u32,
}

impl Date {
    /// The date of `days` days after 1970-01-01 (negative: before it).
    pub fn from_days(days: i64) -> Date {
        // Counted in 400-year eras from 0000-03-01, so that the leap day is the
        // last day of each counted year.
        let shifted = days + 719_468;
        let era = shifted.div_euclid(146_097);
        let day_of_era = shifted.rem_euclid(146_097);
        let year_of_era =
            (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let march_based = (5 * day_of_year + 2) / 153;
        let day = (day_of_year - (153 * march_based + 2) / 5 + 1) as u32;
        let month = if march_based < 10 {
            march_based + 3
        } else {
            march_based - 9
        } as u32;
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        // 1970-01-01 was a Thursday, cron's 5.
        let weekday = (days + 4).rem_euclid(7) as u32 + 1;
        Date {
            year,
            month,
            day,
            weekday,
        }
    }

    /// How many days this date's month has.
    pub fn days_in_month(&self) -> u32 {
        match self.month {
            2 if is_leap(self.year) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// The day (since the epoch) that the moment `secs` falls on.
pub fn day_of(secs: i64) -> i64 {
    secs.div_euclid(DAY)
}

/// The moment a day starts, `None` past what an `i64` of seconds holds.
pub fn start_of(day: i64) -> Option<i64> {
    day.checked_mul(DAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(days: i64) -> (i64, u32, u32, u32) {
        let d = Date::from_days(days);
        (d.year, d.month, d.day, d.weekday)
    }

    #[test]
    fn known_dates() {
        assert_eq!(date(0), (1970, 1, 1, 5), "a Thursday");
        assert_eq!(date(-1), (1969, 12, 31, 4));
        // 2000-02-29 (a leap day of a century divisible by 400), a Tuesday.
        assert_eq!(date(11_016), (2000, 2, 29, 3));
        assert_eq!(date(11_017), (2000, 3, 1, 4));
        // 2026-12-07, a Monday.
        assert_eq!(date(20_794), (2026, 12, 7, 2));
        // 2100 is no leap year: 2100-02-28 is followed by 2100-03-01.
        let feb_28_2100 = 47_540;
        assert_eq!(date(feb_28_2100), (2100, 2, 28, 1));
        assert_eq!(date(feb_28_2100 + 1), (2100, 3, 1, 2));
    }

    #[test]
    fn month_lengths() {
        let len = |year, month| {
            Date {
                year,
                month,
                day: 1,
                weekday: 1,
            }
            .days_in_month()
        };
        assert_eq!(len(2024, 2), 29);
        assert_eq!(len(2026, 2), 28);
        assert_eq!(len(2100, 2), 28);
        assert_eq!(len(2000, 2), 29);
        assert_eq!(len(2026, 4), 30);
        assert_eq!(len(2026, 12), 31);
    }

    #[test]
    fn consecutive_days_step_through_the_calendar() {
        // Every day for 800 years follows the one before it.
        let mut previous = Date::from_days(-200 * 365);
        for days in (-200 * 365 + 1)..(600 * 365) {
            let next = Date::from_days(days);
            assert_eq!(next.weekday, previous.weekday % 7 + 1);
            if previous.day == previous.days_in_month() {
                assert_eq!(next.day, 1, "{next:?}");
                if previous.month == 12 {
                    assert_eq!((next.year, next.month), (previous.year + 1, 1));
                } else {
                    assert_eq!((next.year, next.month), (previous.year, previous.month + 1));
                }
            } else {
                assert_eq!(
                    (next.year, next.month, next.day),
                    (previous.year, previous.month, previous.day + 1)
                );
            }
            previous = next;
        }
    }

    #[test]
    fn extremes_do_not_panic() {
        for secs in [i64::MIN, i64::MAX, 0, -1] {
            let _ = Date::from_days(day_of(secs));
        }
        assert_eq!(start_of(i64::MAX / DAY + 1), None);
    }
}
