//! The status page's small formatting helpers: role badges and tinted labels for states, the
//! class of an event kind, times, durations and sizes as people read them, and HTML escaping.

use tandem_gateway::gateway::format_ms;

/// A solid badge for a role: active, passive, fault, or any other (transient or unknown).
pub(super) fn role_badge(role: &str) -> String {
    let class = match role {
        "active" => "active",
        "passive" => "passive",
        "fault" => "fault",
        _ => "other",
    };
    let text = if role.is_empty() { "unknown" } else { role };
    format!("<span class=\"badge {class}\">{}</span>", escape(text))
}

/// A tinted label; `class` is one of good, info, warn, bad, muted.
pub(super) fn tone(class: &str, text: &str) -> String {
    format!("<span class=\"tone {class}\">{}</span>", escape(text))
}

pub(super) fn link_tone(state: &str) -> String {
    let class = match state {
        "ok" => "good",
        "suspect" => "warn",
        "failed" => "bad",
        _ => "muted",
    };
    tone(class, if state.is_empty() { "unknown" } else { state })
}

pub(super) fn disk_tone(disk: &str) -> String {
    let class = match disk {
        "consistent" => "good",
        "outdated" => "warn",
        "inconsistent" => "bad",
        _ => "muted",
    };
    tone(class, if disk.is_empty() { "unknown" } else { disk })
}

pub(super) fn monitoring_tone(monitoring: &str) -> String {
    let class = match monitoring {
        "on" => "good",
        "suspended" => "warn",
        "stopped" => "bad",
        _ => "muted",
    };
    tone(
        class,
        if monitoring.is_empty() {
            "unknown"
        } else {
            monitoring
        },
    )
}

pub(super) fn maintenance_tone(on: bool) -> String {
    if on {
        tone("warn", "on")
    } else {
        tone("muted", "off")
    }
}

pub(super) fn block_tone(blocked: bool) -> String {
    if blocked {
        tone("warn", "blocked")
    } else {
        tone("good", "open")
    }
}

pub(super) fn service_state(state: &str, healthy: bool) -> String {
    let class = match state {
        "running" | "ready" if healthy => "good",
        "running" | "ready" | "starting" | "backoff" => "warn",
        "unhealthy" | "failed" => "bad",
        _ => "muted",
    };
    let health = if healthy { "healthy" } else { "not healthy" };
    format!(
        "{} <span class=\"note\">{health}</span>",
        tone(class, state)
    )
}

/// A class for an event kind, so that failures stand out in the list.
pub(super) fn event_class(kind: &str) -> &'static str {
    const BAD: [&str; 6] = ["split", "fail", "fault", "error", "halt", "conflict"];
    const WARN: [&str; 5] = ["suspect", "degrad", "skew", "mismatch", "block"];
    if BAD.iter().any(|word| kind.contains(word)) {
        "bad"
    } else if WARN.iter().any(|word| kind.contains(word)) {
        "warn"
    } else {
        "plain"
    }
}

/// "2026-11-24 14:34:05": UTC, as the column header says.
pub(super) fn time_text(ms: i64) -> String {
    format_ms(ms).replace('T', " ").replace('Z', "")
}

/// "850 ms", "3.2 s", "4 min", "2 h".
pub(super) fn duration_text(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{} min", ms / 60_000),
        _ => format!("{} h", ms / 3_600_000),
    }
}

/// "0 B", "512 B", "1.5 KiB", "2.0 GiB".
pub(super) fn bytes_text(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}
