//! Rotation windows, as pure functions: when a due rotation may start.
//!
//! A secret's window comes from two places, either or both:
//!
//! * the window tag (`WINDOW_TAG`, by default `rotor:window`): UTC times of
//!   day, `02:00-04:00`, several separated by spaces (`01:00-02:00
//!   13:00-14:00`), one that ends before it starts running past midnight
//!   (`22:00-02:00`), `24:00` the end of the day;
//! * the secret's own `RotationRules`, `ScheduleExpression` and `Duration`,
//!   read as Secrets Manager does ([`rules`]).
//!
//! With both, a rotation starts only while both are open. With neither, any
//! time will do. A window that cannot be read is never taken for "any time":
//! the secret is skipped with the tag or the field named, and what to write.
//!
//! [`Window::next_opening`] answers the one question the scheduler and
//! `rotor status` ask: is the window open now, and if not, when does it open.

pub mod calendar;
pub mod rules;

use std::collections::BTreeMap;
use std::fmt;

use calendar::{DAY, day_of, start_of};
use rules::{HORIZON_DAYS, RulesProblem, RulesWindow};

/// The window tag when `WINDOW_TAG` is unset.
pub const DEFAULT_WINDOW_TAG: &str = "rotor:window";

const MINUTES_A_DAY: u32 = 24 * 60;

/// When a secret's rotation may start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    tag: Option<(String, TagHours)>,
    rules: Option<RulesWindow>,
}

/// One opening of a window, in seconds since the Unix epoch: from `opens`
/// (included) to `closes` (excluded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opening {
    /// When it opens (in the past when it is open now).
    pub opens: i64,
    /// When it closes.
    pub closes: i64,
}

impl Opening {
    /// Whether the window is open at `now`.
    pub fn is_open_at(&self, now: i64) -> bool {
        self.opens <= now && now < self.closes
    }
}

/// Why a secret's window cannot be used. Each message names the tag or the
/// `RotationRules` field, and the fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// The window tag is not UTC times of day.
    #[error(
        "tag {tag}={text:?} {problem}; write UTC times of day such as {tag}=02:00-04:00 \
         (several separated by spaces), or remove the tag to rotate at any time"
    )]
    Tag {
        /// The window tag's key.
        tag: String,
        /// Its value.
        text: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A `RotationRules` field Secrets Manager would not accept.
    #[error(
        "RotationRules.{} {:?} {}; set the secret's rotation schedule again (rotate-secret \
         --rotation-rules) with one Secrets Manager accepts",
        .0.field, .0.text, .0.problem
    )]
    Rules(RulesProblem),
    /// The window never opens.
    #[error(
        "its rotation window ({window}) never opens in the next 28 years{}; change the tag or \
         the rotation schedule so that the window opens",
        if *.both { ": the tag's hours and the rotation schedule never overlap" } else { "" }
    )]
    Never {
        /// The window, as [`Window::describe`] gives it.
        window: String,
        /// Whether it is the overlap of the tag and the rules that is empty.
        both: bool,
    },
}

impl Window {
    /// The window of a secret from its tags (`tag` is the window tag's key)
    /// and its `RotationRules`; `None` when it has none (any time will do).
    pub fn of(
        tag: &str,
        tags: &BTreeMap<String, String>,
        schedule_expression: Option<&str>,
        duration: Option<&str>,
    ) -> Result<Option<Window>, WindowError> {
        let hours = match tags.get(tag) {
            None => None,
            Some(text) => {
                let hours = TagHours::parse(text).map_err(|problem| WindowError::Tag {
                    tag: tag.to_owned(),
                    text: text.clone(),
                    problem,
                })?;
                Some((tag.to_owned(), hours))
            }
        };
        let rules =
            RulesWindow::parse(schedule_expression, duration).map_err(WindowError::Rules)?;
        if hours.is_none() && rules.is_none() {
            return Ok(None);
        }
        Ok(Some(Window { tag: hours, rules }))
    }

    /// The opening in force at `now`, or the next one.
    pub fn next_opening(&self, now: i64) -> Result<Opening, WindowError> {
        let never = || WindowError::Never {
            window: self.describe(),
            both: self.tag.is_some() && self.rules.is_some(),
        };
        let found = match (&self.tag, &self.rules) {
            (Some((_, hours)), None) => hours.next(now),
            (None, Some(rules)) => rules.next(now),
            (Some((_, hours)), Some(rules)) => overlap(now, |t| hours.next(t), |t| rules.next(t)),
            (None, None) => Some((now, now.saturating_add(DAY))),
        };
        found
            .map(|(opens, closes)| Opening { opens, closes })
            .ok_or_else(never)
    }

