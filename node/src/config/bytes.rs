//! Sizes as operators write them: "1GiB", "512MiB", "64KiB", "1000" (bytes).
//!
//! Whole numbers with one binary unit, like `duration.rs` for durations; small enough not to need
//! a crate. Private to the folder: only the config reads sizes.

/// Parses a size such as "1GiB", "512MiB", "64KiB", "1000" (bytes).
pub(super) fn parse_bytes(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("\"{text}\" is not a size such as \"1GiB\" or \"512MiB\""))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        other => {
            return Err(format!(
                "unknown unit \"{other}\" in \"{text}\" (use B, KiB, MiB, GiB or TiB)"
            ));
        }
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("\"{text}\" is too large"))
}
