//! Where in a profile's text a key is: toml reports byte spans, an admin
//! wants a line number and a key. A key path is written as in the man
//! page: `forget.keep-daily`, `backup[2].stdin-name` (the second
//! `[[backup]]`, counted from 1).

use std::fmt;
use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One step of a key path: a key of a table, or an entry of an array
/// (from 0; shown from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A key path in a profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Segment>);

impl KeyPath {
    pub fn key(mut self, key: &str) -> KeyPath {
        self.0.push(Segment::Key(key.to_string()));
        self
    }

    pub fn index(mut self, index: usize) -> KeyPath {
        self.0.push(Segment::Index(index));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{}]", index + 1)?,
            }
        }
        Ok(())
    }
}

/// The line (from 1) that byte `offset` of `text` is on.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    1 + text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
}

/// The innermost key whose name or value holds byte `offset`. Tables are
/// searched whole, since the span toml gives a `[table]` is its header.
pub fn key_at(document: &Spanned<DeTable<'_>>, offset: usize) -> KeyPath {
    in_table(document.get_ref(), offset, KeyPath::default()).unwrap_or_default()
}

fn in_table(table: &DeTable<'_>, offset: usize, path: KeyPath) -> Option<KeyPath> {
    table.iter().find_map(|(key, value)| {
        let path = path.clone().key(key.get_ref());
        if holds(key.span(), offset) {
            return Some(path);
        }
        in_value(value, offset, path)
    })
}

fn in_value(value: &Spanned<DeValue<'_>>, offset: usize, path: KeyPath) -> Option<KeyPath> {
    let inner = match value.get_ref() {
        DeValue::Table(table) => in_table(table, offset, path.clone()),
        DeValue::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, item)| in_value(item, offset, path.clone().index(index))),
        _ => None,
    };
    inner.or_else(|| holds(value.span(), offset).then_some(path))
}

/// The span of the key at `path` (of the array entry, for a path that
/// ends in an index), if the document has it.
pub fn span_of(document: &Spanned<DeTable<'_>>, path: &KeyPath) -> Option<Range<usize>> {
    let mut span = document.span();
    let mut value: Option<&Spanned<DeValue<'_>>> = None;
    for segment in &path.0 {
        match segment {
            Segment::Key(name) => {
                let table = match value.map(Spanned::get_ref) {
                    None => document.get_ref(),
                    Some(DeValue::Table(table)) => table,
                    Some(_) => return None,
                };
                let (key, found) = table.iter().find(|(k, _)| k.get_ref() == name)?;
                span = key.span();
                value = Some(found);
            }
            Segment::Index(index) => match value.map(Spanned::get_ref) {
                Some(DeValue::Array(items)) => {
                    let item = items.get(*index)?;
                    span = item.span();
                    value = Some(item);
                }
                _ => return None,
            },
        }
    }
    Some(span)
}

fn holds(span: Range<usize>, offset: usize) -> bool {
    span.contains(&offset) || (span.is_empty() && span.start == offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "repository = \"/r\"\n\n[[backup]]\npaths = [\"/etc\"]\n\n[[backup]]\nstdin-name = \"db\"\n\n[forget]\nkeep-daily = 14\n";

    #[test]
    fn offsets_become_lines_and_keys() {
        let document = DeTable::parse(TEXT).unwrap();
        let at = |needle: &str| TEXT.find(needle).unwrap();
        assert_eq!(line_of(TEXT, at("keep-daily")), 10);
        assert_eq!(key_at(&document, at("14")).to_string(), "forget.keep-daily");
        assert_eq!(
            key_at(&document, at("stdin-name")).to_string(),
            "backup[2].stdin-name"
        );
        assert_eq!(key_at(&document, at("/r")).to_string(), "repository");
    }

    #[test]
    fn paths_find_their_keys() {
        let document = DeTable::parse(TEXT).unwrap();
        let path = KeyPath::default().key("backup").index(1).key("stdin-name");
        let span = span_of(&document, &path).unwrap();
        assert_eq!(line_of(TEXT, span.start), 7);
        let missing = KeyPath::default().key("check");
        assert_eq!(span_of(&document, &missing), None);
    }
}
