//! When a stream runs its micro-batches, as Spark's triggers say it.

use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Drain every new file in batches, then stop.
    AvailableNow,
    /// Run one batch (if there is anything new), then stop.
    Once,
    /// Look for new files at this interval until SIGINT or SIGTERM.
    Every(Duration),
}

impl FromStr for Trigger {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "available-now" => Ok(Trigger::AvailableNow),
            "once" => Ok(Trigger::Once),
            _ => {
                let Some(interval) = text.strip_prefix("every=") else {
                    return Err(format!(
                        "unknown trigger {text:?}: use available-now, once or every=DURATION \
                         (e.g. every=5s)"
                    ));
                };
                let interval = humantime::parse_duration(interval)
                    .map_err(|e| format!("bad interval {interval:?} in {text:?}: {e}"))?;
                if interval.is_zero() {
                    return Err("the interval of every=DURATION must be above zero".into());
                }
                Ok(Trigger::Every(interval))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_spark_like_triggers() {
        assert_eq!("once".parse(), Ok(Trigger::Once));
        assert_eq!("available-now".parse(), Ok(Trigger::AvailableNow));
        assert_eq!(
            "every=5s".parse(),
            Ok(Trigger::Every(Duration::from_secs(5)))
        );
        assert_eq!(
            "every=250ms".parse(),
            Ok(Trigger::Every(Duration::from_millis(250)))
        );
        assert!("every=0s".parse::<Trigger>().is_err());
        assert!(
            "sometimes"
                .parse::<Trigger>()
                .unwrap_err()
                .contains("available-now")
        );
    }
}
