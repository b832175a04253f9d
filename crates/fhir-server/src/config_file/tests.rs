//! The file's place among flags, environment and defaults, and its errors.

use super::*;
use crate::config::{Command, OnOff};

/// Parses `args` with `toml` as the `--config` file.
fn with_file(toml: &str, args: &[&str]) -> Result<Cli, ConfigError> {
    let dir = std::env::temp_dir().join(format!(
        "fhir-config-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("fhir-server.toml");
    std::fs::write(&path, toml).expect("write");
    let mut argv = vec!["fhir-server".to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    argv.push(format!("--config={}", path.display()));
    let result = parse_from(argv);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[test]
fn the_file_sets_what_flags_do_not() {
    let cli = with_file(
        "total-threshold = 5\nvalidation = false\nreject_warnings = true\n\
         import-allowed-urls = [\"https://a.example/\", \"https://b.example/\"]\n\
         log-level = \"debug\"\n",
        &["--log-level", "warn"],
    )
    .expect("parsed");
    assert!(cli.command.is_none());
    let serve = cli.serve;
    assert_eq!(serve.total_threshold, 5);
    assert_eq!(serve.validation, OnOff::Off);
    assert!(serve.reject_warnings);
    assert_eq!(
        serve.bulk_import.import_allowed_urls,
        ["https://a.example/", "https://b.example/"]
    );
    assert_eq!(serve.log_level, "warn", "the flag wins");
    assert_eq!(serve.request_timeout, 30.0, "defaults stay");
}

#[test]
fn sub_commands_take_their_own_settings() {
    let cli = with_file(
        "database-url = \"sqlite://./other.db\"\nlisten = \"0.0.0.0:9999\"\n",
        &["reindex"],
    )
    .expect("parsed");
    match cli.command {
        Some(Command::Reindex(args)) => assert_eq!(args.database_url, "sqlite://./other.db"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn mistakes_in_the_file_are_reported_with_its_name() {
    let unknown = with_file("databse-url = \"x\"\n", &[]).expect_err("unknown setting");
    let text = unknown.to_string();
    assert!(
        text.contains("fhir-server.toml") && text.contains("databse-url"),
        "{text}"
    );
    let bad = with_file("total-threshold = \"many\"\n", &[]).expect_err("bad value");
    assert!(bad.to_string().contains("many"), "{bad}");
    let syntax = with_file("total-threshold = \n", &[]).expect_err("bad TOML");
    assert!(syntax.to_string().contains("fhir-server.toml"), "{syntax}");
    let switch = with_file("reject-warnings = \"yes\"\n", &[]).expect_err("not a boolean");
    assert!(switch.to_string().contains("true or false"), "{switch}");
}

#[test]
fn nested_sub_commands_and_positionals_after_a_double_dash() {
    let cli = with_file(
        "batch = 7\ndatabase-url = \"sqlite://./t.db\"\n",
        &["terminology", "load", "a.json"],
    )
    .expect("parsed");
    let text = format!("{:?}", cli.command);
    assert!(
        text.contains("sqlite://./t.db") && text.contains("batch: 7"),
        "{text}"
    );
    let mut argv: Vec<String> = ["fhir-server", "validate"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let dir = std::env::temp_dir().join(format!("fhir-config-dd-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("c.toml");
    std::fs::write(&path, "profile = [\"http://x/p\"]\n").expect("write");
    argv.push(format!("--config={}", path.display()));
    argv.extend(["--".to_string(), "-odd-file.json".to_string()]);
    let cli = parse_from(argv).expect("parsed");
    let _ = std::fs::remove_dir_all(&dir);
    match cli.command {
        Some(Command::Validate(v)) => {
            assert_eq!(v.profile, ["http://x/p"]);
            assert_eq!(v.files, [std::path::PathBuf::from("-odd-file.json")]);
        }
        other => panic!("{other:?}"),
    }
}
