//! The command providers against real processes: a small migration tool and smoke
//! suite written in `sh`, run through the core conformance suites.

use std::path::Path;
use std::time::{Duration, Instant};

use meshos_rollback_command::*;
use meshos_rollback_core::ErrorKind;
use meshos_rollback_core::conformance;
use meshos_rollback_core::model::{Region, ServiceId, ServiceRef};
use meshos_rollback_core::provider::{MigrationTarget, SchemaMigrator, SmokeTests};

/// A migration tool keeping "BATCH NAME" lines in a state file.
const MIGRATE: &str = r#"#!/bin/sh
state="$1"; cmd="$2"
case "$cmd" in
  status) cat "$state" ;;
  status-json) awk 'BEGIN{printf "["} NF{ if(n++) printf ","; printf "{\"batch\":%s,\"name\":\"%s\"}", $1, $2 } END{print "]"}' "$state" ;;
  rollback)
    max=$(awk 'NF{if($1>m)m=$1} END{print m+0}' "$state")
    awk -v m="$max" 'NF && $1!=m' "$state" > "$state.tmp"; mv "$state.tmp" "$state"
    echo "Batch $max rolled back" ;;
  down)
    grep -q " $3\$" "$state" || { echo "migration $3 not found" >&2; exit 1; }
    grep -v " $3\$" "$state" > "$state.tmp"; mv "$state.tmp" "$state"
    echo "Reverted $3" ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
"#;

const SMOKE: &str = r#"#!/bin/sh
case "$1" in
  eu-west-1) echo "11 passed"; echo "1 failed: checkout" >&2; exit 1 ;;
  *) echo "running smoke tests for $1/$2"; echo "12 passed" ;;
esac
"#;

fn tool(dir: &Path, batches: &str) -> (String, String) {
    let script = dir.join("migrate.sh");
    std::fs::write(&script, MIGRATE).unwrap();
    let state = dir.join("state");
    std::fs::write(&state, batches).unwrap();
    (script.display().to_string(), state.display().to_string())
}

fn migrator(dir: &Path, format: StatusFormat) -> CommandMigrator {
    let (script, state) = tool(
        dir,
        "1 20251001_init\n2 20251030_add_feature_column\n2 20251030_backfill_feature\n",
    );
    let t = |args: &[&str]| {
        let mut argv = vec!["sh".to_owned(), script.clone(), state.clone()];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        CommandTemplate::new(argv).unwrap()
    };
    CommandMigrator::new(
        "meshos-db-us-east-1",
        MigrationCommands {
            status: t(&[if format == StatusFormat::Json {
                "status-json"
            } else {
                "status"
            }]),
            rollback: t(&["rollback"]),
            down: t(&["down", "{name}"]),
            format,
        },
    )
}

#[tokio::test]
async fn migrations_pass_the_conformance_suite_in_both_formats() {
    for format in [StatusFormat::BatchLines, StatusFormat::Json] {
        let dir = tempfile::tempdir().unwrap();
        let m = migrator(dir.path(), format);
        conformance::migrate::run(
            &m,
            "20251001_init",
            ["20251030_add_feature_column", "20251030_backfill_feature"],
        )
        .await;
    }
}

#[tokio::test]
async fn a_failing_or_unreadable_status_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (script, state) = tool(dir.path(), "1 init\n");
    let broken = CommandMigrator::new(
        "db",
        MigrationCommands {
            status: CommandTemplate::new(["sh", &script, &state, "stats"]).unwrap(),
            rollback: CommandTemplate::new(["sh", &script, &state, "rollback"]).unwrap(),
            down: CommandTemplate::new(["sh", &script, &state, "down", "{name}"]).unwrap(),
            format: StatusFormat::BatchLines,
        },
    );
    let err = broken.status().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert!(
        err.to_string()
            .contains("failed with exit status 2: unknown command stats"),
        "{err}"
    );

    let garbled = CommandMigrator::new(
        "db",
        MigrationCommands {
            status: CommandTemplate::new(["echo", "not a status"]).unwrap(),
            rollback: CommandTemplate::new(["true"]).unwrap(),
            down: CommandTemplate::new(["true"]).unwrap(),
            format: StatusFormat::BatchLines,
        },
    );
    let err = garbled.status().await.unwrap_err();
    assert!(
        err.to_string().contains("\"not\" is not a batch number"),
        "{err}"
    );
}

