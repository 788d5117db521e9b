//! Kubernetes resource quantities (`500m`, `16Gi`, `1e3`), parsed exactly.
//!
//! Values are held as integer nano-units so sums (tenant-wide quota) never lose precision.
//!
//! [`parse`] accepts what the API server's own parser (`resource.ParseQuantity`) accepts, with the
//! value it yields (rounded up to a nano-unit), within what our CRDs' quantity rules admit: a digit
//! first (the server's parser takes a bare `Gi` or `.` for zero) and a magnitude below 2^63 − 1
//! units (the server caps binary-suffixed values there and would take larger decimal ones). The
//! rules in `api::common` say the same in CEL, so a value passes the API server exactly when it
//! parses here. Digit strings of any length are handled without overflow: the arithmetic runs on
//! decimal digits until the value is known to fit.

/// A quantity in nano-units (1 = 10⁻⁹).
pub type Nanos = i128;

const NANOS_PER_UNIT: i128 = 1_000_000_000;

/// The largest magnitude in whole units Kubernetes represents (2^63 − 1); quantities must stay
/// below it (the CRD rules compare against the same literal).
pub const MAX_UNITS: i64 = i64::MAX;
/// [`MAX_UNITS`] in nano-units: every parsed magnitude is smaller.
const MAX_NANOS: Nanos = MAX_UNITS as Nanos * NANOS_PER_UNIT;
/// Digits of [`MAX_NANOS`]: a digit string longer than this is out of range.
const MAX_NANOS_DIGITS: usize = 28;

/// Why a string is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("empty quantity")]
    Empty,
    #[error("no digits")]
    NoDigits,
    #[error("unknown suffix {0:?}")]
    Suffix(String),
    #[error("too large: quantities must stay below 2^63-1 units")]
    Overflow,
}

/// What a suffix multiplies by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scale {
    /// × 10^exponent (`m`, `k`, `G`, `e6`, …).
    Decimal(i64),
    /// × 1024^power (`Ki` … `Ei`).
    Binary(u32),
}

