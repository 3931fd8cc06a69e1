//! `CloudWatchMetrics` and `CloudWatchLogs` against moto (sums, averages, no data,
//! log filters) and, for what moto cannot serve (the `p95` extended statistic,
//! pagination), against aws-smithy-mocks.
//!
//! Moto 5.2.5 computes `Sum`, `Average`, `Maximum` in `GetMetricData` but no
//! percentile: those responses are shaped after the CloudWatch API Reference,
//! "GetMetricData" (`MetricDataResults` with `Id`, `Timestamps`, `Values`,
//! `StatusCode`), and the CloudWatch Logs API Reference, "FilterLogEvents"
//! (`events`, `nextToken`).

mod support;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput;
use aws_sdk_cloudwatch::types::{Dimension, MetricDataResult, MetricDatum, StatusCode};
use aws_sdk_cloudwatchlogs::operation::filter_log_events::FilterLogEventsOutput;
use aws_sdk_cloudwatchlogs::types::{FilteredLogEvent, InputLogEvent};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::DateTime;
use aws_smithy_types::body::SdkBody;
use jiff::{SignedDuration, Timestamp};
use meshos_rollback_aws::cloudwatch::Baseline;
use meshos_rollback_aws::{
    CloudWatchLogs, CloudWatchLogsBuilder, CloudWatchMetrics, CloudWatchMetricsBuilder,
    ServiceDimensions,
};
use meshos_rollback_core::clock::{SharedClock, TokioClock};
use meshos_rollback_core::conformance;
use meshos_rollback_core::conformance::logs::{BEFORE_SINCE, LINES, LogsFixture};
use meshos_rollback_core::conformance::metrics::{MetricsFixture, assert_metrics_close};
use meshos_rollback_core::model::{Region, ServiceId, ServiceRef};
use meshos_rollback_core::observation::Metrics;
use meshos_rollback_core::provider::{LogSource, MetricsSource, TimeRange};
use meshos_rollback_core::{Error, ErrorKind};
use support::{Moto, unique};

const TG: &str = "targetgroup/meshos-api-stable/0123456789abcdef";
const LB: &str = "app/meshos/0123456789abcdef";
const WINDOW: Duration = Duration::from_secs(300);

fn service(region: &str, name: &str) -> ServiceRef {
    ServiceRef::new(
        Region::new(region).unwrap(),
        ServiceId::ecs("meshos-us-east-1", name),
    )
}

/// A clock at the start of the current minute (so observation windows are known).
fn minute_clock() -> (SharedClock, Timestamp) {
    let now = Timestamp::now().as_second();
    let t = Timestamp::from_second(now - now.rem_euclid(60)).unwrap();
    (Arc::new(TokioClock::starting_at(t)), t)
}

fn datum(name: &str, dims: &[(&str, &str)], at: Timestamp, value: f64) -> MetricDatum {
    MetricDatum::builder()
        .metric_name(name)
        .set_dimensions(Some(
            dims.iter()
                .map(|(k, v)| Dimension::builder().name(*k).value(*v).build())
                .collect(),
        ))
        .timestamp(DateTime::from_secs(at.as_second()))
        .value(value)
        .build()
}

/// Puts one window of ALB and ECS data for a service, `secs_before` seconds before
/// `end`, scaled by `k`.
async fn put_window(
    client: &aws_sdk_cloudwatch::Client,
    svc: &str,
    tg: &str,
    end: Timestamp,
    k: f64,
) {
    let alb = [("TargetGroup", tg), ("LoadBalancer", LB)];
    let ecs = [("ClusterName", "meshos-us-east-1"), ("ServiceName", svc)];
    let a = end - SignedDuration::from_secs(200);
    let b = end - SignedDuration::from_secs(100);
    client
        .put_metric_data()
        .namespace("AWS/ApplicationELB")
        .metric_data(datum("HTTPCode_Target_5XX_Count", &alb, a, 1.0 * k))
        .metric_data(datum("HTTPCode_Target_5XX_Count", &alb, b, 2.0 * k))
        .metric_data(datum("RequestCount", &alb, a, 100.0))
        .metric_data(datum("RequestCount", &alb, b, 200.0))
        .send()
        .await
        .expect("put ALB metrics");
    client
        .put_metric_data()
        .namespace("AWS/ECS")
        .metric_data(datum("CPUUtilization", &ecs, a, 40.0 * k))
        .metric_data(datum("CPUUtilization", &ecs, b, 60.0 * k))
        .metric_data(datum("MemoryUtilization", &ecs, a, 70.0))
        .send()
        .await
        .expect("put ECS metrics");
}

