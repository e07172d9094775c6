//! The parts of the instance page that manage what surrounds an instance: utilisation charts drawn as SVG
//! on the server, uptime and cost so far, its own security rules, and the volumes and firewalls attached.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, OnceLock};

use askama::Template;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use barrack_api::firewalls::{FirewallQuery, InstanceIdsRequest};
use barrack_api::instances::{Instance, InstanceMetrics, SecurityRule, SecurityRuleRequest};
use barrack_api::volumes::{VolumeIdsRequest, VolumeQuery};
use barrack_core::accounts::web_sessions::WebSession;

use crate::State;
use crate::error::WebError;
use crate::form::Form;
use crate::session::Signed;
use crate::view::{Errors, badge, money, ok, when};

/// Samples kept per instance, and instances followed, by this process (the metrics service answers with
/// the current sample only; the charts show what the dashboard has seen since).
const SAMPLES: usize = 60;
const FOLLOWED: usize = 1000;

#[derive(Clone, Copy)]
struct Sample {
    cpu: f64,
    memory: Option<f64>,
    rx: Option<f64>,
    tx: Option<f64>,
    gpu: Option<f64>,
}

type History = HashMap<String, (String, VecDeque<Sample>)>;

fn history() -> &'static Mutex<History> {
    static HISTORY: OnceLock<Mutex<History>> = OnceLock::new();
    HISTORY.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Adds the sample (unless it is the one seen last) and returns the instance's samples, oldest first.
fn remember(m: &InstanceMetrics) -> Vec<Sample> {
    let sample = Sample {
        cpu: m.cpu_percent,
        memory: m
            .memory_used_bytes
            .filter(|_| m.memory_total_bytes > 0)
            .map(|used| used as f64 * 100.0 / m.memory_total_bytes as f64),
        rx: m.network_rx_bytes_per_sec,
        tx: m.network_tx_bytes_per_sec,
        gpu: m.gpu_percent,
    };
    let mut all = history().lock().unwrap_or_else(|e| e.into_inner());
    if !all.contains_key(&m.instance_id) && all.len() >= FOLLOWED {
        let evicted = all.keys().next().cloned();
        if let Some(key) = evicted {
            all.remove(&key);
        }
    }
    let (last, samples) = all
        .entry(m.instance_id.clone())
        .or_insert_with(|| (String::new(), VecDeque::new()));
    if *last != m.sampled_at {
        *last = m.sampled_at.clone();
        samples.push_back(sample);
        while samples.len() > SAMPLES {
            samples.pop_front();
        }
    }
    samples.iter().copied().collect()
}

/// One chart: a title, the latest value in words, and the SVG (presentation attributes only: the page's
/// policy allows no inline styles).
pub struct Chart {
    pub id: &'static str,
    pub title: &'static str,
    pub latest: String,
    /// What the chart's height stands for.
    pub scale: String,
    pub svg: String,
}

const WIDTH: f64 = 300.0;
const HEIGHT: f64 = 100.0;

/// A line per series over the samples, scaled to `max` (or to the largest value when `max` is `None`).
fn draw(id: &str, title: &str, series: &[(&str, Vec<f64>)], max: Option<f64>) -> String {
    let top = max.unwrap_or_else(|| {
        series
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .fold(1.0, f64::max)
    });
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-labelledby=\"{id}-t\" \
         preserveAspectRatio=\"none\"><title id=\"{id}-t\">{title}</title>\
         <rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"#ffffff\"/>"
    );
    for quarter in 1..4 {
        let y = HEIGHT * f64::from(quarter) / 4.0;
        svg.push_str(&format!(
            "<line x1=\"0\" y1=\"{y}\" x2=\"{WIDTH}\" y2=\"{y}\" stroke=\"#e3e6ea\" stroke-width=\"1\"/>"
        ));
    }
    for (colour, values) in series {
        let n = values.len();
        // The newest sample at the right edge, one slot per sample to the left.
        let slot = WIDTH / (SAMPLES - 1) as f64;
        let x = |i: usize| WIDTH - (n - 1 - i) as f64 * slot;
        let y = |v: f64| HEIGHT - (v.clamp(0.0, top) / top) * (HEIGHT - 4.0) - 2.0;
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        if n == 1 {
            svg.push_str(&format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/>",
                WIDTH - 3.0,
                y(values[0])
            ));
        } else if n > 1 {
            svg.push_str(&format!(
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" \
                 vector-effect=\"non-scaling-stroke\"/>",
                points.join(" ")
            ));
        }
    }
    svg.push_str("</svg>");
    svg
}