/// Parses a quantity into nano-units. Digits beyond nano precision are rounded up (away from
/// zero), as Kubernetes rounds them.
pub fn parse(text: &str) -> Result<Nanos, QuantityError> {
    if text.is_empty() {
        return Err(QuantityError::Empty);
    }
    let (negative, rest) = match text.as_bytes()[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (whole, rest) = rest.split_at(rest.bytes().take_while(u8::is_ascii_digit).count());
    let (fraction, suffix) = match rest.strip_prefix('.') {
        Some(after) => after.split_at(after.bytes().take_while(u8::is_ascii_digit).count()),
        None => ("", rest),
    };
    if whole.is_empty() && fraction.is_empty() {
        return Err(QuantityError::NoDigits);
    }
    let fraction_len = i64::try_from(fraction.len()).map_err(|_| QuantityError::Overflow)?;
    let (factor, exponent) = match suffix_scale(suffix)? {
        Scale::Decimal(exponent) => (1, exponent),
        Scale::Binary(power) => (1024u64.pow(power), 0),
    };
    // value = digits × factor × 10^(exponent − fraction length), in nanos (+9).
    let digits = times([whole, fraction].concat().as_bytes(), factor);
    let magnitude = nanos_of(&digits, exponent.saturating_add(9).saturating_sub(fraction_len))?;
    Ok(if negative { -magnitude } else { magnitude })
}

/// `digits × factor` as decimal digit values (0–9), most significant first, without leading
/// zeros: exact for a digit string of any length.
fn times(digits: &[u8], factor: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(digits.len() + 20);
    let mut carry: u128 = 0;
    for digit in digits.iter().rev() {
        let value = u128::from(digit - b'0') * u128::from(factor) + carry;
        out.push((value % 10) as u8);
        carry = value / 10;
    }
    while carry > 0 {
        out.push((carry % 10) as u8);
        carry /= 10;
    }
    while out.last() == Some(&0) {
        out.pop();
    }
    out.reverse();
    out
}

/// `digits × 10^shift` rounded up to a whole number, or [`QuantityError::Overflow`] at or above
/// [`MAX_NANOS`]. `digits` has no leading zeros (empty is zero).
fn nanos_of(digits: &[u8], shift: i64) -> Result<Nanos, QuantityError> {
    if digits.is_empty() {
        return Ok(0);
    }
    // How many digits the integer part has (none when the value is below one).
    let whole_digits = i64::try_from(digits.len()).unwrap_or(i64::MAX).saturating_add(shift);
    if whole_digits > MAX_NANOS_DIGITS as i64 {
        return Err(QuantityError::Overflow);
    }
    let whole_digits = whole_digits.max(0) as usize;
    let (head, tail) = digits.split_at(whole_digits.min(digits.len()));
    let zeros = whole_digits - head.len();
    let mut value: Nanos = 0;
    for digit in head.iter().copied().chain(std::iter::repeat_n(0, zeros)) {
        value = value.checked_mul(10).and_then(|v| v.checked_add(Nanos::from(digit))).ok_or(QuantityError::Overflow)?;
    }
    if tail.iter().any(|digit| *digit != 0) {
        value = value.checked_add(1).ok_or(QuantityError::Overflow)?;
    }
    if value >= MAX_NANOS { Err(QuantityError::Overflow) } else { Ok(value) }
}

/// What `suffix` multiplies by, as the API server reads it: SI and binary suffixes, or `e`/`E` and
/// a signed 64-bit integer taken modulo 2^32 (Go's `int32(…)` conversion, which `as` matches).
fn suffix_scale(suffix: &str) -> Result<Scale, QuantityError> {
    Ok(match suffix {
        "" => Scale::Decimal(0),
        "n" => Scale::Decimal(-9),
        "u" => Scale::Decimal(-6),
        "m" => Scale::Decimal(-3),
        "k" => Scale::Decimal(3),
        "M" => Scale::Decimal(6),
        "G" => Scale::Decimal(9),
        "T" => Scale::Decimal(12),
        "P" => Scale::Decimal(15),
        "E" => Scale::Decimal(18),
        "Ki" => Scale::Binary(1),
        "Mi" => Scale::Binary(2),
        "Gi" => Scale::Binary(3),
        "Ti" => Scale::Binary(4),
        "Pi" => Scale::Binary(5),
        "Ei" => Scale::Binary(6),
        _ => {
            let exponent = suffix
                .strip_prefix(['e', 'E'])
                .filter(|e| !e.is_empty())
                .and_then(|e| e.parse::<i64>().ok())
                .ok_or_else(|| QuantityError::Suffix(suffix.to_string()))?;
            Scale::Decimal(i64::from(exponent as i32))
        }
    })
}

/// Formats nano-units as a quantity string: binary suffixes when `binary` and the value is a whole
/// multiple of 1Ki, else whole units, milli-units or nano-units.
pub fn format(nanos: Nanos, binary: bool) -> String {
    if nanos % NANOS_PER_UNIT == 0 {
        let units = nanos / NANOS_PER_UNIT;
        if binary && units != 0 {
            for (suffix, power) in [("Ei", 6u32), ("Pi", 5), ("Ti", 4), ("Gi", 3), ("Mi", 2), ("Ki", 1)] {
                let base = 1024i128.pow(power);
                if units % base == 0 {
                    return format!("{}{suffix}", units / base);
                }
            }
        }
        units.to_string()
    } else if nanos % 1_000_000 == 0 {
        format!("{}m", nanos / 1_000_000)
    } else {
        format!("{nanos}n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_suffix_family() {
        assert_eq!(parse("1").unwrap(), 1_000_000_000);
        assert_eq!(parse("500m").unwrap(), 500_000_000);
        assert_eq!(parse("1.5").unwrap(), 1_500_000_000);
        assert_eq!(parse(".5").unwrap(), 500_000_000);
        assert_eq!(parse("2Ki").unwrap(), 2048 * NANOS_PER_UNIT);
        assert_eq!(parse("16Gi").unwrap(), 16 * 1024i128.pow(3) * NANOS_PER_UNIT);
        assert_eq!(parse("1.5Gi").unwrap(), 1536 * 1024 * 1024 * NANOS_PER_UNIT);
        assert_eq!(parse("2k").unwrap(), 2000 * NANOS_PER_UNIT);
        assert_eq!(parse("1e3").unwrap(), 1000 * NANOS_PER_UNIT);
        assert_eq!(parse("1E-3").unwrap(), 1_000_000);
        assert_eq!(parse("-2").unwrap(), -2 * NANOS_PER_UNIT);
        assert_eq!(parse("+7n").unwrap(), 7);
    }

    #[test]
    fn rounds_below_nano_up() {
        assert_eq!(parse("0.0000000001").unwrap(), 1);
        assert_eq!(parse("-0.0000000001").unwrap(), -1, "away from zero, as Kubernetes rounds");
        // The binary multiplier applies before rounding: 10⁻¹⁰ × 1024 = 102.4n.
        assert_eq!(parse("0.0000000001Ki").unwrap(), 103);
        assert_eq!(parse("1e-40").unwrap(), 1);
    }

    #[test]
    fn mantissas_of_any_length_neither_panic_nor_wrap() {
        // i128::MAX as digits behind a point: once an overflow panic in render (issue 12, item 11).
        assert_eq!(parse("0.170141183460469231731687303715884105727").unwrap(), 170_141_184);
        // One more than i128::MAX, and far longer: the API server's parser takes both.
        assert_eq!(parse("0.170141183460469231731687303715884105728").unwrap(), 170_141_184);
        assert_eq!(parse(&format!("1.{}", "9".repeat(300))).unwrap(), 2 * NANOS_PER_UNIT);
        assert_eq!(parse(&format!("{}1", "0".repeat(300))).unwrap(), NANOS_PER_UNIT);
        assert_eq!(parse("0e999999999").unwrap(), 0);
        assert_eq!(parse("170141183460469231731687303715884105727"), Err(QuantityError::Overflow));
        assert_eq!(parse(&"9".repeat(300)), Err(QuantityError::Overflow));
    }

    #[test]
    fn magnitudes_stay_below_two_to_the_63_units() {
        let max = i64::MAX.to_string();
        assert_eq!(parse("9223372036854775806").unwrap(), 9_223_372_036_854_775_806 * NANOS_PER_UNIT);
        assert_eq!(parse("9223372036854775806.999999999").unwrap(), MAX_NANOS - 1);
        assert_eq!(parse(&max), Err(QuantityError::Overflow));
        assert_eq!(parse(&format!("-{max}")), Err(QuantityError::Overflow));
        // Rounded up to the limit itself.
        assert_eq!(parse("9223372036854775806.9999999991"), Err(QuantityError::Overflow));
        assert!(parse("7Ei").is_ok());
        assert_eq!(parse("8Ei"), Err(QuantityError::Overflow), "2^63");
        assert_eq!(parse("1e19"), Err(QuantityError::Overflow));
        assert_eq!(parse("99999999999999999999Ei"), Err(QuantityError::Overflow));
    }

    #[test]
    fn reads_the_forms_the_api_server_reads() {
        assert_eq!(parse("1.").unwrap(), NANOS_PER_UNIT);
        assert_eq!(parse("+.5").unwrap(), 500_000_000);
        assert_eq!(parse("1e+3").unwrap(), 1000 * NANOS_PER_UNIT);
        assert_eq!(parse("2E2").unwrap(), 200 * NANOS_PER_UNIT);
        assert_eq!(parse("1.5Gi").unwrap(), 1536 * 1024 * 1024 * NANOS_PER_UNIT);
        // Go converts the exponent to int32: 2^32 wraps to 0.
        assert_eq!(parse("1e4294967296").unwrap(), NANOS_PER_UNIT);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "", "Gi", ".", "-", "+", "1.2.3", "12GB", "1e", "abc", "1 Gi", " 1", "1 ", "--1", "+-1", "1K", "1ee3",
            "1e3.5", "1e+", "1Ki3", "e5", ".e5",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(matches!(parse("1e99999999999999999999"), Err(QuantityError::Suffix(_))), "not a 64-bit exponent");
    }

    #[test]
    fn formats_round_trip() {
        for (text, binary) in [("16Gi", true), ("500m", false), ("3", false), ("1536Mi", true), ("7n", false)] {
            assert_eq!(format(parse(text).unwrap(), binary), text);
        }
        assert_eq!(format(parse("1.5Gi").unwrap(), true), "1536Mi");
        assert_eq!(format(parse("1000").unwrap(), true), "1000");
    }
}
