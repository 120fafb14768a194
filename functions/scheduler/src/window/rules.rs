//! Secrets Manager's own rotation window: a secret's `RotationRules`, its
//! `ScheduleExpression` (`cron(...)` or `rate(...)`) and `Duration`, read as
//! the service's documentation defines them:
//!
//! * a cron expression has six fields, minutes (`0` only: windows open on the
//!   hour), hours, day of month (`, - * ? / L`), month (`, - * /`, `JAN`-`DEC`),
//!   day of week (`# , - * ? / L`, `SUN`-`SAT` or 1-7), year (`*` only); one
//!   of the two day fields is `?`; steps in hours start again each day;
//! * a rate expression opens its windows at midnight (for a rate in hours,
//!   every that many hours from midnight);
//! * `Duration` is whole hours, `3h`; without it, a schedule in hours (one
//!   that names several hours of a day, or a rate in hours) keeps its window
//!   open an hour, one in days until the end of the UTC day;
//! * no window reaches into the next UTC day.
//!
//! A `Duration` without a `ScheduleExpression` (next to `AutomaticallyAfterDays`)
//! is read as a schedule in days: open from midnight for that long.

use super::calendar::{DAY, Date, HOUR, day_of, start_of};

/// How far ahead a schedule is searched for a day it names: 28 years, the
/// calendar's cycle of weekdays and leap days (the fifth Sunday of February
/// comes once in it).
pub const HORIZON_DAYS: i64 = 28 * 366;