// ------------------------------------------------------- CBOR to moto's JSON

/// The SDK (since aws-sdk-cloudwatch 1.100) speaks CloudWatch's Smithy RPC v2 CBOR
/// protocol (`POST /service/GraniteServiceVersion20100801/operation/<Op>`, CBOR
/// bodies), which moto 5.2.5 does not route (404); moto serves the same operations
/// in the awsJson1_0 protocol (`X-Amz-Target: GraniteServiceVersion20100801.<Op>`),
/// which real CloudWatch also accepts. This connector translates the body both
/// ways, so the backend's own requests and response parsing are what is tested.
#[derive(Debug, Clone)]
struct CborToJson {
    inner: SharedHttpClient,
}

impl HttpClient for CborToJson {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(CborToJsonConnector {
            inner: self.inner.http_connector(settings, components),
        })
    }
}

#[derive(Debug)]
struct CborToJsonConnector {
    inner: SharedHttpConnector,
}

const CBOR_PREFIX: &str = "/service/GraniteServiceVersion20100801/operation/";

impl HttpConnector for CborToJsonConnector {
    fn call(&self, mut request: HttpRequest) -> HttpConnectorFuture {
        let uri = request.uri().to_owned();
        let Some((base, op)) = uri.split_once(CBOR_PREFIX) else {
            return self.inner.call(request);
        };
        let json = match request.body().bytes() {
            Some(b) if !b.is_empty() => cbor_to_json(&mut minicbor::Decoder::new(b)),
            _ => serde_json::json!({}),
        };
        let body = serde_json::to_vec(&json).unwrap();
        request.set_uri(format!("{base}/")).unwrap();
        let headers = request.headers_mut();
        headers.remove("smithy-protocol");
        headers.insert(
            "x-amz-target",
            format!("GraniteServiceVersion20100801.{op}"),
        );
        headers.insert("content-type", "application/x-amz-json-1.0");
        headers.insert("content-length", body.len().to_string());
        *request.body_mut() = SdkBody::from(body);
        let inner = self.inner.call(request);
        HttpConnectorFuture::new(async move {
            let response = inner.await?;
            let status = response.status();
            // The body streams from the socket: read it whole.
            let bytes = aws_smithy_types::byte_stream::ByteStream::new(response.into_body())
                .collect()
                .await
                .map(|b| b.to_vec())
                .unwrap_or_default();
            let json: serde_json::Value =
                serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                    // moto's HTML 500 page (a percentile with data): pass it on as an
                    // internal failure.
                    serde_json::json!({"__type": "InternalFailure", "message": String::from_utf8_lossy(&bytes)})
                });
            let mut enc = minicbor::Encoder::new(Vec::new());
            json_to_cbor(&mut enc, &json, "");
            let body = enc.into_writer();
            let mut out = Response::new(status, SdkBody::from(body.clone()));
            out.headers_mut().insert("smithy-protocol", "rpc-v2-cbor");
            out.headers_mut().insert("content-type", "application/cbor");
            out.headers_mut()
                .insert("content-length", body.len().to_string());
            Ok(out)
        })
    }
}

