//! KIP-848 server-side assignors: `uniform` (Kafka's `UniformAssignor`, the default) and
//! `range` (Kafka's server-side `RangeAssignor`), selected by a member's `server_assignor` or
//! the first of `group.consumer.assignors`.
//!
//! Both are pure functions of the members' subscriptions (topic ids), the topics' partition
//! counts and the previous target assignment, so a replayed group computes the same result.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::member::Assignment;

/// Kafka's assignor names (`UniformAssignor.NAME`, `RangeAssignor.NAME`).
pub const UNIFORM: &str = "uniform";
pub const RANGE: &str = "range";

/// One member as an assignor sees it: what it subscribes to and what it had.
#[derive(Clone, Debug, Default)]
pub struct AssignorMember {
    /// Topic ids the member subscribes to that exist.
    pub subscribed_topic_ids: BTreeSet<Uuid>,
    /// The member's previous target assignment (for stickiness).
    pub previous: Assignment,
}

/// Runs assignor `name` (`uniform` or `range`; anything else is treated as `uniform`, callers
/// reject unknown names with UNSUPPORTED_ASSIGNOR first). `partitions` maps topic id to its
/// partition count. Every partition of a subscribed topic goes to exactly one subscriber.
pub fn assign(
    name: &str,
    members: &BTreeMap<String, AssignorMember>,
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    let result = if name == RANGE {
        range(members, partitions)
    } else {
        uniform(members, partitions)
    };
    debug_assert!(
        result.keys().eq(members.keys()),
        "invariant: the assignment names every member"
    );
    result
}

