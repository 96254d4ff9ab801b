//! The amounts limits are given in: sizes and rates with units, as flags and the config
//! file write them.

/// Bytes per second; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate(pub Option<u64>);

/// A rate such as `50MiB`, `200M`, `1.5GiB` or `0` (unlimited), per second.
impl std::str::FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Rate, String> {
        parse_rate(s).map(Rate)
    }
}

fn parse_rate(s: &str) -> Result<Option<u64>, String> {
    let bytes = parse_bytes(s.trim().trim_end_matches("/s"))
        .map_err(|e| format!("{e}: use e.g. 50MiB, 200M or 0 (no limit)"))?;
    Ok((bytes > 0).then_some(bytes))
}

/// An amount of memory, in bytes, more than zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

/// A size such as `512MiB`, `1G` or `1.5GiB`.
impl std::str::FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> Result<Size, String> {
        match parse_bytes(s) {
            Ok(0) => Err(format!(
                "`{s}` is no memory at all: use e.g. 512MiB or 2GiB"
            )),
            Ok(bytes) => Ok(Size(bytes)),
            Err(e) => Err(format!("{e}: use e.g. 512MiB or 2GiB")),
        }
    }
}

/// `50MiB`, `200M`, `1.5GiB`, `4096`: a number of bytes with an optional unit, decimal
/// (K, M, G) or binary (KiB, MiB, GiB).
fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if let Ok(bytes) = s.parse::<f64>() {
        return Ok(bytes as u64); // a plain number, `0.0` or `1.5` among them
    }
    s.parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|_| {
            format!("`{s}` is not a number of bytes with a unit (K, M, G, KiB, MiB or GiB)")
        })
}

#[cfg(test)]
mod rate_tests {
    use super::*;

    #[test]
    fn rates_parse_with_units() {
        assert_eq!(parse_rate("50MiB"), Ok(Some(50 << 20)));
        assert_eq!(parse_rate("200M/s"), Ok(Some(200_000_000)));
        assert_eq!(parse_rate("1.5GiB"), Ok(Some(3 << 29)));
        assert_eq!(parse_rate("0"), Ok(None));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("5 parsecs").is_err());
        assert_eq!(parse_rate("4096"), Ok(Some(4096)));
        assert_eq!(parse_rate("2K"), Ok(Some(2000)));
        assert_eq!(parse_rate("2KiB"), Ok(Some(2048)));
        assert_eq!(parse_rate("3 GB"), Ok(Some(3_000_000_000)));
        assert_eq!(parse_rate("0.0"), Ok(None));
        assert_eq!(parse_rate("1.5"), Ok(Some(1)));
        assert_eq!(parse_rate("1m"), Ok(Some(1_000_000)), "units in any case");
    }

    #[test]
    fn sizes_parse_with_units_and_are_never_zero() {
        assert_eq!("512MiB".parse::<Size>(), Ok(Size(512 << 20)));
        assert_eq!("1G".parse::<Size>(), Ok(Size(1_000_000_000)));
        assert!("0".parse::<Size>().unwrap_err().contains("no memory"));
        assert!("lots".parse::<Size>().unwrap_err().contains("e.g. 512MiB"));
    }
}