    /// The window as people read it: `tag rotor:window=02:00-04:00`,
    /// `RotationRules cron(0 2 ? * SUN *) for 3h`, or both joined by `and`.
    pub fn describe(&self) -> String {
        let tag = self
            .tag
            .as_ref()
            .map(|(key, hours)| format!("tag {key}={}", hours.text));
        let rules = self.rules.as_ref().map(|r| r.describe().to_owned());
        tag.into_iter()
            .chain(rules)
            .collect::<Vec<_>>()
            .join(" and ")
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// The first moment after `now` (or `now`) when both sources are open: each
/// gives its first opening that closes after a moment. Walks forward from the
/// later opening of the two until they overlap or one has no more.
fn overlap(
    now: i64,
    first: impl Fn(i64) -> Option<(i64, i64)>,
    second: impl Fn(i64) -> Option<(i64, i64)>,
) -> Option<(i64, i64)> {
    let horizon = now.saturating_add(HORIZON_DAYS * DAY);
    let mut t = now;
    while t < horizon {
        let (a, b) = (first(t)?, second(t)?);
        let opens = a.0.max(b.0);
        let closes = a.1.min(b.1);
        if opens < closes {
            return Some((opens, closes));
        }
        // The one that closes first closes at or before `opens`: from there,
        // both move on. `opens > t`, since both close after `t`.
        t = opens;
    }
    None
}

/// The window tag's times of day, in minutes from midnight UTC.
#[derive(Clone, Debug, PartialEq, Eq)]
struct TagHours {
    /// `(opens, closes)`; `closes < opens` runs past midnight.
    ranges: Vec<(u32, u32)>,
    text: String,
}

impl TagHours {
    fn parse(text: &str) -> Result<TagHours, String> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err("is empty".to_owned());
        }
        let mut ranges = Vec::new();
        for range in trimmed.split_whitespace() {
            let malformed = || match range == trimmed {
                true => "is not a range of times".to_owned(),
                false => format!("has {range:?}, which is not a range of times"),
            };
            let (opens, closes) = range.split_once('-').ok_or_else(malformed)?;
            let opens = minute_of_day(opens).ok_or_else(malformed)?;
            let closes = minute_of_day(closes).ok_or_else(malformed)?;
            if opens == closes {
                return Err(format!(
                    "has {range:?}, which opens and closes at the same time (for the whole day \
                     write 00:00-24:00)"
                ));
            }
            if opens == MINUTES_A_DAY {
                return Err(format!("has {range:?}, which opens at 24:00; write 00:00"));
            }
            ranges.push((opens, closes));
        }
        Ok(TagHours {
            ranges,
            text: trimmed.to_owned(),
        })
    }

    /// The first opening that closes after `t`: the ranges of the days around
    /// it, merged where they touch, so that an opening runs to its real end.
    fn next(&self, t: i64) -> Option<(i64, i64)> {
        let today = day_of(t);
        let mut spans = Vec::new();
        for day in today.checked_sub(1)?..=today.checked_add(2)? {
            let start = start_of(day)?;
            for &(opens, closes) in &self.ranges {
                let closes = if closes <= opens {
                    closes + MINUTES_A_DAY
                } else {
                    closes
                };
                spans.push((
                    start.checked_add(i64::from(opens) * 60)?,
                    start.checked_add(i64::from(closes) * 60)?,
                ));
            }
        }
        spans.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::new();
        for (opens, closes) in spans {
            match merged.last_mut() {
                Some(last) if opens <= last.1 => last.1 = last.1.max(closes),
                _ => merged.push((opens, closes)),
            }
        }
        merged.into_iter().find(|&(_, closes)| closes > t)
    }
}

/// `HH:MM` (or `H:MM`) from `00:00` to `24:00`, in minutes.
fn minute_of_day(text: &str) -> Option<u32> {
    let (hours, minutes) = text.split_once(':')?;
    let digits = |s: &str, most: usize| {
        (!s.is_empty() && s.len() <= most && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    if minutes.len() != 2 {
        return None;
    }
    let (hours, minutes) = (digits(hours, 2)?, digits(minutes, 2)?);
    let total = hours * 60 + minutes;
    (minutes < 60 && total <= MINUTES_A_DAY).then_some(total)
}

#[cfg(test)]
mod tests;
