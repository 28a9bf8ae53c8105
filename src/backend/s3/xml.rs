//! The few XML documents S3 exchanges with rewind: listing pages, error
//! bodies, multipart uploads, and those of Object Lock (a bucket's lock
//! configuration, version listings, an object's retention). Each is a flat record of known elements, so
//! a small reader of `<Name>text</Name>` pairs does the job of an XML
//! library; anything it does not find reads as missing, never as a guess.

/// One object of a listing.
#[derive(Debug, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    pub size: u64,
}

/// One page of a ListObjectsV2 answer.
#[derive(Debug, PartialEq, Eq)]
pub struct ListPage {
    pub objects: Vec<ListedObject>,
    /// Where the next page starts; `None` on the last page.
    pub continuation: Option<String>,
}

/// What an S3 error body says.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct S3Error {
    pub code: String,
    pub message: String,
    /// The bucket's region, when the request named the wrong one.
    pub region: Option<String>,
}

pub fn parse_list_page(xml: &str) -> Result<ListPage, String> {
    if !xml.contains("<ListBucketResult") {
        return Err("the answer is not a ListBucketResult".into());
    }
    let mut objects = Vec::new();
    for contents in elements(xml, "Contents") {
        let key = first(contents, "Key").ok_or("a listed object has no Key")?;
        let size = first(contents, "Size")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("the listed object {key} has no valid Size"))?;
        objects.push(ListedObject { key, size });
    }
    let truncated = first(xml, "IsTruncated").is_some_and(|t| t == "true");
    let continuation = if truncated {
        Some(
            first(xml, "NextContinuationToken")
                .ok_or("a truncated listing has no NextContinuationToken")?,
        )
    } else {
        None
    };
    Ok(ListPage {
        objects,
        continuation,
    })
}

/// The error a body holds, if it is an `<Error>` document (S3 sends some
/// with status 200, after a long CompleteMultipartUpload).
pub fn parse_error(xml: &str) -> Option<S3Error> {
    let error = elements(xml, "Error").next()?;
    Some(S3Error {
        code: first(error, "Code").unwrap_or_default(),
        message: first(error, "Message").unwrap_or_default(),
        region: first(error, "Region"),
    })
}

pub fn parse_upload_id(xml: &str) -> Option<String> {
    first(xml, "UploadId").filter(|id| !id.is_empty())
}

/// The body of CompleteMultipartUpload: each part's number and ETag.
pub fn complete_multipart_body(etags: &[String]) -> String {
    let mut body = String::from("<CompleteMultipartUpload>");
    for (index, etag) in etags.iter().enumerate() {
        body.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
            index + 1,
            escape(etag)
        ));
    }
    body.push_str("</CompleteMultipartUpload>");
    body
}

/// What GetObjectLockConfiguration says of a bucket.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LockConfiguration {
    pub enabled: bool,
    /// The bucket's default retention rule, described ("GOVERNANCE for 1
    /// Days"), which every object written without a retention of its own gets.
    pub default_retention: Option<String>,
}

pub fn parse_lock_configuration(xml: &str) -> Result<LockConfiguration, String> {
    let configuration = elements(xml, "ObjectLockConfiguration")
        .next()
        .ok_or("the answer is not an ObjectLockConfiguration")?;
    let default_retention = elements(configuration, "DefaultRetention")
        .next()
        .map(|rule| {
            let mode = first(rule, "Mode").unwrap_or_default();
            let period = ["Days", "Years"]
                .iter()
                .find_map(|unit| first(rule, unit).map(|n| format!("{n} {unit}")))
                .unwrap_or_default();
            format!("{mode} for {period}")
        });
    Ok(LockConfiguration {
        enabled: first(configuration, "ObjectLockEnabled").is_some_and(|e| e == "Enabled"),
        default_retention,
    })
}

/// One stored version of an object, or a delete marker, in a listing.
#[derive(Debug, PartialEq, Eq)]
pub struct ListedVersion {
    pub key: String,
    pub version_id: String,
}

