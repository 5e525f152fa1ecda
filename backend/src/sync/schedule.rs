//! Sync schedules: five-field cron expressions, evaluated in UTC.

use std::str::FromStr;

use chrono::{DateTime, Utc};
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
    Cron::from_str(schedule).map_err(|error| format!("is not a valid cron expression: {error}"))
}
