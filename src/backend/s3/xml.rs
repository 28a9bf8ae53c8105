//! The few XML documents S3 exchanges with rewind: listing pages, error
//! bodies, multipart uploads. Each is a flat record of known elements, so
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
        // `<Name>` or `<Name attr="...">`, not `<NameLonger>`.
        if !(attributes.is_empty() || attributes.starts_with(char::is_whitespace)) {
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
    fn entities_decode_and_unknown_ones_stay() {
        assert_eq!(unescape("a&#x41;&#66;&bogus;&"), "aAB&bogus;&");
    }
}
