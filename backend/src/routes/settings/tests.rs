use axum::body::Body;
use axum::http::StatusCode;
use serde_json::json;

use crate::test_support::{
    admin, call, key, signed, signed_json, signed_with_body, state, user, with_merchants,
};

const ACME: &str = "/api/merchants/acme/settings";

#[tokio::test]
async fn the_owner_reads_its_settings() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    let (status, body) = call(&state, signed("GET", ACME, &user("acme"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["data"]["merchantId"], "acme");
    assert_eq!(body["data"]["allowedDomains"], json!(["acme.com"]));
    assert_eq!(body["data"]["plan"], "free");
    assert_eq!(body["requestId"], "req-test");
}

#[tokio::test]
async fn another_merchants_user_can_neither_read_nor_change_them() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    let (status, body) = call(&state, signed("GET", ACME, &user("globex"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "FORBIDDEN");
    assert_eq!(body["error"], "Access denied");
    assert!(body.get("data").is_none(), "{body}");

    let put = json!({"allowedDomains": ["evil.io"]});
    let (status, _) = call(&state, signed_json("PUT", ACME, &user("globex"), &put)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Access is checked before the body is judged.
    let (status, _) = call(
        &state,
        signed_with_body("PUT", ACME, &user("globex"), None, Body::from("nope")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let acme = state.store.get_merchant("acme").await.unwrap().unwrap();
    assert_eq!(acme.allowed_domains, ["acme.com"]);
    assert!(
        !state
            .store
            .any_merchant_allows_host("evil.io")
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn admins_reach_every_merchant_and_an_unknown_one_is_404() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    let (status, body) = call(&state, signed("GET", ACME, &admin())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["merchantId"], "acme");

    let nobody = "/api/merchants/nobody/settings";
    let (status, body) = call(&state, signed("GET", nobody, &admin())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "NOT_FOUND");
    assert_eq!(body["error"], "merchant nobody not found");
    let put = json!({"allowedDomains": []});
    let (status, _) = call(&state, signed_json("PUT", nobody, &admin(), &put)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A non-admin hears 403 first, so it cannot probe which merchants exist.
    let (status, _) = call(&state, signed("GET", nobody, &user("globex"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_api_key_of_the_same_merchant_is_not_a_portal_user() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    let (status, body) = call(&state, signed("GET", ACME, &key("acme", &["*"]))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["success"], false);
}

#[tokio::test]
async fn put_normalizes_deduplicates_and_bumps_updated_at() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    let before = state.store.get_merchant("acme").await.unwrap().unwrap();
    let put = json!({"allowedDomains": ["Shop.Acme.com.", "merchant-store.com", "shop.acme.com"]});
    let (status, body) = call(&state, signed_json("PUT", ACME, &user("acme"), &put)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"]["allowedDomains"],
        json!(["shop.acme.com", "merchant-store.com"])
    );
    assert_eq!(body["data"]["plan"], "free", "an absent plan is kept");
    let updated_at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(body["data"]["updatedAt"].clone()).unwrap();
    assert!(updated_at > before.updated_at);

    let (_, body) = call(&state, signed("GET", ACME, &user("acme"))).await;
    assert_eq!(
        body["data"]["allowedDomains"],
        json!(["shop.acme.com", "merchant-store.com"])
    );
    // The edge's lookup sees the change: the new domains, not the old one.
    let allows = |host: &'static str| {
        let store = state.store.clone();
        async move { store.any_merchant_allows_host(host).await.unwrap() }
    };
    assert!(allows("www.merchant-store.com").await);
    assert!(allows("shop.acme.com").await);
    assert!(!allows("acme.com").await);
}

#[tokio::test]
async fn a_bad_domain_is_named_with_its_index_and_nothing_changes() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    for (bad, index) in [
        (json!(["acme.com", "https://acme.com"]), 1),
        (json!(["*.acme.com"]), 0),
        (json!(["ok.com", "fine.com", "acme.com:443"]), 2),
        (json!(["acme.com/path"]), 0),
    ] {
        let put = json!({"allowedDomains": bad});
        let (status, body) = call(&state, signed_json("PUT", ACME, &user("acme"), &put)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{put}");
        assert_eq!(body["code"], "VALIDATION_ERROR");
        let field = format!("allowedDomains[{index}]");
        assert_eq!(body["field"], field.as_str());
        let error = body["error"].as_str().unwrap();
        assert!(error.starts_with(&field), "{error}");
        assert!(error.contains(bad[index].as_str().unwrap()), "{error}");
    }
    let too_many: Vec<String> = (0..=super::MAX_DOMAINS)
        .map(|i| format!("d{i}.com"))
        .collect();
    let put = json!({"allowedDomains": too_many});
    let (status, body) = call(&state, signed_json("PUT", ACME, &user("acme"), &put)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "allowedDomains");

    let acme = state.store.get_merchant("acme").await.unwrap().unwrap();
    assert_eq!(acme.allowed_domains, ["acme.com"]);
}

#[tokio::test]
async fn only_an_admin_changes_the_plan() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    let same = json!({"allowedDomains": ["acme.com"], "plan": "free"});
    let (status, _) = call(&state, signed_json("PUT", ACME, &user("acme"), &same)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "sending the current plan back is fine"
    );

    let upgrade = json!({"allowedDomains": ["acme.com"], "plan": "enterprise"});
    let (status, body) = call(&state, signed_json("PUT", ACME, &user("acme"), &upgrade)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "Only an administrator may change the plan");
    assert_eq!(
        state
            .store
            .get_merchant("acme")
            .await
            .unwrap()
            .unwrap()
            .plan,
        "free"
    );

    let (status, body) = call(&state, signed_json("PUT", ACME, &admin(), &upgrade)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["plan"], "enterprise");

    let bad = json!({"allowedDomains": [], "plan": "gold plan"});
    let (status, body) = call(&state, signed_json("PUT", ACME, &admin(), &bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "plan");
}

#[tokio::test]
async fn malformed_bodies_are_envelopes_naming_the_problem() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    let owner = user("acme");

    let (status, body) = call(
        &state,
        signed_json("PUT", ACME, &owner, &json!({"allowedDomain": ["acme.com"]})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "VALIDATION_ERROR");
    assert_eq!(body["field"], "allowedDomain", "an unknown field is named");

    let (status, body) = call(&state, signed_json("PUT", ACME, &owner, &json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "allowedDomains");
    assert_eq!(body["error"], "allowedDomains: is required");

    let (status, body) = call(
        &state,
        signed_json("PUT", ACME, &owner, &json!({"allowedDomains": "acme.com"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "allowedDomains");

    let (status, body) = call(
        &state,
        signed_with_body(
            "PUT",
            ACME,
            &owner,
            Some("application/json"),
            Body::from("{"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "INVALID_JSON");

    let (status, body) = call(
        &state,
        signed_with_body(
            "PUT",
            ACME,
            &owner,
            Some("text/plain"),
            Body::from(r#"{"allowedDomains": []}"#),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(body["code"], "UNSUPPORTED_MEDIA_TYPE");
}

#[tokio::test]
async fn a_public_suffix_is_refused_by_name_and_a_store_under_it_is_not() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    for (bad, index) in [
        (json!(["co.uk"]), 0),
        (json!(["acme.com", "MyShopify.com"]), 1),
        (json!(["acme.com", "shop.acme.com", "github.io"]), 2),
    ] {
        let put = json!({"allowedDomains": bad});
        let (status, body) = call(&state, signed_json("PUT", ACME, &user("acme"), &put)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{put}");
        assert_eq!(body["code"], "VALIDATION_ERROR");
        let field = format!("allowedDomains[{index}]");
        assert_eq!(body["field"], field.as_str());
        let error = body["error"].as_str().unwrap();
        let named = bad[index].as_str().unwrap().to_ascii_lowercase();
        assert!(
            error.starts_with(&format!("{field}: \"{named}\" is a public suffix")),
            "{error}"
        );
    }
    // Not even an admin lists one.
    let put = json!({"allowedDomains": ["co.uk"]});
    let (status, _) = call(&state, signed_json("PUT", ACME, &admin(), &put)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let acme = state.store.get_merchant("acme").await.unwrap().unwrap();
    assert_eq!(acme.allowed_domains, ["acme.com"]);
    assert!(
        !state
            .store
            .any_merchant_allows_host("shop.co.uk")
            .await
            .unwrap()
    );

    let put = json!({"allowedDomains": ["acme.myshopify.com", "acme.co.uk", "acme.github.io"]});
    let (status, body) = call(&state, signed_json("PUT", ACME, &user("acme"), &put)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        !state
            .store
            .any_merchant_allows_host("other.myshopify.com")
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_domain_another_merchant_lists_is_taken_unless_an_admin_shares_it() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    const GLOBEX: &str = "/api/merchants/globex/settings";
    for (wanted, why) in [
        ("ACME.com", "another merchant lists it"),
        ("shop.acme.com", "another merchant lists a domain above it"),
    ] {
        let put = json!({"allowedDomains": ["globex.com", "globex.io", wanted]});
        let (status, body) = call(&state, signed_json("PUT", GLOBEX, &user("globex"), &put)).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["code"], "DOMAIN_TAKEN");
        let wanted = wanted.to_ascii_lowercase();
        assert_eq!(
            body["error"],
            format!("allowedDomains[2]: \"{wanted}\" is taken: {why}")
        );
        assert!(
            !body.to_string().contains("\"acme\""),
            "the other merchant is not named: {body}"
        );
    }
    // acme cannot take what is under globex's list either: globex.com admits shop.globex.com.
    let put = json!({"allowedDomains": ["acme.com", "shop.globex.com"]});
    let (status, body) = call(&state, signed_json("PUT", ACME, &user("acme"), &put)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "DOMAIN_TAKEN");
    let globex = state.store.get_merchant("globex").await.unwrap().unwrap();
    assert_eq!(globex.allowed_domains, ["globex.com"], "nothing changed");

    let put = json!({"allowedDomains": ["globex.com", "shop.acme.com"]});
    let (status, body) = call(&state, signed_json("PUT", GLOBEX, &admin(), &put)).await;
    assert_eq!(status, StatusCode::OK, "an admin may share: {body}");
    assert_eq!(
        body["data"]["allowedDomains"],
        json!(["globex.com", "shop.acme.com"])
    );
    // Both merchants then keep managing their lists.
    let put = json!({"allowedDomains": ["shop.acme.com", "globex.com", "globex.io"]});
    let (status, body) = call(&state, signed_json("PUT", GLOBEX, &user("globex"), &put)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let put = json!({"allowedDomains": ["acme.com", "acme.io"]});
    let (status, body) = call(&state, signed_json("PUT", ACME, &user("acme"), &put)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
