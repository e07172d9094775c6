//! Deploying an instance: region, GPU model and count with live stock and a live price quote, boot image,
//! SSH key, startup script, cloud-init; the API's messages shown at the fields.

use askama::Template;
use axum::extract::RawQuery;
use axum::http::StatusCode;
use axum::response::Response;
use barrack_api::PageQuery;
use barrack_api::catalog::{CatalogQuery, PricingRequest, ResourceType};
use barrack_api::instances::DeployRequest;
use barrack_core::accounts::web_sessions::WebSession;

use crate::State;
use crate::error::WebError;
use crate::form::Form;
use crate::session::Signed;
use crate::view::{Errors, Nav, money, ok, render};

#[derive(Template)]
#[template(path = "deploy.html")]
struct DeployPage {
    nav: Nav,
    errors: Errors,
    values: Values,
    regions: Vec<String>,
    gpu_models: Vec<String>,
    images: Vec<String>,
    /// The account's custom images ready to boot, and its bootable volumes free to boot from.
    custom_images: Vec<String>,
    boot_volumes: Vec<(String, String)>,
    keys: Vec<(String, String)>,
    scripts: Vec<(String, String)>,
    stock: Vec<StockRow>,
    quote: String,
}

#[derive(Default)]
struct Values {
    instance_name: String,
    region: String,
    gpu_model: String,
    gpu_count: String,
    image_name: String,
    volume_id: String,
    ssh_key: String,
    script_id: String,
    public_ip: bool,
    cloud_init: String,
}

struct StockRow {
    region: String,
    gpu_model: String,
    available: u32,
    total: u32,
    counts: String,
}

#[derive(Template)]
#[template(path = "quote.html")]
struct QuoteFragment {
    quote: String,
}

/// Fields the deploy form shows; the API's messages about others are listed above the form.
const SHOWN: [&str; 10] = [
    "instance_name",
    "region",
    "gpu_model",
    "gpu_count",
    "image_name",
    "volume_id",
    "ssh_key",
    "script_id",
    "public_ip",
    "cloud_init",
];