/// One page of a ListObjectVersions answer.
#[derive(Debug, PartialEq, Eq)]
pub struct VersionsPage {
    pub versions: Vec<ListedVersion>,
    /// The key and version markers the next page starts after; `None` on
    /// the last page.
    pub next: Option<(String, String)>,
}

pub fn parse_versions_page(xml: &str) -> Result<VersionsPage, String> {
    if !xml.contains("<ListVersionsResult") {
        return Err("the answer is not a ListVersionsResult".into());
    }
    let mut versions = Vec::new();
    for kind in ["Version", "DeleteMarker"] {
        for version in elements(xml, kind) {
            versions.push(ListedVersion {
                key: first(version, "Key").ok_or("a listed version has no Key")?,
                version_id: first(version, "VersionId")
                    .ok_or("a listed version has no VersionId")?,
            });
        }
    }
    let truncated = first(xml, "IsTruncated").is_some_and(|t| t == "true");
    let next = if truncated {
        Some((
            first(xml, "NextKeyMarker").ok_or("a truncated listing has no NextKeyMarker")?,
            first(xml, "NextVersionIdMarker").unwrap_or_default(),
        ))
    } else {
        None
    };
    Ok(VersionsPage { versions, next })
}

/// The body of PutObjectRetention.
pub fn retention_body(mode: &str, until: &str) -> String {
    format!(
        "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
         <Mode>{}</Mode><RetainUntilDate>{}</RetainUntilDate></Retention>",
        escape(mode),
        escape(until)
    )
}

/// The decoded text of the first `<name>` element.
fn first(xml: &str, name: &str) -> Option<String> {
    elements(xml, name).next().map(unescape)
}

/// The raw contents of each `<name>...</name>` element, in order; elements
/// of that name are not nested in S3's documents.
fn elements<'a>(xml: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    let close = format!("</{name}>");
    let mut rest = xml;
    std::iter::from_fn(move || loop {
        let start = rest.find('<')?;
        rest = &rest[start + 1..];
        let Some(after_name) = rest.strip_prefix(name) else {
            continue;
        };
        let tag_end = after_name.find('>')?;
        let attributes = &after_name[..tag_end];
        // `<Name>`, `<Name/>` or `<Name attr="...">`, not `<NameLonger>`.
        if !(attributes.is_empty()
            || attributes == "/"
            || attributes.starts_with(char::is_whitespace))
        {
            continue;
        }
        if attributes.ends_with('/') {
            rest = &after_name[tag_end + 1..];
            return Some("");
        }
        let body = &after_name[tag_end + 1..];
        let end = body.find(&close)?;
        rest = &body[end + close.len()..];
        return Some(&body[..end]);
    })
}

