use jiff::Timestamp;
use meshos_rollback_core::ErrorKind;
use meshos_rollback_core::conformance::reports::run;
use meshos_rollback_core::model::Region;
use meshos_rollback_core::provider::CustomerReports;
use meshos_rollback_http::reports::HttpCustomerReports;

use crate::recorder::{Recorded, Recorder, Reply};

/// A reports service holding a few reports: counts those about `region` at or after
/// `since`, as the contract says.
fn answer(r: &Recorded) -> Reply {
    let reports: [(&str, &str); 5] = [
        ("us-east-1", "2025-10-30T09:50:00Z"),
        ("us-east-1", "2025-10-30T10:00:00Z"),
        ("us-east-1", "2025-10-30T10:02:00Z"),
        ("us-east-1", "2025-10-30T10:07:30Z"),
        ("eu-west-1", "2025-10-30T10:03:00Z"),
    ];
    let params = r.params();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let (Some(region), Some(since)) = (get("region"), get("since")) else {
        return Reply::new(400, r#"{"error":"region and since are required"}"#);
    };
    let Ok(since) = since.parse::<Timestamp>() else {
        return Reply::new(400, r#"{"error":"since is not RFC 3339"}"#);
    };
    let count = reports
        .iter()
        .filter(|(reg, at)| *reg == region && at.parse::<Timestamp>().unwrap() >= since)
        .count();
    Reply::new(200, format!(r#"{{"count":{count},"region":"{region}"}}"#))
}

fn region(name: &str) -> Region {
    Region::new(name).unwrap()
}

#[tokio::test]
async fn conformance_suite() {
    crate::capture_logs();
    let s = Recorder::start(answer).await;
    let r = HttpCustomerReports::builder(format!("{}/v1/customer-issues", s.url))
        .build()
        .unwrap();
    let since: Timestamp = "2025-10-30T10:00:00Z".parse().unwrap();
    run(&r, &region("us-east-1"), since, 3, &region("ap-south-1")).await;
    let first = &s.requests()[0];
    assert_eq!(first.path, "/v1/customer-issues");
    assert_eq!(
        first.query,
        "region=us-east-1&since=2025-10-30T10%3A00%3A00Z"
    );
    assert!(
        r.to_string()
            .starts_with("HttpCustomerReports(http://127.0.0.1:")
    );
}

#[tokio::test]
async fn bad_answers_are_errors_not_zero() {
    crate::capture_logs();
    let since: Timestamp = "2025-10-30T10:00:00Z".parse().unwrap();
    for (status, body, kind) in [
        (200, r#"{"count":-1}"#, ErrorKind::Failed),
        (200, r#"{"reports":[]}"#, ErrorKind::Failed),
        (200, "<html>login</html>", ErrorKind::Failed),
        (401, "unauthorized", ErrorKind::PermissionDenied),
        (404, "not found", ErrorKind::NotFound),
        (503, "maintenance", ErrorKind::Transient),
    ] {
        let s = Recorder::fixed(status, body).await;
        let r = HttpCustomerReports::builder(&s.url).build().unwrap();
        let e = r
            .count_since(&region("us-east-1"), since)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), kind, "{status} {body}: {e}");
    }
    let e = HttpCustomerReports::builder("reports.internal/v1")
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}
