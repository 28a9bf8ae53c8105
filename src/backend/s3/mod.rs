//! A repository in an S3 bucket, under a key prefix: the layout of
//! `man/rewind-format.5` (LAYOUT) maps one to one onto object keys, and
//! the backend operations onto PUT, GET, ranged GET, HEAD, DELETE and
//! ListObjectsV2 (`docs/design.md` section 7, "S3 and other stores").
//! Retries are not done here but by the [`Retrying`](super::Retrying)
//! wrapper; this backend only says which failures are worth retrying. A
//! repository under object lock adds retention to uploads and removes
//! objects version by version (`object_lock.rs`).

mod client;
mod credentials;
mod errors;
mod location;
mod object_lock;
mod settings;
mod sign;
mod xml;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use ureq::http::Method;

use self::client::{Client, Request, Response};
pub use self::credentials::Environment;
pub use self::location::S3Url;
use self::location::{Endpoint, Scheme};
use self::object_lock::{content_md5, with_retention};
pub use self::settings::Settings;
use super::{is_retained, Backend, FileType, ObjectLock, Retention};
use crate::error::{Error, ErrorKind, Result};

pub struct S3Backend {
    client: Client,
    /// The URL with the endpoint that requests go to, for messages.
    url: S3Url,
    part_size: usize,
    connections: usize,
    /// Whether the store honours `If-None-Match: *` on PUT; cleared when
    /// it answers that it does not implement it.
    conditional_writes: AtomicBool,
    /// The bucket answered a listing: a 404 is a missing object.
    bucket_exists: AtomicBool,
    /// The repository's object lock, once it is opened (see
    /// `Backend::set_object_lock`).
    object_lock: OnceLock<ObjectLock>,
}

impl S3Backend {
    /// A backend for `url`, with credentials, region, endpoint and
    /// settings from `env`. Sends no request yet.
    pub fn open(url: &S3Url, env: &Environment, settings: &Settings) -> Result<S3Backend> {
        let credentials = env.credentials()?;
        let region = env.region()?;
        let endpoint = match &url.endpoint {
            Some(endpoint) => Some(endpoint.clone()),
            None => env
                .var("AWS_ENDPOINT_URL_S3")
                .or_else(|| env.var("AWS_ENDPOINT_URL"))
                .map(|e| Endpoint::parse(&e))
                .transpose()?,
        };
        // A custom endpoint gets path-style requests: self-hosted stores
        // rarely have a DNS name per bucket. AWS gets virtual-host style,
        // except for bucket names with dots, which its certificate does
        // not cover.
        let path_style = settings
            .path_style
            .unwrap_or(endpoint.is_some() || url.bucket.contains('.'));
        let shown = S3Url {
            endpoint: endpoint.clone(),
            ..url.clone()
        };
        let endpoint = endpoint.unwrap_or_else(|| Endpoint {
            scheme: Scheme::Https,
            host: format!("s3.{region}.amazonaws.com"),
            port: None,
        });
        let client = Client::new(
            endpoint,
            path_style,
            url.bucket.clone(),
            region,
            credentials,
            settings,
        )?;
        Ok(S3Backend {
            client,
            url: shown,
            part_size: settings.part_size,
            connections: settings.connections,
            conditional_writes: AtomicBool::new(true),
            bucket_exists: AtomicBool::new(false),
            object_lock: OnceLock::new(),
        })
    }

