//! Standard base64 (RFC 4648 §4, with `=` padding) for BLOBs inside JSON images.
//!
//! It exists because DESIGN.md §4 puts BLOBs into the JSON images as base64, SQLite has no
//! base64 function, and the workspace has no base64 crate; this is the whole of what we need.
//! The decoder is strict (no whitespace, no missing padding, no stray bits), so every byte
//! string has exactly one encoding and images compare and hash byte for byte. It is not a
//! general-purpose codec: no URL-safe alphabet, no streaming.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Encodes `bytes` as padded standard base64.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextets = [n >> 18, n >> 12, n >> 6, n].map(|s| ALPHABET[(s & 63) as usize] as char);
        let kept = chunk.len() + 1;
        out.extend(&sextets[..kept]);
        out.extend(std::iter::repeat_n('=', 4 - kept));
    }
    out
}

/// Decodes padded standard base64; the error says what is wrong and where.
pub fn decode(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return Err(format!(
            "base64 length {} is not a multiple of 4",
            bytes.len()
        ));
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let quads = bytes.len() / 4;
    for (quad_index, quad) in bytes.chunks(4).enumerate() {
        let is_last = quad_index + 1 == quads;
        decode_quad(quad, quad_index * 4, is_last, &mut out)?;
    }
    Ok(out)
}

fn decode_quad(quad: &[u8], offset: usize, is_last: bool, out: &mut Vec<u8>) -> Result<(), String> {
    let padding = quad.iter().rev().take_while(|&&c| c == b'=').count();
    if padding > 2 || (padding > 0 && !is_last) {
        return Err(format!("base64 padding misplaced near offset {offset}"));
    }
    let mut n: u32 = 0;
    for (i, &c) in quad[..4 - padding].iter().enumerate() {
        let sextet = sextet_of(c).ok_or_else(|| {
            format!(
                "invalid base64 character {:?} at offset {}",
                c as char,
                offset + i
            )
        })?;
        n |= u32::from(sextet) << (18 - 6 * i);
    }
    let stray_bits = match padding {
        1 => n & 0xFF,
        2 => n & 0xFFFF,
        _ => 0,
    };
    if stray_bits != 0 {
        return Err(format!(
            "base64 has non-zero padding bits near offset {offset}"
        ));
    }
    let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
    out.extend_from_slice(&decoded[..3 - padding]);
    Ok(())
}

fn sextet_of(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{decode, encode};

    #[test]
    fn rfc4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(encode(plain.as_bytes()), encoded);
            assert_eq!(decode(encoded).as_deref(), Ok(plain.as_bytes()));
        }
    }

    #[test]
    fn every_byte_value_round_trips_at_every_length_mod_3() {
        let all: Vec<u8> = (0..=255u8).collect();
        for cut in 0..3 {
            let bytes = &all[cut..];
            assert_eq!(decode(&encode(bytes)).as_deref(), Ok(bytes));
        }
    }

    #[test]
    fn malformed_input_is_refused_with_a_reason() {
        assert!(decode("Zm9").unwrap_err().contains("multiple of 4"));
        assert!(
            decode("Zm9*")
                .unwrap_err()
                .contains("invalid base64 character '*' at offset 3")
        );
        assert!(
            decode("Zg==Zm9v")
                .unwrap_err()
                .contains("padding misplaced")
        );
        assert!(decode("Z===").unwrap_err().contains("padding misplaced"));
        // "Zh==" decodes to "f" only if the stray bits are ignored; strictness keeps one encoding.
        assert!(
            decode("Zh==")
                .unwrap_err()
                .contains("non-zero padding bits")
        );
    }
}
