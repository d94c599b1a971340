//! Azure CNI dynamic IP allocation (a pod subnet): a node holds pod
//! addresses in batches of 16 and keeps between 8 and 23 of them free, the
//! rule CNS applies (`Request = B·⌈mf + U/B⌉` with B = 16, mf = 0.5), capped
//! at 250 addresses per node.
//!
//! The planner sizes pod subnets with it and the node agent grows and
//! shrinks its pool with it, so both agree on what "enough" means.

/// Addresses claimed or released at once.
pub const BATCH: u32 = 16;
/// Most addresses a node may hold (CNS `DefaultMaxIPs`).
pub const MAX_IPS: u32 = 250;

/// Addresses a node should hold when `used` of them are assigned to pods.
pub fn target_ips(used: u32) -> u32 {
    // B·⌈0.5 + U/B⌉ = B·⌈(U + B/2) / B⌉
    let batches = (u64::from(used) + u64::from(BATCH / 2)).div_ceil(u64::from(BATCH));
    let target = batches * u64::from(BATCH);
    u32::try_from(target.min(u64::from(MAX_IPS))).unwrap_or(MAX_IPS)
}

/// Addresses a node holds when all `max_pods` pods run (the planning figure).
pub fn ips_at_full_load(max_pods: u32) -> u32 {
    target_ips(max_pods)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn matches_cns_examples() {
        assert_eq!(target_ips(0), 16);
        assert_eq!(target_ips(8), 16);
        assert_eq!(target_ips(9), 32);
        assert_eq!(target_ips(25), 48, "CNS doc: U = 25 gives 48");
        assert_eq!(ips_at_full_load(30), 48);
        assert_eq!(ips_at_full_load(110), 128);
        assert_eq!(ips_at_full_load(250), 250);
    }

    proptest! {
        #[test]
        fn free_addresses_stay_between_8_and_23(used in 0u32..=250) {
            let t = target_ips(used);
            if t < MAX_IPS {
                prop_assert_eq!(t % BATCH, 0);
                let free = t - used;
                prop_assert!((8..=23).contains(&free), "used {} target {}", used, t);
            } else {
                // Near the cap the node simply holds everything it may.
                prop_assert!(used + 8 > 240);
            }
        }

        #[test]
        fn never_exceeds_the_cap(used in any::<u32>()) {
            prop_assert!(target_ips(used) <= MAX_IPS);
        }
    }
}
