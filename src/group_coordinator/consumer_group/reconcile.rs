//! Reconciliation of a member's current assignment towards its target (Kafka's
//! `CurrentAssignmentBuilder`): revoke before assign. A member first gives up the partitions it
//! no longer has in its target (state UNREVOKED_PARTITIONS, member epoch unchanged); only once
//! its heartbeat no longer reports them does it move to the assignment epoch and receive the
//! new partitions, and then only those no other member still holds (the rest stay
//! UNRELEASED_PARTITIONS until their previous owner released them).

use uuid::Uuid;

use super::member::{Assignment, ConsumerGroupMember, MemberState};

/// Reconciles `member` with `target` at `target_epoch`. `owned` is what the member's heartbeat
/// reported owning (`None` when the request omitted it); `held_by_other(topic, partition)` is
/// true when another member still has the partition assigned or pending revocation.
pub fn reconcile(
    member: &ConsumerGroupMember,
    target: &Assignment,
    target_epoch: i32,
    owned: Option<&Assignment>,
    held_by_other: impl Fn(&Uuid, i32) -> bool,
) -> ConsumerGroupMember {
    match member.state {
        MemberState::Stable => {
            if member.member_epoch == target_epoch {
                member.clone()
            } else {
                next_assignment(member, target, target_epoch, owned, &held_by_other)
            }
        }
        MemberState::UnrevokedPartitions => {
            let still_owns = owned.is_none_or(|owned| {
                member
                    .partitions_pending_revocation
                    .iter()
                    .any(|(t, ps)| owned.get(t).is_some_and(|o| !o.is_disjoint(ps)))
            });
            if still_owns {
                // The target may have moved again; what must be revoked is recomputed then.
                if member.member_epoch != target_epoch {
                    let next = next_assignment(member, target, target_epoch, owned, &held_by_other);
                    if next.state == MemberState::UnrevokedPartitions {
                        return next;
                    }
                }
                member.clone()
            } else {
                // Revocation acknowledged: the pending partitions are released.
                let released = ConsumerGroupMember {
                    partitions_pending_revocation: Assignment::new(),
                    ..member.clone()
                };
                next_assignment(&released, target, target_epoch, owned, &held_by_other)
            }
        }
        MemberState::UnreleasedPartitions | MemberState::Unknown => {
            next_assignment(member, target, target_epoch, owned, &held_by_other)
        }
    }
}

/// Kafka's `computeNextAssignment`.
fn next_assignment(
    member: &ConsumerGroupMember,
    target: &Assignment,
    target_epoch: i32,
    owned: Option<&Assignment>,
    held_by_other: &impl Fn(&Uuid, i32) -> bool,
) -> ConsumerGroupMember {
    let mut kept = Assignment::new();
    let mut revoke = Assignment::new();
    let mut assignable = Assignment::new();
    let mut has_unreleased = false;
    let topics: std::collections::BTreeSet<&Uuid> = member
        .assigned_partitions
        .keys()
        .chain(member.partitions_pending_revocation.keys())
        .chain(target.keys())
        .collect();
    for topic_id in topics {
        let empty = Default::default();
        let current = member.assigned_partitions.get(topic_id).unwrap_or(&empty);
        let pending = member
            .partitions_pending_revocation
            .get(topic_id)
            .unwrap_or(&empty);
        let wanted = target.get(topic_id).unwrap_or(&empty);
        for &p in current {
            if wanted.contains(&p) {
                kept.entry(*topic_id).or_default().insert(p);
            } else {
                revoke.entry(*topic_id).or_default().insert(p);
            }
        }
        for &p in pending {
            if !wanted.contains(&p) {
                revoke.entry(*topic_id).or_default().insert(p);
            }
        }
        for &p in wanted {
            if current.contains(&p) {
                continue;
            }
            if pending.contains(&p) || !held_by_other(topic_id, p) {
                assignable.entry(*topic_id).or_default().insert(p);
            } else {
                has_unreleased = true;
            }
        }
    }
    // A member that already reported it no longer owns the revoked partitions skips the wait.
    let owns_revoked = owned.is_none_or(|owned| {
        revoke
            .iter()
            .any(|(t, ps)| owned.get(t).is_some_and(|o| !o.is_disjoint(ps)))
    });
    if !revoke.is_empty() && owns_revoked {
        return ConsumerGroupMember {
            state: MemberState::UnrevokedPartitions,
            assigned_partitions: kept,
            partitions_pending_revocation: revoke,
            ..member.clone()
        };
    }
    for (topic_id, partitions) in assignable {
        kept.entry(topic_id).or_default().extend(partitions);
    }
    ConsumerGroupMember {
        state: if has_unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        },
        previous_member_epoch: if member.member_epoch != target_epoch {
            member.member_epoch
        } else {
            member.previous_member_epoch
        },
        member_epoch: target_epoch,
        assigned_partitions: kept,
        partitions_pending_revocation: Assignment::new(),
        ..member.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn t() -> Uuid {
        Uuid::from_u128(7)
    }

    fn a(ps: &[i32]) -> Assignment {
        Assignment::from([(t(), ps.iter().copied().collect::<BTreeSet<i32>>())])
    }

    fn member(epoch: i32, assigned: &[i32]) -> ConsumerGroupMember {
        ConsumerGroupMember {
            member_epoch: epoch,
            assigned_partitions: a(assigned),
            ..ConsumerGroupMember::new("m".into())
        }
    }

    #[test]
    fn new_member_gets_free_partitions_at_the_target_epoch() {
        let next = reconcile(&member(0, &[]), &a(&[0, 1]), 3, Some(&Assignment::new()), |_, _| false);
        assert_eq!(next.member_epoch, 3);
        assert_eq!(next.previous_member_epoch, 0);
        assert_eq!(next.state, MemberState::Stable);
        assert_eq!(next.assigned_partitions, a(&[0, 1]));
    }

    #[test]
    fn revokes_before_it_assigns() {
        let m = member(2, &[0, 1, 2]);
        let next = reconcile(&m, &a(&[0, 3]), 3, Some(&a(&[0, 1, 2])), |_, _| false);
        assert_eq!(next.state, MemberState::UnrevokedPartitions);
        assert_eq!(next.member_epoch, 2, "epoch moves only after the revocation");
        assert_eq!(next.assigned_partitions, a(&[0]));
        assert_eq!(next.partitions_pending_revocation, a(&[1, 2]));
        // Still reported as owned: nothing changes.
        let same = reconcile(&next, &a(&[0, 3]), 3, Some(&a(&[0, 1, 2])), |_, _| false);
        assert_eq!(same, next);
        // Released: the new partition comes at the target epoch.
        let done = reconcile(&next, &a(&[0, 3]), 3, Some(&a(&[0])), |_, _| false);
        assert_eq!(done.state, MemberState::Stable);
        assert_eq!(done.member_epoch, 3);
        assert_eq!(done.assigned_partitions, a(&[0, 3]));
        assert!(done.partitions_pending_revocation.is_empty());
    }

    #[test]
    fn partitions_held_by_another_member_stay_unreleased() {
        let next = reconcile(&member(1, &[0]), &a(&[0, 1]), 2, Some(&a(&[0])), |_, p| p == 1);
        assert_eq!(next.state, MemberState::UnreleasedPartitions);
        assert_eq!(next.member_epoch, 2);
        assert_eq!(next.assigned_partitions, a(&[0]));
        let freed = reconcile(&next, &a(&[0, 1]), 2, Some(&a(&[0])), |_, _| false);
        assert_eq!(freed.state, MemberState::Stable);
        assert_eq!(freed.assigned_partitions, a(&[0, 1]));
    }
}
