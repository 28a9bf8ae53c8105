//! What an S3 repository URL names: an optional endpoint, a bucket and a
//! key prefix. The accepted spellings are the contract of `docs/design.md`
//! section 4 ("Repository URLs"): `s3://BUCKET/PREFIX` (endpoint from the
//! environment) and restic's `s3:http(s)://HOST[:PORT]/BUCKET/PREFIX`,
//! plus restic's `s3:HOST/BUCKET/PREFIX` (HTTPS).

use std::fmt;

use crate::error::{Error, Result};

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// Where requests go: scheme, host and port, nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub scheme: Scheme,
    /// A name, an IPv4 address, or an IPv6 address in brackets.
    pub host: String,
    pub port: Option<u16>,
}

impl Endpoint {
    /// Parses `http(s)://HOST[:PORT][/]`, as `AWS_ENDPOINT_URL` holds it.
    pub fn parse(url: &str) -> Result<Endpoint> {
        let (endpoint, path) = split_url(url)?;
        if !path.trim_matches('/').is_empty() {
            return Err(Error::usage(format!(
                "the S3 endpoint {url} has a path; give only the scheme, host and port"
            )));
        }
        Ok(endpoint)
    }

    /// `host[:port]` as the `Host` header carries it (and signatures sign
    /// it): the port is left out when it is the scheme's default.
    pub fn authority(&self) -> String {
        match self.port {
            Some(port) if port != self.scheme.default_port() => format!("{}:{port}", self.host),
            _ => self.host.clone(),
        }
    }

    /// The same endpoint with `label.` before its host (virtual-host style).
    pub fn with_subdomain(&self, label: &str) -> Endpoint {
        Endpoint {
            host: format!("{label}.{}", self.host),
            ..self.clone()
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        write!(f, "{scheme}://{}", self.authority())
    }
}

/// A parsed S3 repository URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    /// Given in the URL; `None`: from the environment, else AWS.
    pub endpoint: Option<Endpoint>,
    pub bucket: String,
    /// Key prefix without leading or trailing `/`; empty: the bucket's root.
    pub prefix: String,
}

impl S3Url {
    /// Parses a `--repo` value that starts with `s3:`.
    pub fn parse(url: &str) -> Result<S3Url> {
        let rest = url.strip_prefix("s3:").ok_or_else(|| {
            Error::usage(format!("{url} is not an S3 URL (it must start with s3:)"))
        })?;
        // restic's `s3:host/bucket/prefix` is HTTPS to that host.
        let with_scheme;
        let (endpoint, path) = if let Some(path) = rest.strip_prefix("//") {
            (None, path)
        } else if rest.starts_with("http://") || rest.starts_with("https://") {
            let (endpoint, path) = split_url(rest)?;
            (Some(endpoint), path)
        } else {
            with_scheme = format!("https://{rest}");
            let (endpoint, path) = split_url(&with_scheme)?;
            (Some(endpoint), path)
        };
        let path = if endpoint.is_some() {
            path.strip_prefix('/').unwrap_or(path)
        } else {
            path
        };
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        let bucket = bucket.to_string();
        if bucket.is_empty() {
            return Err(Error::usage(format!("{url} names no bucket"))
                .with_hint("write s3://BUCKET/PREFIX or s3:https://HOST/BUCKET/PREFIX"));
        }
        if let Some(bad) = bucket
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
        {
            return Err(Error::usage(format!(
                "{url}: the bucket name {bucket:?} has the character {bad:?}; bucket names \
                 are letters, digits, dots, hyphens and underscores"
            )));
        }
        let segments: Vec<&str> = prefix.split('/').filter(|s| !s.is_empty()).collect();
        // Keys are literal in S3, but stores backed by a filesystem resolve
        // them as paths: `..` could reach outside the prefix.
        if segments.iter().any(|s| *s == "." || *s == "..") {
            return Err(Error::usage(format!(
                "{url}: the prefix may not have `.` or `..` components"
            )));
        }
        Ok(S3Url {
            endpoint,
            bucket,
            prefix: segments.join("/"),
        })
    }
}

