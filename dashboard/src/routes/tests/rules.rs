//! `/admin/alerts/rules` (issue #13): overrides set, disabled, enabled and reset from the
//! page, stored through `alerting::store`, shown back; bad input is shown, not stored.

use super::security::inline_code;
use super::*;
use alerting::overrides::Scope;
use recorder::status::Rule;

fn post(csrf: &str, fields: &str) -> String {
    format!("csrf={csrf}&{fields}")
}

#[tokio::test]
async fn the_rules_page_sets_disables_enables_and_resets_overrides() {
    let app = TestApp::new().await;
    app.add_host("pve1");
    let cookie = app.login().await;
    let csrf = app.csrf(&cookie).await;
    let signed = Some(cookie.as_str());
    let db = || recorder::db::open_read(&app.state.database).unwrap();

    let html = body(app.send(page("/admin/alerts/rules", signed)).await).await;
    assert!(html.contains("No overrides") && html.contains("<td>pool_capacity</td><td>80</td><td>90</td><td>75</td>"));
    assert!(html.contains("<td>load</td><td>1</td><td>none</td><td>0.9</td>"), "{html}");
    assert!(html.contains("<td>scrub_age</td><td>35</td><td>none</td><td>30</td>"), "{html}");
    assert!(html.contains("<td>pool_state</td><td></td><td></td><td></td>"), "{html}");
    assert!(html.contains("<td>clock_skew</td><td>60</td><td>none</td><td>45</td>"), "{html}");
    assert!(html.contains("<td>disk_spare</td><td>drive</td><td>none</td><td>drive+5</td>"), "{html}");
    assert_eq!(inline_code(&html), Vec::<String>::new());

    let set = "rule=pool_capacity&host=pve1&subject=&trigger=70&critical=&clear=65&pending=5m&action=set";
    let response = app.send(form("/admin/alerts/rules", &post(&csrf, set), signed)).await;
    assert_eq!((response.status(), location(&response)), (StatusCode::SEE_OTHER, "/admin/alerts/rules"));
    let stored = alerting::store::overrides(&db()).unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].scope, Scope { rule: Rule::PoolCapacity, host: Some("pve1".into()), subject: None });
    assert_eq!((stored[0].trigger, stored[0].clear, stored[0].pending_ms), (Some(70.0), Some(65.0), Some(300_000)));

    let wear = "rule=disk_wear&host=pve1&subject=nvme0&trigger=80&critical=95&clear=&pending=&action=set";
    assert_eq!(app.send(form("/admin/alerts/rules", &post(&csrf, wear), signed)).await.status(), StatusCode::SEE_OTHER);
    let scope = Scope { rule: Rule::DiskWear, host: Some("pve1".into()), subject: Some("nvme0".into()) };
    let stored = alerting::store::override_at(&db(), &scope).unwrap().unwrap();
    assert_eq!((stored.trigger, stored.critical), (Some(80.0), Some(95.0)));
    let reset = "rule=disk_wear&host=pve1&subject=nvme0&action=reset";
    assert_eq!(
        app.send(form("/admin/alerts/rules", &post(&csrf, reset), signed)).await.status(),
        StatusCode::SEE_OTHER
    );

    let disable = "rule=guest_stopped&host=pve1&subject=vm%2F101&action=disable";
    let response = app.send(form("/admin/alerts/rules", &post(&csrf, disable), signed)).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let html = body(app.send(page("/admin/alerts/rules", signed)).await).await;
    assert!(html.contains(r#"id="override-pool_capacity-pve1-""#), "{html}");
    assert!(html.contains("<td>pve1 / vm/101</td><td>disabled</td>"), "{html}");

    let enable = "rule=guest_stopped&host=pve1&subject=vm%2F101&action=enable";
    app.send(form("/admin/alerts/rules", &post(&csrf, enable), signed)).await;
    assert_eq!(alerting::store::overrides(&db()).unwrap().len(), 1, "enabled with nothing broader: the row goes");

    for (bad, why) in [
        ("rule=pool_state&trigger=3&action=set", "has no numeric thresholds"),
        ("rule=pool_capacity&trigger=80&clear=85&action=set", "must be below"),
        ("rule=disk_spare&trigger=10&clear=8&action=set", "--clear 8 must be above --trigger 10"),
        ("rule=host_silent&trigger=60&action=set", "has no numeric thresholds"),
        ("rule=pool_capacity&host=nope&trigger=80&action=set", "no host named nope"),
        ("rule=pool_capacity&subject=tank&action=disable", "--subject needs --host"),
        ("rule=nope&action=disable", "unknown rule nope"),
        ("rule=pool_capacity&trigger=lots&action=set", "is not a number"),
        ("rule=pool_capacity&action=reset", "no override of pool_capacity"),
    ] {
        let response = app.send(form("/admin/alerts/rules", &post(&csrf, bad), signed)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(body(response).await.contains(why), "{bad}: {why}");
    }

    let reset = "rule=pool_capacity&host=pve1&subject=&action=reset";
    assert_eq!(
        app.send(form("/admin/alerts/rules", &post(&csrf, reset), signed)).await.status(),
        StatusCode::SEE_OTHER
    );
    assert!(alerting::store::overrides(&db()).unwrap().is_empty());

    // Without the session's token, or signed out, nothing changes.
    let response = app.send(form("/admin/alerts/rules", disable, signed)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = app.send(form("/admin/alerts/rules", &post(&csrf, disable), None)).await;
    assert_eq!((response.status(), location(&response)), (StatusCode::SEE_OTHER, "/login"));
    assert!(alerting::store::overrides(&db()).unwrap().is_empty());
}
