//! The hybrid logical clock: stamps follow the wall clock, count when it does not move, follow
//! remote stamps, and clamp remote stamps too far ahead.

use proptest::prelude::*;

use super::*;

const OFFSET_MS: u64 = 500;

fn clock() -> HlcClock {
    HlcClock::new("a", OFFSET_MS)
}

#[test]
fn stamps_follow_the_wall_clock_and_count_when_it_stands_still_or_steps_back() {
    let mut clock = clock();
    assert_eq!(clock.tick(1000), Hlc::new(1000, 0, "a"));
    assert_eq!(clock.tick(1000), Hlc::new(1000, 1, "a"));
    assert_eq!(clock.tick(900), Hlc::new(1000, 2, "a"));
    assert_eq!(clock.tick(1001), Hlc::new(1001, 0, "a"));
}

#[test]
fn a_remote_stamp_ahead_within_the_offset_is_followed() {
    let mut clock = clock();
    clock.tick(1000);
    let observed = clock.observe(&Hlc::new(1400, 7, "b"), 1000);
    assert_eq!(
        observed,
        Observed {
            stamp: Hlc::new(1400, 8, "a"),
            clamped: false
        }
    );
    assert_eq!(clock.tick(1000), Hlc::new(1400, 9, "a"));
}

#[test]
fn a_remote_stamp_exactly_at_the_offset_is_not_clamped() {
    let mut clock = clock();
    let observed = clock.observe(&Hlc::new(1500, 3, "b"), 1000);
    assert_eq!(observed.stamp, Hlc::new(1500, 4, "a"));
    assert!(!observed.clamped);
}

#[test]
fn a_remote_stamp_beyond_the_offset_is_clamped_to_it() {
    let mut clock = clock();
    let observed = clock.observe(&Hlc::new(1_000_000, 7, "b"), 1000);
    assert_eq!(
        observed,
        Observed {
            stamp: Hlc::new(1500, 1, "a"),
            clamped: true
        }
    );
}

#[test]
fn a_remote_stamp_behind_is_a_local_tick() {
    let mut clock = clock();
    clock.tick(1000);
    let observed = clock.observe(&Hlc::new(10, 5, "b"), 1200);
    assert_eq!(observed.stamp, Hlc::new(1200, 0, "a"));
    let observed = clock.observe(&Hlc::new(10, 5, "b"), 1200);
    assert_eq!(observed.stamp, Hlc::new(1200, 1, "a"));
}

#[test]
fn equal_milliseconds_take_the_larger_logical_part() {
    let mut clock = clock();
    clock.tick(1000);
    clock.tick(1000); // (1000, 1)
    assert_eq!(
        clock.observe(&Hlc::new(1000, 5, "b"), 1000).stamp,
        Hlc::new(1000, 6, "a")
    );
    assert_eq!(
        clock.observe(&Hlc::new(1000, 2, "b"), 1000).stamp,
        Hlc::new(1000, 7, "a")
    );
}

#[test]
fn the_order_is_ms_then_logical_then_node() {
    assert!(Hlc::new(2, 0, "a") > Hlc::new(1, 9, "b"));
    assert!(Hlc::new(1, 2, "a") > Hlc::new(1, 1, "b"));
    assert!(Hlc::new(1, 1, "b") > Hlc::new(1, 1, "a"));
}

#[test]
fn a_full_logical_counter_moves_to_the_next_millisecond() {
    let mut clock = HlcClock::resume("a", OFFSET_MS, &Hlc::new(1000, u32::MAX, "a"));
    assert_eq!(clock.tick(1000), Hlc::new(1001, 0, "a"));
}

#[test]
fn a_resumed_clock_follows_the_newest_stamp_of_the_log() {
    let mut clock = HlcClock::resume("a", OFFSET_MS, &Hlc::new(5000, 3, "b"));
    assert_eq!(clock.tick(4000), Hlc::new(5000, 4, "a"));
}

/// One input of the clock: a local event, or a remote stamp received.
#[derive(Clone, Debug)]
enum Input {
    Tick {
        wall_ms: u64,
    },
    Observe {
        remote_ms: u64,
        remote_logical: u32,
        wall_ms: u64,
    },
}

fn input() -> impl Strategy<Value = Input> {
    // Small ranges, so equal milliseconds, steps back and clamps all happen often.
    prop_oneof![
        (0u64..3000).prop_map(|wall_ms| Input::Tick { wall_ms }),
        (0u64..5000, 0u32..5, 0u64..3000).prop_map(|(remote_ms, remote_logical, wall_ms)| {
            Input::Observe {
                remote_ms,
                remote_logical,
                wall_ms,
            }
        }),
    ]
}

proptest! {
    /// Every stamp is after the one before; after every remote stamp observed unless clamped;
    /// clamped exactly when the remote is beyond the offset; and never further ahead than the
    /// offset beyond the highest wall clock reading seen.
    #[test]
    fn stamps_are_monotonic_and_never_behind_an_unclamped_remote(
        inputs in proptest::collection::vec(input(), 1..60),
    ) {
        let mut clock = clock();
        let mut previous: Option<Hlc> = None;
        let mut highest_wall_ms = 0;
        for input in inputs {
            let stamp = match input {
                Input::Tick { wall_ms } => {
                    highest_wall_ms = highest_wall_ms.max(wall_ms);
                    clock.tick(wall_ms)
                }
                Input::Observe { remote_ms, remote_logical, wall_ms } => {
                    highest_wall_ms = highest_wall_ms.max(wall_ms);
                    let remote = Hlc::new(remote_ms, remote_logical, "b");
                    let observed = clock.observe(&remote, wall_ms);
                    prop_assert_eq!(observed.clamped, remote_ms > wall_ms + OFFSET_MS);
                    if !observed.clamped {
                        let stamp = &observed.stamp;
                        prop_assert!((stamp.ms, stamp.logical) > (remote.ms, remote.logical));
                    }
                    observed.stamp
                }
            };
            prop_assert_eq!(&stamp.node, "a");
            prop_assert!(stamp.ms <= highest_wall_ms + OFFSET_MS);
            if let Some(previous) = &previous {
                prop_assert!(stamp > *previous, "{:?} after {:?}", stamp, previous);
            }
            prop_assert_eq!(&clock.last(), &stamp);
            previous = Some(stamp);
        }
    }
}
