//! Prices on the platform's log never rewrite history: a usage record carries the cost of
//! the price in force when it happened, which a rebuild keeps. A monthly budget alerts once
//! per threshold and, with a hard stop, refuses what would cost past it.

use reqwest::{Method as M, StatusCode};
use serde_json::{Value, json};
use tenantry_store::testing::Harness;

use crate::client::Api;
use crate::support::BOOTSTRAP;

fn prices(gpt: &str) -> Value {
    json!({"currency": "USD", "default": {"prompt_per_1k": "0.001", "completion_per_1k": "0.002"},
           "models": {"gpt-4o": {"prompt_per_1k": gpt, "completion_per_1k": "0.015"}}})
}

async fn prices_and_budgets(api: Api) {
    let (t, _) = api.create(BOOTSTRAP, "/v1/tenants", json!({"slug": "budget", "name": "B"})).await;
    let t = t["id"].as_str().unwrap().to_owned();
    let (k, _) = api
        .create(BOOTSTRAP, &format!("/v1/tenants/{t}/api-keys"), json!({"name": "a", "role": "admin"}))
        .await;
    let key = k["key"].as_str().unwrap().to_owned();
    let usage = format!("/v1/tenants/{t}/usage");
    let record = |n: u64| {
        let (api, key, usage) = (&api, key.clone(), usage.clone());
        async move {
            api.call(
                &key,
                M::POST,
                &usage,
                Some(json!({"model": "gpt-4o", "kind": "chat", "prompt_tokens": n, "completion_tokens": n})),
            )
            .await
        }
    };

    // Only operators set prices.
    let (s, _, _) = api.call(&key, M::PUT, "/v1/prices", Some(prices("0.005"))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, set, _) = api.call(BOOTSTRAP, M::PUT, "/v1/prices", Some(prices("0.005"))).await;
    assert_eq!(s, StatusCode::OK, "{set}");
    let (s, p, _) = api
        .call(
            BOOTSTRAP,
            M::PUT,
            "/v1/prices",
            Some(json!({"default": {"prompt_per_1k": "-1", "completion_per_1k": "0"}})),
        )
        .await;
    assert_eq!((s, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("prices")), "{p}");

    // 1,000 + 1,000 tokens at 0.005 + 0.015: 0.02.
    assert_eq!(record(1000).await.0, StatusCode::CREATED);
    // New prices from now on; the first record keeps its price.
    let (s, _, _) = api.call(BOOTSTRAP, M::PUT, "/v1/prices", Some(prices("1"))).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, at) = record(1000).await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, report) = api.get_at(&key, &usage, at.unwrap()).await;
    assert_eq!(report["total_cost"], "1.035", "0.02 at the old price, then 1 + 0.015 at the new: {report}");
    let (_, history, _) = api.call(BOOTSTRAP, M::GET, "/v1/prices", None).await;
    assert_eq!(history["items"].as_array().map(Vec::len), Some(2), "{history}");

    // A rebuild (with this process's own, different, configured table) gives the same money.
    api.projections.rebuild(Some("billing_usage"), None, &tenantry_projections::Silent).await.unwrap();
    let (_, rebuilt) = api.get_at(&key, &usage, at.unwrap()).await;
    assert_eq!(rebuilt["total_cost"], report["total_cost"]);

    // A budget: spent so far shows; thresholds alert once each; the hard stop refuses.
    let budget = format!("/v1/tenants/{t}/budget");
    let (s, b, _) = api
        .call(
            &key,
            M::PATCH,
            &budget,
            Some(
                json!({"monthly": "2.00", "currency": "USD", "alert_at": [0.5, 0.9, 1.0], "hard_stop": true}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!((b["budget"]["monthly"].as_str(), b["spent"].as_str()), (Some("2"), Some("1.035")), "{b}");
    assert_eq!(b["crossed"], json!([]));
    // 1.035 + 0.25375 = 1.28875: past 0.5 only (it was past before the budget: told now).
    assert_eq!(record(250).await.0, StatusCode::CREATED);
    let (_, b, _) = api.call(&key, M::GET, &budget, None).await;
    assert_eq!((b["spent"].as_str(), b["crossed"].clone()), (Some("1.28875"), json!([0.5])), "{b}");
    assert_eq!(record(10).await.0, StatusCode::CREATED, "0.5 is not told twice");
    // 1.2989 + 0.5075 = 1.8064: past 0.9.
    assert_eq!(record(500).await.0, StatusCode::CREATED);
    // 1.8064 + 0.25375 would pass 2.00: refused, and nothing recorded.
    let (s, p, _) = record(250).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("budget")), "{p}");
    let (_, b, at) = api.call(&key, M::GET, &budget, None).await;
    assert_eq!((b["spent"].as_str(), b["crossed"].clone()), (Some("1.8064"), json!([0.5, 0.9])), "{b}");
    let (_, events, _) = api.call(&key, M::GET, &format!("/v1/tenants/{t}/events?limit=500"), None).await;
    let crossed: Vec<u64> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "budget.threshold_crossed")
        .map(|e| e["data"]["threshold_permille"].as_u64().unwrap())
        .collect();
    assert_eq!(crossed, [500, 900], "each once");
    let _ = at;
    // Bad budgets are refused by name; a user key may not set one.
    for (bad, field) in [
        (json!({"monthly": "abc"}), "monthly"),
        (json!({"monthly": "1", "alert_at": [0]}), "alert_at"),
        (json!({"monthly": "1", "currency": "usd"}), "currency"),
    ] {
        let (s, p, _) = api.call(&key, M::PATCH, &budget, Some(bad)).await;
        assert_eq!((s, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(field)), "{p}");
    }
    // Removed: nothing is refused any more.
    let (s, b, _) = api.call(&key, M::PATCH, &budget, Some(json!({"monthly": null}))).await;
    assert_eq!((s, b["budget"].clone()), (StatusCode::OK, Value::Null));
    assert_eq!(record(250).await.0, StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prices_and_budgets_on_sqlite() {
    prices_and_budgets(Api::start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prices_and_budgets_on_postgres() {
    let Some(h) = Harness::postgres().await else { return };
    prices_and_budgets(Api::start(Some(h.url.clone())).await).await;
}
