//! Finding out what the cluster offers for admission mode: is the MutatingAdmissionPolicy API
//! served, are skewguard's policy and binding installed, and what does the API server's type
//! checker say about them. Read-only `get`s of three objects by name (and discovery); what they
//! mean is decided in [`crate::core::injection::support_from`].

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::GroupVersionKind;

use crate::core::injection::{
    ADMISSION_API, ADMISSION_POLICY, AdmissionSupport, TYPE_CHECK_POLICY, support_from,
};

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind),
        plural,
    )
}

/// The object, `None` when it does not exist.
async fn get(
    client: &Client,
    kind: &str,
    plural: &str,
    name: &str,
) -> Result<Option<serde_json::Value>, kube::Error> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource(kind, plural));
    match api.get_opt(name).await? {
        Some(o) => Ok(Some(
            serde_json::to_value(o).map_err(kube::Error::SerdeError)?,
        )),
        None => Ok(None),
    }
}

/// Reads what the cluster offers. An error (the API server did not answer, or the operator may
/// not read the objects) leaves admission support unknown to the caller.
pub async fn probe(client: &Client) -> Result<AdmissionSupport, kube::Error> {
    let served = match client.list_api_group_resources(ADMISSION_API).await {
        Ok(list) => list
            .resources
            .iter()
            .any(|r| r.name == "mutatingadmissionpolicies"),
        Err(kube::Error::Api(s)) if s.code == 404 => false,
        Err(e) => return Err(e),
    };
    if !served {
        return Ok(support_from(false, None, None, None));
    }
    let policy = get(
        client,
        "MutatingAdmissionPolicy",
        "mutatingadmissionpolicies",
        ADMISSION_POLICY,
    )
    .await?;
    let binding = get(
        client,
        "MutatingAdmissionPolicyBinding",
        "mutatingadmissionpolicybindings",
        ADMISSION_POLICY,
    )
    .await?;
    // Optional: without it (or without the right to read it) there are simply no warnings.
    let type_check = get(
        client,
        "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies",
        TYPE_CHECK_POLICY,
    )
    .await
    .ok()
    .flatten();
    Ok(support_from(
        true,
        policy.as_ref(),
        binding.as_ref(),
        type_check.as_ref(),
    ))
}
