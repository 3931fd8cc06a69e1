//! AWS backends for meshos-rollback: the playbook's `aws ecs`, `aws elbv2`,
//! `aws route53` and `aws rds` commands, and the ECR form of `docker tag && docker
//! push`, as implementations of the core provider traits.
//!
//! | Type | Core trait | AWS API | Playbook section |
//! |------|-----------|---------|------------------|
//! | [`EcsDeployer`] | [`Deployer`](meshos_rollback_core::provider::Deployer) | ECS (and Secrets Manager for `set_env`) | Application Rollback (AWS ECS) |
//! | [`AlbTrafficShifter`] | [`TrafficShifter`](meshos_rollback_core::provider::TrafficShifter) | Elastic Load Balancing v2 | Load Balancer Rollback |
//! | [`Route53DnsSwitcher`] | [`DnsSwitcher`](meshos_rollback_core::provider::DnsSwitcher) | Route53 | DNS Rollback, Single Region Rollback |
//! | [`RdsRestorer`] | [`DbRestorer`](meshos_rollback_core::provider::DbRestorer) | RDS | Database Rollback (Data) |
//! | [`CloudWatchMetrics`] | [`MetricsSource`](meshos_rollback_core::provider::MetricsSource) | CloudWatch (`GetMetricData`) | Metrics Verification |
//! | [`CloudWatchLogs`] | [`LogSource`](meshos_rollback_core::provider::LogSource) | CloudWatch Logs (`FilterLogEvents`) | `aws logs tail` in verification |
//! | [`EcrImageRegistry`] | [`ImageRegistry`](meshos_rollback_core::provider::ImageRegistry) | ECR | Container Image Rollback |
//!
//! Each backend serves one region (Route53: one hosted zone) and is built from an
//! injected [`SdkConfig`](aws_types::SdkConfig) or service client: credentials,
//! region, endpoint and retry settings are the caller's, never read behind its back.
//! Builders follow `new` / `with_*` / `build() -> Result`; `build()` refuses a
//! configuration without a region. `Display` names the backend and its scope, such
//! as `EcsDeployer(us-east-1/meshos-us-east-1)`.
//!
//! Errors are the core [`Error`](meshos_rollback_core::Error), mapped in one place
//! from the AWS error code and HTTP status: throttling and 5xx answers are
//! [`Transient`](meshos_rollback_core::Error::Transient) (retryable), missing objects
//! `NotFound`, existing ones `Conflict`, access denied `PermissionDenied`,
//! validation errors `InvalidInput`. The SDK error stays reachable as the
//! `source()` of retryable and failed errors; no SDK type appears in a public
//! signature other than the clients and configuration the constructors take.
//!
//! The backends never retry, time out or log on their own: wrap them in the core's
//! layers. Waiting methods poll with [`Backoff`](meshos_rollback_core::wait::Backoff)
//! (quick at first, backing off, bounded by a check limit that `with_wait` sets).
//!
//! # Feature flags
//!
//! | Feature | Default | What it does |
//! |---------|---------|--------------|
//! | `default-http-client` | yes | When the `SdkConfig` or client carries no HTTP client, `build()` installs a hyper + rustls (ring) client. Without it such a configuration is refused at `build()` with `InvalidInput`, instead of every call failing later. |
//!
//! The AWS SDK crates are used without their default features: no bundled TLS stack
//! and no credential chain, which keeps the build small.
//!
//! # Example
//!
//! ```no_run
//! use aws_types::SdkConfig;
//! use meshos_rollback_aws::ecs::EcsDeployer;
//! use meshos_rollback_aws::elbv2::AlbTrafficShifter;
//! use meshos_rollback_core::model::{RollbackTarget, ServiceId};
//! use meshos_rollback_core::provider::{Deployer, RouteId, TargetId, TrafficShifter};
//!
//! # async fn run(config: SdkConfig) -> meshos_rollback_core::Result<()> {
//! // `config` usually comes from `aws_config::load_defaults(BehaviorVersion::latest())`
//! // with the region set to the one being rolled back.
//! let alb = AlbTrafficShifter::builder(&config).build()?;
//! alb.shift_all_to(
//!     &RouteId::new("arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/meshos/1/2"),
//!     &TargetId::new("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/stable/3"),
//! )
//! .await?;
//!
//! let ecs = EcsDeployer::builder(&config)
//!     .with_cluster("meshos-us-east-1")
//!     .build()?;
//! let api = ServiceId::ecs("meshos-us-east-1", "meshos-api");
//! let change = ecs.roll_back(&api, &RollbackTarget::Previous).await?;
//! println!("{ecs}: {} -> {}", change.from, change.to);
//! let status = ecs.wait_until_stable(&api).await?;
//! println!("{status}");
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod sdk;
mod secrets;

pub mod cloudwatch;
pub mod ecr;
pub mod ecs;
pub mod elbv2;
pub mod logs;
pub mod rds;
pub mod route53;

pub use cloudwatch::{CloudWatchMetrics, CloudWatchMetricsBuilder, ServiceDimensions};
pub use ecr::{EcrImageRegistry, EcrImageRegistryBuilder};
pub use ecs::{EcsDeployer, EcsDeployerBuilder};
pub use elbv2::{AlbTrafficShifter, AlbTrafficShifterBuilder};
pub use logs::{CloudWatchLogs, CloudWatchLogsBuilder};
pub use rds::{RdsRestorer, RdsRestorerBuilder};
pub use route53::{Route53DnsSwitcher, Route53DnsSwitcherBuilder};
