//! Exact amounts: integers from JSON (numbers, decimal or `0x` strings), decimal amounts in
//! an asset's units (`"2500.5"` with 6 decimals is exactly 2 500 500 000), and durations
//! (`"24h"`). No floating point anywhere an amount is decided on.

use std::fmt;
use std::time::Duration;

use alloy::primitives::U256;

/// A value that is not the integer, amount or duration it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not {expected}")]
pub struct UnitError {
    pub value: String,
    pub expected: &'static str,
}

fn err(value: &str, expected: &'static str) -> UnitError {
    UnitError {
        value: value.chars().take(80).collect(),
        expected,
    }
}

/// A non-negative integer from a JSON value: a number, a decimal string or a `0x` hex string.
pub fn u256_from_json(v: &serde_json::Value) -> Result<U256, UnitError> {
    const EXPECTED: &str =
        "an unsigned integer (a JSON number, a decimal string or a 0x-hex string)";
    match v {
        serde_json::Value::Number(n) => n
            .as_u64()
            .map(U256::from)
            .ok_or_else(|| err(&n.to_string(), EXPECTED)),
        serde_json::Value::String(s) => parse_u256(s).ok_or_else(|| err(s, EXPECTED)),
        other => Err(err(&other.to_string(), EXPECTED)),
    }
}

/// `123` or `0x7b`; at most 78 decimal digits or 64 hex digits; no sign, no spaces.
pub fn parse_u256(s: &str) -> Option<U256> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        if hex.is_empty() || hex.len() > 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        U256::from_str_radix(hex, 16).ok()
    } else {
        if s.is_empty() || s.len() > 78 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        U256::from_str_radix(s, 10).ok()
    }
}

/// A decimal amount in whole units (`"1000"`, `"0.25"`) scaled by `decimals`, exactly; more
/// fractional digits than the asset has is an error, not a rounding.
pub fn parse_units(s: &str, decimals: u8) -> Result<U256, UnitError> {
    const EXPECTED: &str = "a decimal amount (digits, at most one '.', no more fractional digits than the asset's decimals)";
    let t = s.trim().replace('_', "");
    let (int, frac) = t.split_once('.').unwrap_or((&t, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > usize::from(decimals)
        || int.len() > 78
    {
        return Err(err(s, EXPECTED));
    }
    let mut digits = String::with_capacity(int.len() + usize::from(decimals));
    digits.push_str(int);
    digits.push_str(frac);
    digits.extend(std::iter::repeat_n('0', usize::from(decimals) - frac.len()));
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(U256::ZERO);
    }
    U256::from_str_radix(digits, 10).map_err(|_| err(s, EXPECTED))
}

/// An amount in whole units for people: `2500.5`, trailing zeros dropped.
pub fn format_units(amount: U256, decimals: u8) -> String {
    let s = amount.to_string();
    let d = usize::from(decimals);
    if d == 0 {
        return s;
    }
    let (int, frac) = if s.len() > d {
        let (i, f) = s.split_at(s.len() - d);
        (i.to_owned(), f.to_owned())
    } else {
        ("0".to_owned(), format!("{s:0>d$}"))
    };
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        int
    } else {
        format!("{int}.{frac}")
    }
}

/// A price in US dollars, exact to 1e-8 (`"3000.25"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, serde::Serialize)]
pub struct Usd(
    /// Hundred-millionths of a dollar.
    pub U256,
);

impl Usd {
    pub const DECIMALS: u8 = 8;

    pub fn parse(s: &str) -> Result<Usd, UnitError> {
        parse_units(s, Self::DECIMALS).map(Usd)
    }

    /// The value of `amount` smallest units of an asset with `decimals` at `price` per
    /// whole unit (rounded down).
    pub fn value_of(amount: U256, decimals: u8, price: Usd) -> Usd {
        let scale = U256::from(10).pow(U256::from(decimals));
        Usd(amount.saturating_mul(price.0) / scale)
    }

    pub fn saturating_add(self, other: Usd) -> Usd {
        Usd(self.0.saturating_add(other.0))
    }
}

impl fmt::Display for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Cents are enough for people.
        let cents = self.0 / U256::from(1_000_000u64);
        write!(f, "${}", format_units(cents, 2))
    }
}

/// `"90s"`, `"15m"`, `"24h"`, `"7d"`, or combinations like `"1h30m"`; bounded to a year.
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    const EXPECTED: &str =
        "a duration such as \"90s\", \"15m\", \"24h\", \"7d\" or \"1h30m\" (at most 366d)";
    let mut total: u64 = 0;
    let mut num = String::new();
    let mut any = false;
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(err(s, EXPECTED)),
        };
        let n: u64 = num.parse().map_err(|_| err(s, EXPECTED))?;
        total = total
            .checked_add(n.checked_mul(unit).ok_or_else(|| err(s, EXPECTED))?)
            .ok_or_else(|| err(s, EXPECTED))?;
        num.clear();
        any = true;
    }
    if !num.is_empty() || !any || total > 366 * 86_400 {
        return Err(err(s, EXPECTED));
    }
    Ok(Duration::from_secs(total))
}

/// A duration for people: `24h`, `1h30m`, `45s`.
pub fn format_duration(d: Duration) -> String {
    let mut s = d.as_secs();
    if s == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if s >= len {
            out.push_str(&format!("{}{unit}", s / len));
            s %= len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_from_json_in_every_form() {
        let j = |s: &str| serde_json::from_str::<serde_json::Value>(s).expect("json");
        assert_eq!(u256_from_json(&j("12")), Ok(U256::from(12)));
        assert_eq!(u256_from_json(&j("\"12\"")), Ok(U256::from(12)));
        assert_eq!(u256_from_json(&j("\"0x0c\"")), Ok(U256::from(12)));
        assert!(u256_from_json(&j("-1")).is_err());
        assert!(u256_from_json(&j("1.5")).is_err());
        assert!(u256_from_json(&j("\"12x\"")).is_err());
        assert!(u256_from_json(&j("\"0x\"")).is_err());
        assert!(u256_from_json(&j("\" 1\"")).is_err());
        assert!(u256_from_json(&j("null")).is_err());
        let max = format!("\"{}\"", U256::MAX);
        assert_eq!(u256_from_json(&j(&max)), Ok(U256::MAX));
        let over = format!("\"{}0\"", U256::MAX);
        assert!(u256_from_json(&j(&over)).is_err());
    }

    #[test]
    fn units_are_exact_both_ways() {
        assert_eq!(parse_units("2500.5", 6), Ok(U256::from(2_500_500_000u64)));
        assert_eq!(parse_units("0.000001", 6), Ok(U256::from(1)));
        assert_eq!(parse_units("1_000", 0), Ok(U256::from(1000)));
        assert_eq!(parse_units(".5", 1), Ok(U256::from(5)));
        assert!(parse_units("0.0000001", 6).is_err(), "too precise");
        assert!(parse_units("1e6", 6).is_err());
        assert!(parse_units("-1", 6).is_err());
        assert!(parse_units(".", 6).is_err());
        assert_eq!(format_units(U256::from(2_500_500_000u64), 6), "2500.5");
        assert_eq!(format_units(U256::from(1), 18), "0.000000000000000001");
        assert_eq!(format_units(U256::from(7), 0), "7");
        let eth = parse_units("1.5", 18).expect("eth");
        assert_eq!(
            Usd::value_of(eth, 18, Usd::parse("3000").expect("p")).to_string(),
            "$4500"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("24").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("400d").is_err());
        assert!(parse_duration("1w").is_err());
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }
}
