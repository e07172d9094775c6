//! Deposits: buying credits, and operators completing them.

use barrack_api::deposits::{CreateDepositRequest, Deposit, DepositList};
use barrack_api::{Envelope, PageQuery};

use crate::{Client, Result, with_query};

impl Client {
    pub async fn deposits(&self, page: &PageQuery) -> Result<Envelope<DepositList>> {
        self.get(&with_query("/api/deposits/", page)).await
    }

    /// Opens a deposit; the answer says what to pay (`total_payable`) and where (`checkout_url`).
    pub async fn create_deposit(
        &self,
        request: &CreateDepositRequest,
    ) -> Result<Envelope<Deposit>> {
        self.post("/api/deposits/", request).await
    }

    pub async fn deposit(&self, id: &str) -> Result<Envelope<Deposit>> {
        self.get(&format!("/api/deposits/{id}/")).await
    }

    /// Cancels a pending deposit that will not be paid, freeing its place among the pending ones.
    pub async fn cancel_deposit(&self, id: &str) -> Result<Envelope<Deposit>> {
        self.post(
            &format!("/api/deposits/{id}/cancel/"),
            &serde_json::json!({}),
        )
        .await
    }

    /// Operators: completes a pending deposit, crediting its account once.
    pub async fn admin_complete_deposit(&self, id: &str) -> Result<Envelope<Deposit>> {
        self.post(
            &format!("/api/admin/deposits/{id}/complete/"),
            &serde_json::json!({}),
        )
        .await
    }
}
