//! AWS Signature Version 4 for S3 requests, signed in the `Authorization`
//! header. Written over `ring` (already rewind's crypto) rather than taken
//! from an S3 crate: the algorithm is a page long, and the crates that
//! offer it bring a second HMAC and SHA-256, a URL parser and a date
//! library into the build.

use chrono::{DateTime, Utc};
use ring::{digest, hmac};

use super::credentials::Credentials;

/// SHA-256 of the empty string: the payload hash of a request without a body.
pub const EMPTY_PAYLOAD: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The hex SHA-256 of a request body, which the signature covers, so that
/// the store refuses a body damaged on the way.
pub fn payload_hash(body: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, body))
}

/// A request as it is signed: the path already encoded as sent, the query
/// and header values raw.
pub struct Unsigned<'a> {
    pub method: &'a str,
    /// `Host` header value: `host[:port]`.
    pub host: &'a str,
    /// Encoded with [`encode_path`].
    pub path: &'a str,
    pub query: &'a [(String, String)],
    /// Further headers to sign (lowercase names), besides host, date,
    /// payload hash and session token.
    pub headers: &'a [(String, String)],
    pub payload_hash: &'a str,
}

/// Signs `request` and gives the headers to send with it: `x-amz-date`,
/// `x-amz-content-sha256`, `x-amz-security-token` for temporary
/// credentials, and `authorization`.
pub fn sign(
    request: &Unsigned,
    credentials: &Credentials,
    region: &str,
    now: DateTime<Utc>,
) -> Vec<(String, String)> {
    let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
    let date = &amz_date[..8];
    let mut added = vec![
        ("x-amz-date".to_string(), amz_date.clone()),
        (
            "x-amz-content-sha256".to_string(),
            request.payload_hash.to_string(),
        ),
    ];
    if let Some(token) = &credentials.session_token {
        added.push(("x-amz-security-token".to_string(), token.clone()));
    }

    let mut signed: Vec<(String, String)> = request
        .headers
        .iter()
        .chain(&added)
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_string()))
        .chain([("host".to_string(), request.host.to_string())])
        .collect();
    signed.sort();
    let signed_names = signed
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_headers: String = signed
        .iter()
        .map(|(name, value)| format!("{name}:{value}\n"))
        .collect();
    let canonical_request = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed_names}\n{}",
        request.method,
        request.path,
        canonical_query(request.query),
        request.payload_hash
    );

    let scope = format!("{date}/{region}/s3/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(digest::digest(
            &digest::SHA256,
            canonical_request.as_bytes()
        ))
    );
    let key = [date, region, "s3", "aws4_request"].iter().fold(
        hmac::Key::new(
            hmac::HMAC_SHA256,
            format!("AWS4{}", credentials.secret_key).as_bytes(),
        ),
        |key, part| {
            hmac::Key::new(
                hmac::HMAC_SHA256,
                hmac::sign(&key, part.as_bytes()).as_ref(),
            )
        },
    );
    let signature = hex::encode(hmac::sign(&key, string_to_sign.as_bytes()));
    added.push((
        "authorization".to_string(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_names}, Signature={signature}",
            credentials.access_key
        ),
    ));
    added
}

/// The query string as sent and as signed: pairs encoded and sorted.
pub fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (encode(k, true), encode(v, true)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// An object key or bucket path encoded for the request line: every byte
/// but the unreserved ones and `/` is percent-encoded, once.
pub fn encode_path(path: &str) -> String {
    encode(path, false)
}

fn encode(text: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b'/' if !encode_slash => out.push('/'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example credentials and time of the AWS Signature Version 4
    /// documentation for S3 ("Examples: signature calculations").
    fn example() -> (Credentials, DateTime<Utc>) {
        (
            Credentials {
                access_key: "AKIAIOSFODNN7EXAMPLE".into(),
                secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
                session_token: None,
            },
            "2013-05-24T00:00:00Z".parse().unwrap(),
        )
    }

    fn authorization(headers: &[(String, String)]) -> &str {
        &headers
            .iter()
            .find(|(n, _)| n == "authorization")
            .unwrap()
            .1
    }

    #[test]
    fn the_documented_get_object_example() {
        let (credentials, now) = example();
        let headers = sign(
            &Unsigned {
                method: "GET",
                host: "examplebucket.s3.amazonaws.com",
                path: "/test.txt",
                query: &[],
                headers: &[("range".into(), "bytes=0-9".into())],
                payload_hash: EMPTY_PAYLOAD,
            },
            &credentials,
            "us-east-1",
            now,
        );
        assert_eq!(
            authorization(&headers),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn the_documented_list_objects_example() {
        let (credentials, now) = example();
        let headers = sign(
            &Unsigned {
                method: "GET",
                host: "examplebucket.s3.amazonaws.com",
                path: "/",
                query: &[
                    ("prefix".into(), "J".into()),
                    ("max-keys".into(), "2".into()),
                ],
                headers: &[],
                payload_hash: EMPTY_PAYLOAD,
            },
            &credentials,
            "us-east-1",
            now,
        );
        assert!(authorization(&headers).ends_with(
            "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        ));
    }

    #[test]
    fn paths_and_queries_are_encoded_once() {
        assert_eq!(encode_path("/b/a b/ü+x~"), "/b/a%20b/%C3%BC%2Bx~");
        assert_eq!(
            canonical_query(&[
                ("prefix".into(), "p/data/".into()),
                ("list-type".into(), "2".into()),
                ("uploads".into(), String::new()),
            ]),
            "list-type=2&prefix=p%2Fdata%2F&uploads="
        );
        assert_eq!(payload_hash(b""), EMPTY_PAYLOAD);
    }
}
