//! The JSON images of the log: how a row's values are written by the capture triggers and read
//! back in Rust.
//!
//! An image is a JSON object `{"column": value, ...}` in column order. Values:
//! - NULL → `null`; INTEGER → a JSON number (exact, SQLite integers are 64-bit);
//! - TEXT → a JSON string (always a string, even when the text is itself JSON);
//! - REAL → `{"$real": "<17 significant digits>"}`: SQLite's JSON prints reals with 15 digits,
//!   which loses precision, and serde_json's default float parsing is not exact either, so reals
//!   travel as text that Rust's exact `str::parse::<f64>` reads back bit for bit. `Inf`/`-Inf`
//!   survive; `-0.0` arrives as `0.0` (SQLite itself does not keep the sign of zero everywhere);
//! - BLOB → `{"$base64": "..."}` as DESIGN.md §4 says. SQLite has no base64 function, so the
//!   trigger writes `{"$blob_hex": "..."}` with `hex()`, and every store write (`finish`)
//!   rewrites each such marker to `$base64` in the same transaction, before the entry is hashed
//!   or seen by anyone.
//!   A log entry read out of the store therefore only ever holds `$base64`.
//!
//! Because TEXT is always a JSON string, a JSON object in an image is always one of these two
//! markers: the encoding is unambiguous. Not here: which columns a table has (see `capture`).

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};

use super::base64;
use super::sql_text::{quote_ident, quote_literal};
use super::value::SqlValue;

/// SQLite functions take at most 127 arguments: 63 key/value pairs per `json_object` call.
pub const PAIRS_PER_CALL: usize = 63;
const HEX_MARKER: &str = "{\"$blob_hex\":\"";

/// The SQL expression that encodes column `column` of `row` (`NEW` or `OLD`) as a JSON value.
/// `|| ''` drops a JSON subtype, so text made by `json()` still travels as a string.
pub fn value_sql(row: &str, column: &str) -> String {
    let value = format!("{row}.{}", quote_ident(column));
    format!(
        "CASE typeof({value}) WHEN 'blob' THEN json_object('$blob_hex', hex({value})) \
         WHEN 'real' THEN json_object('$real', printf('%!.17g', {value})) \
         WHEN 'text' THEN {value} || '' ELSE {value} END"
    )
}

/// The SQL expression that builds the image of `columns` of `row`. Wider tables than one
/// `json_object` call allows add the rest with `json_set`, whose path labels cannot hold `"` or
/// `\`; `capture` refuses such names in wide tables before we get here.
pub fn image_sql(row: &str, columns: &[String]) -> String {
    let pair = |column: &String| format!("{}, {}", quote_literal(column), value_sql(row, column));
    let mut chunks = columns.chunks(PAIRS_PER_CALL);
    let first = chunks.next().unwrap_or_default();
    let mut image = format!(
        "json_object({})",
        first.iter().map(pair).collect::<Vec<_>>().join(", ")
    );
    for chunk in chunks {
        let pairs = chunk.iter().map(|column| {
            let path = quote_literal(&format!("$.\"{column}\""));
            format!("{path}, {}", value_sql(row, column))
        });
        image = format!(
            "json_set({image}, {})",
            pairs.collect::<Vec<_>>().join(", ")
        );
    }
    image
}

/// Rewrites every `{"$blob_hex":"..."}` marker of a trigger-made image to `{"$base64":"..."}`.
/// `None` when there is nothing to rewrite. Matching the marker as text is sound: SQLite writes
/// compact JSON, and inside a JSON string every `"` is escaped, so the marker's bare quotes can
/// only be JSON structure, never part of a text value or a column name.
pub fn blob_hex_to_base64(json: &str) -> Result<Option<String>, String> {
    if !json.contains(HEX_MARKER) {
        return Ok(None);
    }
    let mut out = String::with_capacity(json.len());
    let mut rest = json;
    while let Some(start) = rest.find(HEX_MARKER) {
        out.push_str(&rest[..start]);
        let after = &rest[start + HEX_MARKER.len()..];
        let end = after.find("\"}").ok_or("unterminated $blob_hex marker")?;
        out.push_str("{\"$base64\":\"");
        out.push_str(&base64::encode(&decode_hex(&after[..end])?));
        out.push_str("\"}");
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(Some(out))
}

fn decode_hex(hex: &str) -> Result<Vec<u8>, String> {
    if !hex.len().is_multiple_of(2) {
        return Err(format!(
            "odd-length hex in $blob_hex marker: {} digits",
            hex.len()
        ));
    }
    // Bytes, not `str` slices: a multi-byte character must be an error, never a panic.
    hex.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digit = |byte: u8| char::from(byte).to_digit(16);
            match (digit(pair[0]), digit(pair[1])) {
                (Some(high), Some(low)) => Ok(u8::try_from(high * 16 + low).unwrap_or(0)),
                _ => Err(format!(
                    "invalid hex {:?} in $blob_hex marker",
                    String::from_utf8_lossy(pair)
                )),
            }
        })
        .collect()
}

/// Decodes an image into `(column, value)` pairs in the order the image lists them.
pub fn decode_image(json: &str) -> Result<Vec<(String, SqlValue)>, String> {
    let object: OrderedObject = serde_json::from_str(json)
        .map_err(|error| format!("image is not a JSON object: {error}"))?;
    object
        .0
        .into_iter()
        .map(|(column, value)| {
            let decoded = decode_value(&column, value)?;
            Ok((column, decoded))
        })
        .collect()
}

