//! What the status page carries inline, so that it loads nothing from elsewhere: the icon, the
//! refresh script and the stylesheet.

/// Two linked rings on the header's colour, as an inline SVG: no request for `/favicon.ico`.
pub(super) const ICON: &str = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'%3E\
%3Ccircle cx='12' cy='16' r='8' fill='none' stroke='%231f8a4c' stroke-width='4'/%3E\
%3Ccircle cx='20' cy='16' r='8' fill='none' stroke='%232563c9' stroke-width='4'/%3E%3C/svg%3E";

/// Fetches the page again every REFRESH_MS and swaps the body; marks the header when the node
/// does not answer. Errors are caught: the page itself never throws.
pub(super) const SCRIPT: &str = r#"
(function () {
  "use strict";
  function refresh() {
    fetch(window.location.pathname, { cache: "no-store" })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) {
        var page = new DOMParser().parseFromString(html, "text/html");
        document.title = page.title;
        document.body.innerHTML = page.body.innerHTML;
      })
      .catch(function (error) {
        var live = document.getElementById("live");
        if (live) {
          live.className = "live stale";
          live.textContent = "not answering (" + error.message + "), retrying";
        }
      })
      .then(function () { window.setTimeout(refresh, REFRESH_MS); });
  }
  window.setTimeout(refresh, REFRESH_MS);
})();
"#;

pub(super) const STYLE: &str = r#"
:root {
  --bg: #f3f5f8; --card: #fff; --text: #1b2430; --muted: #677489; --line: #e3e7ee;
  --head: #15202d; --head-text: #c3ccd8;
  --good: #177245; --good-bg: #e3f4ea; --info: #1f58b5; --info-bg: #e4edfb;
  --warn: #8a5a00; --warn-bg: #fdf1d8; --bad: #b42318; --bad-bg: #fde7e5;
  --muted-bg: #eef1f5;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0e131a; --card: #17202b; --text: #e4e9f0; --muted: #93a0b3; --line: #283443;
    --head: #0a0f15; --good: #6fd49c; --good-bg: #15352a; --info: #8db6f5; --info-bg: #182c4a;
    --warn: #f2c166; --warn-bg: #3b2f14; --bad: #f59b93; --bad-bg: #432020; --muted-bg: #222c39;
  }
}
* { box-sizing: border-box; }
body {
  margin: 0; background: var(--bg); color: var(--text);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
header {
  display: flex; flex-wrap: wrap; align-items: center; gap: .4rem 1rem;
  padding: .85rem 1.5rem; background: var(--head); color: #fff;
}
.brand { display: flex; align-items: center; gap: .45rem; font-weight: 700; letter-spacing: .02em; }
.logo {
  width: 1.35rem; height: 1.35rem; border-radius: 50%;
  background: radial-gradient(circle at 35% 50%, transparent 38%, #3fbf7f 40%, #3fbf7f 55%, transparent 57%),
    radial-gradient(circle at 65% 50%, transparent 38%, #5b8def 40%, #5b8def 55%, transparent 57%);
}
header h1 { margin: 0; font-size: 1.2rem; font-weight: 600; }
header .sub { color: var(--head-text); }
header .sub b { color: #fff; }
.live { margin-left: auto; color: var(--head-text); font-size: .85rem; font-variant-numeric: tabular-nums; }
.live::before {
  content: ""; display: inline-block; width: .55rem; height: .55rem; margin-right: .4rem;
  border-radius: 50%; background: #3fbf7f; box-shadow: 0 0 0 3px rgba(63, 191, 127, .25);
}
.live.stale { color: #ffb4ab; }
.live.stale::before { background: #e5484d; box-shadow: 0 0 0 3px rgba(229, 72, 77, .3); }
main { max-width: 1240px; margin: 0 auto; padding: 1.25rem; display: grid; gap: 1rem; }
.grid { display: grid; gap: 1rem; grid-template-columns: repeat(auto-fit, minmax(min(100%, 17rem), 1fr)); }
.grid.nodes { grid-template-columns: repeat(auto-fit, minmax(min(100%, 24rem), 1fr)); }
.card {
  min-width: 0; padding: 1rem 1.2rem; background: var(--card); border: 1px solid var(--line);
  border-radius: 10px; box-shadow: 0 1px 2px rgba(16, 24, 40, .05);
}
h2 {
  display: flex; align-items: center; gap: .5rem; margin: 0 0 .8rem; color: var(--muted);
  font-size: .78rem; font-weight: 650; letter-spacing: .07em; text-transform: uppercase;
}
.node h2 { color: var(--text); font-size: 1.15rem; letter-spacing: 0; text-transform: none; }
h2 small { margin-left: auto; color: var(--muted); font-size: .75rem; font-weight: 500;
  letter-spacing: .07em; text-transform: uppercase; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .4rem 1.2rem; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; min-width: 0; overflow-wrap: anywhere; font-variant-numeric: tabular-nums; }
.badge {
  display: inline-block; padding: .12rem .6rem; border-radius: 999px; color: #fff;
  background: #7b8494; font-size: .75rem; font-weight: 650; letter-spacing: .04em; text-transform: uppercase;
}
.badge.active { background: #1e8e4e; }
.badge.passive { background: #2f6fd6; }
.badge.fault { background: #cf3a2b; }
.badge.other { background: #b07a10; }
.tone { display: inline-block; padding: 0 .45rem; border-radius: 5px; font-weight: 550; }
.tone.good { color: var(--good); background: var(--good-bg); }
.tone.info { color: var(--info); background: var(--info-bg); }
.tone.warn { color: var(--warn); background: var(--warn-bg); }
.tone.bad { color: var(--bad); background: var(--bad-bg); }
.tone.muted { color: var(--muted); background: var(--muted-bg); }
.bar {
  display: inline-block; width: 7rem; height: .5rem; vertical-align: middle; overflow: hidden;
  border-radius: 999px; background: var(--muted-bg);
}
.bar span { display: block; height: 100%; background: #2f6fd6; }
.note { color: var(--muted); font-size: .85em; }
.empty { margin: 0; color: var(--muted); font-style: italic; }
.scroll { overflow-x: auto; }
table { width: 100%; border-collapse: collapse; }
th {
  padding: .35rem .6rem; border-bottom: 1px solid var(--line); color: var(--muted); text-align: left;
  font-size: .78rem; font-weight: 600; white-space: nowrap;
}
td { padding: .4rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; overflow-wrap: anywhere; }
tbody tr:last-child td { border-bottom: 0; }
tbody tr:hover { background: var(--muted-bg); }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.time { color: var(--muted); white-space: nowrap; font-variant-numeric: tabular-nums; }
table.events td.time, table.events td.kind { width: 1%; }
span.kind {
  padding: .05rem .4rem; border-radius: 4px; background: var(--muted-bg); white-space: nowrap;
  font: .82rem/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
}
span.kind.warn { color: var(--warn); background: var(--warn-bg); }
span.kind.bad { color: var(--bad); background: var(--bad-bg); }
@media (max-width: 640px) {
  header { padding: .75rem 1rem; }
  .live { margin-left: 0; width: 100%; }
  main { padding: .75rem; gap: .75rem; }
  .card { padding: .85rem .9rem; }
  table.events thead { display: none; }
  table.events tr { display: grid; grid-template-columns: auto 1fr; align-items: baseline; }
  table.events td { border: 0; padding: .15rem .3rem; width: auto; }
  table.events td.message { grid-column: 1 / -1; padding-bottom: .55rem; border-bottom: 1px solid var(--line); }
  table.events tr:last-child td.message { border-bottom: 0; }
}
"#;
