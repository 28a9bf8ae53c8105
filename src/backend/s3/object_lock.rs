//! S3 Object Lock (`docs/design.md` section 7, "Object lock"): the bucket's
//! lock configuration, the retention headers of uploads, an object's
//! retention read from HEAD and extended with PutObjectRetention, and
//! removal version by version. A bucket with Object Lock keeps versions: a
//! DELETE without a version only hides an object behind a delete marker
//! and frees nothing, so a repository under object lock removes a file by
//! deleting each of its versions, which the store refuses for a version
//! whose retention has not ended.

use base64::Engine;
use chrono::{DateTime, Utc};
use md5::{Digest, Md5};
use ureq::http::Method;

use super::client::Request;
use super::{xml, S3Backend};
use crate::backend::{LockMode, Retention};
use crate::error::{Error, ErrorKind, Result};

const MODE_HEADER: &str = "x-amz-object-lock-mode";
const UNTIL_HEADER: &str = "x-amz-object-lock-retain-until-date";

/// The `Content-MD5` of a body, which S3 requires of every upload that
/// carries a retention, and of PutObjectRetention.
pub fn content_md5(body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(body))
}

/// `request` with the headers that store its object under `retention`.
pub fn with_retention<'a>(request: Request<'a>, retention: &Retention) -> Request<'a> {
    request
        .header(MODE_HEADER, retention.mode.s3_name())
        .header(UNTIL_HEADER, s3_time(retention.until))
}

