//! Kubernetes resource quantities (`500m`, `16Gi`, `1e3`), parsed exactly.
//!
//! Values are held as integer nano-units so sums (tenant-wide quota) never lose precision.

/// A quantity in nano-units (1 = 10⁻⁹).
pub type Nanos = i128;

const NANOS_PER_UNIT: i128 = 1_000_000_000;

/// Why a string is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("empty quantity")]
    Empty,
    #[error("no digits")]
    NoDigits,
    #[error("unknown suffix {0:?}")]
    Suffix(String),
    #[error("too large")]
    Overflow,
}

/// Parses a quantity into nano-units. Digits beyond nano precision are rounded up, as Kubernetes
/// rounds sub-milli values up.
pub fn parse(text: &str) -> Result<Nanos, QuantityError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(QuantityError::Empty);
    }
    let (negative, rest) = match text.as_bytes()[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let number_len = rest.bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
    let (number, suffix) = rest.split_at(number_len);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return Err(QuantityError::NoDigits);
    }
    let (multiplier, exponent) = suffix_scale(suffix)?;

    // value = digits × 10^(exponent − fraction length) × multiplier, in nanos (+9).
    let digits: String = [whole, fraction].concat();
    let mut mantissa: i128 = 0;
    for digit in digits.bytes() {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(i128::from(digit - b'0')))
            .ok_or(QuantityError::Overflow)?;
    }
    let shift = exponent + 9 - fraction.len() as i32;
    let scaled = if shift >= 0 {
        10i128.checked_pow(shift as u32).and_then(|p| mantissa.checked_mul(p)).ok_or(QuantityError::Overflow)?
    } else {
        let divisor = 10i128.checked_pow((-shift) as u32).ok_or(QuantityError::Overflow)?;
        // Rounded up without `mantissa + divisor - 1`, which overflows for 39-digit mantissas.
        mantissa / divisor + i128::from(mantissa % divisor != 0)
    };
    let value = scaled.checked_mul(multiplier).ok_or(QuantityError::Overflow)?;
    // Kubernetes caps quantities at 2^63-1 units.
    if value / NANOS_PER_UNIT > i128::from(i64::MAX) {
        return Err(QuantityError::Overflow);
    }
    Ok(if negative { -value } else { value })
}

/// `(binary multiplier, decimal exponent)` of a suffix.
fn suffix_scale(suffix: &str) -> Result<(i128, i32), QuantityError> {
    let binary = |power: u32| Ok((1024i128.pow(power), 0));
    let decimal = |exponent: i32| Ok((1, exponent));
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(1),
        "Mi" => binary(2),
        "Gi" => binary(3),
        "Ti" => binary(4),
        "Pi" => binary(5),
        "Ei" => binary(6),
        _ => {
            let exponent = suffix
                .strip_prefix(['e', 'E'])
                .and_then(|e| e.parse::<i32>().ok())
                .filter(|e| (-30..=30).contains(e))
                .ok_or_else(|| QuantityError::Suffix(suffix.to_string()))?;
            decimal(exponent)
        }
    }
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
    }

    #[test]
    fn the_largest_mantissa_neither_panics_nor_wraps() {
        // i128::MAX as digits behind a point: once an overflow panic in render (issue 12, item 11).
        assert_eq!(parse("0.170141183460469231731687303715884105727").unwrap(), 170_141_184);
        assert_eq!(parse("170141183460469231731687303715884105727"), Err(QuantityError::Overflow));
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["", "Gi", "1.2.3", "12GB", "1e", "abc", "1 Gi", "--1", "1e99"] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(parse("99999999999999999999Ei"), Err(QuantityError::Overflow));
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
