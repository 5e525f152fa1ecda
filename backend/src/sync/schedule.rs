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