/// A `ScheduleExpression` and `Duration` that make a window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulesWindow {
    schedule: Schedule,
    /// Hours each window stays open, from `Duration`.
    duration_hours: Option<u32>,
    text: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Schedule {
    Cron(Box<Cron>),
    /// `rate(N days)`, or no expression: open from midnight.
    Days,
    /// `rate(N hours)`: open every N hours from midnight.
    Hours(u32),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Cron {
    hours: Vec<u32>,
    months: [bool; 13],
    day_of_month: Option<DaysOfMonth>,
    day_of_week: Option<DaysOfWeek>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct DaysOfMonth {
    days: [bool; 32],
    last: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct DaysOfWeek {
    days: [bool; 8],
    /// `5L`: the last Thursday of the month.
    last_of: [bool; 8],
    /// `MON#2`: the second Monday of the month, as (weekday, which).
    nth: Vec<(u32, u32)>,
}

/// What is wrong with a `RotationRules` field: the field, its text and the
/// problem, with what Secrets Manager accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulesProblem {
    /// `ScheduleExpression` or `Duration`.
    pub field: &'static str,
    /// The field as Secrets Manager gave it.
    pub text: String,
    /// What is wrong, and what a valid one looks like.
    pub problem: String,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl RulesWindow {
    /// The window of a secret's `RotationRules`, `None` when they make none
    /// (no `ScheduleExpression` and no `Duration`).
    pub fn parse(
        schedule_expression: Option<&str>,
        duration: Option<&str>,
    ) -> Result<Option<RulesWindow>, RulesProblem> {
        let schedule_expression = schedule_expression.map(str::trim).filter(|s| !s.is_empty());
        let duration = duration.map(str::trim).filter(|s| !s.is_empty());
        let duration_hours = duration.map(parse_duration).transpose()?;
        let schedule = match schedule_expression {
            None if duration.is_none() => return Ok(None),
            None => Schedule::Days,
            Some(text) => parse_schedule(text).map_err(|problem| RulesProblem {
                field: "ScheduleExpression",
                text: text.to_owned(),
                problem,
            })?,
        };
        let mut text = schedule_expression.unwrap_or("every day").to_owned();
        if let Some(duration) = duration {
            text.push_str(&format!(" for {duration}"));
        }
        Ok(Some(RulesWindow {
            schedule,
            duration_hours,
            text: format!("RotationRules {text}"),
        }))
    }

    /// The windows of one day (since the epoch), in order of opening.
    pub fn windows_on(&self, day: i64) -> Vec<(i64, i64)> {
        let (Some(start), Some(end)) = (start_of(day), start_of(day + 1)) else {
            return Vec::new();
        };
        let (hours, in_hours): (Vec<u32>, bool) = match &self.schedule {
            Schedule::Cron(cron) => {
                if !cron.names(&Date::from_days(day)) {
                    return Vec::new();
                }
                (cron.hours.clone(), cron.hours.len() > 1)
            }
            Schedule::Days => (vec![0], false),
            Schedule::Hours(every) => ((0..24).step_by(*every as usize).collect(), true),
        };
        hours
            .into_iter()
            .map(|hour| {
                let opens = start + i64::from(hour) * HOUR;
                let length = match self.duration_hours {
                    Some(hours) => i64::from(hours) * HOUR,
                    None if in_hours => HOUR,
                    None => DAY,
                };
                (opens, opens.saturating_add(length).min(end))
            })
            .collect()
    }

    /// The first window that closes after `t` (it may be open at `t`), within
    /// [`HORIZON_DAYS`].
    pub fn next(&self, t: i64) -> Option<(i64, i64)> {
        let first = day_of(t);
        (first..first.saturating_add(HORIZON_DAYS))
            .flat_map(|day| self.windows_on(day))
            .find(|&(_, closes)| closes > t)
    }

    /// The window as people read it: `RotationRules cron(0 2 ? * SUN *) for 3h`.
    pub fn describe(&self) -> &str {
        &self.text
    }
}

impl Cron {
    fn names(&self, date: &Date) -> bool {
        let month_ok = self.months[date.month as usize];
        let dom_ok = self.day_of_month.as_ref().is_none_or(|dom| {
            dom.days[date.day as usize] || (dom.last && date.day == date.days_in_month())
        });
        let dow_ok = self.day_of_week.as_ref().is_none_or(|dow| {
            let which = (date.day - 1) / 7 + 1;
            dow.days[date.weekday as usize]
                || (dow.last_of[date.weekday as usize] && date.day + 7 > date.days_in_month())
                || dow.nth.contains(&(date.weekday, which))
        });
        month_ok && dom_ok && dow_ok
    }
}

fn parse_duration(text: &str) -> Result<u32, RulesProblem> {
    let problem = |problem: &str| RulesProblem {
        field: "Duration",
        text: text.to_owned(),
        problem: problem.to_owned(),
    };
    let digits = text
        .strip_suffix('h')
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| problem("is not whole hours such as 3h"))?;
    match digits.parse::<u32>() {
        Ok(hours @ 1..=24) => Ok(hours),
        _ => Err(problem("must be from 1h to 24h")),
    }
}

fn parse_schedule(text: &str) -> Result<Schedule, String> {
    if let Some(inner) = text.strip_prefix("rate(").and_then(|t| t.strip_suffix(')')) {
        let fields: Vec<&str> = inner.split_whitespace().collect();
        let bad = || "is not rate(N hours) or rate(N days), such as rate(10 days)".to_owned();
        let [count, unit] = fields[..] else {
            return Err(bad());
        };
        let count = count
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0 && count.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(bad)?;
        return match unit {
            "day" | "days" => Ok(Schedule::Days),
            "hour" | "hours" if count < 24 => Ok(Schedule::Hours(count)),
            "hour" | "hours" => Ok(Schedule::Days),
            _ => Err(bad()),
        };
    }
    let Some(inner) = text.strip_prefix("cron(").and_then(|t| t.strip_suffix(')')) else {
        return Err(
            "is neither cron(...) nor rate(...), such as cron(0 2 ? * SUN *) or rate(30 days)"
                .to_owned(),
        );
    };
    let fields: Vec<&str> = inner.split_whitespace().collect();
    let [minutes, hours, day_of_month, month, day_of_week, year] = fields[..] else {
        return Err(format!(
            "has {} fields; a cron expression has six: minutes hours day-of-month month \
             day-of-week year, such as cron(0 2 ? * SUN *)",
            fields.len()
        ));
    };
    if minutes != "0" {
        return Err(format!(
            "has minutes {minutes:?}; rotation windows open on the hour, so minutes must be 0"
        ));
    }
    if year != "*" {
        return Err(format!("has year {year:?}; the year must be *"));
    }
    let hours = set("hours", hours, 0, 23, &[])?;
    let months = set("month", month, 1, 12, &MONTHS)?;
    let day_of_month = match day_of_month {
        "?" => None,
        text => Some(days_of_month(text)?),
    };
    let day_of_week = match day_of_week {
        "?" => None,
        text => Some(days_of_week(text)?),
    };
    if day_of_month.is_some() == day_of_week.is_some() {
        return Err(
            "must have ? in exactly one of day-of-month and day-of-week, such as \
             cron(0 2 1 * ? *) or cron(0 2 ? * SUN *)"
                .to_owned(),
        );
    }
    let mut month_set = [false; 13];
    for m in months {
        month_set[m as usize] = true;
    }
    Ok(Schedule::Cron(Box::new(Cron {
        hours,
        months: month_set,
        day_of_month,
        day_of_week,
    })))
}

fn days_of_month(text: &str) -> Result<DaysOfMonth, String> {
    let mut dom = DaysOfMonth {
        days: [false; 32],
        last: false,
    };
    for item in text.split(',') {
        if item == "L" {
            dom.last = true;
            continue;
        }
        if item.contains('W') {
            return Err(format!(
                "has day-of-month {item:?}; Secrets Manager's schedules do not take W"
            ));
        }
        for day in set("day-of-month", item, 1, 31, &[])? {
            dom.days[day as usize] = true;
        }
    }
    Ok(dom)
}

fn days_of_week(text: &str) -> Result<DaysOfWeek, String> {
    let mut dow = DaysOfWeek {
        days: [false; 8],
        last_of: [false; 8],
        nth: Vec::new(),
    };
    let weekday = |t: &str| value("day-of-week", t, 1, 7, &WEEKDAYS);
    for item in text.split(',') {
        if item == "L" {
            dow.days[7] = true;
        } else if let Some(day) = item.strip_suffix('L') {
            dow.last_of[weekday(day)? as usize] = true;
        } else if let Some((day, which)) = item.split_once('#') {
            let which = which
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=5).contains(n))
                .ok_or_else(|| {
                    format!("has day-of-week {item:?}; after # comes 1 to 5, such as MON#2")
                })?;
            dow.nth.push((weekday(day)?, which));
        } else {
            for day in set("day-of-week", item, 1, 7, &WEEKDAYS)? {
                dow.days[day as usize] = true;
            }
        }
    }
    Ok(dow)
}