fn decode_value(column: &str, value: serde_json::Value) -> Result<SqlValue, String> {
    use serde_json::Value;
    match value {
        Value::Null => Ok(SqlValue::Null),
        Value::Number(number) => number.as_i64().map(SqlValue::Integer).ok_or_else(|| {
            format!(
                "column \"{column}\": {number} is not a 64-bit integer \
                 (reals travel as {{\"$real\": \"...\"}})"
            )
        }),
        Value::String(text) => Ok(SqlValue::Text(text)),
        Value::Object(marker) => decode_marker(column, &marker),
        other => Err(format!(
            "column \"{column}\": unexpected JSON value {other}"
        )),
    }
}

fn decode_marker(
    column: &str,
    marker: &serde_json::Map<String, serde_json::Value>,
) -> Result<SqlValue, String> {
    let only = (marker.len() == 1).then(|| marker.iter().next()).flatten();
    match only {
        Some((key, serde_json::Value::String(text))) if key == "$base64" => base64::decode(text)
            .map(SqlValue::Blob)
            .map_err(|reason| format!("column \"{column}\": {reason}")),
        Some((key, serde_json::Value::String(text))) if key == "$real" => match text.parse::<f64>()
        {
            Ok(real) if !real.is_nan() => Ok(SqlValue::Real(real)),
            _ => Err(format!(
                "column \"{column}\": {text:?} is not a real number"
            )),
        },
        _ => Err(format!(
            "column \"{column}\": a JSON object must be {{\"$base64\": \"...\"}} or {{\"$real\": \"...\"}}"
        )),
    }
}

/// A JSON object read with its keys in document order (serde_json's own map sorts them).
struct OrderedObject(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for OrderedObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(OrderedObjectVisitor)
    }
}

struct OrderedObjectVisitor;

impl<'de> Visitor<'de> for OrderedObjectVisitor {
    type Value = OrderedObject;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON object of column values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedObject, A::Error> {
        let mut pairs = Vec::new();
        while let Some(pair) = map.next_entry::<String, serde_json::Value>()? {
            pairs.push(pair);
        }
        Ok(OrderedObject(pairs))
    }
}

#[cfg(test)]
mod tests {
    use super::{blob_hex_to_base64, decode_image};
    use crate::store::value::SqlValue;

    #[test]
    fn hex_markers_become_base64_and_lookalike_text_is_left_alone() {
        let json =
            r#"{"a":{"$blob_hex":"00FF"},"t":"{\"$blob_hex\":\"00\"}","b":{"$blob_hex":""}}"#;
        let rewritten = blob_hex_to_base64(json).unwrap().unwrap();
        assert_eq!(
            rewritten,
            r#"{"a":{"$base64":"AP8="},"t":"{\"$blob_hex\":\"00\"}","b":{"$base64":""}}"#
        );
        assert_eq!(blob_hex_to_base64(r#"{"a":1}"#), Ok(None));
    }

    #[test]
    fn bad_hex_in_a_marker_is_an_error_not_a_panic() {
        // A two-byte character: slicing the text by digit pairs would cut it in half.
        let error = blob_hex_to_base64(r#"{"a":{"$blob_hex":"0é0"}}"#).unwrap_err();
        assert!(error.contains("invalid hex"), "{error}");
        let error = blob_hex_to_base64(r#"{"a":{"$blob_hex":"zz"}}"#).unwrap_err();
        assert!(error.contains("\"zz\""), "{error}");
        let error = blob_hex_to_base64(r#"{"a":{"$blob_hex":"abc"}}"#).unwrap_err();
        assert!(error.contains("odd-length"), "{error}");
    }

    #[test]
    fn images_decode_in_column_order_with_exact_classes() {
        let json = r#"{"z":1,"a":"x","r":{"$real":"0.10000000000000001"},"b":{"$base64":"AP8="},"n":null}"#;
        let decoded = decode_image(json).unwrap();
        let expected = vec![
            ("z".to_owned(), SqlValue::Integer(1)),
            ("a".to_owned(), SqlValue::Text("x".to_owned())),
            ("r".to_owned(), SqlValue::Real(0.1)),
            ("b".to_owned(), SqlValue::Blob(vec![0, 255])),
            ("n".to_owned(), SqlValue::Null),
        ];
        assert_eq!(decoded, expected);
    }

    #[test]
    fn malformed_images_are_refused_naming_the_column() {
        assert!(
            decode_image("[1]")
                .unwrap_err()
                .contains("not a JSON object")
        );
        assert!(
            decode_image(r#"{"f":1.5}"#)
                .unwrap_err()
                .contains("column \"f\"")
        );
        assert!(
            decode_image(r#"{"o":{"x":1}}"#)
                .unwrap_err()
                .contains("$base64")
        );
        assert!(
            decode_image(r#"{"r":{"$real":"NaN"}}"#)
                .unwrap_err()
                .contains("not a real")
        );
        assert!(
            decode_image(r#"{"b":{"$base64":"*"}}"#)
                .unwrap_err()
                .contains("column \"b\"")
        );
    }
}
