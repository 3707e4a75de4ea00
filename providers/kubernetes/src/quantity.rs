//! Kubernetes resource quantities (`250m`, `1.5`, `512Mi`, `1G`) as numbers.

/// CPU cores from a quantity: `250m` is 0.25, `2` is 2.
pub fn parse_cpu(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let value = match t.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().map(|v| v / 1000.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| format!("`{text}` is not a CPU quantity such as 250m or 1"))?;
    if !(value.is_finite() && value > 0.0 && value <= 100_000.0) {
        return Err(format!(
            "CPU `{text}` must be more than 0 and at most 100000 cores"
        ));
    }
    Ok(value)
}

/// Memory in MiB from a quantity: `512Mi`, `1Gi`, `1G`, `1000000` (bytes).
pub fn parse_memory_mib(text: &str) -> Result<u64, String> {
    let t = text.trim();
    const UNITS: [(&str, f64); 10] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
    ];
    let (number, factor) = UNITS
        .iter()
        .find_map(|(suffix, f)| t.strip_suffix(suffix).map(|n| (n, *f)))
        .unwrap_or((t, 1.0));
    let bytes = number
        .parse::<f64>()
        .map(|n| n * factor)
        .map_err(|_| format!("`{text}` is not a memory quantity such as 512Mi or 1Gi"))?;
    if !(bytes.is_finite() && bytes > 0.0 && bytes <= 1e18) {
        return Err(format!(
            "memory `{text}` must be more than 0 and at most 1 EB"
        ));
    }
    Ok((bytes / 1048576.0).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_as_kubernetes_writes_them() {
        assert_eq!(parse_cpu("250m").unwrap(), 0.25);
        assert_eq!(parse_cpu("2").unwrap(), 2.0);
        assert!(parse_cpu("lots").is_err());
        assert!(parse_cpu("0").is_err());
        assert_eq!(parse_memory_mib("512Mi").unwrap(), 512);
        assert_eq!(parse_memory_mib("1Gi").unwrap(), 1024);
        assert_eq!(parse_memory_mib("1G").unwrap(), 954);
        assert_eq!(parse_memory_mib("16417304Ki").unwrap(), 16033);
        assert!(parse_memory_mib("1Zi").is_err());
    }
}