fn percent(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1} %"))
        .unwrap_or_else(|| "not reported".into())
}

fn rate(v: Option<f64>) -> String {
    match v {
        None => "not reported".into(),
        Some(b) if b >= 1_048_576.0 => format!("{:.1} MB/s", b / 1_048_576.0),
        Some(b) if b >= 1024.0 => format!("{:.1} KB/s", b / 1024.0),
        Some(b) => format!("{b:.0} B/s"),
    }
}

fn charts(m: &InstanceMetrics) -> Vec<Chart> {
    let samples = remember(m);
    let last = samples.last().copied();
    let of = |f: fn(&Sample) -> Option<f64>| samples.iter().filter_map(f).collect::<Vec<f64>>();
    let cpu = of(|s| Some(s.cpu));
    let memory = of(|s| s.memory);
    let rx = of(|s| s.rx);
    let tx = of(|s| s.tx);
    let gpu = of(|s| s.gpu);
    let percent_scale = "height: 0 to 100 %".to_string();
    let network_top = rx.iter().chain(tx.iter()).copied().fold(1.0, f64::max);
    vec![
        Chart {
            id: "chart-cpu",
            title: "CPU",
            latest: percent(last.map(|s| s.cpu)),
            scale: percent_scale.clone(),
            svg: draw(
                "chart-cpu",
                "CPU use, percent",
                &[("#1f5fbf", cpu)],
                Some(100.0),
            ),
        },
        Chart {
            id: "chart-memory",
            title: "Memory",
            latest: percent(last.and_then(|s| s.memory)),
            scale: percent_scale.clone(),
            svg: draw(
                "chart-memory",
                "Memory use, percent",
                &[("#2e7d32", memory)],
                Some(100.0),
            ),
        },
        Chart {
            id: "chart-network",
            title: "Network",
            latest: format!(
                "in {}, out {}",
                rate(last.and_then(|s| s.rx)),
                rate(last.and_then(|s| s.tx))
            ),
            scale: format!("height: 0 to {}", rate(Some(network_top))),
            svg: draw(
                "chart-network",
                "Network traffic in (blue) and out (orange), bytes per second",
                &[("#1f5fbf", rx), ("#b35900", tx)],
                None,
            ),
        },
        Chart {
            id: "chart-gpu",
            title: "GPU",
            latest: percent(last.and_then(|s| s.gpu)),
            scale: percent_scale,
            svg: draw(
                "chart-gpu",
                "GPU use, percent",
                &[("#6a1b9a", gpu)],
                Some(100.0),
            ),
        },
    ]
}

#[derive(Template)]
#[template(path = "instance_usage.html")]
struct Usage {
    id: String,
    charts: Vec<Chart>,
    sampled: String,
    unavailable: String,
}

/// The charts, or why there are none (metrics are sampled from ACTIVE instances only).
async fn usage(state: &crate::WebState, session: &WebSession, id: &str) -> Result<Usage, WebError> {
    let (charts, sampled, unavailable) =
        match state.services.instances.metrics(&session.caller, id).await {
            Ok(m) => (charts(&m), when(&m.sampled_at), String::new()),
            Err(barrack_core::Error::NotFound(e)) => {
                return Err(barrack_core::Error::NotFound(e).into());
            }
            Err(e) => (Vec::new(), String::new(), e.public_message()),
        };
    Ok(Usage {
        id: id.to_string(),
        charts,
        sampled,
        unavailable,
    })
}

/// The charts alone, refreshed by the page.
pub async fn usage_fragment(
    axum::extract::State(state): State,
    Signed(session): Signed,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    ok(&usage(&state, &session, &id).await?)
}

pub struct RuleView {
    pub id: String,
    pub direction: String,
    pub protocol: String,
    pub ports: String,
    pub remote: String,
    /// `instance`, or the firewall the rule comes from (not removable here).
    pub source: String,
}