/// Kafka's `UniformAssignor`: every member ends up with the same number of partitions (+/- 1)
/// among the partitions it may take; a member keeps its previous partitions as far as the
/// balance allows (sticky). Homogeneous and heterogeneous subscriptions take the same path:
/// keep what is still allowed up to the quota, hand out the rest to the least loaded eligible
/// member, then move partitions from the most to the least loaded eligible member while the
/// difference exceeds one.
fn uniform(
    members: &BTreeMap<String, AssignorMember>,
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    let mut result: BTreeMap<String, Assignment> = members
        .keys()
        .map(|id| (id.clone(), Assignment::new()))
        .collect();
    let mut counts: BTreeMap<&str, usize> = members.keys().map(|id| (id.as_str(), 0)).collect();
    // Subscribers per topic.
    let mut subscribers: BTreeMap<Uuid, Vec<&str>> = BTreeMap::new();
    for (id, member) in members {
        for topic_id in &member.subscribed_topic_ids {
            if partitions.contains_key(topic_id) {
                subscribers.entry(*topic_id).or_default().push(id.as_str());
            }
        }
    }
    let total: usize = subscribers
        .keys()
        .map(|t| partitions[t].max(0) as usize)
        .sum();
    let eligible_members = members
        .values()
        .filter(|m| {
            m.subscribed_topic_ids
                .iter()
                .any(|t| partitions.contains_key(t))
        })
        .count()
        .max(1);
    // The most any member keeps of its previous partitions (homogeneous quota, rounded up).
    let quota = total.div_ceil(eligible_members);
    let mut owner: BTreeMap<(Uuid, i32), &str> = BTreeMap::new();
    // 1. Stickiness: keep previous partitions that still exist and are still subscribed.
    for (id, member) in members {
        for (topic_id, previous) in &member.previous {
            let Some(&count) = partitions.get(topic_id) else {
                continue;
            };
            if !member.subscribed_topic_ids.contains(topic_id) {
                continue;
            }
            for &partition in previous {
                if partition < 0
                    || partition >= count
                    || owner.contains_key(&(*topic_id, partition))
                {
                    continue;
                }
                if counts[id.as_str()] >= quota {
                    break;
                }
                owner.insert((*topic_id, partition), id.as_str());
                *counts.get_mut(id.as_str()).expect("every member counted") += 1;
            }
        }
    }
    // 2. Unassigned partitions to the least loaded subscriber (ties: smallest member id).
    for (topic_id, subs) in &subscribers {
        for partition in 0..partitions[topic_id] {
            if owner.contains_key(&(*topic_id, partition)) {
                continue;
            }
            let chosen = subs
                .iter()
                .min_by_key(|id| (counts[**id], **id))
                .copied()
                .expect("a subscribed topic has a subscriber");
            owner.insert((*topic_id, partition), chosen);
            *counts.get_mut(chosen).expect("every member counted") += 1;
        }
    }
    // 3. Balance: move a partition from a member to an eligible one holding two fewer.
    loop {
        let mut moved = false;
        let keys: Vec<(Uuid, i32)> = owner.keys().rev().copied().collect();
        for key in keys {
            let from = owner[&key];
            let to = subscribers[&key.0]
                .iter()
                .filter(|id| counts[**id] + 1 < counts[from])
                .min_by_key(|id| (counts[**id], **id))
                .copied();
            if let Some(to) = to {
                owner.insert(key, to);
                *counts.get_mut(from).expect("counted") -= 1;
                *counts.get_mut(to).expect("counted") += 1;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    for ((topic_id, partition), id) in owner {
        result
            .get_mut(id)
            .expect("owners are members")
            .entry(topic_id)
            .or_default()
            .insert(partition);
    }
    result
}

/// Kafka's server-side `RangeAssignor`: per topic, the subscribers sorted by member id get
/// contiguous ranges of `partitions / subscribers` partitions, the first
/// `partitions % subscribers` one more. Members subscribing to the same topics with the same
/// partition counts get the same partition numbers of each (co-partitioning).
fn range(
    members: &BTreeMap<String, AssignorMember>,
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    let mut result: BTreeMap<String, Assignment> = members
        .keys()
        .map(|id| (id.clone(), Assignment::new()))
        .collect();
    for (topic_id, &count) in partitions {
        let subs: Vec<&String> = members
            .iter()
            .filter(|(_, m)| m.subscribed_topic_ids.contains(topic_id))
            .map(|(id, _)| id)
            .collect();
        if subs.is_empty() || count <= 0 {
            continue;
        }
        let per_member = count as usize / subs.len();
        let extra = count as usize % subs.len();
        let mut next = 0usize;
        for (index, id) in subs.into_iter().enumerate() {
            let take = per_member + usize::from(index < extra);
            if take > 0 {
                result
                    .get_mut(id)
                    .expect("subscribers are members")
                    .entry(*topic_id)
                    .or_default()
                    .extend((next..next + take).map(|p| p as i32));
            }
            next += take;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn members(ids: &[&str], topics: &[Uuid]) -> BTreeMap<String, AssignorMember> {
        ids.iter()
            .map(|id| {
                (
                    id.to_string(),
                    AssignorMember {
                        subscribed_topic_ids: topics.iter().copied().collect(),
                        previous: Assignment::new(),
                    },
                )
            })
            .collect()
    }

    fn count(a: &Assignment) -> usize {
        a.values().map(BTreeSet::len).sum()
    }

    fn all_assigned_once(result: &BTreeMap<String, Assignment>, partitions: &BTreeMap<Uuid, i32>) {
        let mut seen = BTreeSet::new();
        for assignment in result.values() {
            for (t, ps) in assignment {
                for p in ps {
                    assert!(seen.insert((*t, *p)), "{t} {p} assigned twice");
                }
            }
        }
        let expected: usize = partitions.values().map(|c| *c as usize).sum();
        assert_eq!(seen.len(), expected);
    }

    #[test]
    fn uniform_splits_six_partitions_over_three_members() {
        let t = topic(1);
        let partitions = BTreeMap::from([(t, 6)]);
        let result = assign(UNIFORM, &members(&["a", "b", "c"], &[t]), &partitions);
        all_assigned_once(&result, &partitions);
        for a in result.values() {
            assert_eq!(count(a), 2);
        }
    }

    #[test]
    fn uniform_is_sticky_when_a_member_joins() {
        let t = topic(1);
        let partitions = BTreeMap::from([(t, 6)]);
        let first = assign(UNIFORM, &members(&["a", "b"], &[t]), &partitions);
        let mut next = members(&["a", "b", "c"], &[t]);
        for (id, previous) in &first {
            next.get_mut(id).unwrap().previous = previous.clone();
        }
        let second = assign(UNIFORM, &next, &partitions);
        all_assigned_once(&second, &partitions);
        for id in ["a", "b"] {
            assert_eq!(count(&second[id]), 2);
            // Each old member keeps two of its three partitions: only one moves.
            assert!(
                second[id][&t].is_subset(&first[id][&t]),
                "{id} moved partitions"
            );
        }
        assert_eq!(count(&second["c"]), 2);
    }

    #[test]
    fn uniform_balances_heterogeneous_subscriptions() {
        let (t1, t2) = (topic(1), topic(2));
        let partitions = BTreeMap::from([(t1, 3), (t2, 3)]);
        let mut m = members(&["a", "b"], &[t1]);
        m.insert(
            "c".into(),
            AssignorMember {
                subscribed_topic_ids: [t1, t2].into(),
                previous: Assignment::new(),
            },
        );
        let result = assign(UNIFORM, &m, &partitions);
        all_assigned_once(&result, &partitions);
        // Only c subscribes to t2, so c takes its three partitions and a and b split t1's
        // three (2 + 1): no assignment with fewer than 3 on c exists.
        let mut counts: Vec<usize> = result.values().map(count).collect();
        counts.sort_unstable();
        assert_eq!(counts, vec![1, 2, 3]);
        assert_eq!(result["c"][&t2].len(), 3);
        assert!(!result["a"].contains_key(&t2) && !result["b"].contains_key(&t2));
    }

    #[test]
    fn uniform_ignores_missing_topics_and_empty_subscriptions() {
        let t = topic(1);
        let partitions = BTreeMap::from([(t, 2)]);
        let mut m = members(&["a"], &[t, topic(9)]);
        m.insert("b".into(), AssignorMember::default());
        let result = assign(UNIFORM, &m, &partitions);
        assert_eq!(count(&result["a"]), 2);
        assert_eq!(count(&result["b"]), 0);
    }

    #[test]
    fn range_gives_contiguous_ranges_first_members_one_more() {
        let (t1, t2) = (topic(1), topic(2));
        let partitions = BTreeMap::from([(t1, 7), (t2, 7)]);
        let result = assign(RANGE, &members(&["a", "b", "c"], &[t1, t2]), &partitions);
        all_assigned_once(&result, &partitions);
        assert_eq!(result["a"][&t1], BTreeSet::from([0, 1, 2]));
        assert_eq!(result["b"][&t1], BTreeSet::from([3, 4]));
        assert_eq!(result["c"][&t1], BTreeSet::from([5, 6]));
        // Co-partitioned: same partition numbers on both topics.
        for id in ["a", "b", "c"] {
            assert_eq!(result[id][&t1], result[id][&t2]);
        }
    }
}
