//! A real S3 server that implements Object Lock, for the object lock tests:
//! moto's server, which `scripts/install-deps.sh` installs in a Python venv
//! outside the checkout, keeping its buckets in memory; and the S3 API by
//! hand, through `curl --aws-sigv4`, for what an admin (or a thief holding
//! the keys) does to the bucket without rewind.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::command::{run, wait_for};
use super::s3_server::{port_after, tools_dir, S3Repo, S3_ACCESS_KEY, S3_SECRET_KEY};

/// moto's `moto_server`; a missing one fails the test (CI installs it, so
/// a silent skip would hide that the object lock tests never ran).
pub fn moto_server() -> PathBuf {
    let binary = tools_dir().join("moto/bin/moto_server");
    assert!(
        binary.is_file(),
        "the object lock tests need moto's S3 server at {}: run scripts/install-deps.sh",
        binary.display()
    );
    binary
}

/// A running moto server. Dropping it kills it, and its buckets with it.
pub struct MotoServer {
    log: PathBuf,
    pub port: u16,
    child: Child,
}

/// An answer of the S3 API: status, headers (lowercase names), body.
pub struct Answer {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// One stored version of an object, or a delete marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub key: String,
    pub version_id: String,
    pub delete_marker: bool,
}

impl MotoServer {
    /// Starts moto on a port the system picks, logging to `dir/moto.log`.
    #[track_caller]
    pub fn start(dir: &Path) -> MotoServer {
        let log = dir.join("moto.log");
        let out = File::create(&log).unwrap();
        let child = Command::new(moto_server())
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("moto_server starts");
        let mut server = MotoServer {
            log,
            port: 0,
            child,
        };
        // It logs the address it listens on.
        let listening = wait_for(Duration::from_secs(60), || {
            port_after(&server.log_text(), "Running on http://127.0.0.1:")
                .map(|port| server.port = port)
                .is_some()
        });
        assert!(
            listening.is_some(),
            "moto did not start listening:\n{}",
            server.log_text()
        );
        server
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A repository at `bucket/prefix` of this server. moto copies the
    /// whole bucket for every version listing, and fails some of them when
    /// many run at once: four requests at a time keep it busy enough.
    pub fn repo(&self, bucket: &str, prefix: &str) -> S3Repo {
        S3Repo::at(&format!("s3:{}/{bucket}/{prefix}", self.endpoint()))
            .with_env("REWIND_S3_CONNECTIONS", "4")
    }

    /// Sends one signed request; `path` starts with the bucket.
    #[track_caller]
    pub fn api(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        let mut cmd = Command::new("curl");
        cmd.args([
            "--silent",
            "--include",
            "--aws-sigv4",
            "aws:amz:us-east-1:s3",
        ])
        .args(["--user", &format!("{S3_ACCESS_KEY}:{S3_SECRET_KEY}")]);
        if method == "HEAD" {
            cmd.arg("--head");
        } else {
            cmd.args(["--request", method]);
        }
        for (name, value) in headers {
            cmd.args(["--header", &format!("{name}: {value}")]);
        }
        if !body.is_empty() {
            // Not curl's form type, which moto's web framework would consume.
            cmd.args(["--data-binary", body])
                .args(["--header", "content-type: application/xml"]);
        }
        cmd.arg(format!("{}/{path}", self.endpoint()));
        let answer = run(&mut cmd).assert_ok().text();
        parse_answer(&answer)
            .unwrap_or_else(|| panic!("{method} {path}: no HTTP answer:\n{answer}"))
    }

    /// Creates a bucket, with Object Lock enabled (and so versioning) or not.
    #[track_caller]
    pub fn create_bucket(&self, bucket: &str, object_lock: bool) {
        let headers: &[(&str, &str)] = if object_lock {
            &[("x-amz-bucket-object-lock-enabled", "true")]
        } else {
            &[]
        };
        let answer = self.api("PUT", bucket, headers, "");
        assert_eq!(
            answer.status, 200,
            "create bucket {bucket}: {}",
            answer.body
        );
    }

    /// Every version and delete marker under `prefix`.
    #[track_caller]
    pub fn versions(&self, bucket: &str, prefix: &str) -> Vec<Version> {
        let answer = self.api(
            "GET",
            &format!("{bucket}?versions&max-keys=1000&prefix={prefix}"),
            &[],
            "",
        );
        assert_eq!(answer.status, 200, "list versions: {}", answer.body);
        assert!(
            answer.body.contains("<IsTruncated>false</IsTruncated>"),
            "more versions than one page: {}",
            answer.body
        );
        let mut versions = Vec::new();
        for (element, delete_marker) in [("Version", false), ("DeleteMarker", true)] {
            for block in blocks(&answer.body, element) {
                versions.push(Version {
                    key: text_of(block, "Key").expect("a version has a key"),
                    version_id: text_of(block, "VersionId").expect("a version has an id"),
                    delete_marker,
                });
            }
        }
        versions.sort_by(|a, b| a.key.cmp(&b.key));
        versions
    }

    /// The keys of the objects a listing shows under `prefix` (no delete
    /// marker on top), sorted.
    #[track_caller]
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let answer = self.api(
            "GET",
            &format!("{bucket}?list-type=2&max-keys=1000&prefix={prefix}"),
            &[],
            "",
        );
        assert_eq!(answer.status, 200, "list: {}", answer.body);
        let mut keys: Vec<String> = blocks(&answer.body, "Contents")
            .into_iter()
            .filter_map(|block| text_of(block, "Key"))
            .collect();
        keys.sort();
        keys
    }

    /// The retention of an object's current version: its mode and date.
    #[track_caller]
    pub fn retention(&self, bucket: &str, key: &str) -> Option<(String, DateTime<Utc>)> {
        let answer = self.api("HEAD", &format!("{bucket}/{key}"), &[], "");
        assert_eq!(answer.status, 200, "HEAD {key}");
        let mode = answer.headers.get("x-amz-object-lock-mode")?.clone();
        let until = answer
            .headers
            .get("x-amz-object-lock-retain-until-date")?
            .parse::<DateTime<Utc>>()
            .expect("a retention date");
        Some((mode, until))
    }

    /// DELETE of one version: what deleting for good takes in a versioned bucket.
    #[track_caller]
    pub fn delete_version(&self, bucket: &str, version: &Version) -> Answer {
        self.api(
            "DELETE",
            &format!("{bucket}/{}?versionId={}", version.key, version.version_id),
            &[],
            "",
        )
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Status, headers and body of `curl --include` output (after any
/// `100 Continue`).
fn parse_answer(text: &str) -> Option<Answer> {
    let mut rest = text;
    loop {
        let (head, body) = rest.split_once("\r\n\r\n").unwrap_or((rest, ""));
        let mut lines = head.lines();
        let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
        if status == 100 {
            rest = body;
            continue;
        }
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_lowercase(), value.trim().to_string()))
            .collect();
        return Some(Answer {
            status,
            headers,
            body: body.to_string(),
        });
    }
}

/// The contents of each `<name>...</name>` element.
fn blocks<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    xml.split(open.as_str())
        .skip(1)
        .filter_map(|rest| rest.split_once(close.as_str()).map(|(inside, _)| inside))
        .collect()
}

fn text_of(xml: &str, name: &str) -> Option<String> {
    blocks(xml, name).first().map(|text| text.to_string())
}
