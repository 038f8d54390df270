//! `/admin/alerts/rules`: each rule's built-in numbers and the operator's overrides
//! (disable, enable, change trigger / critical / clear / pending; globally, for a host, for
//! one subject of a host), through `alerting::store`, the same functions as `rule`'s CLI.

use alerting::overrides::{Override, Scope};
use alerting::store::{self, StoreError};
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use axum_extra::extract::WithRejection;
use recorder::status::{Rule, Thresholds};
use serde::Deserialize;

use crate::error::AppError;
use crate::routes::{read, write};
use crate::session::Session;
use crate::AppState;

pub struct RuleRow {
    pub rule: &'static str,
    pub trigger: String,
    pub critical: String,
    pub clear: String,
    pub pending: String,
}

pub struct OverrideRow {
    pub id: String,
    pub rule: &'static str,
    pub host: String,
    pub subject: String,
    pub scope: String,
    pub enabled: &'static str,
    pub trigger: String,
    pub critical: String,
    pub clear: String,
    pub pending: String,
}

#[derive(Template)]
#[template(path = "rules.html")]
struct RulesPage {
    rules: Vec<RuleRow>,
    overrides: Vec<OverrideRow>,
    hosts: Vec<String>,
    error: Option<String>,
    csrf: String,
}

fn number(v: Option<f64>) -> String {
    v.map(|v| format!("{v}")).unwrap_or_default()
}

fn seconds(ms: Option<i64>) -> String {
    ms.map(|ms| format!("{}s", ms / 1000)).unwrap_or_default()
}

fn override_row(o: Override) -> OverrideRow {
    let (host, subject) = (o.scope.host.clone().unwrap_or_default(), o.scope.subject.clone().unwrap_or_default());
    OverrideRow {
        id: format!("override-{}-{host}-{subject}", o.scope.rule.as_str()).replace('/', "-"),
        rule: o.scope.rule.as_str(),
        scope: match (&o.scope.host, &o.scope.subject) {
            (None, _) => "every host".into(),
            (Some(h), None) => h.clone(),
            (Some(h), Some(s)) => format!("{h} / {s}"),
        },
        host,
        subject,
        enabled: o.enabled.map_or("", |e| if e { "enabled" } else { "disabled" }),
        trigger: number(o.trigger),
        critical: number(o.critical),
        clear: number(o.clear),
        pending: seconds(o.pending_ms),
    }
}

async fn render(state: &AppState, session: &Session, error: Option<String>) -> Result<Response, AppError> {
    let (overrides, hosts) = read(&state.database, |c| {
        let hosts = recorder::hosts::host_ids(c)?.into_iter().map(|h| h.to_string()).collect::<Vec<_>>();
        Ok((store::overrides(c)?, hosts))
    })
    .await?;
    let settings = alerting::Settings::default();
    let rules = Rule::ALL
        .iter()
        .map(|&rule| {
            let t = Thresholds::of(rule);
            let spare_margin = t.filter(|_| rule == Rule::DiskSpare).map(|t| t.clear_margin);
            RuleRow {
                rule: rule.as_str(),
                trigger: spare_margin.map_or_else(|| number(t.map(|t| t.warning)), |_| "drive".to_owned()),
                critical: match t {
                    Some(t) => t.critical.map_or_else(|| "none".to_owned(), |c| format!("{c}")),
                    None => String::new(),
                },
                clear: spare_margin.map_or_else(|| number(t.map(|t| t.clear())), |m| format!("drive+{m}")),
                pending: seconds(Some(settings.for_duration(rule))),
            }
        })
        .collect();
    let code = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let page = RulesPage {
        rules,
        overrides: overrides.into_iter().map(override_row).collect(),
        hosts,
        error,
        csrf: session.csrf.clone(),
    };
    Ok((code, Html(page.render()?)).into_response())
}

pub async fn page(State(state): State<AppState>, Extension(session): Extension<Session>) -> Result<Response, AppError> {
    render(&state, &session, None).await
}

/// The rule form; its `csrf` field was checked before the handler ran. `action` is the
/// button pressed: set, disable, enable or reset. Empty fields mean "not given".
#[derive(Deserialize)]
pub struct RuleForm {
    rule: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    subject: String,
    action: String,
    #[serde(default)]
    trigger: String,
    #[serde(default)]
    critical: String,
    #[serde(default)]
    clear: String,
    /// 0s, 90s, 5m, 1h.
    #[serde(default)]
    pending: String,
}

fn given(s: &str) -> Option<String> {
    Some(s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn parse_number(name: &str, text: &str) -> Result<Option<f64>, String> {
    given(text).map(|t| t.parse::<f64>().map_err(|_| format!("{name} {t:?} is not a number"))).transpose()
}

/// The change the form asks for, or what is wrong with it.
fn change(form: &RuleForm) -> Result<(Override, String), String> {
    let rule = store::parse_rule(form.rule.trim()).map_err(|e| e.to_string())?;
    let scope = Scope { rule, host: given(&form.host), subject: given(&form.subject) };
    let pending_ms = match given(&form.pending) {
        None => None,
        Some(p) => Some(
            alerting::overrides::parse_pending(&p)
                .ok_or_else(|| format!("invalid pending {p:?}: use e.g. 0s, 90s, 5m, 1h"))?,
        ),
    };
    let o = Override {
        trigger: parse_number("trigger", &form.trigger)?,
        critical: parse_number("critical", &form.critical)?,
        clear: parse_number("clear", &form.clear)?,
        pending_ms,
        ..Override::new(scope)
    };
    Ok((o, form.action.clone()))
}

pub async fn update(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    WithRejection(Form(form), _): WithRejection<Form<RuleForm>, AppError>,
) -> Result<Response, AppError> {
    let (o, action) = match change(&form) {
        Ok(c) => c,
        Err(e) => return render(&state, &session, Some(e)).await,
    };
    tracing::info!(scope = %o.scope.describe(), action = %action, "rule changed from the admin page");
    let outcome = write(&state.database, move |c| {
        let now = wire::now_ms();
        let result = match action.as_str() {
            "set" => store::set_override(c, &o, now).map(|_| ()),
            "disable" => store::set_enabled(c, &o.scope, false, now).map(|_| ()),
            "enable" => store::set_enabled(c, &o.scope, true, now).map(|_| ()),
            "reset" => store::reset_override(c, &o.scope),
            other => return Ok(Err(format!("unknown action {other:?}"))),
        };
        match result {
            Err(StoreError::Db(e)) => Err(e.into()),
            other => Ok(other.map_err(|e| e.to_string())),
        }
    })
    .await?;
    match outcome {
        Ok(()) => Ok(Redirect::to("/admin/alerts/rules").into_response()),
        Err(refusal) => render(&state, &session, Some(refusal)).await,
    }
}
