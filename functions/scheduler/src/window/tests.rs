use super::calendar::HOUR;
use super::*;
use proptest::prelude::*;

/// 2026-12-07T00:00:00Z, a Monday.
const MONDAY: i64 = 20_794 * DAY;
const TAG: &str = "rotor:window";

fn tags(value: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(TAG.to_owned(), value.to_owned())])
}

fn window(tag: Option<&str>, schedule: Option<&str>, duration: Option<&str>) -> Window {
    let tags = tag.map(tags).unwrap_or_default();
    Window::of(TAG, &tags, schedule, duration).unwrap().unwrap()
}

fn tag_error(value: &str) -> String {
    Window::of(TAG, &tags(value), None, None)
        .unwrap_err()
        .to_string()
}

#[test]
fn hours_of_the_tag() {
    let w = window(Some("02:00-04:00"), None, None);
    let today = Opening {
        opens: MONDAY + 2 * HOUR,
        closes: MONDAY + 4 * HOUR,
    };
    assert_eq!(w.next_opening(MONDAY), Ok(today));
    assert!(!today.is_open_at(MONDAY));
    assert!(today.is_open_at(MONDAY + 2 * HOUR));
    assert!(today.is_open_at(MONDAY + 4 * HOUR - 1));
    assert_eq!(w.next_opening(MONDAY + 3 * HOUR), Ok(today));
    assert_eq!(
        w.next_opening(MONDAY + 4 * HOUR).unwrap().opens,
        MONDAY + DAY + 2 * HOUR
    );
    assert_eq!(w.describe(), "tag rotor:window=02:00-04:00");
}

#[test]
fn past_midnight_several_ranges_and_the_whole_day() {
    let w = window(Some("22:00-02:00"), None, None);
    // Open at 01:00, since 22:00 the day before.
    assert_eq!(
        w.next_opening(MONDAY + HOUR),
        Ok(Opening {
            opens: MONDAY - 2 * HOUR,
            closes: MONDAY + 2 * HOUR
        })
    );
    let two = window(Some(" 01:00-02:00  13:30-14:00 "), None, None);
    assert_eq!(
        two.next_opening(MONDAY + 3 * HOUR).unwrap().opens,
        MONDAY + 13 * HOUR + 1800
    );
    assert_eq!(two.describe(), "tag rotor:window=01:00-02:00  13:30-14:00");
    // Ranges that touch make one opening.
    let joined = window(Some("00:00-03:00 21:00-24:00"), None, None);
    assert_eq!(
        joined.next_opening(MONDAY + 22 * HOUR),
        Ok(Opening {
            opens: MONDAY + 21 * HOUR,
            closes: MONDAY + DAY + 3 * HOUR
        })
    );
    let all_day = window(Some("00:00-24:00"), None, None);
    assert!(
        all_day
            .next_opening(MONDAY + 5 * HOUR)
            .unwrap()
            .is_open_at(MONDAY + 5 * HOUR)
    );
    assert_eq!(
        window(Some("9:05-9:35"), None, None)
            .next_opening(MONDAY)
            .unwrap()
            .opens,
        MONDAY + 9 * HOUR + 300
    );
}

#[test]
fn a_malformed_tag_names_the_tag_and_the_fix() {
    for (value, expected) in [
        ("", "is empty"),
        ("   ", "is empty"),
        ("02:00", "not a range of times"),
        ("2-4", "not a range of times"),
        ("02:00-04:00,05:00-06:00", "not a range of times"),
        ("25:00-26:00", "not a range of times"),
        ("02:60-03:00", "not a range of times"),
        ("24:01-02:00", "not a range of times"),
        ("02:0-03:00", "not a range of times"),
        ("+2:00-03:00", "not a range of times"),
        ("٠٢:00-04:00", "not a range of times"),
        ("02:00-02:00", "opens and closes at the same time"),
        ("24:00-02:00", "opens at 24:00"),
        ("always", "not a range of times"),
    ] {
        let message = tag_error(value);
        assert!(
            message.contains(expected)
                && message.contains("tag rotor:window=")
                && message.contains("rotor:window=02:00-04:00")
                && message.contains("remove the tag"),
            "{value:?}: {message}"
        );
    }
}

#[test]
fn no_tag_and_no_rules_is_no_window() {
    assert_eq!(Window::of(TAG, &BTreeMap::new(), None, None), Ok(None));
    // Another tag is not the window tag.
    assert_eq!(
        Window::of("team:window", &tags("02:00-04:00"), None, None),
        Ok(None)
    );
}