    /// The object key of a file. Names come from the repository, or from
    /// a listing of the store: a name that could leave its directory is
    /// refused, so nothing is ever touched outside the prefix.
    fn key(&self, kind: FileType, name: &str) -> Result<String> {
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(Error::corrupt(format!(
                "{:?} is not a valid name for a file in {}",
                name, self.url
            )));
        }
        Ok(self.under_prefix(&kind.path(name)))
    }

    fn under_prefix(&self, path: &str) -> String {
        if self.url.prefix.is_empty() {
            path.to_string()
        } else {
            format!("{}/{path}", self.url.prefix)
        }
    }

    fn expect_success(&self, operation: &str, response: Response) -> Result<Response> {
        if response.is_success() {
            Ok(response)
        } else {
            Err(self.failure(operation, &response))
        }
    }

    /// The error a failed answer means. A 404 that names no bucket may
    /// still come from a missing one (HEAD answers have no body, and some
    /// stores say NoSuchKey for any key of a missing bucket): one listing,
    /// the first time, tells them apart, so that a mistyped bucket is not
    /// reported as a missing repository.
    fn failure(&self, operation: &str, response: &Response) -> Error {
        let error = self.client.failure(operation, response);
        if error.kind() != ErrorKind::NotFound || self.bucket_exists.load(Ordering::Relaxed) {
            return error;
        }
        let probe = Request::new(Method::GET, "")
            .query("list-type", "2")
            .query("max-keys", "1")
            .query("prefix", self.under_prefix(""));
        match self.client.send(operation, probe) {
            Ok(answer) if answer.is_success() => {
                self.bucket_exists.store(true, Ordering::Relaxed);
                error
            }
            Ok(answer) => match self.client.failure(operation, &answer) {
                missing_bucket if missing_bucket.kind() == ErrorKind::Usage => missing_bucket,
                _ => error,
            },
            Err(_) => error,
        }
    }

    /// Every object key under `prefix` (`direct_only`: only those without
    /// another `/` after the prefix), page after page.
    fn list_keys(&self, prefix: &str, direct_only: bool) -> Result<Vec<String>> {
        let operation = format!("cannot list {prefix}");
        let mut keys = Vec::new();
        let mut continuation: Option<String> = None;
        loop {
            let mut request = Request::new(Method::GET, "")
                .query("list-type", "2")
                .query("prefix", prefix);
            if direct_only {
                request = request.query("delimiter", "/");
            }
            if let Some(token) = &continuation {
                request = request.query("continuation-token", token.clone());
            }
            let response = self.client.send(&operation, request)?;
            let response = self.expect_success(&operation, response)?;
            let page = xml::parse_list_page(&String::from_utf8_lossy(&response.body))
                .map_err(|why| self.garbled(&operation, &why))?;
            keys.extend(page.objects.into_iter().map(|o| o.key));
            match page.continuation {
                Some(token) if Some(&token) != continuation.as_ref() => continuation = Some(token),
                Some(_) => return Err(self.garbled(&operation, "the listing does not advance")),
                None => return Ok(keys),
            }
        }
    }

    fn garbled(&self, operation: &str, why: &str) -> Error {
        Error::new(
            ErrorKind::Io,
            format!(
                "{operation} in bucket {} at {}: the answer makes no sense: {why}",
                self.client.target().bucket,
                self.client.target().endpoint
            ),
        )
        .transient()
    }

    /// Stores `data` at `key`, as `upload` says.
    fn put(&self, key: &str, data: &[u8], upload: &Upload) -> Result<Put> {
        if data.len() > self.part_size {
            return self.put_multipart(key, data, upload);
        }
        let operation = format!("cannot write {key}");
        let mut request = Request::new(Method::PUT, key).body(data);
        if upload.create_only {
            request = request.header("if-none-match", "*");
        }
        if let Some(retention) = &upload.retention {
            request = with_retention(request, retention).header("content-md5", content_md5(data));
        }
        let response = self.client.send(&operation, request)?;
        self.put_outcome(&operation, response, upload.create_only)
    }

    fn put_outcome(&self, operation: &str, response: Response, create_only: bool) -> Result<Put> {
        match response.status {
            412 if create_only => Ok(Put::Exists),
            501 if create_only => Ok(Put::ConditionUnsupported),
            _ => self
                .expect_success(operation, response)
                .map(|_| Put::Stored),
        }
    }

    /// Uploads `data` in parts of `part_size`, one after the other; a
    /// failed upload is aborted so that its parts do not linger.
    fn put_multipart(&self, key: &str, data: &[u8], upload: &Upload) -> Result<Put> {
        let operation = format!("cannot write {key} (multipart upload)");
        let mut start = Request::new(Method::POST, key).query("uploads", "");
        if let Some(retention) = &upload.retention {
            start = with_retention(start, retention);
        }
        let response = self.client.send(&operation, start)?;
        let response = self.expect_success(&operation, response)?;
        let upload_id = xml::parse_upload_id(&String::from_utf8_lossy(&response.body))
            .ok_or_else(|| self.garbled(&operation, "no UploadId"))?;
        let result = self.upload_parts(&operation, key, &upload_id, data, upload);
        if !matches!(result, Ok(Put::Stored)) {
            let abort = Request::new(Method::DELETE, key).query("uploadId", upload_id.clone());
            if let Err(e) = self.client.send(&operation, abort) {
                crate::log::warn(&format!(
                    "cannot abort the multipart upload {upload_id} of {key}: {e}; \
                     its parts stay until the bucket's lifecycle rules remove them"
                ));
            }
        }
        // Some stores (moto) drop the retention headers of a multipart
        // upload: the retention is set again on the finished object.
        if let (Ok(Put::Stored), Some(retention)) = (&result, &upload.retention) {
            self.put_retention(key, retention)?;
        }
        result
    }

    fn upload_parts(
        &self,
        operation: &str,
        key: &str,
        upload_id: &str,
        data: &[u8],
        upload: &Upload,
    ) -> Result<Put> {
        let create_only = upload.create_only;
        let mut etags = Vec::new();
        for (index, part) in data.chunks(self.part_size).enumerate() {
            let mut request = Request::new(Method::PUT, key)
                .query("partNumber", (index + 1).to_string())
                .query("uploadId", upload_id)
                .body(part);
            if upload.retention.is_some() {
                request = request.header("content-md5", content_md5(part));
            }
            let response = self.client.send(operation, request)?;
            let response = self.expect_success(operation, response)?;
            let etag = response
                .header("etag")
                .ok_or_else(|| self.garbled(operation, "a part has no ETag"))?;
            etags.push(etag.to_string());
        }
        let body = xml::complete_multipart_body(&etags);
        let mut request = Request::new(Method::POST, key)
            .query("uploadId", upload_id)
            .body(body.as_bytes());
        if create_only {
            request = request.header("if-none-match", "*");
        }
        let response = self.client.send(operation, request)?;
        // S3 may report a failed completion in the body of a 200 answer.
        if response.is_success()
            && xml::parse_error(&String::from_utf8_lossy(&response.body)).is_some()
        {
            let mut failed = self.failure(operation, &response);
            if failed.kind() == ErrorKind::Io {
                failed = failed.transient();
            }
            return Err(failed);
        }
        self.put_outcome(operation, response, create_only)
    }

    /// Writes a file whose name is its content's hash: a conditional
    /// create, so that an object already there is never overwritten.
    /// Finding one (a retry of a write whose answer was lost, or a file
    /// put back from parity) is fine when it holds these bytes; when it
    /// holds others it is damaged, and `data` (what the caller verified)
    /// replaces it.
    fn write_once(&self, key: &str, data: &[u8], retention: Option<Retention>) -> Result<()> {
        if self.conditional_writes.load(Ordering::Relaxed) {
            let upload = Upload {
                create_only: true,
                retention,
            };
            match self.put(key, data, &upload)? {
                Put::Stored => return Ok(()),
                Put::Exists => {
                    if self.read_key(key)? == data {
                        return Ok(());
                    }
                    crate::log::warn(&format!(
                        "{key} in {} differs from what its name says; replacing it",
                        self.url
                    ));
                }
                Put::ConditionUnsupported => {
                    self.conditional_writes.store(false, Ordering::Relaxed);
                    crate::log::info(&format!(
                        "the S3 store of {} does not support conditional writes \
                         (If-None-Match); writing without them",
                        self.url
                    ));
                }
            }
        }
        self.replace(key, data, retention)
    }

    /// Stores `data` at `key`, replacing what is there (with object lock,
    /// the replaced version stays until its retention ends).
    fn replace(&self, key: &str, data: &[u8], retention: Option<Retention>) -> Result<()> {
        let upload = Upload {
            create_only: false,
            retention,
        };
        self.put(key, data, &upload).map(drop)
    }

    /// The retention a file written now gets: none without object lock,
    /// and none for the files that must stay removable.
    fn retention_for(&self, kind: FileType, name: &str) -> Option<Retention> {
        let lock = self.object_lock.get()?;
        is_retained(kind, name).then(|| lock.retention_from(chrono::Utc::now()))
    }

    /// DELETE without a version: removes an object from an unversioned
    /// bucket, and hides it behind a delete marker in a versioned one.
    fn delete_key(&self, key: &str) -> Result<()> {
        let operation = format!("cannot remove {key}");
        let response = self
            .client
            .send(&operation, Request::new(Method::DELETE, key))?;
        if response.is_success() {
            return Ok(());
        }
        match self.failure(&operation, &response) {
            missing if missing.kind() == ErrorKind::NotFound => Ok(()),
            other => Err(other),
        }
    }

    fn read_key(&self, key: &str) -> Result<Vec<u8>> {
        let operation = format!("cannot read {key}");
        let response = self
            .client
            .send(&operation, Request::new(Method::GET, key))?;
        Ok(self.expect_success(&operation, response)?.body)
    }

    fn shorter_than_asked(&self, key: &str, offset: u64, length: u32) -> Error {
        Error::corrupt(format!(
            "{key} in {} is shorter than the index says ({length} bytes at offset {offset})",
            self.url
        ))
        .with_hint("the object was truncated; run `rewind check --read-data`")
    }
}

