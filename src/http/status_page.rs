//! The status page `/`: server-rendered HTML, no scripts, no external assets. Every name from
//! clients (topics, groups) and from the configuration is escaped ([`escape`]).

use std::fmt::Write;

use super::TopicRates;
use crate::config::BrokerConfig;
use crate::metrics::encode::Scrape;

/// The page for `scrape`, with per-topic rates from `rates`.
pub fn render(scrape: &Scrape, rates: &TopicRates, config: &BrokerConfig) -> String {
    let mut page = String::with_capacity(16 * 1024);
    let health = &scrape.broker.health;
    let status = match health.problem() {
        None => "<span class=ok>healthy</span>".to_string(),
        Some(reason) => format!("<span class=bad>not ready: {}</span>", escape(&reason)),
    };
    let _ = write!(
        page,
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content='width=device-width, initial-scale=1'>\
         <title>Ringtail node {node}</title><style>{STYLE}</style></head><body>\
         <h1>Ringtail <small>node {node}</small></h1><p id=health>{status}</p>",
        node = scrape.broker.node_id,
    );
    broker_section(&mut page, scrape, config);
    topics_section(&mut page, scrape, rates);
    groups_section(&mut page, scrape);
    page.push_str(
        "<footer>Metrics for Prometheus at <a href=/metrics>/metrics</a>, health at \
         <a href=/healthz>/healthz</a>. Reload for fresh numbers.</footer></body></html>\n",
    );
    page
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:80em}\
h1 small{color:#777;font-weight:normal}h2{margin-top:1.6em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:.5em 0}th,td{padding:.25em .8em;text-align:left;\
border-bottom:1px solid #eee;vertical-align:top}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.ok{color:#176f2c;font-weight:bold}.bad{color:#b00020;font-weight:bold}svg{vertical-align:middle}\
footer{margin-top:2em;color:#777}code{background:#f4f4f4;padding:0 .2em}";

fn broker_section(page: &mut String, scrape: &Scrape, config: &BrokerConfig) {
    let health = &scrape.broker.health;
    let listeners: Vec<String> = scrape
        .broker
        .listeners
        .iter()
        .map(|(name, address)| format!("{}://{}", escape(name), escape(address)))
        .collect();
    let ready = health
        .shards
        .iter()
        .filter(|p| **p == crate::metrics::health::ShardPhase::Ready)
        .count();
    let _ = write!(
        page,
        "<h2>Broker</h2><table id=broker>\
         <tr><th>Version</th><td>{version}</td></tr>\
         <tr><th>Uptime</th><td>{uptime}</td></tr>\
         <tr><th>Shards</th><td>{shards} ({ready} ready)</td></tr>\
         <tr><th>Listeners</th><td>{listeners}</td></tr>\
         <tr><th>Open connections</th><td>{connections}</td></tr></table>",
        version = escape(scrape.broker.version),
        uptime = duration(health.uptime_seconds),
        shards = health.shards.len(),
        listeners = listeners.join("<br>"),
        connections = scrape.connections,
    );
    page.push_str(
        "<h3>Log dirs</h3><table id=log-dirs><tr><th>Path</th><th>Used by partitions</th>\
         <th>Free</th><th>Total</th></tr>",
    );
    let used: u64 = scrape.partitions.values().map(|p| p.size_bytes).sum();
    for dir in &config.log_dirs {
        let (free, total) = disk_space(dir).map_or(("?".into(), "?".into()), |(free, total)| {
            (bytes(free as f64), bytes(total as f64))
        });
        let _ = write!(
            page,
            "<tr><td><code>{}</code></td><td class=n>{}</td><td class=n>{free}</td>\
             <td class=n>{total}</td></tr>",
            escape(&dir.display().to_string()),
            bytes(used as f64),
        );
    }
    page.push_str("</table>");
}

fn topics_section(page: &mut String, scrape: &Scrape, rates: &TopicRates) {
    page.push_str(
        "<h2>Topics</h2><table id=topics><tr><th>Topic</th><th>Partitions</th><th>Size</th>\
         <th>Log end offsets</th><th>In</th><th>Out</th><th>Last minutes (in / out)</th></tr>",
    );
    if !scrape.broker.health.all_ready() {
        page.push_str("<tr><td colspan=7>shards are still loading</td></tr>");
    }
    for name in scrape.topics.keys() {
        let partitions: Vec<_> = scrape
            .partitions
            .range((name.clone(), i32::MIN)..=(name.clone(), i32::MAX))
            .map(|(_, p)| p)
            .collect();
        let size: u64 = partitions.iter().map(|p| p.size_bytes).sum();
        let ends: Vec<String> = partitions
            .iter()
            .take(16)
            .map(|p| format!("{}:&nbsp;{}", p.partition, p.log_end_offset))
            .collect();
        let more = partitions.len().saturating_sub(16);
        let series = rates.rates(name);
        let (rate_in, rate_out) = series.last().copied().unwrap_or((0.0, 0.0));
        let _ = write!(
            page,
            "<tr data-topic=\"{topic}\"><td>{topic}</td><td class=n>{count}</td><td class=n>{size}</td>\
             <td>{ends}{more}</td><td class=n>{rate_in}/s</td><td class=n>{rate_out}/s</td><td>{svg}</td></tr>",
            topic = escape(name),
            count = partitions.len(),
            size = bytes(size as f64),
            ends = ends.join(", "),
            more = if more > 0 { format!(" &hellip; and {more} more") } else { String::new() },
            rate_in = bytes(rate_in),
            rate_out = bytes(rate_out),
            svg = sparkline(&series),
        );
    }
    page.push_str("</table>");
}

fn groups_section(page: &mut String, scrape: &Scrape) {
    page.push_str(
        "<h2>Consumer groups</h2><table id=groups><tr><th>Group</th><th>State</th>\
         <th>Members</th><th>Total lag</th><th>Lag per partition</th></tr>",
    );
    for (group, lags) in scrape.groups.values() {
        let total: i64 = lags.iter().filter_map(|l| l.lag()).sum();
        let per_partition: Vec<String> = lags
            .iter()
            .map(|l| {
                let lag = l.lag().map_or("-".to_string(), |lag| lag.to_string());
                format!("{}-{}:&nbsp;{lag}", escape(&l.topic), l.partition)
            })
            .collect();
        let _ = write!(
            page,
            "<tr data-group=\"{id}\"><td>{id}</td><td>{state}</td><td class=n>{members}</td>\
             <td class=n>{total}</td><td>{lags}</td></tr>",
            id = escape(&group.group_id),
            state = group.state,
            members = group.members,
            lags = per_partition.join(", "),
        );
    }
    page.push_str("</table>");
}

/// An inline SVG of bytes in (blue) and out (orange) per second, oldest sample left.
fn sparkline(series: &[(f64, f64)]) -> String {
    const WIDTH: f64 = 160.0;
    const HEIGHT: f64 = 28.0;
    if series.len() < 2 {
        return "<small>collecting&hellip;</small>".to_string();
    }
    let peak = series
        .iter()
        .map(|(a, b)| a.max(*b))
        .fold(0.0, f64::max)
        .max(1.0);
    let points = |pick: fn(&(f64, f64)) -> f64| -> String {
        let step = WIDTH / (series.len() - 1) as f64;
        series
            .iter()
            .enumerate()
            .map(|(i, s)| {
                format!(
                    "{:.1},{:.1}",
                    i as f64 * step,
                    HEIGHT - 1.0 - pick(s) / peak * (HEIGHT - 2.0)
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "<svg width={WIDTH} height={HEIGHT} viewBox='0 0 {WIDTH} {HEIGHT}' role=img>\
         <title>peak {}/s</title>\
         <polyline fill=none stroke='#1f77b4' stroke-width=1.5 points='{}'/>\
         <polyline fill=none stroke='#ff7f0e' stroke-width=1.5 points='{}'/></svg>",
        bytes(peak),
        points(|s| s.0),
        points(|s| s.1),
    )
}

/// `text` with HTML's special characters escaped (safe in text and in quoted attributes).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn bytes(value: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = value;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0}&nbsp;{}", UNITS[unit])
    } else {
        format!("{value:.1}&nbsp;{}", UNITS[unit])
    }
}

fn duration(seconds: f64) -> String {
    let s = seconds as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// (free, total) bytes of the file system holding `dir` (statvfs).
fn disk_space(dir: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we pass; `path` is NUL-terminated.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    let block = stat.f_frsize as u64;
    Some((stat.f_bavail as u64 * block, stat.f_blocks as u64 * block))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_html_specials() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