/// The values a comma-separated cron field names, in order: `*`, `a`, `a-b`
/// (wrapping past the end when `a > b`), each with an optional `/step`.
fn set(field: &str, text: &str, min: u32, max: u32, names: &[&str]) -> Result<Vec<u32>, String> {
    let mut chosen = vec![false; max as usize + 1];
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step = step
                    .parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0 && step.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| {
                        format!("has {field} {item:?}; after / comes a whole number from 1")
                    })?;
                (range, Some(step))
            }
            None => (item, None),
        };
        let (first, last) = match range.split_once('-') {
            _ if range == "*" => (min, max),
            Some((a, b)) => (
                value(field, a, min, max, names)?,
                value(field, b, min, max, names)?,
            ),
            None => {
                let a = value(field, range, min, max, names)?;
                (a, if step.is_some() { max } else { a })
            }
        };
        let span = if first <= last {
            last - first
        } else {
            max - first + 1 + last - min
        };
        let step = step.unwrap_or(1) as usize;
        for offset in (0..=span).step_by(step) {
            let v = (first - min + offset) % (max - min + 1) + min;
            chosen[v as usize] = true;
        }
    }
    Ok((min..=max).filter(|v| chosen[*v as usize]).collect())
}

fn value(field: &str, text: &str, min: u32, max: u32, names: &[&str]) -> Result<u32, String> {
    if let Some(index) = names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
        return Ok(min + index as u32);
    }
    text.parse::<u32>()
        .ok()
        .filter(|v| (min..=max).contains(v) && text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            let named = if names.is_empty() {
                String::new()
            } else {
                format!(" or {}-{}", names[0], names[names.len() - 1])
            };
            format!("has {field} {text:?}; write {min}-{max}{named}")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-07T00:00:00Z, a Monday.
    const MONDAY: i64 = 20_794 * DAY;

    fn rules(expression: &str, duration: Option<&str>) -> RulesWindow {
        RulesWindow::parse(Some(expression), duration)
            .unwrap()
            .unwrap()
    }

    fn problem(expression: &str) -> String {
        RulesWindow::parse(Some(expression), None)
            .unwrap_err()
            .problem
    }

    #[test]
    fn a_weekly_window_opens_on_its_day_for_its_duration() {
        let sunday = rules("cron(0 2 ? * SUN *)", Some("3h"));
        let opens = MONDAY + 6 * DAY + 2 * HOUR;
        assert_eq!(sunday.next(MONDAY), Some((opens, opens + 3 * HOUR)));
        assert_eq!(sunday.next(opens + HOUR), Some((opens, opens + 3 * HOUR)));
        assert_eq!(
            sunday.next(opens + 3 * HOUR),
            Some((opens + 7 * DAY, opens + 7 * DAY + 3 * HOUR))
        );
        assert_eq!(
            sunday.describe(),
            "RotationRules cron(0 2 ? * SUN *) for 3h"
        );
        // The same with the weekday's number.
        assert_eq!(
            rules("cron(0 2 ? * 1 *)", Some("3h")).next(MONDAY),
            sunday.next(MONDAY)
        );
    }

    #[test]
    fn default_lengths_follow_the_service() {
        // In days: to the end of the day.
        let daily = rules("cron(0 16 1,15 * ? *)", None);
        let the_15th = MONDAY + 8 * DAY;
        assert_eq!(
            daily.next(MONDAY),
            Some((the_15th + 16 * HOUR, the_15th + DAY))
        );
        // In hours: one hour each, starting again every day.
        let hourly = rules("cron(0 4/12 * * ? *)", None);
        assert_eq!(
            hourly.windows_on(20_794),
            vec![
                (MONDAY + 4 * HOUR, MONDAY + 5 * HOUR),
                (MONDAY + 16 * HOUR, MONDAY + 17 * HOUR)
            ]
        );
        assert_eq!(
            rules("rate(10 days)", None).windows_on(20_794),
            vec![(MONDAY, MONDAY + DAY)]
        );
        assert_eq!(
            rules("rate(10 days)", Some("2h")).windows_on(20_794),
            vec![(MONDAY, MONDAY + 2 * HOUR)]
        );
        assert_eq!(rules("rate(8 hours)", None).windows_on(20_794).len(), 3);
        // A duration past midnight stops at midnight.
        let late = rules("cron(0 22 * * ? *)", Some("5h"));
        assert_eq!(late.next(MONDAY), Some((MONDAY + 22 * HOUR, MONDAY + DAY)));
        // A duration alone: from midnight.
        let alone = RulesWindow::parse(None, Some("4h")).unwrap().unwrap();
        assert_eq!(alone.next(MONDAY + HOUR), Some((MONDAY, MONDAY + 4 * HOUR)));
        assert_eq!(RulesWindow::parse(None, None), Ok(None));
        assert_eq!(RulesWindow::parse(Some(" "), Some("")), Ok(None));
    }

    #[test]
    fn last_and_nth_days() {
        // The last day of December 2026 is a Thursday, the 31st.
        let last = rules("cron(0 16 L * ? *)", None);
        assert_eq!(last.next(MONDAY).unwrap().0, MONDAY + 24 * DAY + 16 * HOUR);
        let last_friday = rules("cron(0 0 ? * 6L *)", Some("1h"));
        assert_eq!(last_friday.next(MONDAY).unwrap().0, MONDAY + 18 * DAY);
        let first_sunday = rules("cron(0 0 ? * SUN#1 *)", Some("1h"));
        // 2027-01-03.
        assert_eq!(first_sunday.next(MONDAY).unwrap().0, MONDAY + 27 * DAY);
        // The 29th of February: 2028.
        let leap = rules("cron(0 0 29 FEB ? *)", None);
        let feb_29_2028 = 21_243 * DAY;
        assert_eq!(leap.next(MONDAY).unwrap().0, feb_29_2028);
        // A day that never comes.
        assert_eq!(rules("cron(0 0 31 FEB ? *)", None).next(MONDAY), None);
        assert_eq!(
            rules("cron(0 0 ? FEB 1#5 *)", None)
                .next(MONDAY)
                .map(|w| w.0 / DAY),
            Some(22_704)
        );
    }

    #[test]
    fn ranges_steps_lists_and_names() {
        assert_eq!(set("h", "1-3,7", 0, 23, &[]).unwrap(), vec![1, 2, 3, 7]);
        assert_eq!(set("h", "*/6", 0, 23, &[]).unwrap(), vec![0, 6, 12, 18]);
        assert_eq!(set("h", "22-1", 0, 23, &[]).unwrap(), vec![0, 1, 22, 23]);
        assert_eq!(
            set("d", "FRI-MON", 1, 7, &WEEKDAYS).unwrap(),
            vec![1, 2, 6, 7]
        );
        assert_eq!(
            set("m", "jan,Apr/3", 1, 12, &MONTHS).unwrap(),
            vec![1, 4, 7, 10]
        );
        assert_eq!(set("d", "1/7", 1, 31, &[]).unwrap(), vec![1, 8, 15, 22, 29]);
    }

    #[test]
    fn malformed_rules_say_what_the_service_accepts() {
        for (expression, expected) in [
            ("cron(0 2 * * *)", "has 5 fields"),
            ("cron(30 2 ? * SUN *)", "minutes must be 0"),
            ("cron(0 2 ? * SUN 2027)", "the year must be *"),
            ("cron(0 24 ? * SUN *)", "write 0-23"),
            ("cron(0 2 * * SUN *)", "exactly one of"),
            ("cron(0 2 ? * ? *)", "exactly one of"),
            ("cron(0 2 ? * SUN#6 *)", "1 to 5"),
            ("cron(0 2 15W * ? *)", "do not take W"),
            ("cron(0 2 ? * FUNDAY *)", "SUN-SAT"),
            ("cron(0 2 ? * 1/0 *)", "after / comes"),
            ("cron(0 2 ? * 1,,2 *)", "day-of-week \"\""),
            ("rate(0 days)", "rate(N hours)"),
            ("rate(10 weeks)", "rate(N hours)"),
            ("rate(-1 days)", "rate(N hours)"),
            ("every sunday", "neither cron"),
        ] {
            let message = problem(expression);
            assert!(message.contains(expected), "{expression}: {message}");
        }
        for duration in ["3", "h", "0h", "25h", "3 h", "1.5h", "-1h", "99999999999h"] {
            let error = RulesWindow::parse(Some("rate(1 day)"), Some(duration)).unwrap_err();
            assert_eq!(error.field, "Duration", "{duration}");
        }
    }
}
