//! Sync schedules: five-field cron expressions, evaluated in UTC.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use croner::Cron;

/// The next time `schedule` fires after `now`; `None` if it is not a valid schedule.
pub fn next_occurrence(schedule: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    parse_schedule(schedule)
        .ok()?
        .find_next_occurrence(&now, false)
        .ok()
}

/// A five-field cron expression (minute hour day-of-month month day-of-week); the error says
/// what is wrong, for the merchant.
pub(crate) fn parse_schedule(schedule: &str) -> Result<Cron, String> {
    let fields = schedule.split_whitespace().count();
    if fields != 5 {
        return Err(format!(
            "must be a cron expression of 5 fields (minute hour day month weekday), got {fields}"
        ));
    }
    let cron = Cron::from_str(schedule)
        .map_err(|error| format!("is not a valid cron expression: {error}"))?;
    // Each field may be valid while their combination names no date (`0 0 30 2 *`); such a
    // schedule was stored with no next run and never ran. Five fields have no year, so a
    // schedule repeats with the 400-year Gregorian calendar (146,097 days, whole weeks):
    // one that ever fires fires within 400 years of any instant, and croner searches up to
    // the year 5000. A fixed start keeps the answer independent of the clock.
    let start = Utc
        .with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid fixed date");
    if cron.find_next_occurrence(&start, false).is_err() {
        return Err(
            "never fires: no date matches its day and month (e.g. February 30th)".to_owned(),
        );
    }
    Ok(cron)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_no_date_matches_is_refused() {
        for never in ["0 0 30 2 *", "0 0 31 4 *", "15 3 31 2,4,6,9,11 *"] {
            let error = parse_schedule(never).expect_err(never);
            assert!(error.starts_with("never fires"), "{never}: {error}");
        }
        // Rare is not never: leap days, and a weekday that widens a day of month.
        for rare in ["0 0 29 2 *", "0 0 30 2 1", "0 0 31 * *"] {
            assert!(parse_schedule(rare).is_ok(), "{rare}");
            assert!(next_occurrence(rare, Utc::now()).is_some(), "{rare}");
        }
    }
}

#[cfg(test)]
mod properties {
    use chrono::Timelike;
    use proptest::prelude::*;

    use super::*;

    /// One cron field: the forms croner knows, numbers in and out of range, and junk.
    fn field() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => Just("*".to_owned()),
            3 => (0u32..70).prop_map(|n| n.to_string()),
            2 => (0u32..40, 0u32..70).prop_map(|(a, b)| format!("{a}-{b}")),
            2 => (0u32..70).prop_map(|n| format!("*/{n}")),
            1 => (0u32..32, 0u32..40, 0u32..20).prop_map(|(a, b, s)| format!("{a}-{b}/{s}")),
            1 => (0u32..32, 0u32..32).prop_map(|(a, b)| format!("{a},{b}")),
            1 => prop::sample::select(vec![
                "?", "L", "5L", "LW", "15W", "MON#2", "5#5", "SUN-SAT", "JAN", "feb-dec", "mon,fri",
                "0-0", "*/0", "99999999999999999999", "-1", ",", "1-", "#", "W", "L-3",
            ])
            .prop_map(str::to_owned),
            1 => "[ -~]{1,6}",
        ]
    }

    /// A field as people write it for its position (`*` or a number in range, a list of
    /// two, a step), or any other field.
    fn typical(low: u32, high: u32) -> BoxedStrategy<String> {
        prop_oneof![
            3 => Just("*".to_owned()),
            4 => (low..=high).prop_map(|n| n.to_string()),
            1 => (low..=high, low..=high).prop_map(|(a, b)| format!("{a},{b}")),
            1 => (1..=high).prop_map(|n| format!("*/{n}")),
            2 => field(),
        ]
        .boxed()
    }

    /// Five fields most of the time (spaced and tabbed as people type them), sometimes not.
    /// Days of the month near the end and February are frequent, so schedules that never
    /// fire (`0 0 30 2 *`) come up.
    fn schedule() -> impl Strategy<Value = String> {
        let day = prop_oneof![2 => typical(1, 31), 1 => (28u32..=31).prop_map(|d| d.to_string())];
        let month = prop_oneof![
            2 => typical(1, 12),
            1 => prop::sample::select(vec!["2", "FEB", "4", "2,4", "4-6/2", "11"])
                .prop_map(str::to_owned),
        ];
        let five = (typical(0, 59), typical(0, 23), day, month, typical(0, 7));
        prop_oneof![
            5 => (five, prop::collection::vec("[ \t]{1,2}", 5), "[ ]{0,2}").prop_map(
                |((minute, hour, day, month, weekday), gaps, lead)| {
                    let mut text = lead;
                    for (field, gap) in [minute, hour, day, month, weekday].iter().zip(gaps) {
                        text.push_str(field);
                        text.push_str(&gap);
                    }
                    text
                }
            ),
            1 => prop::collection::vec(field(), 0..8).prop_map(|fields| fields.join(" ")),
            1 => any::<String>(),
        ]
    }

    /// An instant between 1970 and 2400, to the nanosecond, often on a whole minute, where a
    /// schedule may fire exactly at `now`.
    fn instant() -> impl Strategy<Value = DateTime<Utc>> {
        prop_oneof![
            (0i64..13_569_465_600, 0u32..1_000_000_000),
            (0i64..226_157_760).prop_map(|minutes| (minutes * 60, 0)),
        ]
        .prop_map(|(secs, nanos)| DateTime::from_timestamp(secs, nanos).expect("in range"))
    }

    proptest! {
        /// Whatever a merchant types as a schedule is refused with a reason or accepted; an
        /// accepted one always has a next run, after now, on a whole minute.
        #[test]
        fn accepted_schedules_always_have_a_next_run(schedule in schedule(), now in instant()) {
            match parse_schedule(&schedule) {
                Ok(_) => {
                    let next = next_occurrence(&schedule, now);
                    prop_assert!(next.is_some(), "{:?} accepted, no run after {}", schedule, now);
                    let next = next.unwrap();
                    prop_assert!(next > now, "{} is not after {}", next, now);
                    prop_assert_eq!((next.second(), next.nanosecond()), (0, 0));
                }
                Err(reason) => {
                    prop_assert!(!reason.is_empty());
                    prop_assert_eq!(next_occurrence(&schedule, now), None);
                }
            }
        }

        /// Only five-field expressions are taken; the refusal says how many fields it saw.
        #[test]
        fn other_field_counts_are_refused_with_the_count(
            fields in prop_oneof![
                prop::collection::vec("[0-9*/,-]{1,3}", 0..5),
                prop::collection::vec("[0-9*/,-]{1,3}", 6..9),
            ],
        ) {
            let reason = parse_schedule(&fields.join(" ")).err().unwrap_or_default();
            prop_assert!(reason.ends_with(&format!("got {}", fields.len())), "{:?}", reason);
        }
    }
}
