//! The configuration file, `fhir-server.toml`: any long flag of the command being run,
//! by its name without the dashes (`database-url = "postgres://…"`, `validation =
//! "off"`, `import-allowed-urls = ["https://…"]`). Flags win over environment
//! variables, which win over the file, which wins over the defaults. The file is the
//! one `--config` (or `FHIR_CONFIG`) names, else `fhir-server.toml` in the working
//! directory if there is one. Settings of other sub-commands are left to them;
//! a name no command knows is an error (a misspelt setting must not pass unseen).
//!
//! clap has no configuration-file layer, so this one is written here: the file's
//! settings become flags for those that neither the command line nor the environment
//! gave (`ArgMatches::value_source`), and the command line is parsed again with them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory, FromArgMatches};

use crate::config::Cli;

/// The file read when `--config` does not name one, if it exists.
pub const DEFAULT_FILE: &str = "fhir-server.toml";

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Cli(#[from] clap::Error),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

/// Parses the command line, the environment and the configuration file.
pub fn parse_from(argv: Vec<String>) -> Result<Cli, ConfigError> {
    let first = Cli::command().try_get_matches_from(&argv)?;
    let Some(path) = file_named(&first) else {
        return Ok(Cli::from_arg_matches(&first)?);
    };
    let fail = |message: String| ConfigError::File {
        path: path.clone(),
        message,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| fail(e.to_string()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| fail(e.to_string()))?;
    let flags = file_flags(&first, &table).map_err(fail)?;
    if flags.is_empty() {
        return Ok(Cli::from_arg_matches(&first)?);
    }
    // Before a `--`, after which everything is positional.
    let mut argv = argv;
    let at = argv.iter().position(|a| a == "--").unwrap_or(argv.len());
    argv.splice(at..at, flags);
    let merged = Cli::command()
        .try_get_matches_from(&argv)
        .map_err(|e| fail(e.render().to_string()))?;
    Ok(Cli::from_arg_matches(&merged)?)
}

/// The file `--config` or `FHIR_CONFIG` names, else the default one if it exists.
fn file_named(matches: &ArgMatches) -> Option<PathBuf> {
    let named = innermost(matches).get_one::<PathBuf>("config");
    match named {
        Some(p) => Some(p.clone()),
        None => Path::new(DEFAULT_FILE)
            .is_file()
            .then(|| PathBuf::from(DEFAULT_FILE)),
    }
}

/// The flags (`--name=value`) for the file's settings that the command being run
/// takes and that neither its command line nor the environment gave.
fn file_flags(matches: &ArgMatches, table: &toml::Table) -> Result<Vec<String>, String> {
    let root = Cli::command();
    // The sub-command run (`terminology load`: `load`), and what it was given.
    let (mut command, mut matches) = (&root, matches);
    while let Some((name, sub)) = matches.subcommand() {
        match command.find_subcommand(name) {
            Some(c) => (command, matches) = (c, sub),
            None => break,
        }
    }
    let known = known_names(&root);
    let mut flags = Vec::new();
    for (key, value) in table {
        let name = key.replace('_', "-");
        if !known.contains(&name) {
            return Err(format!(
                "unknown setting `{key}` (settings are the long flags of `fhir-server --help` and its sub-commands, without the dashes)"
            ));
        }
        let Some(arg) = command
            .get_arguments()
            .find(|a| a.get_long() == Some(name.as_str()))
        else {
            continue;
        };
        let given = matches!(
            matches.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        if !given {
            flags.extend(as_flags(&name, arg, value).map_err(|m| format!("`{key}`: {m}"))?);
        }
    }
    Ok(flags)
}

/// The matches of the innermost sub-command given (global arguments reach it).
fn innermost(matches: &ArgMatches) -> &ArgMatches {
    match matches.subcommand() {
        Some((_, sub)) => innermost(sub),
        None => matches,
    }
}

/// Every long flag of the program and its sub-commands, at any depth.
fn known_names(command: &clap::Command) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = command
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| !matches!(*l, "help" | "version" | "config"))
        .map(str::to_string)
        .collect();
    for sub in command.get_subcommands() {
        names.extend(known_names(sub));
    }
    names
}

/// One setting as flags.
fn as_flags(name: &str, arg: &clap::Arg, value: &toml::Value) -> Result<Vec<String>, String> {
    let switch = matches!(arg.get_action(), ArgAction::SetTrue);
    let on_off = arg
        .get_possible_values()
        .iter()
        .any(|v| v.get_name() == "on");
    let text = |v: &toml::Value| -> Result<String, String> {
        match v {
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Integer(i) => Ok(i.to_string()),
            toml::Value::Float(f) => Ok(f.to_string()),
            toml::Value::Boolean(b) if on_off => Ok(if *b { "on" } else { "off" }.into()),
            toml::Value::Boolean(b) => Ok(b.to_string()),
            _ => Err("expected a string, a number or a boolean".into()),
        }
    };
    match value {
        toml::Value::Boolean(b) if switch => Ok(if *b {
            vec![format!("--{name}")]
        } else {
            Vec::new()
        }),
        _ if switch => Err("expected true or false".into()),
        toml::Value::Array(items) if matches!(arg.get_action(), ArgAction::Append) => items
            .iter()
            .map(|v| text(v).map(|t| format!("--{name}={t}")))
            .collect(),
        v => Ok(vec![format!("--{name}={}", text(v)?)]),
    }
}

#[cfg(test)]
mod tests;
