//! S3 failures as rewind errors: one line that names the operation, the
//! endpoint, the bucket and the HTTP status, a hint that says what to do,
//! the kind the repository matches on (a missing object is `NotFound`), and
//! whether trying again may help (see `src/backend/retry.rs`).

use super::xml::{self, S3Error};
use crate::error::{Error, ErrorKind};

/// Who was asked, for the messages.
pub struct Target<'a> {
    pub endpoint: &'a str,
    pub bucket: &'a str,
    pub access_key: &'a str,
    pub region: &'a str,
}

/// What a failed answer turns into.
pub fn status_error(
    target: &Target,
    operation: &str,
    status: u16,
    bucket_region: Option<&str>,
    body: &[u8],
) -> Error {
    let s3 = xml::parse_error(&String::from_utf8_lossy(body)).unwrap_or_default();
    let code = s3.code.as_str();
    let http = if code.is_empty() {
        format!("HTTP {status}")
    } else if s3.message.is_empty() {
        format!("HTTP {status} {code}")
    } else {
        format!("HTTP {status} {code}: {}", s3.message.trim_end_matches('.'))
    };
    let line = |reason: &str| {
        format!(
            "{operation} in bucket {} at {}: {reason} ({http})",
            target.bucket, target.endpoint
        )
    };
    let key = target.access_key;
    let credentials_hint = "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the profile \
                            AWS_PROFILE names), and that this key may read and write the bucket";

    if let Some(region) = wrong_region(target, status, code, &s3, bucket_region) {
        return Error::usage(line(&format!(
            "the bucket is in region {region}, not {}",
            target.region
        )))
        .with_hint(format!("set AWS_REGION={region}"));
    }
    match (status, code) {
        (404, "NoSuchBucket") => Error::usage(line("the bucket does not exist")).with_hint(
            "create the bucket first (rewind never creates buckets), or correct its name in --repo",
        ),
        (404, _) => Error::new(ErrorKind::NotFound, line("no such object")).with_hint(
            "the repository is missing a file; run `rewind check` to see what is affected",
        ),
        (403, "SignatureDoesNotMatch") => Error::usage(line(&format!(
            "the secret key does not match access key {key}"
        )))
        .with_hint(credentials_hint),
        (403, "InvalidAccessKeyId") => Error::usage(line(&format!(
            "the store does not know access key {key}"
        )))
        .with_hint(credentials_hint),
        (403, "RequestTimeTooSkewed") => Error::usage(line("this machine's clock is wrong"))
            .with_hint("set the system clock (e.g. enable NTP); S3 refuses requests off by more than 15 minutes"),
        (400 | 403, "ExpiredToken" | "TokenRefreshRequired") => Error::usage(line(
            "the session token (AWS_SESSION_TOKEN) has expired",
        ))
        .with_hint("get new temporary credentials"),
        (401 | 403, _) => Error::usage(line(&format!("access key {key} was refused")))
            .with_hint(credentials_hint),
        (501, _) => Error::new(ErrorKind::Io, line("the store does not support this request")),
        (500..=599 | 429 | 408, _) | (400, "RequestTimeout") => Error::new(
            ErrorKind::Io,
            line("the store failed or is overloaded"),
        )
        .transient(),
        (412, _) => Error::new(ErrorKind::Io, line("the object exists already")),
        _ => Error::new(ErrorKind::Io, line("the store refused the request")),
    }
}

/// The bucket's real region, when the request went to another one: S3
/// says so with a redirect or a malformed-authorization error, and names
/// the region in a header or the body.
fn wrong_region(
    target: &Target,
    status: u16,
    code: &str,
    s3: &S3Error,
    bucket_region: Option<&str>,
) -> Option<String> {
    let redirected = matches!(status, 301 | 307)
        || code == "AuthorizationHeaderMalformed"
        || code == "PermanentRedirect";
    let region = bucket_region.map(str::to_string).or(s3.region.clone())?;
    (redirected && region != target.region).then_some(region)
}

/// What a failed exchange (no answer, or a broken one) turns into.
pub fn transport_error(target: &Target, operation: &str, error: ureq::Error) -> Error {
    let line = |reason: String| {
        format!(
            "{operation} in bucket {} at {}: {reason}",
            target.bucket, target.endpoint
        )
    };
    match error {
        ureq::Error::Io(e) => io_error(target, operation, e),
        ureq::Error::HostNotFound => Error::new(
            ErrorKind::Io,
            line("cannot connect: the host name does not resolve".into()),
        )
        .with_hint(REACHABLE_HINT)
        .transient(),
        ureq::Error::ConnectionFailed => Error::new(ErrorKind::Io, line("cannot connect".into()))
            .with_hint(REACHABLE_HINT)
            .transient(),
        ureq::Error::Timeout(which) => Error::new(
            ErrorKind::Io,
            line(format!("no answer in time (timeout: {which})")),
        )
        .with_hint("the store or the network is slow or down; REWIND_S3_TIMEOUT sets the wait")
        .transient(),
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_) => {
            tls_error(target, operation, &error)
        }
        ureq::Error::Protocol(_) => Error::new(
            ErrorKind::Io,
            line(format!("the answer broke the HTTP protocol: {error}")),
        )
        .transient(),
        other => Error::new(ErrorKind::Io, line(format!("the request failed: {other}"))),
    }
}

const REACHABLE_HINT: &str = "is the S3 server running, and are the endpoint and port right \
                              (AWS_ENDPOINT_URL, or the host in --repo)?";

