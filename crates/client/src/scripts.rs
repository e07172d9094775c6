//! Startup scripts.

use barrack_api::scripts::{
    DeleteScriptsRequest, DeletedScripts, Script, ScriptList, ScriptRequest,
};
use barrack_api::{Envelope, PageQuery};
use reqwest::Method;

use crate::{Client, Result, with_query};

impl Client {
    pub async fn scripts(&self, page: &PageQuery) -> Result<Envelope<ScriptList>> {
        self.get(&with_query("/api/scripts/", page)).await
    }

    pub async fn create_script(&self, request: &ScriptRequest) -> Result<Envelope<Script>> {
        self.post("/api/scripts/", request).await
    }

    pub async fn script(&self, id: &str) -> Result<Envelope<Script>> {
        self.get(&format!("/api/scripts/{id}/")).await
    }

    pub async fn update_script(
        &self,
        id: &str,
        request: &ScriptRequest,
    ) -> Result<Envelope<Script>> {
        self.request(Method::PUT, &format!("/api/scripts/{id}/"), Some(request))
            .await
    }

    pub async fn delete_script(&self, id: &str) -> Result<Envelope<DeletedScripts>> {
        self.request::<_, ()>(Method::DELETE, &format!("/api/scripts/{id}/"), None)
            .await
    }

    /// Deletes several scripts; the answer says which ids were deleted and which were not found.
    pub async fn delete_scripts(&self, ids: &[String]) -> Result<Envelope<DeletedScripts>> {
        let body = DeleteScriptsRequest {
            script_ids: ids.to_vec(),
        };
        self.request(Method::DELETE, "/api/scripts/", Some(&body))
            .await
    }
}