#[test]
fn the_rules_alone_and_with_the_tag() {
    let sunday = window(None, Some("cron(0 2 ? * SUN *)"), Some("3h"));
    assert_eq!(
        sunday.next_opening(MONDAY).unwrap().opens,
        MONDAY + 6 * DAY + 2 * HOUR
    );
    // Both: only while both are open. Sundays 02:00-05:00 and 04:00-06:00
    // every day: Sundays 04:00-05:00.
    let both = window(Some("04:00-06:00"), Some("cron(0 2 ? * SUN *)"), Some("3h"));
    let sunday_4 = MONDAY + 6 * DAY + 4 * HOUR;
    assert_eq!(
        both.next_opening(MONDAY),
        Ok(Opening {
            opens: sunday_4,
            closes: sunday_4 + HOUR
        })
    );
    assert_eq!(
        both.describe(),
        "tag rotor:window=04:00-06:00 and RotationRules cron(0 2 ? * SUN *) for 3h"
    );
    let message = Window::of(TAG, &tags("x"), Some("cron(0 2 ? * SUN *)"), None)
        .unwrap_err()
        .to_string();
    assert!(message.contains("tag rotor:window=\"x\""), "{message}");
}

#[test]
fn a_window_that_never_opens_says_so() {
    let disjoint = window(Some("10:00-12:00"), Some("cron(0 2 ? * SUN *)"), Some("3h"));
    let message = disjoint.next_opening(MONDAY).unwrap_err().to_string();
    assert!(
        message.contains("never overlap") && message.contains("tag rotor:window=10:00-12:00"),
        "{message}"
    );
    let no_day = window(None, Some("cron(0 0 31 FEB ? *)"), None);
    let message = no_day.next_opening(MONDAY).unwrap_err().to_string();
    assert!(
        message.contains("never opens") && !message.contains("overlap"),
        "{message}"
    );
}

#[test]
fn bad_rules_name_the_field() {
    let message = Window::of(TAG, &BTreeMap::new(), Some("cron(15 2 ? * SUN *)"), None)
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("RotationRules.ScheduleExpression \"cron(15 2 ? * SUN *)\"")
            && message.contains("minutes must be 0")
            && message.contains("--rotation-rules"),
        "{message}"
    );
    let message = Window::of(TAG, &BTreeMap::new(), Some("rate(1 day)"), Some("90m"))
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("RotationRules.Duration \"90m\""),
        "{message}"
    );
}

#[test]
fn extreme_moments_do_not_panic() {
    let windows = [
        window(Some("22:00-02:00"), None, None),
        window(None, Some("cron(0 2 ? * SUN *)"), None),
        window(Some("01:00-05:00"), Some("rate(4 hours)"), Some("2h")),
        window(None, Some("cron(0 23 * * ? *)"), Some("24h")),
        window(Some("23:00-22:00"), Some("cron(0 0/2 * * ? *)"), None),
    ];
    for w in &windows {
        for now in [
            i64::MIN,
            i64::MIN + 1,
            -1,
            0,
            i64::MAX - 3 * DAY,
            i64::MAX - DAY,
            i64::MAX - HOUR,
            i64::MAX,
        ] {
            let _ = w.next_opening(now);
        }
    }
}

/// Whether the tag's hours are open at `t`, straight from the definition.
fn tag_open(ranges: &[(u32, u32)], t: i64) -> bool {
    let minute = (t.rem_euclid(DAY) / 60) as u32;
    ranges.iter().any(|&(opens, closes)| {
        if opens < closes {
            (opens..closes).contains(&minute)
        } else {
            minute >= opens || minute < closes
        }
    })
}

fn clock(minute: u32) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

prop_compose! {
    /// One to three ranges of the tag, and their text.
    fn tag_ranges()(ranges in prop::collection::vec((0u32..1440, 1u32..=1440), 1..=3)) -> Vec<(u32, u32)> {
        ranges.into_iter().filter(|(o, c)| o != c).collect()
    }
}