fn tls_error(target: &Target, operation: &str, error: &dyn std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Io,
        format!(
            "{operation} in bucket {} at {}: TLS failed: {error}",
            target.bucket, target.endpoint
        ),
    )
    .with_hint(
        "check that the endpoint speaks HTTPS (else write http://) with a certificate valid \
         for its host name; for a private certificate authority set AWS_CA_BUNDLE to its PEM file",
    )
}

/// An I/O failure of the connection: refused, reset or cut off while a
/// request or its answer was under way (the store may be restarting, so
/// it is worth another try), or a TLS failure in disguise (it is not).
pub fn io_error(target: &Target, operation: &str, error: std::io::Error) -> Error {
    // The body reader wraps ureq's own errors (timeouts) in io errors, and
    // the TLS layer its own.
    let error = match error.get_ref() {
        Some(inner) if inner.is::<ureq::Error>() => {
            let inner = error.into_inner().expect("checked to have an inner error");
            let inner = inner
                .downcast::<ureq::Error>()
                .expect("checked to be a ureq::Error");
            return transport_error(target, operation, *inner);
        }
        Some(inner) if inner.is::<rustls::Error>() => return tls_error(target, operation, inner),
        _ => error,
    };
    let line = |reason: String| {
        format!(
            "{operation} in bucket {} at {}: {reason}",
            target.bucket, target.endpoint
        )
    };
    let error = if error.kind() == std::io::ErrorKind::ConnectionRefused {
        Error::new(
            ErrorKind::Io,
            line("cannot connect: connection refused".into()),
        )
        .with_hint(REACHABLE_HINT)
    } else {
        Error::new(
            ErrorKind::Io,
            line(format!("the connection failed: {error}")),
        )
    };
    error.transient()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: Target = Target {
        endpoint: "http://127.0.0.1:9000",
        bucket: "backups",
        access_key: "AKID",
        region: "us-east-1",
    };

    fn body(code: &str) -> Vec<u8> {
        format!("<Error><Code>{code}</Code><Message>Nope.</Message></Error>").into_bytes()
    }

    #[test]
    fn wrong_credentials_name_the_key_endpoint_and_status() {
        let e = status_error(
            &TARGET,
            "cannot read r/config",
            403,
            None,
            &body("SignatureDoesNotMatch"),
        );
        assert_eq!(
            e.to_string(),
            "cannot read r/config in bucket backups at http://127.0.0.1:9000: the secret key \
             does not match access key AKID (HTTP 403 SignatureDoesNotMatch: Nope)"
        );
        assert!(e.hint().unwrap().contains("AWS_SECRET_ACCESS_KEY"));
        assert!(!e.is_transient());
        // HEAD answers have no body: the status alone still says enough.
        let e = status_error(&TARGET, "cannot stat r/config", 403, None, b"");
        assert!(
            e.to_string()
                .contains("access key AKID was refused (HTTP 403)"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_object_is_not_found_and_a_missing_bucket_is_not() {
        let e = status_error(&TARGET, "op", 404, None, &body("NoSuchKey"));
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let e = status_error(&TARGET, "op", 404, None, b"");
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let e = status_error(&TARGET, "op", 404, None, &body("NoSuchBucket"));
        assert_eq!(e.kind(), ErrorKind::Usage);
        assert!(e
            .to_string()
            .contains("the bucket does not exist (HTTP 404 NoSuchBucket"));
    }

    #[test]
    fn only_server_trouble_and_throttling_are_transient() {
        for (status, code) in [
            (500, "InternalError"),
            (503, "SlowDown"),
            (429, ""),
            (408, ""),
            (400, "RequestTimeout"),
        ] {
            assert!(
                status_error(&TARGET, "op", status, None, &body(code)).is_transient(),
                "{status}"
            );
        }
        for (status, code) in [
            (400, "InvalidArgument"),
            (403, "AccessDenied"),
            (404, "NoSuchKey"),
            (412, "PreconditionFailed"),
            (501, "NotImplemented"),
        ] {
            assert!(
                !status_error(&TARGET, "op", status, None, &body(code)).is_transient(),
                "{status}"
            );
        }
    }

    #[test]
    fn a_wrong_region_says_which_is_right() {
        let e = status_error(&TARGET, "op", 301, Some("eu-west-1"), b"");
        assert_eq!(e.hint(), Some("set AWS_REGION=eu-west-1"));
        let xml =
            b"<Error><Code>AuthorizationHeaderMalformed</Code><Region>ap-south-1</Region></Error>";
        let e = status_error(&TARGET, "op", 400, None, xml);
        assert_eq!(e.hint(), Some("set AWS_REGION=ap-south-1"));
    }

    #[test]
    fn connection_failures_are_transient_and_tls_failures_are_not() {
        let refused = ureq::Error::Io(std::io::ErrorKind::ConnectionRefused.into());
        let e = transport_error(&TARGET, "cannot list r/", refused);
        assert!(e.is_transient());
        assert!(e
            .to_string()
            .contains("at http://127.0.0.1:9000: cannot connect: connection refused"));
        let e = transport_error(&TARGET, "op", ureq::Error::Tls("bad certificate"));
        assert!(!e.is_transient());
        assert!(e.hint().unwrap().contains("AWS_CA_BUNDLE"));
        let wrapped = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::General("corrupt message".into()),
        );
        let e = transport_error(&TARGET, "op", ureq::Error::Io(wrapped));
        assert!(!e.is_transient());
        assert!(e.to_string().contains("TLS failed: "), "{e}");
    }
}
