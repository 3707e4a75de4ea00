//! Choosing which instances leave a group on scale-in.
//!
//! Hoist scales an Auto Scaling group in by terminating *chosen* instances (with a decrement of
//! the desired capacity) rather than by lowering the desired capacity and letting AWS pick. The
//! choice is a pure function of the group and, for [`VictimSelection::LeastBusy`], of each
//! instance's recent load; instances protected from scale-in are never chosen.

use std::collections::HashMap;

use hoist_api::{InstanceId, ScalingGroup};
use serde::{Deserialize, Serialize};

/// How to choose the instances removed on scale-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VictimSelection {
    /// The most recently launched first (they have warmed the least caches).
    #[default]
    Newest,
    /// The longest running first (oldest images, most drift).
    Oldest,
    /// The least loaded first (lowest recent CPU utilisation); instances without data count as
    /// idle.
    LeastBusy,
}

/// Picks up to `count` instances of `group` to remove: only active (pending or running)
/// instances that are not protected from scale-in, ordered by `selection`; `load` gives each
/// instance's recent utilisation for [`VictimSelection::LeastBusy`]. Pending instances go before
/// running ones, since they serve nothing yet. Ties break by instance id, so the choice is
/// deterministic.
pub fn choose_victims(
    group: &ScalingGroup,
    count: usize,
    selection: VictimSelection,
    load: &HashMap<InstanceId, f64>,
) -> Vec<InstanceId> {
    let mut candidates: Vec<_> = group
        .instances
        .iter()
        .filter(|i| i.state.is_active() && !i.protected_from_scale_in)
        .collect();
    candidates.sort_by(|a, b| {
        let pending_first = b.state.cmp_pending(&a.state);
        let by_selection = match selection {
            VictimSelection::Newest => b.launched_at.cmp(&a.launched_at),
            VictimSelection::Oldest => a.launched_at.cmp(&b.launched_at),
            VictimSelection::LeastBusy => {
                let la = load.get(&a.id).copied().unwrap_or(0.0);
                let lb = load.get(&b.id).copied().unwrap_or(0.0);
                la.total_cmp(&lb)
                    .then_with(|| b.launched_at.cmp(&a.launched_at))
            }
        };
        pending_first
            .then(by_selection)
            .then_with(|| a.id.cmp(&b.id))
    });
    candidates
        .into_iter()
        .take(count)
        .map(|i| i.id.clone())
        .collect()
}

/// Orders pending instances before the others.
trait PendingOrder {
    fn cmp_pending(&self, other: &Self) -> std::cmp::Ordering;
}

impl PendingOrder for hoist_api::InstanceState {
    fn cmp_pending(&self, other: &Self) -> std::cmp::Ordering {
        let rank = |s: &hoist_api::InstanceState| u8::from(*s == hoist_api::InstanceState::Pending);
        rank(self).cmp(&rank(other))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{DateTime, Utc};
    use hoist_api::{CapacityType, Instance, InstanceState};

    use super::*;

    fn instance(id: &str, launched_secs: i64, state: InstanceState, protected: bool) -> Instance {
        Instance {
            id: id.to_owned(),
            instance_class: "m5.large".to_owned(),
            zone: "us-east-1a".to_owned(),
            capacity_type: CapacityType::OnDemand,
            state,
            launched_at: DateTime::<Utc>::from_timestamp(launched_secs, 0).unwrap(),
            protected_from_scale_in: protected,
        }
    }

    fn group(instances: Vec<Instance>) -> ScalingGroup {
        ScalingGroup {
            id: "web".into(),
            min_size: 0,
            max_size: 10,
            desired_capacity: instances.len() as u32,
            instance_class: "m5.large".into(),
            zones: vec!["us-east-1a".into()],
            instances,
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn newest_and_oldest_order_by_launch_time_and_skip_protected() {
        let g = group(vec![
            instance("i-old", 100, InstanceState::Running, false),
            instance("i-mid", 200, InstanceState::Running, false),
            instance("i-new", 300, InstanceState::Running, true),
            instance("i-gone", 400, InstanceState::Terminating, false),
        ]);
        let none = HashMap::new();
        assert_eq!(
            choose_victims(&g, 1, VictimSelection::Newest, &none),
            ["i-mid"]
        );
        assert_eq!(
            choose_victims(&g, 2, VictimSelection::Oldest, &none),
            ["i-old", "i-mid"]
        );
        // Asking for more than there are candidates returns only the candidates.
        assert_eq!(
            choose_victims(&g, 5, VictimSelection::Newest, &none).len(),
            2
        );
    }

    #[test]
    fn pending_instances_go_first() {
        let g = group(vec![
            instance("i-a", 100, InstanceState::Pending, false),
            instance("i-b", 300, InstanceState::Running, false),
        ]);
        assert_eq!(
            choose_victims(&g, 1, VictimSelection::Newest, &HashMap::new()),
            ["i-a"]
        );
    }

    #[test]
    fn least_busy_uses_load_and_treats_missing_as_idle() {
        let g = group(vec![
            instance("i-a", 100, InstanceState::Running, false),
            instance("i-b", 200, InstanceState::Running, false),
            instance("i-c", 300, InstanceState::Running, false),
        ]);
        let load: HashMap<_, _> = [
            ("i-a".to_owned(), 0.2),
            ("i-b".to_owned(), 0.9),
            ("i-c".to_owned(), 0.5),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            choose_victims(&g, 2, VictimSelection::LeastBusy, &load),
            ["i-a", "i-c"]
        );
        let partial: HashMap<_, _> = [("i-a".to_owned(), 0.2)].into_iter().collect();
        assert_eq!(
            choose_victims(&g, 1, VictimSelection::LeastBusy, &partial),
            ["i-c"]
        );
    }
}