prop_compose! {
    /// A cron expression Secrets Manager accepts, built from its parts.
    fn cron_expression()(
        hours in prop::sample::subsequence((0u32..24).collect::<Vec<_>>(), 1..4),
        by_week in any::<bool>(),
        month_days in prop::sample::subsequence((1u32..=31).collect::<Vec<_>>(), 1..4),
        weekdays in prop::sample::subsequence((1u32..=7).collect::<Vec<_>>(), 1..4),
        months in prop::sample::subsequence((1u32..=12).collect::<Vec<_>>(), 1..13),
        nth in proptest::option::of((1u32..=7, 1u32..=4)),
        last in any::<bool>(),
        duration in proptest::option::of(1u32..=6),
    ) -> (String, Option<String>) {
        let list = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        let mut days = if by_week { list(&weekdays) } else { list(&month_days) };
        if let (true, Some((day, which))) = (by_week, nth) {
            days.push_str(&format!(",{day}#{which}"));
        }
        if last {
            days.push_str(if by_week { ",6L" } else { ",L" });
        }
        let (dom, dow) = if by_week { ("?".to_owned(), days) } else { (days, "?".to_owned()) };
        let expression = format!("cron(0 {} {dom} {} {dow} *)", list(&hours), list(&months));
        (expression, duration.map(|h| format!("{h}h")))
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn the_tag_opening_is_the_first_open_moment(
        ranges in tag_ranges(),
        now in 0i64..(400 * 365 * DAY),
    ) {
        prop_assume!(!ranges.is_empty());
        let text = ranges
            .iter()
            .map(|&(o, c)| format!("{}-{}", clock(o), clock(c)))
            .collect::<Vec<_>>()
            .join(" ");
        let w = window(Some(&text), None, None);
        let opening = w.next_opening(now).unwrap();
        prop_assert!(opening.opens < opening.closes && opening.closes > now);
        prop_assert!(opening.opens <= now || opening.opens - now <= DAY);
        // Open at every minute of the opening still to come...
        let from = opening.opens.max(now);
        let mut t = from;
        while t < opening.closes.min(from + 2 * DAY) {
            prop_assert!(tag_open(&ranges, t), "{text}: closed at {t}");
            t += 60;
        }
        // ...closed when it closes, unless a whole day is covered...
        prop_assert!(!tag_open(&ranges, opening.closes) || opening.closes - opening.opens >= DAY);
        // ...and closed at every minute before it opens.
        let mut t = now;
        while t < opening.opens {
            prop_assert!(!tag_open(&ranges, t), "{text}: open at {t}, before {opening:?}");
            t = (t / 60 + 1) * 60;
        }
    }

    #[test]
    fn the_rules_opening_is_the_first_open_hour(
        (expression, duration) in cron_expression(),
        now in 0i64..(200 * 365 * DAY),
    ) {
        let rules = RulesWindow::parse(Some(&expression), duration.as_deref()).unwrap().unwrap();
        let open = |t: i64| rules.windows_on(day_of(t)).iter().any(|w| w.0 <= t && t < w.1);
        let Some((opens, closes)) = rules.next(now) else {
            // Only a month's day that some months lack can be missed: then
            // no day in the horizon's first year opens either.
            for day in day_of(now)..day_of(now) + 366 {
                prop_assert!(rules.windows_on(day).is_empty(), "{expression}");
            }
            return Ok(());
        };
        prop_assert!(opens < closes && closes > now && day_of(opens) == day_of(closes - 1));
        prop_assert!(open(opens.max(now)) && open(closes - 1));
        // Windows open on the hour: look at `now` and every hour after it.
        let mut t = now;
        while t < opens {
            prop_assert!(!open(t), "{expression}: open at {t}, before {opens}");
            t = (t / HOUR + 1) * HOUR;
        }
    }

    #[test]
    fn the_overlap_is_open_in_both_and_the_first(
        ranges in tag_ranges(),
        (expression, duration) in cron_expression(),
        now in 0i64..(200 * 365 * DAY),
    ) {
        prop_assume!(!ranges.is_empty());
        let text = ranges
            .iter()
            .map(|&(o, c)| format!("{}-{}", clock(o), clock(c)))
            .collect::<Vec<_>>()
            .join(" ");
        let w = window(Some(&text), Some(&expression), duration.as_deref());
        let rules = RulesWindow::parse(Some(&expression), duration.as_deref()).unwrap().unwrap();
        let rules_open = |t: i64| rules.windows_on(day_of(t)).iter().any(|w| w.0 <= t && t < w.1);
        let both = |t: i64| tag_open(&ranges, t) && rules_open(t);
        let Ok(opening) = w.next_opening(now) else {
            return Ok(());
        };
        let from = opening.opens.max(now);
        prop_assert!(from < opening.closes && both(from) && both(opening.closes - 1));
        // An overlap begins at `now` or where one of the two opens: none
        // before the opening found.
        let mut candidates = vec![now];
        for day in day_of(now)..=day_of(opening.opens) {
            candidates.extend(rules.windows_on(day).iter().map(|w| w.0));
            candidates.extend(ranges.iter().map(|&(o, _)| day * DAY + i64::from(o) * 60));
        }
        for t in candidates.into_iter().filter(|&t| t >= now && t < opening.opens) {
            prop_assert!(!both(t), "{text} and {expression}: open at {t}, before {opening:?}");
        }
    }

    #[test]
    fn parsing_never_panics(
        tag in "\\PC{0,24}",
        near in "[0-9:\\- ]{0,16}",
        expression in "(cron|rate)\\([0-9A-Z?*,/#L\\- ]{0,30}\\)",
        duration in "[0-9h]{0,4}",
    ) {
        for value in [&tag, &near] {
            let _ = Window::of(TAG, &tags(value), Some(&expression), Some(&duration))
                .map(|w| w.map(|w| w.next_opening(MONDAY)));
        }
        if let Ok(Some(w)) = Window::of(TAG, &BTreeMap::new(), Some(&expression), None) {
            let _ = w.next_opening(MONDAY);
        }
    }
}