#[tokio::test]
async fn a_migration_name_cannot_smuggle_an_option() {
    let dir = tempfile::tempdir().unwrap();
    let m = migrator(dir.path(), StatusFormat::BatchLines);
    let err = m
        .roll_back(&MigrationTarget::Named("--all".into()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(
        m.status().await.unwrap().applied.len(),
        3,
        "nothing reverted"
    );
}

fn service(region: &str) -> ServiceRef {
    ServiceRef::new(
        Region::new(region).unwrap(),
        ServiceId::ecs("c", "meshos-api"),
    )
}

#[tokio::test]
async fn smoke_tests_pass_on_exit_zero_and_say_why_they_failed() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("smoke.sh");
    std::fs::write(&script, SMOKE).unwrap();
    let smoke = CommandSmokeTests::new(
        CommandTemplate::new(["sh", &script.display().to_string(), "{region}", "{service}"])
            .unwrap(),
    );
    conformance::health::run_smoke(&smoke, &service("us-east-1"), &service("eu-west-1")).await;
    let ok = smoke.run(&service("us-east-1")).await.unwrap();
    assert_eq!(ok.summary, "12 passed");
    let bad = smoke.run(&service("eu-west-1")).await.unwrap();
    assert_eq!(bad.summary, "exit status 1: 1 failed: checkout");
}

#[tokio::test]
async fn a_command_past_its_deadline_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let smoke = CommandSmokeTests::new(
        CommandTemplate::new([
            "sh",
            "-c",
            &format!("echo $$ > {}; exec sleep 30", pid_file.display()),
        ])
        .unwrap(),
    )
    .with_timeout(Duration::from_millis(500));
    let started = Instant::now();
    let err = smoke.run(&service("us-east-1")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(started.elapsed() < Duration::from_secs(5));
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_owned();
    // The process is gone (killed, then reaped by tokio's orphan reaper).
    let mut alive = true;
    for _ in 0..50 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting to be reaped: either way no longer running.
        if stat.is_empty() || stat.split_whitespace().nth(2) == Some("Z") {
            alive = false;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!alive, "process {pid} still runs after the deadline");
}

/// Whether `pid` still runs: gone, or a zombie nobody reaped yet, is not running.
fn running(pid: &str) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the parenthesised command name, which may contain spaces.
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, None | Some("Z" | "X"))
}

