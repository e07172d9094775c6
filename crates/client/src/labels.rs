//! Labels of every resource that carries them, label filters of lists, and instance leases.

use barrack_api::Envelope;
use barrack_api::instances::Instance;
use barrack_api::labels::{InstancePatch, LabelsPatch, LabelsView};
use reqwest::Method;

use crate::{Client, Result, encode};

/// The resources that carry labels, by their path under `/api/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelledResource {
    Instances,
    Volumes,
    Snapshots,
    Images,
    Firewalls,
}

impl LabelledResource {
    pub fn path(self) -> &'static str {
        match self {
            LabelledResource::Instances => "instances",
            LabelledResource::Volumes => "volumes",
            LabelledResource::Snapshots => "snapshots",
            LabelledResource::Images => "images",
            LabelledResource::Firewalls => "firewalls",
        }
    }
}

/// `path` (with or without a query) with a `label` parameter per filter (`key=value` or `key`).
pub fn with_labels(path: &str, labels: &[String]) -> String {
    let mut out = path.to_string();
    for label in labels {
        out.push(if out.contains('?') { '&' } else { '?' });
        out.push_str("label=");
        out.push_str(&encode(label));
    }
    out
}

impl Client {
    /// `PATCH /api/<resources>/{id}/labels/`: sets the labels given with a value and removes those given
    /// with `None`; answers every label the resource then has.
    pub async fn patch_labels(
        &self,
        resource: LabelledResource,
        id: &str,
        patch: &LabelsPatch,
    ) -> Result<Envelope<LabelsView>> {
        let path = format!("/api/{}/{id}/labels/", resource.path());
        self.request(Method::PATCH, &path, Some(patch)).await
    }

    /// `PATCH /api/instances/{id}/`: sets, changes or ends the instance's lease.
    pub async fn patch_instance(
        &self,
        id: &str,
        patch: &InstancePatch,
    ) -> Result<Envelope<Instance>> {
        self.request(Method::PATCH, &format!("/api/instances/{id}/"), Some(patch))
            .await
    }
}