/// A CBOR item as JSON; timestamps (tag 1) become epoch seconds, as awsJson wants.
fn cbor_to_json(d: &mut minicbor::Decoder<'_>) -> serde_json::Value {
    use minicbor::data::Type;
    use serde_json::Value;
    match d.datatype().unwrap() {
        Type::Map | Type::MapIndef => {
            let len = d.map().unwrap();
            let mut out = serde_json::Map::new();
            let mut n = 0;
            loop {
                if len == Some(n) {
                    break;
                }
                if len.is_none() && d.datatype().unwrap() == Type::Break {
                    // A break is the one byte 0xff.
                    d.set_position(d.position() + 1);
                    break;
                }
                let k = d.str().unwrap().to_owned();
                let v = cbor_to_json(d);
                out.insert(k, v);
                n += 1;
            }
            Value::Object(out)
        }
        Type::Array | Type::ArrayIndef => {
            let len = d.array().unwrap();
            let mut out = Vec::new();
            loop {
                if len == Some(out.len() as u64) {
                    break;
                }
                if len.is_none() && d.datatype().unwrap() == Type::Break {
                    d.set_position(d.position() + 1);
                    break;
                }
                out.push(cbor_to_json(d));
            }
            Value::Array(out)
        }
        Type::String | Type::StringIndef => Value::String(
            d.str_iter()
                .unwrap()
                .map(|s| s.unwrap().to_owned())
                .collect(),
        ),
        Type::Bool => Value::Bool(d.bool().unwrap()),
        Type::Null | Type::Undefined => {
            d.skip().unwrap();
            Value::Null
        }
        Type::Tag => {
            d.tag().unwrap();
            cbor_to_json(d)
        }
        Type::F16 | Type::F32 | Type::F64 => serde_json::json!(d.f64().unwrap()),
        Type::I8 | Type::I16 | Type::I32 | Type::I64 | Type::Int => {
            serde_json::json!(d.i64().unwrap())
        }
        _ => serde_json::json!(d.u64().unwrap()),
    }
}

/// JSON as CBOR for the SDK: `Timestamps` as tag-1 epoch seconds, `Values` and other
/// fractional numbers as doubles.
fn json_to_cbor(e: &mut minicbor::Encoder<Vec<u8>>, v: &serde_json::Value, key: &str) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            e.map(m.len() as u64).unwrap();
            for (k, v) in m {
                e.str(k).unwrap();
                json_to_cbor(e, v, k);
            }
        }
        Value::Array(a) => {
            e.array(a.len() as u64).unwrap();
            for v in a {
                json_to_cbor(e, v, key);
            }
        }
        Value::String(s) => {
            e.str(s).unwrap();
        }
        Value::Bool(b) => {
            e.bool(*b).unwrap();
        }
        Value::Null => {
            e.null().unwrap();
        }
        Value::Number(n) if key == "Timestamps" || key.ends_with("Timestamp") => {
            e.tag(minicbor::data::Tag::from(
                minicbor::data::IanaTag::Timestamp,
            ))
            .unwrap();
            e.f64(n.as_f64().unwrap()).unwrap();
        }
        Value::Number(n) if key == "Values" || n.is_f64() => {
            e.f64(n.as_f64().unwrap()).unwrap();
        }
        Value::Number(n) => {
            match n.as_i64() {
                Some(i) => e.i64(i).unwrap(),
                None => e.f64(n.as_f64().unwrap()).unwrap(),
            };
        }
    }
}

/// A CloudWatch client for moto through the protocol translation.
fn moto_cloudwatch(moto: &Moto) -> (aws_types::SdkConfig, aws_sdk_cloudwatch::Client) {
    let inner = moto.config.http_client().expect("moto's HTTP client");
    let config = moto
        .config
        .to_builder()
        .http_client(SharedHttpClient::new(CborToJson { inner }))
        .build();
    let client = aws_sdk_cloudwatch::Client::from_conf(
        aws_sdk_cloudwatch::config::Builder::from(&config)
            .disable_request_compression(true)
            .build(),
    );
    (config, client)
}