/// Polls (bounded) until `pid` no longer runs; a killed process can take a moment.
async fn gone(pid: &str) -> bool {
    for _ in 0..50 {
        if !running(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A command shaped like `npm run`: a shell that starts a long grandchild, writes its
/// PID (atomically) to `pid_file`, then waits for it, so the grandchild holds the
/// output pipes too.
fn with_grandchild(pid_file: &Path, then: &str) -> CommandTemplate {
    let f = pid_file.display();
    CommandTemplate::new([
        "sh",
        "-c",
        &format!("sleep 300 & echo $! > {f}.tmp && mv {f}.tmp {f}; {then}"),
    ])
    .unwrap()
}

async fn read_pid(pid_file: &Path) -> String {
    for _ in 0..100 {
        if let Ok(pid) = std::fs::read_to_string(pid_file) {
            return pid.trim().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} was never written", pid_file.display());
}

#[tokio::test]
async fn the_deadline_kills_the_commands_grandchildren_too() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("grandchild");
    let smoke = CommandSmokeTests::new(with_grandchild(&pid_file, "wait"))
        .with_timeout(Duration::from_millis(500));
    let started = Instant::now();
    let err = smoke.run(&service("us-east-1")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let pid = read_pid(&pid_file).await;
    assert!(
        gone(&pid).await,
        "grandchild {pid} still runs after the deadline"
    );
}

#[tokio::test]
async fn a_grandchild_holding_the_pipes_after_the_command_exits_is_killed_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    // The shell exits at once; its background `sleep` keeps stdout open.
    let smoke = CommandSmokeTests::new(with_grandchild(
        &dir.path().join("grandchild"),
        "echo started",
    ))
    .with_timeout(Duration::from_millis(500));
    let started = Instant::now();
    let err = smoke.run(&service("us-east-1")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let pid = read_pid(&dir.path().join("grandchild")).await;
    assert!(
        gone(&pid).await,
        "grandchild {pid} still runs after the deadline"
    );
}

#[tokio::test]
async fn cancelling_a_run_kills_the_commands_grandchildren() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("grandchild");
    let smoke = CommandSmokeTests::new(with_grandchild(&pid_file, "wait"))
        .with_timeout(Duration::from_secs(600));
    let target = service("us-east-1");
    let mut run = smoke.run(&target);
    let pid = tokio::select! {
        r = &mut run => panic!("the command ended early: {r:?}"),
        pid = read_pid(&pid_file) => pid,
    };
    assert!(
        running(&pid),
        "grandchild {pid} runs before the cancellation"
    );
    // The engine cancels a step by dropping its future.
    drop(run);
    assert!(
        gone(&pid).await,
        "grandchild {pid} still runs after cancellation"
    );
}

#[tokio::test]
async fn only_the_tail_of_a_chatty_command_is_kept() {
    // 1.7 MB through a 64 KiB pipe: the run ends only if reading goes on past the cap.
    let chatty = "yes 0123456789abcdef | head -n 100000; echo '12 passed'; \
                  yes warning | head -n 1000 >&2";
    let smoke = CommandSmokeTests::new(CommandTemplate::new(["sh", "-c", chatty]).unwrap())
        .with_output_limit(1000)
        .with_timeout(Duration::from_secs(60));
    let ok = smoke.run(&service("us-east-1")).await.unwrap();
    assert!(ok.passed);
    // stdout: 100000 lines of 17 bytes and "12 passed\n"; the last 1000 bytes start
    // inside a line, which goes too, leaving 58 whole lines and the summary.
    let stdout_dropped = 100_000 * 17 + 10 - (58 * 17 + 10);
    // stderr: 1000 lines of 8 bytes; the last 1000 bytes are 125 whole lines.
    assert_eq!(
        ok.summary,
        format!(
            "12 passed (output truncated: the first {stdout_dropped} bytes of stdout \
             and 7000 bytes of stderr dropped)"
        )
    );

    let dir = tempfile::tempdir().unwrap();
    let (script, state) = tool(dir.path(), &"1 20251001_init\n".repeat(200));
    let t = |cmd: &str| CommandTemplate::new(["sh", &script, &state, cmd]).unwrap();
    let m = CommandMigrator::new(
        "db",
        MigrationCommands {
            status: t("status"),
            rollback: t("rollback"),
            down: t("down"),
            format: StatusFormat::BatchLines,
        },
    )
    .with_output_limit(1000);
    let err = m.status().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("printed more than the output limit of 1000 bytes (2208 bytes dropped)"),
        "a status cut short is not read as a shorter history: {err}"
    );
}

#[tokio::test]
async fn a_missing_program_is_a_configuration_error() {
    let smoke = CommandSmokeTests::new(CommandTemplate::new(["no-such-smoke-runner-xyz"]).unwrap());
    let err = smoke.run(&service("us-east-1")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string()
            .contains("program \"no-such-smoke-runner-xyz\" not found"),
        "{err}"
    );
}
