//! Problems in typed values (a cron expression, a time zone, a rate limit with both forms) found
//! while a policy file is deserialized, held back so that every problem of the file is reported
//! at once, each at its line and field, instead of stopping at the first.
//!
//! Outside [`collect`] (any other use of the types' `Deserialize`), such a problem is an ordinary
//! deserialization error. Inside it, the value's `Deserialize` records the problem with the
//! value's location and returns a stand-in; [`super::parse_str`] refuses a file with any recorded
//! problem, so a stand-in never leaves the loader.

use std::cell::RefCell;

use serde_saphyr::Location;

/// One held-back problem: where the value is (1-based line and column, when known) and what is
/// wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Deferred {
    pub location: Option<(u64, u64)>,
    pub message: String,
}

thread_local! {
    static COLLECTOR: RefCell<Option<Vec<Deferred>>> = const { RefCell::new(None) };
}

/// Runs `f` (a deserialization) with problems in typed values held back; returns its result and
/// the problems, in the order found.
pub(crate) fn collect<T>(f: impl FnOnce() -> T) -> (T, Vec<Deferred>) {
    struct Restore(Option<Vec<Deferred>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let outer = self.0.take();
            COLLECTOR.with(|c| *c.borrow_mut() = outer);
        }
    }
    let outer = COLLECTOR.with(|c| c.borrow_mut().replace(Vec::new()));
    let restore = Restore(outer);
    let value = f();
    let found = COLLECTOR
        .with(|c| c.borrow_mut().take())
        .unwrap_or_default();
    drop(restore);
    (value, found)
}

/// Reports an invalid value at `location`: held back (and `stand_in` returned) inside
/// [`collect`], an error otherwise.
pub(crate) fn invalid<T, E: serde::de::Error>(
    location: Location,
    message: String,
    stand_in: T,
) -> Result<T, E> {
    COLLECTOR.with(|c| match c.borrow_mut().as_mut() {
        Some(found) => {
            let location =
                (location.line() > 0).then(|| (location.line(), location.column().max(1)));
            found.push(Deferred { location, message });
            Ok(stand_in)
        }
        None => Err(E::custom(message)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_collect_an_invalid_value_is_an_error() {
        let r: Result<u32, serde::de::value::Error> = invalid(Location::UNKNOWN, "bad".into(), 0);
        assert_eq!(r.unwrap_err().to_string(), "bad");
    }

    #[test]
    fn inside_collect_it_is_held_back_and_nesting_restores_the_outer_collector() {
        let ((), outer) = collect(|| {
            let r: Result<u32, serde::de::value::Error> =
                invalid(Location::UNKNOWN, "outer".into(), 7);
            assert_eq!(r.unwrap(), 7);
            let ((), inner) = collect(|| {
                let _: Result<u32, serde::de::value::Error> =
                    invalid(Location::UNKNOWN, "inner".into(), 0);
            });
            assert_eq!(inner.len(), 1);
            let _: Result<u32, serde::de::value::Error> =
                invalid(Location::UNKNOWN, "outer again".into(), 0);
        });
        let messages: Vec<&str> = outer.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(messages, ["outer", "outer again"]);
        let r: Result<u32, serde::de::value::Error> = invalid(Location::UNKNOWN, "x".into(), 0);
        assert!(r.is_err());
    }
}
