//! `maxSurge`: how many extra nodes an upgrade adds at once, as a count
//! (`"1"`) or as a percentage of the pool (`"33%"`, rounded up, as AKS does).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxSurge {
    Count(u32),
    Percent(u32),
}

impl Default for MaxSurge {
    fn default() -> Self {
        MaxSurge::Count(1)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a max surge: give a node count such as 1 or a percentage from 0% to 100% such as 33%")]
pub struct MaxSurgeError(pub String);

impl MaxSurge {
    /// Surge nodes for a pool of `count` nodes.
    pub fn nodes(self, count: u32) -> u32 {
        match self {
            MaxSurge::Count(n) => n,
            // ceil(count * p / 100) without overflow: count <= u32::MAX, p <= 100.
            MaxSurge::Percent(p) => {
                let n = u64::from(count) * u64::from(p);
                u32::try_from(n.div_ceil(100)).unwrap_or(u32::MAX)
            }
        }
    }
}

impl FromStr for MaxSurge {
    type Err = MaxSurgeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let err = || MaxSurgeError(s.to_string());
        let digits_only = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
        if let Some(p) = t.strip_suffix('%') {
            if !digits_only(p) {
                return Err(err());
            }
            let p: u32 = p.parse().map_err(|_| err())?;
            if p > 100 {
                return Err(err());
            }
            Ok(MaxSurge::Percent(p))
        } else {
            if !digits_only(t) {
                return Err(err());
            }
            t.parse().map(MaxSurge::Count).map_err(|_| err())
        }
    }
}

impl fmt::Display for MaxSurge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaxSurge::Count(n) => write!(f, "{n}"),
            MaxSurge::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl Serialize for MaxSurge {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MaxSurge {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(u32),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(n) => Ok(MaxSurge::Count(n)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counts_and_percentages() {
        assert_eq!("1".parse(), Ok(MaxSurge::Count(1)));
        assert_eq!("33%".parse(), Ok(MaxSurge::Percent(33)));
        assert_eq!(" 0% ".parse(), Ok(MaxSurge::Percent(0)));
        for bad in ["", "%", "101%", "-1", "1.5", "x%", "+3", "99999999999"] {
            assert!(bad.parse::<MaxSurge>().is_err(), "{bad}");
        }
    }

    #[test]
    fn percentage_rounds_up() {
        assert_eq!(MaxSurge::Percent(33).nodes(10), 4);
        assert_eq!(MaxSurge::Percent(33).nodes(3), 1);
        assert_eq!(MaxSurge::Percent(100).nodes(7), 7);
        assert_eq!(MaxSurge::Percent(0).nodes(7), 0);
        assert_eq!(MaxSurge::Count(2).nodes(0), 2);
        assert_eq!(MaxSurge::Percent(100).nodes(u32::MAX), u32::MAX);
    }

    #[test]
    fn serde_as_text_or_number() {
        let m: MaxSurge = serde_json::from_str("\"33%\"").unwrap();
        assert_eq!(m, MaxSurge::Percent(33));
        let m: MaxSurge = serde_json::from_str("2").unwrap();
        assert_eq!(m, MaxSurge::Count(2));
        assert_eq!(
            serde_json::to_string(&MaxSurge::Percent(5)).unwrap(),
            "\"5%\""
        );
    }
}