pub fn rule_view(r: &SecurityRule) -> RuleView {
    let ports = match (r.port_range_min, r.port_range_max) {
        (Some(a), Some(b)) if a == b => a.to_string(),
        (Some(a), Some(b)) => format!("{a}–{b}"),
        (Some(a), None) | (None, Some(a)) => a.to_string(),
        _ => "all".into(),
    };
    RuleView {
        id: r.id.clone(),
        direction: r.direction.clone(),
        protocol: format!(
            "{} {}",
            r.ethertype,
            r.protocol.clone().unwrap_or_else(|| "any".into())
        ),
        ports,
        remote: r
            .remote_ip_prefix
            .clone()
            .unwrap_or_else(|| "anywhere".into()),
        source: r.source.clone(),
    }
}

/// What the rule form holds; a port that is not a number is reported at its field like the API does.
pub fn rule_request(form: &Form) -> Result<SecurityRuleRequest, barrack_core::Error> {
    let port = |field: &str| -> Result<Option<u32>, barrack_core::Error> {
        match form.get(field) {
            None => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|_| {
                barrack_core::Error::field(field, "Ports are whole numbers from 1 to 65535")
            }),
        }
    };
    Ok(SecurityRuleRequest {
        direction: form.get("direction").unwrap_or_default(),
        protocol: form.get("protocol"),
        ethertype: form.get("ethertype"),
        port_range_min: port("port_range_min")?,
        port_range_max: port("port_range_max")?,
        remote_ip_prefix: form.get("remote_ip_prefix"),
    })
}

/// The values a rule form shows again after the API refused it.
#[derive(Default, Clone)]
pub struct RuleValues {
    pub direction: String,
    pub protocol: String,
    pub ethertype: String,
    pub port_range_min: String,
    pub port_range_max: String,
    pub remote_ip_prefix: String,
}

impl RuleValues {
    pub fn of(form: &Form) -> RuleValues {
        let get = |k: &str| form.get(k).unwrap_or_default();
        RuleValues {
            direction: get("direction"),
            protocol: get("protocol"),
            ethertype: get("ethertype"),
            port_range_min: get("port_range_min"),
            port_range_max: get("port_range_max"),
            remote_ip_prefix: get("remote_ip_prefix"),
        }
    }
}

/// Fields of the instance page's forms (the page lists messages of other fields at the top).
pub const SHOWN: &str = "name,direction,protocol,ethertype,port_range_min,port_range_max,remote_ip_prefix,\
volume_id,volume_ids,volume_ids[0],firewall_id,instance_ids,instance_ids[0]";

#[derive(Template)]
#[template(path = "instance_extras.html")]
struct Extras<'a> {
    id: String,
    csrf: String,
    rule_action: String,
    active: bool,
    usage: String,
    uptime: String,
    cost: String,
    rules: Vec<RuleView>,
    rule: RuleValues,
    volumes: Vec<(String, String, String)>,
    attachable: Vec<(String, String)>,
    firewalls: Vec<(String, String, String, &'static str)>,
    firewall_choices: Vec<(String, String)>,
    errors: &'a Errors,
}

