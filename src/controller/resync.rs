//! When an object is next reconciled with nothing happening (pure).

/// When the object is next reconciled with nothing happening: the resync interval
/// stretched by up to a fifth, by an amount fixed per object (from `key`, its UID). The
/// resyncs of objects created together are spread out instead of arriving at once;
/// never shorter, so a resync always finds its plan due.
pub fn resync_delay(resync: std::time::Duration, key: &str) -> std::time::Duration {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    let fraction = (hasher.finish() % 1000) as f64 / 1000.0;
    resync.mul_f64(1.0 + 0.2 * fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resyncs_spread_over_a_fifth_of_the_interval_and_stay_put_per_object() {
        let resync = std::time::Duration::from_secs(100);
        let delays: Vec<f64> = (0..200)
            .map(|i| resync_delay(resync, &format!("uid-{i}")).as_secs_f64())
            .collect();
        assert!(
            delays.iter().all(|d| (100.0..120.0).contains(d)),
            "{delays:?}"
        );
        let early = delays.iter().filter(|d| **d < 110.0).count();
        assert!(
            (60..140).contains(&early),
            "spread over the range: {early} of 200 early"
        );
        assert_eq!(resync_delay(resync, "uid-7"), resync_delay(resync, "uid-7"));
    }
}