/// In moto: sums (5xx / requests, request rate), averages (CPU, memory), the
/// baseline an offset earlier, and no data as `None`; one request per observation.
#[tokio::test]
#[ignore = "needs moto server"]
async fn metrics_sums_averages_baseline_and_no_data() {
    let moto = Moto::new("us-east-1");
    let (_config, client) = moto_cloudwatch(&moto);
    let (clock, now) = minute_clock();
    let name = unique("meshos-api");
    let tg = format!("targetgroup/{name}/0123456789abcdef");
    put_window(&client, &name, &tg, now, 1.0).await;
    put_window(
        &client,
        &name,
        &tg,
        now - SignedDuration::from_hours(1),
        2.0,
    )
    .await;

    let api = service("us-east-1", &name);
    let empty = service("us-east-1", &unique("meshos-quiet"));
    let source = CloudWatchMetricsBuilder::from_client(client.clone())
        .with_service(api.clone(), ServiceDimensions::new().with_alb(&tg, LB))
        .with_service(
            empty.clone(),
            ServiceDimensions::new().with_alb("targetgroup/quiet/1", LB),
        )
        .with_clock(clock)
        .build()
        .unwrap();
    assert_eq!(source.to_string(), "CloudWatchMetrics(us-east-1)");

    let want = Metrics {
        error_rate_pct: Some(1.0),
        // moto computes no percentile, and none was put.
        p95_latency_ms: None,
        cpu_pct: Some(50.0),
        memory_pct: Some(70.0),
        request_rate_rps: Some(1.0),
    };
    let before = moto.requests();
    let got = source.observe(&api, WINDOW).await.unwrap();
    assert_eq!(
        moto.requests() - before,
        1,
        "one GetMetricData per observation"
    );
    assert_metrics_close("moto observe", &got, &want, 1e-9);

    let base = source.baseline(&api, WINDOW).await.unwrap();
    let want_base = Metrics {
        error_rate_pct: Some(2.0),
        cpu_pct: Some(100.0),
        ..want
    };
    assert_metrics_close("moto baseline", &base, &want_base, 1e-9);

    let quiet = source.observe(&empty, WINDOW).await.unwrap();
    assert!(quiet.is_empty(), "no data is None, never 0: {quiet:?}");

    let unknown = source
        .observe(&service("us-east-1", "not-configured"), WINDOW)
        .await
        .unwrap_err();
    assert_eq!(unknown.kind(), ErrorKind::NotFound, "{unknown}");
}

/// Puts one minute of data (ending at `end`) for the conformance suite: 3 errors of
/// 300 requests, CPU 50 %, memory 70 %.
async fn put_minute(client: &aws_sdk_cloudwatch::Client, svc: &str, tg: &str, end: Timestamp) {
    let alb = [("TargetGroup", tg), ("LoadBalancer", LB)];
    let ecs = [("ClusterName", "meshos-us-east-1"), ("ServiceName", svc)];
    let at = end - SignedDuration::from_secs(30);
    client
        .put_metric_data()
        .namespace("AWS/ApplicationELB")
        .metric_data(datum("HTTPCode_Target_5XX_Count", &alb, at, 3.0))
        .metric_data(datum("RequestCount", &alb, at, 300.0))
        .send()
        .await
        .expect("put ALB metrics");
    client
        .put_metric_data()
        .namespace("AWS/ECS")
        .metric_data(datum("CPUUtilization", &ecs, at, 50.0))
        .metric_data(datum("MemoryUtilization", &ecs, at, 70.0))
        .send()
        .await
        .expect("put ECS metrics");
}

/// The core metrics conformance suite in moto, one-minute windows (no P95: moto has
/// no percentiles).
#[tokio::test]
#[ignore = "needs moto server"]
async fn metrics_conformance() {
    let moto = Moto::new("us-east-1");
    let (_config, client) = moto_cloudwatch(&moto);
    let (clock, now) = minute_clock();
    let name = unique("meshos-api");
    let tg = format!("targetgroup/{name}/0123456789abcdef");
    for back in [0, 1, 2, 60] {
        put_minute(&client, &name, &tg, now - SignedDuration::from_mins(back)).await;
    }
    let api = service("us-east-1", &name);
    let empty = service("us-east-1", &unique("meshos-quiet"));
    let source = CloudWatchMetricsBuilder::from_client(client.clone())
        .with_service(api.clone(), ServiceDimensions::new().with_alb(&tg, LB))
        .with_service(empty.clone(), ServiceDimensions::new())
        .with_clock(clock)
        .build()
        .unwrap();
    let expected = Metrics {
        error_rate_pct: Some(1.0),
        p95_latency_ms: None,
        cpu_pct: Some(50.0),
        memory_pct: Some(70.0),
        request_rate_rps: Some(5.0),
    };
    let fx = MetricsFixture {
        service: api,
        expected,
        expected_baseline: expected,
        window: Duration::from_secs(60),
        range: TimeRange {
            start: now - SignedDuration::from_mins(2),
            end: now,
            step: Duration::from_secs(60),
        },
        empty,
        tolerance: 1e-9,
    };
    let before = moto.requests();
    conformance::metrics::run(&source, &fx).await;
    // observe, baseline, empty, three range points; the refused ranges send nothing.
    assert_eq!(moto.requests() - before, 6, "one request per observation");
}

