//! Maps EC2 instance types to Hoist's neutral [`InstanceFamily`], and reads the network speed
//! EC2 reports as text ("Up to 10 Gigabit").
//!
//! The family comes from the instance type's series (the letters before the generation digit:
//! `m` in `m6i.large`), its attribute letters (`n` in `c5n`: network optimised), and the facts
//! EC2 reports (GPUs and other accelerators win, burstable types are burstable).

use hoist_api::InstanceFamily;

/// Splits `c6gn.xlarge` into series `c`, generation `6` and attributes `gn`.
pub fn split_type(instance_type: &str) -> (&str, &str, &str) {
    let class = instance_type.split('.').next().unwrap_or(instance_type);
    let class = class.split('-').next().unwrap_or(class); // `u-6tb1`, `m7i-flex`
    let digit = class
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(class.len());
    let after_digits = class[digit..]
        .find(|c: char| !c.is_ascii_digit())
        .map_or(class.len(), |i| digit + i);
    (
        &class[..digit],
        &class[digit..after_digits],
        &class[after_digits..],
    )
}

/// The neutral family of an instance type, given whether EC2 reports accelerators and burstable
/// performance for it.
pub fn family_of(instance_type: &str, has_accelerators: bool, burstable: bool) -> InstanceFamily {
    let (series, _, attributes) = split_type(instance_type);
    if has_accelerators {
        return InstanceFamily::Accelerated;
    }
    if burstable || series == "t" {
        return InstanceFamily::Burstable;
    }
    match series {
        "p" | "g" | "gr" | "inf" | "trn" | "f" | "dl" | "vt" => InstanceFamily::Accelerated,
        "i" | "im" | "is" | "d" | "h" => InstanceFamily::Storage,
        "r" | "x" | "z" | "u" => {
            if series == "r" && attributes.contains('n') {
                InstanceFamily::Network
            } else {
                InstanceFamily::Memory
            }
        }
        "c" | "hpc" => {
            if attributes.contains('n') {
                InstanceFamily::Network
            } else {
                InstanceFamily::Compute
            }
        }
        "m" if attributes.contains('n') => InstanceFamily::Network,
        _ => InstanceFamily::General,
    }
}

/// The peak bandwidth in Gbit/s from EC2's `NetworkPerformance` text (`"Up to 12.5 Gigabit"`,
/// `"25 Gigabit"`, `"4x 100 Gigabit"`); `None` for the qualitative ratings (`Low`, `Moderate`,
/// `High`).
pub fn network_gbps(performance: &str) -> Option<f64> {
    let lower = performance.to_ascii_lowercase();
    if !lower.contains("gigabit") {
        return None;
    }
    let numbers: Vec<f64> = lower
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|s| s.parse().ok())
        .collect();
    match lower.split_once('x') {
        // "4x 100 Gigabit": cards times speed.
        Some((cards, _)) if cards.trim().parse::<f64>().is_ok() && numbers.len() >= 2 => {
            Some(numbers[0] * numbers[1])
        }
        _ => numbers.last().copied(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_instance_types() {
        assert_eq!(split_type("c6gn.xlarge"), ("c", "6", "gn"));
        assert_eq!(split_type("m5.large"), ("m", "5", ""));
        assert_eq!(split_type("u-6tb1.metal"), ("u", "", ""));
        assert_eq!(split_type("inf2.xlarge"), ("inf", "2", ""));
        assert_eq!(split_type("m7i-flex.large"), ("m", "7", "i"));
    }

    #[test]
    fn families_follow_series_attributes_and_facts() {
        use InstanceFamily::*;
        assert_eq!(family_of("m5.large", false, false), General);
        assert_eq!(family_of("c6i.large", false, false), Compute);
        assert_eq!(family_of("c5n.large", false, false), Network);
        assert_eq!(family_of("r6g.large", false, false), Memory);
        assert_eq!(family_of("x2idn.large", false, false), Memory);
        assert_eq!(family_of("i3.large", false, false), Storage);
        assert_eq!(family_of("t3.micro", false, true), Burstable);
        assert_eq!(family_of("g5.xlarge", true, false), Accelerated);
        assert_eq!(family_of("inf1.xlarge", false, false), Accelerated);
        assert_eq!(family_of("mac1.metal", false, false), General);
    }

    #[test]
    fn network_speeds_are_read_from_text() {
        assert_eq!(network_gbps("Up to 10 Gigabit"), Some(10.0));
        assert_eq!(network_gbps("Up to 12.5 Gigabit"), Some(12.5));
        assert_eq!(network_gbps("25 Gigabit"), Some(25.0));
        assert_eq!(network_gbps("4x 100 Gigabit"), Some(400.0));
        assert_eq!(network_gbps("Moderate"), None);
    }
}