/// How to store an object.
struct Upload {
    /// Refuse to replace an object that is there.
    create_only: bool,
    retention: Option<Retention>,
}

/// What a PUT did.
#[derive(Debug, PartialEq, Eq)]
enum Put {
    Stored,
    /// A create-only PUT found an object there (HTTP 412).
    Exists,
    /// The store does not implement create-only PUTs (HTTP 501).
    ConditionUnsupported,
}

impl Backend for S3Backend {
    fn location(&self) -> String {
        self.url.to_string()
    }

    fn requests_in_flight(&self) -> Option<usize> {
        Some(self.connections)
    }

    fn create(&self) -> Result<()> {
        // A listing, not a HEAD: its answer tells a missing bucket and
        // refused credentials apart from a missing object.
        let config = self.key(FileType::Config, "config")?;
        if self.list_keys(&config, true)?.contains(&config) {
            return Err(Error::usage(format!(
                "a repository already exists at {}",
                self.url
            )));
        }
        Ok(())
    }

    fn list(&self, kind: FileType) -> Result<Vec<String>> {
        let dir = self.under_prefix(kind.dir());
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{}/", dir.trim_end_matches('/'))
        };
        // Packs sit one level deeper (data/xx/name): one listing of data/
        // finds them all, instead of 256 listings.
        let fanned_out = kind == FileType::Pack;
        let names = self
            .list_keys(&prefix, !fanned_out)?
            .into_iter()
            .filter_map(|key| {
                let rest = key.strip_prefix(&prefix)?;
                let name = match rest.split_once('/') {
                    Some((fan, name)) if fanned_out && !fan.is_empty() => name,
                    Some(_) => return None,
                    None if fanned_out => return None,
                    None => rest,
                };
                (!name.is_empty() && !name.contains('/')).then(|| name.to_string())
            })
            .collect();
        Ok(names)
    }

    fn read(&self, kind: FileType, name: &str) -> Result<Vec<u8>> {
        self.read_key(&self.key(kind, name)?)
    }

    fn read_range(&self, kind: FileType, name: &str, offset: u64, length: u32) -> Result<Vec<u8>> {
        let key = self.key(kind, name)?;
        if length == 0 {
            return match self.size(kind, name)? {
                size if size >= offset => Ok(Vec::new()),
                _ => Err(self.shorter_than_asked(&key, offset, length)),
            };
        }
        let operation = format!("cannot read {length} bytes at offset {offset} of {key}");
        // An offset from a damaged index may be anywhere.
        let last = offset
            .checked_add(u64::from(length) - 1)
            .ok_or_else(|| self.shorter_than_asked(&key, offset, length))?;
        let request =
            Request::new(Method::GET, &key).header("range", format!("bytes={offset}-{last}"));
        let response = self.client.send(&operation, request)?;
        let wanted = length as usize;
        match response.status {
            206 if response.body.len() == wanted => Ok(response.body),
            206 => Err(self.shorter_than_asked(&key, offset, length)),
            // A store that ignores ranges sends the whole object.
            200 => {
                let start = offset as usize;
                response
                    .body
                    .get(start..start.saturating_add(wanted))
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| self.shorter_than_asked(&key, offset, length))
            }
            416 => Err(self.shorter_than_asked(&key, offset, length)),
            _ => Err(self.failure(&operation, &response)),
        }
    }

    fn write(&self, kind: FileType, name: &str, data: &[u8]) -> Result<()> {
        let key = self.key(kind, name)?;
        let retention = self.retention_for(kind, name);
        match kind {
            // Rewritten on purpose: a lock is refreshed, the config and
            // parity are put back by repairs.
            FileType::Config | FileType::Parity | FileType::Lock => {
                self.replace(&key, data, retention)
            }
            _ => self.write_once(&key, data, retention),
        }
    }

    fn remove(&self, kind: FileType, name: &str) -> Result<()> {
        let key = self.key(kind, name)?;
        if self.object_lock.get().is_some() {
            self.remove_versions(&key)
        } else {
            self.delete_key(&key)
        }
    }

    fn hide(&self, kind: FileType, name: &str) -> Result<()> {
        self.delete_key(&self.key(kind, name)?)
    }

    fn check_object_lock(&self) -> Result<()> {
        self.check_bucket_lock()
    }

    fn set_object_lock(&self, lock: ObjectLock) -> Result<()> {
        // A repository has one lock; a second call can only repeat it.
        let _ = self.object_lock.set(lock);
        Ok(())
    }

    fn retention(&self, kind: FileType, name: &str) -> Result<Option<Retention>> {
        self.head_retention(&self.key(kind, name)?, None)
    }

    fn extend_retention(&self, kind: FileType, name: &str, to: Retention) -> Result<()> {
        self.put_retention(&self.key(kind, name)?, &to)
    }

    fn size(&self, kind: FileType, name: &str) -> Result<u64> {
        let key = self.key(kind, name)?;
        let operation = format!("cannot stat {key}");
        let response = self
            .client
            .send(&operation, Request::new(Method::HEAD, &key))?;
        let response = self.expect_success(&operation, response)?;
        response
            .header("content-length")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| self.garbled(&operation, "no Content-Length"))
    }
}
