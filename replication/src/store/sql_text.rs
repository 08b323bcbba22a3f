//! Quoting of names and literals for the SQL that the store generates (triggers, apply, hashes).
//!
//! Table and column names come from the operator's config and the application's migrations, so
//! they are always quoted, never pasted in raw. Values never go through here: they are bound as
//! typed parameters.

/// `name` as a double-quoted SQLite identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as a single-quoted SQLite string literal.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::{quote_ident, quote_literal};

    #[test]
    fn quotes_are_doubled() {
        assert_eq!(quote_ident("odd\"name"), "\"odd\"\"name\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
