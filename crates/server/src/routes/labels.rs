//! `PATCH /api/<resources>/{id}/labels/`, the same for every resource that carries labels.

/// The labels handler of one resource type: `$name` at `$path`, under `$tag`, for `$kind`.
macro_rules! labels_handler {
    ($name:ident, $path:literal, $tag:literal, $kind:expr) => {
        /// Change labels
        ///
        /// A merge patch: a key with a string sets that label, a key with `null` removes it, labels not
        /// named are kept. Answers every label the resource then has.
        #[utoipa::path(patch, path = $path, tag = $tag, params(("id" = String, Path)),
            request_body = barrack_api::labels::LabelsPatch,
            responses((status = 200, body = barrack_api::Envelope<barrack_api::labels::LabelsView>),
                      (status = 400, body = barrack_api::ErrorResponse),
                      (status = 401, body = barrack_api::ErrorResponse),
                      (status = 404, body = barrack_api::ErrorResponse)),
            security(("api_key" = []), ("bearer" = [])))]
        async fn $name(
            axum::extract::State(state): axum::extract::State<crate::app::AppState>,
            crate::http::Auth(caller): crate::http::Auth,
            crate::http::PathId(id): crate::http::PathId,
            crate::http::Body(patch): crate::http::Body<barrack_api::labels::LabelsPatch>,
        ) -> crate::http::ApiResult<crate::http::Success<barrack_api::labels::LabelsView>> {
            let labels = barrack_core::labels::patch(
                state.services.store(),
                caller.account_id(),
                $kind,
                &id,
                patch,
            )
            .await?;
            Ok(crate::http::Success("Labels updated", labels))
        }
    };
}

pub(crate) use labels_handler;