fn unescape(text: &str) -> String {
    let text = text.trim_start_matches("<![CDATA[").trim_end_matches("]]>");
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';') else { break };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_page() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name>
<Prefix>repo/data/</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys>
<IsTruncated>true</IsTruncated>
<Contents><Key>repo/data/ab/ab01</Key><LastModified>2024-06-01T00:00:00.000Z</LastModified>
<ETag>&quot;x&quot;</ETag><Size>123</Size><StorageClass>STANDARD</StorageClass></Contents>
<Contents><Key>repo/a&amp;b</Key><Size>0</Size></Contents>
<NextContinuationToken>tok/en=</NextContinuationToken></ListBucketResult>"#;
        let page = parse_list_page(xml).unwrap();
        assert_eq!(
            page.objects,
            vec![
                ListedObject {
                    key: "repo/data/ab/ab01".into(),
                    size: 123
                },
                ListedObject {
                    key: "repo/a&b".into(),
                    size: 0
                }
            ]
        );
        assert_eq!(page.continuation.as_deref(), Some("tok/en="));
    }

    #[test]
    fn the_last_page_and_an_empty_one() {
        let xml = "<ListBucketResult><IsTruncated>false</IsTruncated>\
                   <NextContinuationToken/></ListBucketResult>";
        let page = parse_list_page(xml).unwrap();
        assert!(page.objects.is_empty());
        assert_eq!(page.continuation, None);
        assert!(parse_list_page("<Error><Code>x</Code></Error>").is_err());
        assert!(parse_list_page(
            "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>"
        )
        .is_err());
    }

    #[test]
    fn error_bodies() {
        let xml = "<?xml version=\"1.0\"?><Error><Code>AuthorizationHeaderMalformed</Code>\
                   <Message>the region &apos;us-east-1&apos; is wrong</Message>\
                   <Region>eu-west-1</Region><RequestId>1</RequestId></Error>";
        assert_eq!(
            parse_error(xml),
            Some(S3Error {
                code: "AuthorizationHeaderMalformed".into(),
                message: "the region 'us-east-1' is wrong".into(),
                region: Some("eu-west-1".into()),
            })
        );
        assert_eq!(parse_error("<ListBucketResult/>"), None);
        assert_eq!(parse_error(""), None);
    }

    #[test]
    fn multipart_documents() {
        let xml = "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>\
                   <UploadId>VXBsb2FkIElE</UploadId></InitiateMultipartUploadResult>";
        assert_eq!(parse_upload_id(xml).as_deref(), Some("VXBsb2FkIElE"));
        assert_eq!(
            complete_multipart_body(&["\"a1\"".into(), "\"b2\"".into()]),
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"a1\"</ETag></Part>\
             <Part><PartNumber>2</PartNumber><ETag>\"b2\"</ETag></Part></CompleteMultipartUpload>"
        );
    }

    #[test]
    fn lock_configurations() {
        let enabled = "<?xml version=\"1.0\"?><ObjectLockConfiguration xmlns=\"x\">\
                       <ObjectLockEnabled>Enabled</ObjectLockEnabled></ObjectLockConfiguration>";
        assert_eq!(
            parse_lock_configuration(enabled),
            Ok(LockConfiguration {
                enabled: true,
                default_retention: None
            })
        );
        let with_rule = "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled>\
                         <Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Days>30</Days>\
                         </DefaultRetention></Rule></ObjectLockConfiguration>";
        assert_eq!(
            parse_lock_configuration(with_rule)
                .unwrap()
                .default_retention
                .as_deref(),
            Some("COMPLIANCE for 30 Days")
        );
        assert!(
            !parse_lock_configuration("<ObjectLockConfiguration/>")
                .unwrap()
                .enabled
        );
        assert!(parse_lock_configuration("<Error/>").is_err());
    }

    #[test]
    fn version_listings() {
        let xml = "<ListVersionsResult><IsTruncated>true</IsTruncated><KeyMarker/>\
                   <VersionIdMarker/><NextKeyMarker>p/k</NextKeyMarker>\
                   <NextVersionIdMarker>v2</NextVersionIdMarker>\
                   <Version><Key>p/k</Key><VersionId>v1</VersionId><IsLatest>false</IsLatest></Version>\
                   <DeleteMarker><Key>p/k</Key><VersionId>v3</VersionId></DeleteMarker>\
                   </ListVersionsResult>";
        let page = parse_versions_page(xml).unwrap();
        assert_eq!(
            page.versions,
            vec![
                ListedVersion {
                    key: "p/k".into(),
                    version_id: "v1".into()
                },
                ListedVersion {
                    key: "p/k".into(),
                    version_id: "v3".into()
                }
            ]
        );
        assert_eq!(page.next, Some(("p/k".into(), "v2".into())));
        let last = parse_versions_page(
            "<ListVersionsResult><IsTruncated>false</IsTruncated></ListVersionsResult>",
        )
        .unwrap();
        assert_eq!(last.next, None);
        assert!(last.versions.is_empty());
        assert!(parse_versions_page("<ListBucketResult/>").is_err());
    }

    #[test]
    fn a_retention_body() {
        assert_eq!(
            retention_body("GOVERNANCE", "2026-12-01T10:00:00Z"),
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>GOVERNANCE</Mode>\
             <RetainUntilDate>2026-12-01T10:00:00Z</RetainUntilDate></Retention>"
        );
    }

    #[test]
    fn entities_decode_and_unknown_ones_stay() {
        assert_eq!(unescape("a&#x41;&#66;&bogus;&"), "aAB&bogus;&");
    }
}