/// A duration in days, hours and minutes.
fn duration(ms: i64) -> String {
    let minutes = ms.max(0) / 60_000;
    let (d, h, m) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (d, h) {
        (0, 0) => format!("{m} min"),
        (0, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h {m} min"),
    }
}

/// This part of the instance page, rendered for `instances::page`.
pub async fn section(
    state: &crate::WebState,
    session: &WebSession,
    instance: &Instance,
    errors: &Errors,
    rule: RuleValues,
) -> Result<String, WebError> {
    let caller = &session.caller;
    let id = &instance.instance_id;
    let active = instance.status == "ACTIVE";
    let usage = if active {
        usage(state, session, id)
            .await?
            .render()
            .map_err(|e| WebError::Render(e.to_string()))?
    } else {
        String::new()
    };
    let cost = state.services.billing.resource_cost(caller, id).await?;
    let currency = cost.currency.unwrap_or(instance.billing.currency);
    let now = state.services.clock().now_ms();
    let volumes = instance
        .billing
        .breakdown
        .storage
        .data_volumes
        .iter()
        .map(|v| {
            (
                v.volume_id.clone(),
                v.name.clone(),
                format!("{} GB {}", v.size_gb, v.volume_type),
            )
        })
        .collect();
    // Volumes that could be attached: available ones of the instance's region (the first 100).
    let attachable = if active {
        state
            .services
            .volumes
            .list(
                caller,
                VolumeQuery {
                    page: Some(1),
                    limit: Some(100),
                    region: Some(instance.region.clone()),
                    status: Some("available".into()),
                },
                &[],
            )
            .await?
            .volumes
            .into_iter()
            .map(|v| {
                (
                    v.id,
                    format!("{} ({} GB {})", v.name, v.size_gb, v.volume_type),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    let attached = state.services.firewalls.of_instance(caller, id).await?;
    let firewall_choices = state
        .services
        .firewalls
        .list(
            caller,
            FirewallQuery {
                page: Some(1),
                limit: Some(100),
                region: Some(instance.region.clone()),
            },
            &[],
        )
        .await?
        .firewalls
        .into_iter()
        .filter(|f| !attached.firewalls.iter().any(|a| a.firewall_id == f.id))
        .map(|f| (f.id, f.name))
        .collect();
    Extras {
        rule_action: format!("/instances/{id}/rules"),
        id: id.clone(),
        csrf: session.csrf_token.clone(),
        active,
        usage,
        uptime: match cost.running_since_ms {
            Some(since) => duration(now - since),
            None => "not running".into(),
        },
        cost: money(cost.total, currency),
        rules: instance.security_rules.iter().map(rule_view).collect(),
        rule,
        volumes,
        attachable,
        firewalls: attached
            .firewalls
            .iter()
            .map(|f| {
                (
                    f.firewall_id.clone(),
                    f.name.clone(),
                    f.status.clone(),
                    badge(&f.status),
                )
            })
            .collect(),
        firewall_choices,
        errors,
    }
    .render()
    .map_err(|e| WebError::Render(e.to_string()))
}

/// After a change: back to the instance page, or the page again with the API's messages at the fields.
async fn outcome<T>(
    state: &crate::WebState,
    session: &WebSession,
    id: &str,
    result: Result<T, barrack_core::Error>,
    rule: RuleValues,
) -> Result<Response, WebError> {
    match result {
        Ok(_) => Ok(super::see(&format!("/instances/{id}"))),
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let errors = Errors::from_error(e)?;
            super::instances::page_with_errors(state, session, id, errors, rule, status).await
        }
    }
}

pub async fn add_rule(
    axum::extract::State(state): State,
    Signed(session): Signed,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, WebError> {
    form.check_csrf(&session)?;
    let result = match rule_request(&form) {
        Ok(request) => {
            state
                .services
                .instances
                .add_rule(&session.caller, &id, request)
                .await
        }
        Err(e) => Err(e),
    };
    outcome(&state, &session, &id, result, RuleValues::of(&form)).await
}

pub async fn remove_rule(
    axum::extract::State(state): State,
    Signed(session): Signed,
    Path((id, rule_id)): Path<(String, String)>,
    form: Form,
) -> Result<Response, WebError> {
    form.check_csrf(&session)?;
    let result = state
        .services
        .instances
        .remove_rule(&session.caller, &id, &rule_id)
        .await;
    outcome(&state, &session, &id, result, RuleValues::default()).await
}

pub async fn attach_volume(
    axum::extract::State(state): State,
    Signed(session): Signed,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, WebError> {
    form.check_csrf(&session)?;
    let result = match form.get("volume_id") {
        Some(volume) => {
            state
                .services
                .volumes
                .attach(
                    &session.caller,
                    &id,
                    VolumeIdsRequest {
                        volume_ids: vec![volume],
                    },
                )
                .await
        }
        None => Err(barrack_core::Error::field("volume_id", "Choose a volume")),
    };
    outcome(&state, &session, &id, result, RuleValues::default()).await
}

pub async fn detach_volume(
    axum::extract::State(state): State,
    Signed(session): Signed,
    Path((id, volume)): Path<(String, String)>,
    form: Form,
) -> Result<Response, WebError> {
    form.check_csrf(&session)?;
    let result = state
        .services
        .volumes
        .detach(
            &session.caller,
            &id,
            VolumeIdsRequest {
                volume_ids: vec![volume],
            },
        )
        .await;
    outcome(&state, &session, &id, result, RuleValues::default()).await
}

pub async fn attach_firewall(
    axum::extract::State(state): State,
    Signed(session): Signed,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, WebError> {
    form.check_csrf(&session)?;
    // The instance first: another account's instance is a 404 page, not a message about the firewall.
    state.services.instances.get(&session.caller, &id).await?;
    let result = match form.get("firewall_id") {
        Some(firewall) => {
            state
                .services
                .firewalls
                .attach(
                    &session.caller,
                    &firewall,
                    InstanceIdsRequest {
                        instance_ids: vec![id.clone()],
                    },
                )
                .await
        }
        None => Err(barrack_core::Error::field(
            "firewall_id",
            "Choose a firewall",
        )),
    };
    outcome(&state, &session, &id, result, RuleValues::default()).await
}

pub async fn detach_firewall(
    axum::extract::State(state): State,
    Signed(session): Signed,
    Path((id, firewall)): Path<(String, String)>,
    form: Form,
) -> Result<Response, WebError> {
    form.check_csrf(&session)?;
    state.services.instances.get(&session.caller, &id).await?;
    let result = state
        .services
        .firewalls
        .detach(
            &session.caller,
            &firewall,
            InstanceIdsRequest {
                instance_ids: vec![id.clone()],
            },
        )
        .await;
    outcome(&state, &session, &id, result, RuleValues::default()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_days_hours_and_minutes() {
        assert_eq!(duration(59_999), "0 min");
        assert_eq!(duration(5 * 60_000), "5 min");
        assert_eq!(duration(61 * 60_000), "1 h 1 min");
        assert_eq!(duration((2 * 1440 + 3 * 60 + 4) * 60_000), "2 d 3 h 4 min");
    }

    #[test]
    fn charts_are_svg_with_presentation_attributes_only() {
        let one = draw("c", "CPU use", &[("#000000", vec![50.0])], Some(100.0));
        assert!(one.starts_with("<svg class=\"chart\"") && one.ends_with("</svg>"));
        assert!(one.contains("<title id=\"c-t\">CPU use</title>") && one.contains("<circle"));
        assert!(!one.contains("style"));
        // The newest sample at the right edge; values above the top are clamped.
        let line = draw(
            "c",
            "t",
            &[("#000000", vec![0.0, 100.0, 250.0])],
            Some(100.0),
        );
        assert!(
            line.contains("points=\"") && line.contains("300.0,2.0\""),
            "{line}"
        );
        // Without a top, the largest value is the top.
        let scaled = draw("c", "t", &[("#000000", vec![10.0, 20.0])], None);
        assert!(scaled.contains("300.0,2.0\""), "{scaled}");
        assert!(draw("c", "t", &[("#000000", vec![])], None).contains("</svg>"));
    }

    #[test]
    fn remembered_samples_are_bounded_and_not_repeated() {
        let mut m = InstanceMetrics {
            instance_id: "BRK-TESTHIST".into(),
            sampled_at: "2026-01-01T00:00:00Z".into(),
            cpu_percent: 10.0,
            memory_total_bytes: 200,
            memory_used_bytes: Some(50),
            network_rx_bytes_per_sec: None,
            network_tx_bytes_per_sec: None,
            disk_read_bytes_per_sec: None,
            disk_write_bytes_per_sec: None,
            gpu_percent: None,
        };
        assert_eq!(remember(&m).len(), 1);
        assert_eq!(remember(&m).len(), 1, "the same sample twice counts once");
        m.sampled_at = "2026-01-01T00:00:10Z".into();
        let samples = remember(&m);
        assert_eq!(samples.len(), 2);
        assert_eq!(samples.last().unwrap().memory, Some(25.0));
        for i in 0..100 {
            m.sampled_at = format!("2026-01-02T00:{:02}:{:02}Z", i / 60, i % 60);
            remember(&m);
        }
        assert_eq!(remember(&m).len(), SAMPLES);
    }
}
