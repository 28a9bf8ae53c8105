//! The drill's report as JUnit XML, one test case per check, for CI
//! systems that collect test results.

use super::DrillReport;

/// Text as XML character data or an attribute value.
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 has no way to write other control characters.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

impl DrillReport {
    /// The report as JUnit XML, one test case per check, for CI systems.
    pub fn junit(&self) -> String {
        let failures = self
            .checks
            .iter()
            .filter(|c| !c.failures.is_empty())
            .count();
        let time: f64 = self.checks.iter().map(|c| c.seconds).sum();
        let suite = xml_escape(&format!(
            "rewind restore-test {} {}",
            &self.snapshot[..8.min(self.snapshot.len())],
            self.path
        ));
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        x += &format!(
            "<testsuites name=\"rewind restore-test\" tests=\"{}\" failures=\"{failures}\" time=\"{time:.3}\">\n",
            self.checks.len()
        );
        x += &format!(
            "  <testsuite name=\"{suite}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{time:.3}\">\n",
            self.checks.len()
        );
        x += "    <properties>\n";
        let properties = [
            ("snapshot", self.snapshot.clone()),
            ("snapshot_time", self.snapshot_time.clone()),
            ("host", self.host.clone()),
            ("path", self.path.clone()),
            ("age_seconds", self.age_seconds.to_string()),
            ("restore_seconds", format!("{:.3}", self.restore_seconds)),
            ("files_checked", self.files_checked.to_string()),
            ("bytes_checked", self.bytes_checked.to_string()),
        ];
        for (name, value) in properties {
            x += &format!(
                "      <property name=\"{name}\" value=\"{}\"/>\n",
                xml_escape(&value)
            );
        }
        x += "    </properties>\n";
        for check in &self.checks {
            x += &format!(
                "    <testcase classname=\"rewind.restore-test\" name=\"{}\" time=\"{:.3}\"",
                xml_escape(&check.name),
                check.seconds
            );
            if check.failures.is_empty() {
                x += "/>\n";
                continue;
            }
            x += ">\n";
            let body: Vec<String> = check
                .failures
                .iter()
                .map(|f| xml_escape(&format!("{}: {}", f.path, f.error)))
                .collect();
            x += &format!(
                "      <failure message=\"{} failures\" type=\"{}\">{}</failure>\n",
                check.failures.len(),
                xml_escape(&check.name),
                body.join("\n")
            );
            x += "    </testcase>\n";
        }
        x += "  </testsuite>\n</testsuites>\n";
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::drill::Check;
    use crate::restore::Failure;

    #[test]
    fn junit_escapes_and_counts_failures() {
        let report = DrillReport {
            snapshot: "0123456789abcdef".into(),
            snapshot_time: "2024-06-01T02:00:00Z".into(),
            host: "db1".into(),
            path: "/srv".into(),
            sample_percent: None,
            files_checked: 3,
            bytes_checked: 10,
            entries_checked: 5,
            restore_seconds: 1.5,
            verify_seconds: 0.5,
            age_seconds: 60,
            max_age_seconds: None,
            checks: vec![
                Check {
                    name: "restore".into(),
                    seconds: 1.5,
                    failures: vec![],
                },
                Check {
                    name: "verify".into(),
                    seconds: 0.5,
                    failures: vec![Failure {
                        path: "/srv/a<&>\u{1}".into(),
                        error: "content differs".into(),
                    }],
                },
            ],
            scratch: "/tmp/x".into(),
            scratch_kept: false,
            ok: false,
        };
        let xml = report.junit();
        assert!(xml.contains("tests=\"2\" failures=\"1\""), "{xml}");
        assert!(
            xml.contains("/srv/a&lt;&amp;&gt;\u{fffd}: content differs"),
            "{xml}"
        );
        assert!(xml.contains(
            "<testcase classname=\"rewind.restore-test\" name=\"restore\" time=\"1.500\"/>"
        ));
        assert_eq!(xml.matches("<testcase").count(), 2);
    }
}
