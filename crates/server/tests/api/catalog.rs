use barrack_api::catalog::{
    CapacitySetting, CatalogQuery, PricingRequest, ResourceType, SetCapacityRequest,
};
use barrack_api::{Currency, Tier};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::common::{Db, TestApp};
use crate::on_both_databases;

on_both_databases!(
    regions_models_and_images_come_from_the_configuration,
    pricing_has_the_documented_shape_with_every_model_and_type,
    pricing_quotes_match_the_documented_rates,
    pricing_rejects_bad_values_with_the_field_named,
    pricing_adds_ai_prices_only_when_asked,
    stock_is_capacity_minus_allocations_per_configuration,
);

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

async fn regions_models_and_images_come_from_the_configuration(db: Db) {
    let app = TestApp::start(db).await;
    let anon = app.anonymous();
    let regions = anon.regions(&CatalogQuery::default()).await.unwrap();
    let names: Vec<&str> = regions
        .data
        .regions
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["CANADA-1", "FINLAND-1", "FINLAND-2", "FINLAND-3"]);
    assert!(regions.tier.is_none(), "anonymous calls have no tier");
    let canada = &regions.data.regions[0];
    assert_eq!(canada.tier, Tier::Legacy);
    assert_eq!(canada.volume_types, ["SSD"]);

    let advanced = anon
        .regions(&CatalogQuery {
            tier: Some(Tier::Advanced),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(advanced.data.regions.len(), 3);

    let specs = anon
        .gpu_specs(&CatalogQuery::default())
        .await
        .unwrap()
        .data
        .gpu_specs;
    assert_eq!(specs.len(), 9);
    let a6000 = specs.iter().find(|s| s.model == "RTX-A6000").unwrap();
    assert_eq!(a6000.counts, [1, 2, 4]);
    assert_eq!(a6000.prices[&Currency::USD].0, d("0.69"));
    let h100 = specs.iter().find(|s| s.model == "H100-SXM5-80GB").unwrap();
    assert_eq!(
        (h100.vcpus_per_gpu * 4, h100.ram_gb_per_gpu * 4),
        (176, 740)
    );
    assert_eq!(h100.counts, [1, 2, 4, 8]);

    let images = anon
        .os_images(&CatalogQuery {
            region: Some("FINLAND-2".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let names: Vec<&str> = images.data.images.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["Ubuntu 24.04 + CUDA 12.8 Open + Docker"]);
    let legacy = anon
        .os_images(&CatalogQuery {
            region: Some("CANADA-1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(legacy.data.images.len(), 4);

    let err = anon
        .os_images(&CatalogQuery {
            region: Some("MARS-1".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(err.field_errors().unwrap().contains_key("region"));

    // Each filter narrows every list it is given to: a region's models, a model's regions and images.
    let b300 = CatalogQuery {
        gpu_model: Some("B300-262GB".into()),
        ..Default::default()
    };
    let regions = anon.regions(&b300).await.unwrap().data.regions;
    let names: Vec<&str> = regions.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["FINLAND-1"]);
    let images = anon.os_images(&b300).await.unwrap().data.images;
    assert!(!images.is_empty());
    assert!(images.iter().all(|i| i.region == "FINLAND-1"), "{images:?}");
    let finland = CatalogQuery {
        region: Some("FINLAND-1".into()),
        ..Default::default()
    };
    let specs = anon.gpu_specs(&finland).await.unwrap().data.gpu_specs;
    assert!(!specs.is_empty());
    assert!(
        specs
            .iter()
            .all(|s| s.regions.iter().any(|r| r == "FINLAND-1")),
        "{specs:?}"
    );
    assert!(specs.iter().all(|s| s.model != "RTX-A6000"));

    // With a key, the envelope names the key's tier.
    let with_key = app.admin.regions(&CatalogQuery::default()).await.unwrap();
    assert_eq!(with_key.tier, Some(Tier::Advanced));
    app.stop().await;
}

async fn pricing_has_the_documented_shape_with_every_model_and_type(db: Db) {
    let app = TestApp::start(db).await;
    let raw = app
        .admin
        .raw(
            Method::POST,
            "/api/pricing/",
            Some(&json!({"resource_type": "volumes"})),
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 200);
    let body = raw.body;
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        ["message", "pricing_data", "request_id", "success"],
        "flat, pricing_data in place of data"
    );
    assert_eq!(body["success"], true);
    assert_eq!(
        body["message"],
        "Pricing information retrieved successfully"
    );
    let p = &body["pricing_data"];
    assert_eq!(
        p["volumes"]["pricing"]["legacy"]["SSD"],
        json!({"prices": {"USD": 0.1, "EUR": 0.1, "INR": 10}, "unit": "per TB per hour"})
    );
    assert_eq!(
        p["volumes"]["pricing"]["advanced"]["HDD"],
        json!({"prices": {"USD": 0.08, "EUR": 0.1, "INR": 8}, "unit": "per TB per hour"})
    );
    assert_eq!(
        p["volumes"]["pricing"]["advanced"]["NVMe"],
        json!({"prices": {"USD": 0.3, "EUR": 0.35, "INR": 30}, "unit": "per TB per hour"})
    );
    assert_eq!(
        p["volumes"]["minimum_size_gb"], 100,
        "the smallest volume that boots, as published"
    );
    let text = p["volumes"]["description"].as_str().unwrap();
    assert!(text.contains("data volumes from 10 GB"), "{text}");
    assert!(p["volumes"]["description"].is_string());
    assert_eq!(
        p["snapshots"]["pricing"]["legacy"],
        json!({"prices": {"USD": 0.1, "EUR": 0.1, "INR": 10}, "fixed_size_gb": 100, "unit": "per hour (fixed 100GB)"})
    );
    assert_eq!(
        p["gpus"]["pricing"]["legacy"]["RTX-A6000"],
        json!({"prices": {"USD": 0.69, "EUR": 0.75, "INR": 49}, "max_count": 4, "unit": "per GPU per hour"})
    );
    assert_eq!(
        p["gpus"]["pricing"]["advanced"]["H100-SXM5-80GB"],
        json!({"prices": {"USD": 2.49, "EUR": 2.69, "INR": 209}, "max_count": 8, "unit": "per GPU per hour"})
    );
    assert_eq!(p["gpus"]["description"], "GPU pricing by model and tier");
    let models = |tier: &str| p["gpus"]["pricing"][tier].as_object().unwrap().len();
    assert_eq!((models("legacy"), models("advanced")), (5, 4));
    let m = &p["metadata"];
    assert_eq!(m["supported_currencies"], json!(["USD", "EUR", "INR"]));
    assert_eq!(m["supported_tiers"], json!(["legacy", "advanced"]));
    assert_eq!(m["volume_minimum_size_gb"], 100);
    assert_eq!(m["authenticated_user"], "admin");
    assert_eq!(m["authentication_type"], "api_key");
    assert!(m["timestamp"].is_i64());
    assert_eq!(body["request_id"].as_str().unwrap().len(), 8);

    // Anonymous callers get the same sections without the caller fields; GET takes the same fields.
    let anon = app
        .anonymous()
        .raw(Method::GET, "/api/pricing/?tier=legacy&currency=INR", None)
        .await
        .unwrap();
    assert_eq!(anon.status, 200);
    let p = &anon.body["pricing_data"];
    assert!(p["metadata"].get("authenticated_user").is_none());
    assert!(
        p["gpus"]["pricing"].get("advanced").is_none(),
        "tier narrows the entries"
    );
    assert_eq!(
        p["gpus"]["pricing"]["legacy"]["L40"]["prices"],
        json!({"INR": 99}),
        "currency narrows the prices"
    );
    app.stop().await;
}

async fn pricing_quotes_match_the_documented_rates(db: Db) {
    let app = TestApp::start(db).await;
    let gpus = app
        .admin
        .pricing(&PricingRequest {
            gpu_model: Some("H100-SXM5-80GB".into()),
            gpu_count: Some(4),
            ..Default::default()
        })
        .await
        .unwrap();
    let quote = gpus.pricing_data.quote.unwrap();
    assert_eq!(quote.resource_type, ResourceType::Gpus);
    assert_eq!(quote.hourly_rate.0, d("9.96"));
    assert_eq!(quote.per_minute_rate.0, d("0.166"));
    assert_eq!(quote.currency, Currency::USD);

    let volume = app
        .admin
        .pricing(&PricingRequest {
            volume_type: Some("NVMe".into()),
            volume_size_gb: Some(100),
            ..Default::default()
        })
        .await
        .unwrap()
        .pricing_data
        .quote
        .unwrap();
    assert_eq!(volume.resource_type, ResourceType::Volumes);
    assert_eq!(volume.hourly_rate.0, d("0.0293"));
    assert_eq!(
        volume.per_minute_rate.0,
        d("0.000488"),
        "what a minute of the disk is billed (its billing records show the same), not display-rounded"
    );

    let eur = app
        .admin
        .pricing(&PricingRequest {
            gpu_model: Some("B200-180GB".into()),
            gpu_count: Some(8),
            currency: Some(Currency::EUR),
            ..Default::default()
        })
        .await
        .unwrap()
        .pricing_data
        .quote
        .unwrap();
    assert_eq!(eur.hourly_rate.0, d("35.12"));
    assert_eq!(eur.monthly_cost.0, d("25637.6"));

    let none = app
        .admin
        .pricing(&PricingRequest {
            resource_type: Some(ResourceType::Gpus),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        none.pricing_data.quote.is_none(),
        "no quote without a configuration"
    );

    // Snapshots: every tier's price (a snapshot costs as much whichever tier took it).
    let snapshot = |tier| PricingRequest {
        resource_type: Some(ResourceType::Snapshots),
        tier: Some(tier),
        ..Default::default()
    };
    let legacy = app.admin.pricing(&snapshot(Tier::Legacy)).await.unwrap();
    let legacy = legacy.pricing_data.quote.unwrap();
    assert!(legacy.hourly_rate.0 > Decimal::ZERO);
    assert!(legacy.size_gb.is_some());
    let advanced = app.admin.pricing(&snapshot(Tier::Advanced)).await.unwrap();
    let advanced = advanced.pricing_data.quote.unwrap();
    assert_eq!(advanced.resource_type, ResourceType::Snapshots);
    assert_eq!(advanced.hourly_rate, legacy.hourly_rate);
    assert_eq!(advanced.size_gb, Some(100));
    app.stop().await;
}

async fn pricing_adds_ai_prices_only_when_asked(db: Db) {
    let app = TestApp::start(db).await;
    let anon = app.anonymous();
    let get = |path: &'static str| {
        let anon = &anon;
        async move {
            let raw = anon.raw(Method::GET, path, None).await.unwrap();
            assert_eq!(raw.status, 200, "{path}: {}", raw.body);
            raw.body["pricing_data"].clone()
        }
    };
    let plain = get("/api/pricing/").await;
    let mut sections: Vec<&str> = plain
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    sections.sort();
    assert_eq!(sections, ["gpus", "metadata", "snapshots", "volumes"]);

    let with_ai = get("/api/pricing/?include=ai").await;
    // The documented sections are the same to the byte with or without the fourth.
    for section in ["volumes", "snapshots", "gpus"] {
        assert_eq!(
            serde_json::to_string(&plain[section]).unwrap(),
            serde_json::to_string(&with_ai[section]).unwrap(),
            "{section}"
        );
    }
    let ai = &with_ai["ai"];
    assert_eq!(
        ai["pricing"]["barrack-sim-small"],
        json!({"input": {"USD": 0.1, "EUR": 0.09, "INR": 8}, "output": {"USD": 0.3, "EUR": 0.28, "INR": 25},
               "context_length": 8192, "unit": "per million tokens"})
    );
    assert_eq!(
        ai["pricing"]["barrack-sim-large"]["output"],
        json!({"USD": 1.8, "EUR": 1.65, "INR": 150})
    );
    assert!(ai["description"].is_string());

    // POST takes it as a body field; `currency` narrows these prices too.
    let raw = anon
        .raw(
            Method::POST,
            "/api/pricing/",
            Some(&json!({"include": "ai", "currency": "EUR"})),
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 200);
    assert_eq!(
        raw.body["pricing_data"]["ai"]["pricing"]["barrack-sim-small"]["input"],
        json!({"EUR": 0.09})
    );
    let raw = anon
        .raw(Method::POST, "/api/pricing/", Some(&json!({"include": ""})))
        .await
        .unwrap();
    assert!(raw.body["pricing_data"].get("ai").is_none());
    app.stop().await;
}

async fn pricing_rejects_bad_values_with_the_field_named(db: Db) {
    let app = TestApp::start(db).await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"resource_type": "bogus"}), "resource_type"),
        (json!({"tier": "premium"}), "tier"),
        (json!({"currency": "GBP"}), "currency"),
        (json!({"gpu_model": "GTX-1080"}), "gpu_model"),
        (
            json!({"gpu_model": "RTX-A6000", "gpu_count": 8}),
            "gpu_count",
        ),
        (
            json!({"gpu_model": "RTX-A6000", "tier": "advanced"}),
            "gpu_model",
        ),
        (json!({"volume_type": "Tape"}), "volume_type"),
        (json!({"volume_size_gb": 5}), "volume_size_gb"),
        (json!({"gpu_count": "four"}), "gpu_count"),
        (json!({"surprise": 1}), "surprise"),
        (json!({"include": "ai,gpu"}), "include"),
    ];
    for (body, field) in cases {
        let raw = app
            .anonymous()
            .raw(Method::POST, "/api/pricing/", Some(&body))
            .await
            .unwrap();
        assert_eq!(raw.status, 400, "{body}");
        assert_eq!(raw.body["code"], "VALIDATION_ERROR", "{body}");
        assert_eq!(raw.body["success"], false);
        assert!(
            raw.body["errors"].get(field).is_some(),
            "{body} should name {field}: {}",
            raw.body
        );
    }
    // A query's value is named and said as a body member's would be, not in the parser's words.
    for (query, field, message) in [
        (
            "gpu_count=lots",
            "gpu_count",
            "Must be a whole number, not \"lots\"",
        ),
        (
            "gpu_count=-1",
            "gpu_count",
            "Must not be negative, not \"-1\"",
        ),
        (
            "volume_size_gb=99999999999&volume_type=NVMe",
            "volume_size_gb",
            "Must be a smaller whole number, not \"99999999999\"",
        ),
    ] {
        let raw = app
            .anonymous()
            .raw(Method::GET, &format!("/api/pricing/?{query}"), None)
            .await
            .unwrap();
        assert_eq!(raw.status, 400, "{query}");
        assert_eq!(raw.body["errors"][field][0], message, "{query}");
    }
    let raw = app
        .anonymous()
        .raw(
            Method::POST,
            "/api/pricing/",
            Some(&json!({"currency": "GBP"})),
        )
        .await
        .unwrap();
    assert_eq!(
        raw.body["errors"]["currency"][0],
        "Must be one of USD, EUR, INR, not \"GBP\""
    );
    app.stop().await;
}

async fn stock_is_capacity_minus_allocations_per_configuration(db: Db) {
    let app = TestApp::start(db).await;
    let query = CatalogQuery {
        region: Some("FINLAND-1".into()),
        gpu_model: Some("B300-262GB".into()),
        ..Default::default()
    };
    let stock = app
        .anonymous()
        .gpu_stocks(&query)
        .await
        .unwrap()
        .data
        .stocks;
    assert_eq!(stock.len(), 1);
    assert_eq!((stock[0].total, stock[0].available), (8, 8));
    let by_count: Vec<(u32, bool, u32)> = stock[0]
        .configurations
        .iter()
        .map(|c| (c.gpu_count, c.available, c.max_instances))
        .collect();
    assert_eq!(
        by_count,
        [(1, true, 8), (2, true, 4), (4, true, 2), (8, true, 1)]
    );

    // Operators change capacity; allocations are taken by the same conditional statement deploys use.
    app.admin
        .admin_set_capacity(&SetCapacityRequest {
            capacity: vec![CapacitySetting {
                region: "FINLAND-1".into(),
                gpu_model: "B300-262GB".into(),
                total: 6,
            }],
        })
        .await
        .unwrap();
    let store = app.services().store();
    let mut tx = store.begin().await.unwrap();
    assert!(
        barrack_store::capacity::allocate(&mut tx, "FINLAND-1", "B300-262GB", 4, 0)
            .await
            .unwrap()
    );
    assert!(
        !barrack_store::capacity::allocate(&mut tx, "FINLAND-1", "B300-262GB", 4, 0)
            .await
            .unwrap(),
        "only 2 left"
    );
    tx.commit().await.unwrap();
    let stock = app
        .anonymous()
        .gpu_stocks(&query)
        .await
        .unwrap()
        .data
        .stocks;
    assert_eq!((stock[0].total, stock[0].available), (6, 2));
    let by_count: Vec<(u32, bool)> = stock[0]
        .configurations
        .iter()
        .map(|c| (c.gpu_count, c.available))
        .collect();
    assert_eq!(by_count, [(1, true), (2, true), (4, false), (8, false)]);

    let bad = app
        .admin
        .admin_set_capacity(&SetCapacityRequest {
            capacity: vec![CapacitySetting {
                region: "CANADA-1".into(),
                gpu_model: "B300-262GB".into(),
                total: 6,
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(bad.status(), Some(400));
    assert!(
        bad.field_errors()
            .unwrap()
            .contains_key("capacity[0].gpu_model")
    );
    app.stop().await;
}