fn result(id: &str, at: Timestamp, values: &[f64]) -> MetricDataResult {
    let mut r = MetricDataResult::builder()
        .id(id)
        .status_code(StatusCode::Complete);
    for v in values {
        r = r.timestamps(DateTime::from_secs(at.as_second())).values(*v);
    }
    r.build()
}

/// GetMetricData (CloudWatch API Reference): the `p95` extended statistic of
/// `TargetResponseTime` comes back in seconds and reads as milliseconds; all five
/// queries go in one request, with the ALB and ECS dimensions and the window's period.
#[tokio::test]
async fn p95_from_the_extended_statistic() {
    let (clock, now) = minute_clock();
    let start = now - SignedDuration::from_secs(300);
    let get = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
        .match_requests(move |r| {
            let q = r.metric_data_queries();
            let p95 = q.iter().find(|q| q.id() == Some("p95"));
            let stat = p95.and_then(|q| q.metric_stat());
            let dims: Vec<(&str, &str)> = stat
                .and_then(|s| s.metric())
                .map(|m| {
                    m.dimensions()
                        .iter()
                        .map(|d| (d.name().unwrap_or(""), d.value().unwrap_or("")))
                        .collect()
                })
                .unwrap_or_default();
            q.len() == 5
                && stat.and_then(|s| s.stat()) == Some("p95")
                && stat.and_then(|s| s.period()) == Some(300)
                && stat.and_then(|s| s.metric()).and_then(|m| m.metric_name())
                    == Some("TargetResponseTime")
                && dims == [("TargetGroup", TG), ("LoadBalancer", LB)]
                && r.start_time().map(|t| t.secs()) == Some(start.as_second())
                && r.end_time().map(|t| t.secs()) == Some(now.as_second())
        })
        .then_output(move || {
            GetMetricDataOutput::builder()
                .metric_data_results(result("e5xx", start, &[6.0]))
                .metric_data_results(result("requests", start, &[600.0]))
                .metric_data_results(result("p95", start, &[0.25]))
                .metric_data_results(result("cpu", start, &[35.5]))
                .metric_data_results(result("memory", start, &[61.0]))
                .build()
        });
    let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&get]);
    let source = CloudWatchMetricsBuilder::from_client(client)
        .with_service(
            service("us-east-1", "meshos-api"),
            ServiceDimensions::new().with_alb(TG, LB),
        )
        .with_clock(clock)
        .build()
        .unwrap();
    let got = source
        .observe(&service("us-east-1", "meshos-api"), WINDOW)
        .await
        .unwrap();
    assert_eq!(get.num_calls(), 1, "one request per observation");
    let want = Metrics::new(1.0, 250.0, 35.5, 61.0, 2.0);
    assert_metrics_close("mocked GetMetricData", &got, &want, 1e-9);
}