impl fmt::Display for S3Url {
    /// The URL in the spelling that names the endpoint when there is one,
    /// so that a message shows where requests went.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.endpoint {
            Some(endpoint) => write!(f, "s3:{endpoint}/{}", self.bucket)?,
            None => write!(f, "s3://{}", self.bucket)?,
        }
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        Ok(())
    }
}

/// Splits `http(s)://authority/path` into its endpoint and path.
fn split_url(url: &str) -> Result<(Endpoint, &str)> {
    let bad = |why: &str| Error::usage(format!("{url} is not a valid S3 endpoint URL: {why}"));
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else {
        return Err(bad("it must start with http:// or https://"));
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.contains('@') {
        return Err(bad(
            "credentials do not go in the URL; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        ));
    }
    // An IPv6 address is bracketed: its colons are not the port's.
    let host_end = if authority.starts_with('[') {
        authority
            .find(']')
            .map(|i| i + 1)
            .ok_or_else(|| bad("unclosed ["))?
    } else {
        authority.find(':').unwrap_or(authority.len())
    };
    let (host, port) = authority.split_at(host_end);
    if host.is_empty() || host == "[]" {
        return Err(bad("no host"));
    }
    let port = match port {
        "" => None,
        port => Some(
            port.strip_prefix(':')
                .and_then(|p| p.parse::<u16>().ok())
                .ok_or_else(|| bad("the port is not a number"))?,
        ),
    };
    Ok((
        Endpoint {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        },
        path,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(scheme: Scheme, host: &str, port: Option<u16>) -> Option<Endpoint> {
        Some(Endpoint {
            scheme,
            host: host.into(),
            port,
        })
    }

    #[test]
    fn the_aws_form_takes_the_endpoint_from_elsewhere() {
        let url = S3Url::parse("s3://backups/host1/daily").unwrap();
        assert_eq!(
            url,
            S3Url {
                endpoint: None,
                bucket: "backups".into(),
                prefix: "host1/daily".into()
            }
        );
        assert_eq!(url.to_string(), "s3://backups/host1/daily");
    }

    #[test]
    fn restics_form_names_the_endpoint() {
        let url = S3Url::parse("s3:http://127.0.0.1:9000/bucket/prefix/").unwrap();
        assert_eq!(
            url.endpoint,
            endpoint(Scheme::Http, "127.0.0.1", Some(9000))
        );
        assert_eq!(
            (url.bucket.as_str(), url.prefix.as_str()),
            ("bucket", "prefix")
        );
        assert_eq!(url.to_string(), "s3:http://127.0.0.1:9000/bucket/prefix");

        let url = S3Url::parse("s3:https://S3.Example.net/b").unwrap();
        assert_eq!(
            url.endpoint,
            endpoint(Scheme::Https, "s3.example.net", None)
        );
        assert_eq!(url.prefix, "");

        let url = S3Url::parse("s3:s3.example.net/b/p").unwrap();
        assert_eq!(
            url.endpoint,
            endpoint(Scheme::Https, "s3.example.net", None)
        );

        let url = S3Url::parse("s3:http://[::1]:9000/b").unwrap();
        assert_eq!(url.endpoint, endpoint(Scheme::Http, "[::1]", Some(9000)));
        assert_eq!(url.endpoint.unwrap().authority(), "[::1]:9000");
    }

    #[test]
    fn empty_segments_are_dropped() {
        let url = S3Url::parse("s3://bucket//a///b/").unwrap();
        assert_eq!(url.prefix, "a/b");
    }

    #[test]
    fn bad_urls_are_refused() {
        for bad in [
            "s3://",
            "s3:///prefix",
            "s3:http://host//prefix",
            "s3://bucket/../other",
            "s3://bucket/a/./b",
            "s3://bu cket/x",
            "s3:http://host:port/b",
            "s3:http://user:secret@host/b",
            "s3:ftp://host/b",
            "s3:http://[::1/b",
        ] {
            assert!(S3Url::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn endpoints_from_the_environment_have_no_path() {
        let e = Endpoint::parse("https://s3.example.net/").unwrap();
        assert_eq!(e.to_string(), "https://s3.example.net");
        assert_eq!(
            Endpoint::parse("http://localhost:80").unwrap().authority(),
            "localhost"
        );
        assert!(Endpoint::parse("https://s3.example.net/bucket").is_err());
        assert!(Endpoint::parse("s3.example.net").is_err());
    }
}