/// A date as S3's retention headers and documents spell it.
fn s3_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn parse_s3_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl S3Backend {
    /// Checks that the bucket has Object Lock enabled and no default
    /// retention of its own: a default would lock the repository's lock
    /// files and deletion plans too, which must stay removable.
    pub(super) fn check_bucket_lock(&self) -> Result<()> {
        let operation = "cannot read the Object Lock configuration";
        let request = Request::new(Method::GET, "").query("object-lock", "");
        let response = self.client.send(operation, request)?;
        let bucket = &self.client.target().bucket;
        let how_to_create = format!(
            "Object Lock is enabled when a bucket is created (AWS: `aws s3api create-bucket \
             --bucket NAME --object-lock-enabled-for-bucket`), or on an existing bucket with \
             versioning (`aws s3api put-object-lock-configuration --bucket {bucket} \
             --object-lock-configuration ObjectLockEnabled=Enabled`); \
             then run `rewind init --object-lock` again"
        );
        if response.status == 404 {
            let error = self.failure(operation, &response);
            if error.kind() != ErrorKind::NotFound {
                return Err(error);
            }
            return Err(Error::usage(format!(
                "bucket {bucket} at {} does not have Object Lock enabled",
                self.client.target().endpoint
            ))
            .with_hint(how_to_create));
        }
        let response = self.expect_success(operation, response)?;
        let configuration = xml::parse_lock_configuration(&String::from_utf8_lossy(&response.body))
            .map_err(|why| self.garbled(operation, &why))?;
        if !configuration.enabled {
            return Err(Error::usage(format!(
                "bucket {bucket} at {} does not have Object Lock enabled",
                self.client.target().endpoint
            ))
            .with_hint(how_to_create));
        }
        if let Some(rule) = configuration.default_retention {
            return Err(Error::usage(format!(
                "bucket {bucket} has a default retention ({rule}), which would lock rewind's \
                 lock files and deletion plans too"
            ))
            .with_hint(format!(
                "rewind gives each file its own retention; remove the bucket's default rule \
                 (`aws s3api put-object-lock-configuration --bucket {bucket} \
                 --object-lock-configuration ObjectLockEnabled=Enabled`)"
            )));
        }
        Ok(())
    }

    /// The retention of an object (of one version of it), from HEAD.
    pub(super) fn head_retention(
        &self,
        key: &str,
        version: Option<&str>,
    ) -> Result<Option<Retention>> {
        let operation = format!("cannot read the retention of {key}");
        let mut request = Request::new(Method::HEAD, key);
        if let Some(version) = version {
            request = request.query("versionId", version);
        }
        let response = self.client.send(&operation, request)?;
        let response = self.expect_success(&operation, response)?;
        let (Some(mode), Some(until)) =
            (response.header(MODE_HEADER), response.header(UNTIL_HEADER))
        else {
            return Ok(None);
        };
        let mode = LockMode::from_s3_name(mode)
            .ok_or_else(|| self.garbled(&operation, &format!("unknown lock mode {mode}")))?;
        let until = parse_s3_time(until)
            .ok_or_else(|| self.garbled(&operation, &format!("unreadable date {until}")))?;
        Ok(Some(Retention { mode, until }))
    }

    /// Sets an object's retention (PutObjectRetention).
    pub(super) fn put_retention(&self, key: &str, retention: &Retention) -> Result<()> {
        let operation = format!("cannot set the retention of {key}");
        let body = xml::retention_body(retention.mode.s3_name(), &s3_time(retention.until));
        let request = Request::new(Method::PUT, key)
            .query("retention", "")
            .header("content-md5", content_md5(body.as_bytes()))
            .body(body.as_bytes());
        let response = self.client.send(&operation, request)?;
        self.expect_success(&operation, response).map(drop)
    }

    /// Deletes every version of an object, and the delete markers above
    /// them. Versions still under retention stay, and the error says until
    /// when; the others go.
    pub(super) fn remove_versions(&self, key: &str) -> Result<()> {
        let operation = format!("cannot remove {key}");
        let mut retained = None;
        for version in self.versions_of(key)? {
            let request = Request::new(Method::DELETE, key).query("versionId", version.clone());
            let response = self.client.send(&operation, request)?;
            if response.is_success() || response.status == 404 {
                continue;
            }
            // S3 says AccessDenied for a locked version: its retention
            // tells that from a key that may not delete.
            let refusal = self.failure(&operation, &response);
            match self.head_retention(key, Some(&version)) {
                Ok(Some(retention)) if response.status == 403 && retention.until > Utc::now() => {
                    retained = Some(self.retained(&operation, &retention));
                }
                _ => return Err(refusal),
            }
        }
        retained.map_or(Ok(()), Err)
    }

    fn retained(&self, operation: &str, retention: &Retention) -> Error {
        Error::new(
            ErrorKind::Retained,
            format!(
                "{operation} in bucket {} at {}: it is under retention ({}) until {}",
                self.client.target().bucket,
                self.client.target().endpoint,
                retention.mode.s3_name(),
                s3_time(retention.until)
            ),
        )
        .with_hint("object lock keeps it until then; a prune after that date deletes it")
    }

    /// The version ids of `key` (versions and delete markers), page after page.
    fn versions_of(&self, key: &str) -> Result<Vec<String>> {
        let operation = format!("cannot list the versions of {key}");
        let mut versions = Vec::new();
        let mut after: Option<(String, String)> = None;
        loop {
            let mut request = Request::new(Method::GET, "")
                .query("versions", "")
                .query("prefix", key);
            if let Some((key_marker, version_marker)) = &after {
                request = request
                    .query("key-marker", key_marker.clone())
                    .query("version-id-marker", version_marker.clone());
            }
            let response = self.client.send(&operation, request)?;
            let response = self.expect_success(&operation, response)?;
            let page = xml::parse_versions_page(&String::from_utf8_lossy(&response.body))
                .map_err(|why| self.garbled(&operation, &why))?;
            // The prefix also lists longer keys that start with this one.
            versions.extend(
                page.versions
                    .into_iter()
                    .filter(|v| v.key == key)
                    .map(|v| v.version_id),
            );
            match page.next {
                Some(next) if Some(&next) != after.as_ref() => after = Some(next),
                Some(_) => return Err(self.garbled(&operation, "the listing does not advance")),
                None => return Ok(versions),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_md5_is_base64_of_the_digest() {
        assert_eq!(content_md5(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
        assert_eq!(content_md5(b"hello"), "XUFAKrxLKna5cZ2REBfFkg==");
    }

    #[test]
    fn dates_as_s3_spells_them() {
        let t: DateTime<Utc> = "2026-12-01T10:00:00.250Z".parse().unwrap();
        assert_eq!(s3_time(t), "2026-12-01T10:00:00Z");
        assert_eq!(
            parse_s3_time("2026-12-01T10:00:00.000Z"),
            Some("2026-12-01T10:00:00Z".parse().unwrap())
        );
        assert_eq!(parse_s3_time("tomorrow"), None);
    }
}