/// GetMetricData: an empty `Values` list is no data (`None`), requests without a 5xx
/// datapoint are 0 % errors (the ALB publishes no zero counts), and the baseline is
/// the same window a week earlier when so configured.
#[tokio::test]
async fn empty_values_are_none_and_the_baseline_is_offset() {
    let (clock, now) = minute_clock();
    let week = Duration::from_secs(7 * 24 * 3600);
    let week_ago = now - SignedDuration::try_from(week).unwrap();
    let get = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
        .match_requests(move |r| r.end_time().map(|t| t.secs()) == Some(week_ago.as_second()))
        .then_output(move || {
            GetMetricDataOutput::builder()
                .metric_data_results(result("e5xx", week_ago, &[]))
                .metric_data_results(result("requests", week_ago, &[300.0]))
                .metric_data_results(result("p95", week_ago, &[]))
                .metric_data_results(result("cpu", week_ago, &[]))
                .metric_data_results(result("memory", week_ago, &[]))
                .build()
        });
    let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&get]);
    let source = CloudWatchMetricsBuilder::from_client(client)
        .with_service(
            service("us-east-1", "meshos-api"),
            ServiceDimensions::new().with_alb(TG, LB),
        )
        .with_clock(clock)
        .with_baseline(Baseline::Offset(week))
        .build()
        .unwrap();
    let base = source
        .baseline(&service("us-east-1", "meshos-api"), WINDOW)
        .await
        .unwrap();
    assert_eq!(get.num_calls(), 1);
    assert_eq!(base.error_rate_pct, Some(0.0));
    assert_eq!(base.request_rate_rps, Some(1.0));
    assert_eq!(base.p95_latency_ms, None, "no data is None, never 0");
    assert_eq!(base.cpu_pct, None);
    assert_eq!(base.memory_pct, None);
}

#[test]
fn metrics_builder_refuses_bad_configuration() {
    let config = aws_types::SdkConfig::builder().build();
    let err = CloudWatchMetrics::builder(&config).build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "no region: {err}");
    let moto_like = aws_types::SdkConfig::builder()
        .region(aws_types::region::Region::new("us-east-1"))
        .behavior_version(aws_sdk_cloudwatch::config::BehaviorVersion::latest())
        .build();
    let err = CloudWatchMetrics::builder(&moto_like)
        .with_service(
            service("us-east-1", "meshos-api"),
            ServiceDimensions::new().with_alb(
                "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/x/1",
                LB,
            ),
        )
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("not ARNs"), "{err}");
    let err = CloudWatchMetrics::builder(&moto_like)
        .with_service(service("eu-west-1", "meshos-api"), ServiceDimensions::new())
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("without a client"), "{err}");
    let err = CloudWatchMetrics::builder(&moto_like)
        .with_baseline(Baseline::Offset(Duration::ZERO))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}

// ---------------------------------------------------------------- logs

/// A log group with the conformance lines in one stream (and an empty group).
async fn prepare_logs(moto: &Moto) -> (CloudWatchLogs, LogsFixture) {
    let client = aws_sdk_cloudwatchlogs::Client::new(&moto.config);
    let group = format!("/aws/ecs/{}", unique("meshos-api"));
    let empty_group = format!("/aws/ecs/{}", unique("meshos-worker"));
    for g in [&group, &empty_group] {
        client
            .create_log_group()
            .log_group_name(g)
            .send()
            .await
            .expect("create log group");
    }
    client
        .create_log_stream()
        .log_group_name(&group)
        .log_stream_name("ecs/api/1")
        .send()
        .await
        .expect("create log stream");
    let since = Timestamp::now() - SignedDuration::from_mins(10);
    let mut put = client
        .put_log_events()
        .log_group_name(&group)
        .log_stream_name("ecs/api/1")
        .log_events(
            InputLogEvent::builder()
                .timestamp((since - SignedDuration::from_mins(1)).as_millisecond())
                .message(BEFORE_SINCE)
                .build()
                .unwrap(),
        );
    for (i, line) in LINES.iter().enumerate() {
        let at = since + SignedDuration::from_secs(1 + i as i64);
        put = put.log_events(
            InputLogEvent::builder()
                .timestamp(at.as_millisecond())
                .message(*line)
                .build()
                .unwrap(),
        );
    }
    put.send().await.expect("put log events");
    let fx = LogsFixture {
        service: service("us-east-1", "meshos-api"),
        since,
        empty: service("us-east-1", "meshos-worker"),
        missing: service("us-east-1", "meshos-nope"),
    };
    let logs = CloudWatchLogs::builder(&moto.config)
        .with_log_group(fx.service.clone(), &group)
        .with_log_group(fx.empty.clone(), &empty_group)
        .build()
        .unwrap();
    (logs, fx)
}

/// The core logs conformance suite against moto's FilterLogEvents.
#[tokio::test]
#[ignore = "needs moto server"]
async fn logs_conformance() {
    let moto = Moto::new("us-east-1");
    let (logs, fx) = prepare_logs(&moto).await;
    assert_eq!(logs.to_string(), "CloudWatchLogs(us-east-1)");
    conformance::logs::run(&logs, &fx).await;
}

