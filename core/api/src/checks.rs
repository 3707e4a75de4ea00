//! Checks every provider makes the same way, with one error text, so a user reads the same
//! message whichever cloud refused: desired capacity within a group's bounds, a removal that
//! keeps desired capacity at or above the minimum, chosen instances that belong to the group,
//! and names that can be used as group or instance ids.
//!
//! ```
//! use hoist_api::checks;
//! assert!(checks::desired_within_bounds("web", 3, 1, 5).is_ok());
//! let e = checks::desired_within_bounds("web", 9, 1, 5).unwrap_err();
//! assert_eq!(e.message(), "desired capacity 9 is outside [1, 5] of group web");
//! ```

use crate::error::{Error, Result};
use crate::model::{InstanceId, ScalingGroup};

/// `desired` lies in `[min, max]`; otherwise [`ErrorKind::InvalidInput`](crate::ErrorKind).
pub fn desired_within_bounds(group: &str, desired: u32, min: u32, max: u32) -> Result<()> {
    if desired < min || desired > max {
        return Err(Error::invalid_input(format!(
            "desired capacity {desired} is outside [{min}, {max}] of group {group}"
        )));
    }
    Ok(())
}

/// Removing `count` instances with `decrement` keeps desired capacity at or above `min`
/// (and does not remove more than the group wants).
pub fn removal_within_bounds(group: &str, count: u32, desired: u32, min: u32) -> Result<()> {
    if count > desired || desired - count < min {
        return Err(Error::invalid_input(format!(
            "removing {count} instance(s) with decrement would take desired capacity {desired} below the minimum {min} of group {group}"
        )));
    }
    Ok(())
}

/// Every id in `instances` is an instance of `group`, and none is listed twice; otherwise
/// [`ErrorKind::NotFound`](crate::ErrorKind) or [`ErrorKind::InvalidInput`](crate::ErrorKind).
pub fn instances_in_group(group: &ScalingGroup, instances: &[InstanceId]) -> Result<()> {
    for (i, id) in instances.iter().enumerate() {
        if instances[..i].contains(id) {
            return Err(Error::invalid_input(format!(
                "instance {id} is listed twice"
            )));
        }
        if !group.instances.iter().any(|inst| &inst.id == id) {
            return Err(Error::not_found(format!(
                "instance {id} is not in group {}",
                group.id
            )));
        }
    }
    Ok(())
}

/// A group or instance id: 1 to 255 printable characters without spaces or control
/// characters; otherwise [`ErrorKind::InvalidInput`](crate::ErrorKind).
pub fn valid_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid_input(format!("{what} name is empty")));
    }
    if name.len() > 255 {
        return Err(Error::invalid_input(format!(
            "{what} name is {} bytes long; at most 255",
            name.len()
        )));
    }
    if let Some(c) = name.chars().find(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::invalid_input(format!(
            "{what} name {name:?} contains {c:?}; names have no spaces or control characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn bounds_are_inclusive() {
        assert!(desired_within_bounds("g", 1, 1, 3).is_ok());
        assert!(desired_within_bounds("g", 3, 1, 3).is_ok());
        assert_eq!(
            desired_within_bounds("g", 0, 1, 3).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert!(desired_within_bounds("g", 4, 1, 3).is_err());
    }

    #[test]
    fn removal_keeps_the_minimum() {
        assert!(removal_within_bounds("g", 2, 4, 2).is_ok());
        assert!(removal_within_bounds("g", 3, 4, 2).is_err());
        assert!(removal_within_bounds("g", 5, 4, 0).is_err());
    }

    #[test]
    fn names() {
        assert!(valid_name("group", "web-1").is_ok());
        assert!(valid_name("group", "").is_err());
        assert!(valid_name("group", "a b").is_err());
        assert!(valid_name("group", &"x".repeat(256)).is_err());
    }
}
