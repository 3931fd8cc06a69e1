//! Conformance of a [`TrafficShifter`].

use super::{expect_kind, expect_ok};
use crate::ErrorKind;
use crate::provider::{RouteId, TargetId, TargetWeight, TrafficShifter, traffic_share};

/// What the caller prepared for [`run`].
#[derive(Debug, Clone)]
pub struct TrafficFixture {
    /// A route forwarding to `stable` and `canary`.
    pub route: RouteId,
    /// The stable target, with at least one healthy backend.
    pub stable: TargetId,
    /// The canary target.
    pub canary: TargetId,
    /// A route that does not exist.
    pub missing_route: RouteId,
    /// A target that does not exist.
    pub missing_target: TargetId,
}

/// Runs the traffic suite: read weights, set weights, shift all traffic to the
/// stable target (twice), invalid and missing inputs, and target health. Leaves all
/// traffic on `stable`.
pub async fn run(shifter: &dyn TrafficShifter, fx: &TrafficFixture) {
    let who = shifter.to_string();
    let caps = shifter.capabilities();

    let weights = expect_ok(shifter.weights(&fx.route).await, "weights");
    let share = traffic_share(&weights, &fx.stable) + traffic_share(&weights, &fx.canary);
    assert!(
        (share - 1.0).abs() < 1e-9,
        "{who}: the route forwards only to stable and canary: {weights:?}"
    );

    if caps.weighted {
        let split = [
            TargetWeight::new(fx.stable.clone(), 80),
            TargetWeight::new(fx.canary.clone(), 20),
        ];
        expect_ok(shifter.set_weights(&fx.route, &split).await, "set weights");
        let w = expect_ok(shifter.weights(&fx.route).await, "weights");
        assert!(
            (traffic_share(&w, &fx.stable) - 0.8).abs() < 1e-9,
            "{who}: 80/20 split reads back as {w:?}"
        );
    }

    expect_ok(
        shifter.shift_all_to(&fx.route, &fx.stable).await,
        "shift all to stable",
    );
    let w = expect_ok(shifter.weights(&fx.route).await, "weights");
    assert_eq!(
        traffic_share(&w, &fx.stable),
        1.0,
        "{who}: all traffic on stable: {w:?}"
    );
    assert_eq!(
        traffic_share(&w, &fx.canary),
        0.0,
        "{who}: no traffic on canary: {w:?}"
    );
    expect_ok(
        shifter.shift_all_to(&fx.route, &fx.stable).await,
        "shift all to stable again",
    );
    let w2 = expect_ok(shifter.weights(&fx.route).await, "weights");
    assert_eq!(
        traffic_share(&w2, &fx.stable),
        1.0,
        "{who}: shifting again is a no-op"
    );

    // Bad input changes nothing.
    let zero = [
        TargetWeight::new(fx.stable.clone(), 0),
        TargetWeight::new(fx.canary.clone(), 0),
    ];
    expect_kind(
        shifter.set_weights(&fx.route, &zero).await,
        ErrorKind::InvalidInput,
        "all-zero weights",
    );
    expect_kind(
        shifter.shift_all_to(&fx.route, &fx.missing_target).await,
        ErrorKind::NotFound,
        "shift to a missing target",
    );
    expect_kind(
        shifter.weights(&fx.missing_route).await,
        ErrorKind::NotFound,
        "weights of a missing route",
    );
    expect_kind(
        shifter.shift_all_to(&fx.missing_route, &fx.stable).await,
        ErrorKind::NotFound,
        "shift on a missing route",
    );
    let w = expect_ok(shifter.weights(&fx.route).await, "weights");
    assert_eq!(
        traffic_share(&w, &fx.stable),
        1.0,
        "{who}: failed calls must leave the weights alone: {w:?}"
    );

    if caps.target_health {
        let health = expect_ok(shifter.target_health(&fx.stable).await, "target health");
        assert_eq!(health.target, fx.stable);
        assert!(
            health.all_healthy(),
            "{who}: stable target health: {health}"
        );
        expect_kind(
            shifter.target_health(&fx.missing_target).await,
            ErrorKind::NotFound,
            "health of a missing target",
        );
    }
}
