//! Submitted forms: url-encoded fields read without rejections of their own (a field that does not parse
//! is the service's to report, at the field), and the CSRF check every form passes first.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use barrack_core::accounts::web_sessions::{WebSession, csrf_matches};

use crate::error::WebError;

/// Most bytes a dashboard form may send (cloud-init and scripts are the large fields).
const FORM_LIMIT: usize = 256 * 1024;

pub struct Form(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = WebError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        // A browser says where a submission comes from: one from another site (or another origin of this
        // site, which may have set this one's cookies) is refused before any token is looked at. Clients
        // that do not send the header are left to the tokens.
        // Every value counts: a header sent twice is refused if either says elsewhere.
        let elsewhere = request
            .headers()
            .get_all("sec-fetch-site")
            .iter()
            .any(|site| !matches!(site.as_bytes(), b"same-origin" | b"none"));
        if elsewhere {
            return Err(WebError::Csrf);
        }
        let body = axum::body::to_bytes(request.into_body(), FORM_LIMIT)
            .await
            .map_err(|_| WebError::TooLarge)?;
        let _ = state;
        let form = Form::parse(&body);
        // No field holds U+0000, which PostgreSQL cannot store in text.
        if let Some((name, _)) = form
            .0
            .iter()
            .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            let field = name.replace('\0', "");
            return Err(WebError::Domain(barrack_core::Error::field(
                &field,
                barrack_api::body::NUL_MESSAGE,
            )));
        }
        Ok(form)
    }
}

impl Form {
    pub fn parse(body: &Bytes) -> Form {
        Form(form_urlencoded::parse(body).into_owned().collect())
    }

    /// The field's value, trimmed; `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// The field's value as typed (multi-line text keeps its spacing).
    pub fn raw(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.replace("\r\n", "\n"))
            .filter(|v| !v.trim().is_empty())
    }

    /// Every value of a repeated field (checkbox lists).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect()
    }

    pub fn checked(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Refuses a form without the session's token (a stale page after signing in again, or another site).
    pub fn check_csrf(&self, session: &WebSession) -> Result<(), WebError> {
        match self.get("csrf") {
            Some(token) if csrf_matches(session, &token) => Ok(()),
            _ => Err(WebError::Csrf),
        }
    }
}
