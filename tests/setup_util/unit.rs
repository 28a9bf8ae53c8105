//! A systemd service started as systemd starts it, on a machine where
//! systemd is not PID 1 (a container, CI): its unit file and drop-ins
//! found where systemd looks, its `ExecStart=` lines run with the
//! environment systemd gives a system service (a fixed PATH, the unit's
//! `Environment=` and `EnvironmentFile=`, nothing of the caller's), in
//! `/`, with no standard input. What else a unit says (sandboxing,
//! scheduling, `PrivateTmp=`, kill modes) is not imitated.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{run, Run};

/// Where systemd looks for system units, the first place first.
const UNIT_PATH: [&str; 5] = [
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// The PATH systemd gives every system service.
const SERVICE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A service unit, as loaded: what it runs, with what environment.
#[derive(Debug)]
pub struct Service {
    pub exec_start: Vec<Vec<String>>,
    pub environment: Vec<(String, String)>,
    /// The files read, the unit first, then its drop-ins.
    pub sources: Vec<PathBuf>,
}

impl Service {
    /// Loads `name` (`NAME.service` or `TEMPLATE@INSTANCE.service`): the
    /// unit file, else its template, then the drop-ins of both, in the
    /// order of their file names (a drop-in's name in an earlier directory
    /// hides the same name in a later one).
    pub fn load(name: &str) -> Service {
        let (prefix, suffix) = name.rsplit_once('.').expect("a unit name has a type");
        assert_eq!(suffix, "service", "{name} is a service");
        let instance = prefix
            .split_once('@')
            .map(|(template, instance)| (format!("{template}@.{suffix}"), instance.to_string()));
        let mut names = vec![name.to_string()];
        names.extend(instance.iter().map(|(template, _)| template.clone()));
        let unit = names
            .iter()
            .flat_map(|n| UNIT_PATH.iter().map(move |dir| Path::new(dir).join(n)))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("no unit file for {name} in {UNIT_PATH:?}"));
        let mut drop_ins: Vec<(String, PathBuf)> = Vec::new();
        for dir in UNIT_PATH {
            for n in names.iter().rev() {
                let Ok(entries) = std::fs::read_dir(Path::new(dir).join(format!("{n}.d"))) else {
                    continue;
                };
                for entry in entries {
                    let path = entry.unwrap().path();
                    let file = path.file_name().unwrap().to_string_lossy().into_owned();
                    if file.ends_with(".conf") && !drop_ins.iter().any(|(f, _)| *f == file) {
                        drop_ins.push((file, path));
                    }
                }
            }
        }
        drop_ins.sort();
        let mut service = Service {
            exec_start: Vec::new(),
            environment: Vec::new(),
            sources: Vec::new(),
        };
        let specifiers = Specifiers {
            name: name.to_string(),
            instance: instance.map(|(_, i)| i).unwrap_or_default(),
        };
        for source in std::iter::once(unit).chain(drop_ins.into_iter().map(|(_, p)| p)) {
            service.read(&source, &specifiers);
            service.sources.push(source);
        }
        assert!(
            !service.exec_start.is_empty(),
            "{name} has no ExecStart= in {:?}",
            service.sources
        );
        service
    }

    fn read(&mut self, file: &Path, specifiers: &Specifiers) {
        let text = std::fs::read_to_string(file).unwrap();
        let mut section = String::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with(['#', ';']) {
                continue;
            }
            if let Some(name) = line.strip_prefix('[') {
                section = name.trim_end_matches(']').to_string();
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("{}: not a setting: {line}", file.display()));
            let value = specifiers.expand(value.trim());
            match (section.as_str(), key.trim()) {
                ("Service", "ExecStart") if value.is_empty() => self.exec_start.clear(),
                ("Service", "ExecStart") => self.exec_start.push(command_line(&value)),
                ("Service", "Environment") => self
                    .environment
                    .extend(value.split_whitespace().map(assignment)),
                ("Service", "EnvironmentFile") => {
                    let (optional, path) = match value.strip_prefix('-') {
                        Some(path) => (true, path),
                        None => (false, value.as_str()),
                    };
                    match std::fs::read_to_string(path) {
                        Ok(text) => self.environment.extend(environment_file(&text)),
                        Err(_) if optional => {}
                        Err(e) => panic!("EnvironmentFile={path} of {}: {e}", file.display()),
                    }
                }
                _ => {}
            }
        }
    }

    /// `systemctl start`: each `ExecStart=` in turn until one fails; the
    /// last one's run.
    pub fn start(&self) -> Run {
        let mut last = None;
        for argv in &self.exec_start {
            let done = run(Command::new(&argv[0])
                .args(&argv[1..])
                .env_clear()
                .env("PATH", SERVICE_PATH)
                .envs(self.environment.iter().map(|(k, v)| (k, v)))
                .current_dir("/"));
            let failed = !done.ok();
            last = Some(done);
            if failed {
                break;
            }
        }
        last.unwrap()
    }
}

/// The specifiers a unit's values may hold that this stand-in knows.
struct Specifiers {
    name: String,
    instance: String,
}

impl Specifiers {
    fn expand(&self, value: &str) -> String {
        let mut out = String::new();
        let mut chars = value.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('%') => out.push('%'),
                Some('i' | 'I') => out.push_str(&self.instance),
                Some('n') => out.push_str(&self.name),
                other => panic!("the specifier %{other:?} in {value:?} is not imitated here"),
            }
        }
        out
    }
}

/// An `ExecStart=` value: an absolute program and its arguments, split at
/// spaces (quotes, escapes and the `-@:+!` prefixes are refused rather
/// than imitated).
fn command_line(value: &str) -> Vec<String> {
    assert!(
        value.starts_with('/') && !value.contains(['"', '\'', '\\']),
        "ExecStart={value}: only an absolute path and plain words are imitated here"
    );
    value.split_whitespace().map(str::to_string).collect()
}

fn assignment(word: &str) -> (String, String) {
    assert!(
        !word.contains(['"', '\'']),
        "Environment={word}: quotes are not imitated here"
    );
    let (key, value) = word
        .split_once('=')
        .unwrap_or_else(|| panic!("Environment={word}: not KEY=VALUE"));
    (key.to_string(), value.to_string())
}

/// An environment file: `KEY=VALUE` lines, `#` and `;` comments, a value
/// in quotes unquoted.
fn environment_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(['#', ';']))
        .map(|line| {
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("environment file line {line:?}: not KEY=VALUE"));
            let value = value.trim();
            let unquoted = ['"', '\'']
                .iter()
                .find_map(|q| value.strip_prefix(*q)?.strip_suffix(*q))
                .unwrap_or(value);
            (key.trim().to_string(), unquoted.to_string())
        })
        .collect()
}