/// A configured log group that does not exist is NotFound (ResourceNotFoundException).
#[tokio::test]
#[ignore = "needs moto server"]
async fn a_missing_log_group_is_not_found() {
    let moto = Moto::new("us-east-1");
    let svc = service("us-east-1", "meshos-api");
    let logs = CloudWatchLogs::builder(&moto.config)
        .with_log_group(svc.clone(), format!("/aws/ecs/{}", unique("gone")))
        .build()
        .unwrap();
    let err: Error = logs
        .errors(
            &svc,
            Timestamp::now() - SignedDuration::from_mins(30),
            "ERROR",
            3,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

fn event(ms: i64, message: &str) -> FilteredLogEvent {
    FilteredLogEvent::builder()
        .timestamp(ms)
        .message(message)
        .log_stream_name("ecs/api/1")
        .build()
}

/// FilterLogEvents (CloudWatch Logs API Reference): pages follow `nextToken`, events
/// of several streams interleave (samples are the oldest), and the reading stops at
/// the page bound with the summary marked truncated.
#[tokio::test]
async fn logs_follow_next_token_up_to_the_bound() {
    let first = mock!(aws_sdk_cloudwatchlogs::Client::filter_log_events)
        .match_requests(|r| {
            r.next_token().is_none()
                && r.filter_pattern() == Some("ERROR")
                && r.log_group_name() == Some("/aws/ecs/meshos-api")
        })
        .then_output(|| {
            FilterLogEventsOutput::builder()
                .events(event(2_000, "ERROR b"))
                .events(event(1_000, "ERROR a"))
                .next_token("t1")
                .build()
        });
    let second = mock!(aws_sdk_cloudwatchlogs::Client::filter_log_events)
        .match_requests(|r| r.next_token() == Some("t1"))
        .then_output(|| {
            FilterLogEventsOutput::builder()
                .events(event(500, "ERROR oldest, other stream"))
                .next_token("t2")
                .build()
        });
    let third = mock!(aws_sdk_cloudwatchlogs::Client::filter_log_events)
        .match_requests(|r| r.next_token() == Some("t2"))
        .then_output(|| {
            FilterLogEventsOutput::builder()
                .events(event(3_000, "ERROR c"))
                .build()
        });
    let client = mock_client!(
        aws_sdk_cloudwatchlogs,
        RuleMode::MatchAny,
        [&first, &second, &third]
    );
    let svc = service("us-east-1", "meshos-api");
    let logs = CloudWatchLogsBuilder::from_client(client.clone())
        .with_log_group(svc.clone(), "/aws/ecs/meshos-api")
        .build()
        .unwrap();
    let since = Timestamp::from_second(0).unwrap();
    let all = logs.errors(&svc, since, "ERROR", 2).await.unwrap();
    assert_eq!(all.count, 4);
    assert!(!all.truncated);
    let samples: Vec<&str> = all.samples.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(samples, ["ERROR oldest, other stream", "ERROR a"]);
    assert_eq!(third.num_calls(), 1);

    let bounded = CloudWatchLogsBuilder::from_client(client)
        .with_log_group(svc.clone(), "/aws/ecs/meshos-api")
        .with_max_pages(2)
        .build()
        .unwrap();
    let cut = bounded.errors(&svc, since, "ERROR", 0).await.unwrap();
    assert_eq!(cut.count, 3, "two pages read");
    assert!(cut.truncated, "a count at the bound is a lower bound");
    assert!(cut.samples.is_empty());
    assert_eq!(third.num_calls(), 1, "the third page is not read");
}

#[test]
fn logs_builder_refuses_bad_log_groups() {
    let config = aws_types::SdkConfig::builder()
        .region(aws_types::region::Region::new("us-east-1"))
        .behavior_version(aws_sdk_cloudwatchlogs::config::BehaviorVersion::latest())
        .build();
    let err = CloudWatchLogs::builder(&config)
        .with_log_group(service("us-east-1", "meshos-api"), "aws logs tail")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}