async fn deploy_page(
    state: &crate::WebState,
    session: &WebSession,
    values: Values,
    errors: Errors,
) -> Result<DeployPage, WebError> {
    let services = &state.services;
    let caller = &session.caller;
    let tier = Some(caller.tier);
    let catalog = CatalogQuery {
        tier,
        region: None,
        gpu_model: None,
    };
    let regions = services.catalog.regions(&catalog)?;
    let mut gpu_models: Vec<String> = regions
        .iter()
        .flat_map(|r| r.gpu_models.iter().cloned())
        .collect();
    gpu_models.sort();
    gpu_models.dedup();
    let mut images: Vec<String> = services
        .catalog
        .os_images(&catalog)?
        .into_iter()
        .map(|i| i.name)
        .collect();
    images.sort();
    images.dedup();
    let stock = services
        .catalog
        .stocks(&catalog)
        .await?
        .into_iter()
        .map(|s| StockRow {
            counts: s
                .configurations
                .iter()
                .filter(|c| c.available)
                .map(|c| c.gpu_count.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            region: s.region,
            gpu_model: s.gpu_model,
            available: s.available,
            total: s.total,
        })
        .collect();
    let keys = services
        .ssh_keys
        .list(caller)
        .await?
        .into_iter()
        .map(|k| (k.id, k.name))
        .collect();
    let scripts = services
        .scripts
        .list(
            caller,
            PageQuery {
                page: Some(1),
                limit: Some(100),
            },
        )
        .await?
        .scripts
        .into_iter()
        .map(|s| (s.id, s.name))
        .collect();
    let custom_images = services
        .images
        .list(
            caller,
            barrack_api::images::ImageQuery {
                page: Some(1),
                limit: Some(100),
                region: None,
                status: Some("SUCCESS".into()),
            },
            &[],
        )
        .await?
        .images
        .into_iter()
        .map(|i| i.name)
        .collect();
    let boot_volumes = services
        .volumes
        .list(
            caller,
            barrack_api::volumes::VolumeQuery {
                page: Some(1),
                limit: Some(100),
                region: None,
                status: Some("available".into()),
            },
            &[],
        )
        .await?
        .volumes
        .into_iter()
        .filter(|v| v.bootable)
        .map(|v| (v.id, format!("{} ({}, {} GB)", v.name, v.region, v.size_gb)))
        .collect();
    let quote = quote_text(state, session, &values.gpu_model, &values.gpu_count);
    Ok(DeployPage {
        custom_images,
        boot_volumes,
        nav: Nav::new(session, "deploy"),
        errors,
        regions: regions.into_iter().map(|r| r.name).collect(),
        gpu_models,
        images,
        keys,
        scripts,
        stock,
        quote,
        values,
    })
}

/// The hourly price of a GPU model and count in the account's currency, or why there is none.
fn quote_text(state: &crate::WebState, session: &WebSession, model: &str, count: &str) -> String {
    let Ok(count) = count.parse::<u32>() else {
        return "Choose a GPU model and count to see the price.".into();
    };
    if model.is_empty() {
        return "Choose a GPU model and count to see the price.".into();
    }
    let caller = &session.caller;
    let currency = barrack_core::countries::currency_for(caller.account.country.as_deref());
    let request = PricingRequest {
        tier: Some(caller.tier),
        currency: Some(currency),
        resource_type: Some(ResourceType::Gpus),
        gpu_model: Some(model.to_string()),
        gpu_count: Some(count),
        ..PricingRequest::default()
    };
    let now = state.services.clock().now_ms();
    match state.services.catalog.pricing(&request, Some(caller), now) {
        Ok(data) => match data.quote {
            Some(q) => format!(
                "{} × {}: {} per hour (GPUs; the OS disk adds a little)",
                count,
                model,
                money(q.hourly_rate.0, q.currency)
            ),
            None => "No price for this configuration.".into(),
        },
        // The fields' own messages ("GPU count for ... must be one of ..."), not the envelope's.
        Err(e) => match e.field_errors() {
            Some(errors) => errors
                .values()
                .flatten()
                .cloned()
                .collect::<Vec<_>>()
                .join(" "),
            None => e.public_message(),
        },
    }
}

pub async fn form(
    axum::extract::State(state): State,
    Signed(session): Signed,
) -> Result<Response, WebError> {
    let values = Values {
        gpu_count: "1".into(),
        public_ip: true,
        ..Values::default()
    };
    ok(&deploy_page(&state, &session, values, Errors::default()).await?)
}

/// The live quote, refreshed as the region, model or count change.
pub async fn quote(
    axum::extract::State(state): State,
    Signed(session): Signed,
    RawQuery(raw): RawQuery,
) -> Result<Response, WebError> {
    let q = Form::parse(&raw.unwrap_or_default().into_bytes().into());
    let quote = quote_text(
        &state,
        &session,
        &q.get("gpu_model").unwrap_or_default(),
        &q.get("gpu_count").unwrap_or_default(),
    );
    ok(&QuoteFragment { quote })
}

pub async fn submit(
    axum::extract::State(state): State,
    Signed(session): Signed,
    form: Form,
) -> Result<Response, WebError> {
    form.check_csrf(&session)?;
    let values = Values {
        instance_name: form.get("instance_name").unwrap_or_default(),
        region: form.get("region").unwrap_or_default(),
        gpu_model: form.get("gpu_model").unwrap_or_default(),
        gpu_count: form.get("gpu_count").unwrap_or_default(),
        image_name: form.get("image_name").unwrap_or_default(),
        volume_id: form.get("volume_id").unwrap_or_default(),
        ssh_key: form.get("ssh_key").unwrap_or_default(),
        script_id: form.get("script_id").unwrap_or_default(),
        public_ip: form.checked("public_ip"),
        cloud_init: form.raw("cloud_init").unwrap_or_default(),
    };
    let Ok(gpu_count) = values.gpu_count.parse::<u32>() else {
        let errors = Errors::from_error(barrack_core::Error::field(
            "gpu_count",
            "GPU count must be a whole number",
        ))?;
        let page = deploy_page(&state, &session, values, errors).await?;
        return render(StatusCode::BAD_REQUEST, &page);
    };
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let request = DeployRequest {
        gpu_model: values.gpu_model.clone(),
        gpu_count,
        region: values.region.clone(),
        instance_name: values.instance_name.clone(),
        image_name: some(&values.image_name),
        volume_id: some(&values.volume_id),
        boot_from_volume: !values.volume_id.is_empty(),
        ssh_key: some(&values.ssh_key),
        public_ip: values.public_ip,
        security_rules: Vec::new(),
        cloud_init: some(&values.cloud_init),
        os_volume: None,
        existing_volumes: Vec::new(),
        volumes: Vec::new(),
        script_id: some(&values.script_id),
        hold_id: None,
        hold: false,
        labels: Default::default(),
        ttl_minutes: None,
        expires_at: None,
        on_expiry: None,
    };
    match state
        .services
        .instances
        .deploy(&session.caller, request)
        .await
    {
        Ok(created) => Ok(super::see(&format!("/instances/{}", created.instance_id))),
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let errors = Errors::from_error_at(
                e,
                &[
                    ("SSH key", "ssh_key"),
                    ("Script", "script_id"),
                    ("Volume", "volume_id"),
                    ("An instance named", "instance_name"),
                    ("cloud_init", "cloud_init"),
                ],
            )?;
            let mut page = deploy_page(&state, &session, values, errors).await?;
            page.errors
                .regions_offered(&page.values.region, &page.regions);
            page.errors
                .gpu_models_offered(&page.values.gpu_model, &page.gpu_models);
            render(status, &page)
        }
    }
}

impl DeployPage {
    fn other_errors(&self) -> Vec<String> {
        self.errors.others(&SHOWN.join(","))
    }

    fn quote_html(&self) -> String {
        QuoteFragment {
            quote: self.quote.clone(),
        }
        .render()
        .unwrap_or_default()
    }
}
