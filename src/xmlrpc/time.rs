//! Koji's time forms: PostgreSQL-style timestamp strings (`*_time` fields) and the ISO dates
//! clients pass in filters. Both the hub and the builder (log line stamps) use them.

/// Epoch seconds as Koji prints PostgreSQL timestamps: `2024-01-01 12:00:00.123456+00:00`.
pub fn koji_time(ts: f64) -> String {
    let micros_total = (ts * 1_000_000.0).round() as i64;
    let secs = micros_total.div_euclid(1_000_000);
    let micros = micros_total.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{micros:06}+00:00",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// `YYYY-MM-DD[ T]HH:MM[:SS[.ffffff]]` in UTC, or a bare date.
pub fn parse_iso(s: &str) -> Option<f64> {
    let s = s.trim();
    let (date, time) = match s.split_once([' ', 'T']) {
        Some((d, t)) => (d, t.trim_end_matches('Z').trim_end_matches("+00:00")),
        None => (s, "00:00:00"),
    };
    let mut dp = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (dp.next()??, dp.next()??, dp.next()??);
    let mut tp = time.split(':');
    let h: i64 = tp.next()?.parse().ok()?;
    let mi: i64 = tp.next().unwrap_or("0").parse().ok()?;
    let sec: f64 = tp.next().unwrap_or("0").parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // days-from-civil (Howard Hinnant).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60) as f64 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format() {
        assert_eq!(
            koji_time(1_704_067_200.5),
            "2024-01-01 00:00:00.500000+00:00"
        );
        assert_eq!(koji_time(0.0), "1970-01-01 00:00:00.000000+00:00");
        assert_eq!(koji_time(951_782_400.0), "2000-02-29 00:00:00.000000+00:00");
    }
    #[test]
    fn iso_dates() {
        assert_eq!(parse_iso("1970-01-02"), Some(86_400.0));
        assert_eq!(parse_iso("2024-01-01 00:00:00.5"), Some(1_704_067_200.5));
        assert_eq!(parse_iso("2024-01-01T01:00"), Some(1_704_070_800.0));
        assert_eq!(parse_iso("nonsense"), None);
    }
}
