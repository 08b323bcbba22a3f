//! `tandemctl demo`: placeholder replaced below.
pub async fn run(_keep: bool) -> Result<(), String> {
    Err("demo not built yet".into())
}
