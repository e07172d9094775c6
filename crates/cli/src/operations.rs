//! Which command calls which API operation: the one table that `--help` prints from and the coverage test
//! checks against the server's OpenAPI document, so every operation the API gains needs a command here.

/// One API operation and the command that calls it.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    /// The OpenAPI `operationId`.
    pub id: &'static str,
    pub method: &'static str,
    pub path: &'static str,
    /// Subcommand path below `barrack`, followed by the flags that select this operation, if any
    /// (`"account update --replace"`).
    pub command: &'static str,
}

impl Operation {
    /// The subcommand names, without flags.
    pub fn command_path(&self) -> Vec<&'static str> {
        self.command
            .split_whitespace()
            .take_while(|word| !word.starts_with('-'))
            .collect()
    }

    /// The long flags (without `--`) that select this operation on its command.
    pub fn flags(&self) -> Vec<&'static str> {
        self.command
            .split_whitespace()
            .filter_map(|word| word.strip_prefix("--"))
            .collect()
    }
}

const fn op(
    id: &'static str,
    method: &'static str,
    path: &'static str,
    command: &'static str,
) -> Operation {
    Operation {
        id,
        method,
        path,
        command,
    }
}

/// Every API operation the CLI covers, grouped as the commands are.
pub const OPERATIONS: &[Operation] = &[
    op("health", "GET", "/api/health/", "health"),
    // catalog
    op("list_regions", "GET", "/api/regions/", "catalog regions"),
    op("list_gpu_specs", "GET", "/api/gpu-specs/", "catalog gpus"),
    op(
        "list_gpu_stocks",
        "GET",
        "/api/gpu-stocks/",
        "catalog stock",
    ),
    op("list_os_images", "GET", "/api/os-images/", "catalog images"),
    op("get_pricing", "GET", "/api/pricing/", "catalog pricing"),
    op("post_pricing", "POST", "/api/pricing/", "catalog quote"),
    // balance, transactions
    op("get_balance", "GET", "/api/balance/", "balance"),
    op(
        "list_transactions",
        "GET",
        "/api/transactions/",
        "transactions",
    ),
    // deposits (the provider webhook is called by payment providers, not by people: see the coverage test)
    op("list_deposits", "GET", "/api/deposits/", "deposits list"),
    op(
        "create_deposit",
        "POST",
        "/api/deposits/",
        "deposits create",
    ),
    op("get_deposit", "GET", "/api/deposits/{id}/", "deposits show"),
    op(
        "cancel_deposit",
        "POST",
        "/api/deposits/{id}/cancel/",
        "deposits cancel",
    ),
    op(
        "admin_complete_deposit",
        "POST",
        "/api/admin/deposits/{id}/complete/",
        "admin complete-deposit",
    ),
    // api-keys
    op("list_api_keys", "GET", "/api/api-keys/", "api-keys list"),
    op(
        "create_api_key",
        "POST",
        "/api/api-keys/",
        "api-keys create",
    ),
    op(
        "delete_api_key",
        "DELETE",
        "/api/api-keys/{id}/",
        "api-keys delete",
    ),
    // account
    op(
        "register",
        "POST",
        "/api/auth/register/",
        "account register",
    ),
    op("obtain_token", "POST", "/api/auth/token/", "account token"),
    op(
        "refresh_token",
        "POST",
        "/api/auth/token/refresh/",
        "account refresh-token",
    ),
    op("logout", "POST", "/api/auth/logout/", "account logout"),
    op(
        "change_password",
        "POST",
        "/api/account/password/",
        "account password",
    ),
    op(
        "get_profile",
        "GET",
        "/api/account/profile/",
        "account show",
    ),
    op(
        "update_profile",
        "PATCH",
        "/api/account/profile/",
        "account update",
    ),
    op(
        "replace_profile",
        "PUT",
        "/api/account/profile/",
        "account update --replace",
    ),
    // admin
    op(
        "admin_list_users",
        "GET",
        "/api/admin/users/",
        "admin users",
    ),
    op(
        "admin_create_user",
        "POST",
        "/api/admin/users/",
        "admin create-user",
    ),
    op(
        "admin_create_api_key",
        "POST",
        "/api/admin/users/{id}/api-keys/",
        "admin create-key",
    ),
    op(
        "admin_disable_user",
        "POST",
        "/api/admin/users/{id}/disable/",
        "admin disable-user",
    ),
    op(
        "admin_enable_user",
        "POST",
        "/api/admin/users/{id}/enable/",
        "admin enable-user",
    ),
    op(
        "admin_grant_credits",
        "POST",
        "/api/admin/accounts/{id}/credits/",
        "admin grant-credits",
    ),
    op(
        "admin_get_capacity",
        "GET",
        "/api/admin/capacity/",
        "admin capacity",
    ),
    op(
        "admin_set_capacity",
        "PUT",
        "/api/admin/capacity/",
        "admin set-capacity",
    ),
    op("admin_list_jobs", "GET", "/api/admin/jobs/", "admin jobs"),
    op(
        "admin_list_hosts",
        "GET",
        "/api/admin/hosts/",
        "admin hosts",
    ),
    op(
        "admin_inject_fault",
        "POST",
        "/api/admin/faults/",
        "admin inject-fault",
    ),
    op("admin_reset", "POST", "/api/admin/reset/", "admin reset"),
    op(
        "admin_list_scenarios",
        "GET",
        "/api/admin/scenarios/",
        "admin scenarios",
    ),
    op(
        "admin_add_scenario",
        "POST",
        "/api/admin/scenarios/",
        "admin add-scenario",
    ),
    op(
        "admin_remove_scenario",
        "DELETE",
        "/api/admin/scenarios/{id}/",
        "admin remove-scenario",
    ),
    // instances
    op(
        "deploy_instance",
        "POST",
        "/api/deploy-server/",
        "instances deploy",
    ),
    op(
        "preflight_deploy",
        "POST",
        "/api/deploy-server/preflight/",
        "instances deploy --preflight",
    ),
    op(
        "release_deploy_hold",
        "DELETE",
        "/api/deploy-server/holds/{id}/",
        "instances release-hold",
    ),
    op("list_instances", "GET", "/api/instances/", "instances list"),
    op(
        "patch_instance",
        "PATCH",
        "/api/instances/{id}/",
        "instances lease",
    ),
    op(
        "patch_instance_labels",
        "PATCH",
        "/api/instances/{id}/labels/",
        "instances labels",
    ),
    op(
        "get_instance",
        "GET",
        "/api/instances/{id}/",
        "instances show",
    ),
    op(
        "start_instance",
        "POST",
        "/api/instances/{id}/start/",
        "instances start",
    ),
    op(
        "stop_instance",
        "POST",
        "/api/instances/{id}/stop/",
        "instances stop",
    ),
    op(
        "reboot_instance",
        "POST",
        "/api/instances/{id}/reboot/",
        "instances reboot",
    ),
    op(
        "hibernate_instance",
        "POST",
        "/api/instances/{id}/hibernate/",
        "instances hibernate",
    ),
    op(
        "restore_instance",
        "POST",
        "/api/instances/{id}/restore/",
        "instances restore",
    ),
    op(
        "delete_instance",
        "DELETE",
        "/api/instances/{id}/",
        "instances delete",
    ),
    op(
        "toggle_public_ip",
        "POST",
        "/api/instances/{id}/toggle-public-ip/",
        "instances toggle-ip",
    ),
    op(
        "get_hibernated_instances",
        "GET",
        "/api/instances/hibernated/",
        "instances hibernated",
    ),
    op(
        "list_snapshot_eligible_instances",
        "GET",
        "/api/instances/snapshot-eligible/",
        "instances snapshot-eligible",
    ),
    op(
        "list_instance_events",
        "GET",
        "/api/instances/{id}/events/",
        "instances events",
    ),
    op(
        "get_instance_metrics",
        "GET",
        "/api/instances/{id}/metrics/",
        "instances metrics",
    ),
    op(
        "add_instance_security_rule",
        "POST",
        "/api/instances/{id}/security-rules/",
        "instances rules add",
    ),
    op(
        "remove_instance_security_rule",
        "DELETE",
        "/api/instances/{id}/security-rules/{rule_id}/",
        "instances rules remove",
    ),
    // `ssh` reads the instance's address.
    op(
        "get_instance",
        "GET",
        "/api/instances/{id}/",
        "instances ssh",
    ),
    // events
    op("list_events", "GET", "/api/events/", "events"),
    op(
        "stream_events",
        "GET",
        "/api/events/stream/",
        "events --follow",
    ),
    // webhooks
    op("list_webhooks", "GET", "/api/webhooks/", "webhooks list"),
    op(
        "create_webhook",
        "POST",
        "/api/webhooks/",
        "webhooks create",
    ),
    op("get_webhook", "GET", "/api/webhooks/{id}/", "webhooks show"),
    op(
        "delete_webhook",
        "DELETE",
        "/api/webhooks/{id}/",
        "webhooks delete",
    ),
    op(
        "list_webhook_deliveries",
        "GET",
        "/api/webhooks/{id}/deliveries/",
        "webhooks deliveries",
    ),
    op(
        "replay_webhook_delivery",
        "POST",
        "/api/webhooks/{id}/deliveries/{delivery_id}/replay/",
        "webhooks replay",
    ),
    // billing
    op(
        "get_instance_billing",
        "GET",
        "/api/instances/billing/",
        "billing instances",
    ),
    op(
        "get_volume_billing",
        "GET",
        "/api/volumes/billing/",
        "billing volumes",
    ),
    op(
        "get_snapshot_billing",
        "GET",
        "/api/snapshots/billing/",
        "billing snapshots",
    ),
    op("get_billing", "GET", "/api/billing/", "billing summary"),
    op(
        "admin_advance_clock",
        "POST",
        "/api/admin/clock/advance/",
        "admin advance-clock",
    ),
    // AI chat
    op("list_ai_models", "GET", "/api/ai/models/", "ai models"),
    op("ai_chat", "POST", "/api/ai/chat/", "ai chat"),
    op(
        "ai_usage_summary",
        "GET",
        "/api/ai/usage/summary/",
        "ai usage",
    ),
    op(
        "ai_usage_history",
        "GET",
        "/api/ai/usage/history/",
        "ai usage --history",
    ),
    // scripts: one id is the single delete, several the bulk one.
    op("list_scripts", "GET", "/api/scripts/", "scripts list"),
    op("create_script", "POST", "/api/scripts/", "scripts create"),
    op("get_script", "GET", "/api/scripts/{id}/", "scripts show"),
    op(
        "update_script",
        "PUT",
        "/api/scripts/{id}/",
        "scripts update",
    ),
    op(
        "delete_script",
        "DELETE",
        "/api/scripts/{id}/",
        "scripts delete",
    ),
    op(
        "delete_scripts",
        "DELETE",
        "/api/scripts/",
        "scripts delete",
    ),
    // ssh-keys: import and generate are one operation, with and without a public key.
    op("list_ssh_keys", "GET", "/api/ssh-keys/", "ssh-keys list"),
    op("get_ssh_key", "GET", "/api/ssh-keys/{id}/", "ssh-keys show"),
    op(
        "create_ssh_key",
        "POST",
        "/api/ssh-keys/",
        "ssh-keys import",
    ),
    op(
        "create_ssh_key",
        "POST",
        "/api/ssh-keys/",
        "ssh-keys generate",
    ),
    op(
        "delete_ssh_key",
        "DELETE",
        "/api/ssh-keys/{id}/",
        "ssh-keys delete",
    ),
    // volumes, and attaching them to instances
    op("list_volumes", "GET", "/api/volumes/", "volumes list"),
    op(
        "patch_volume_labels",
        "PATCH",
        "/api/volumes/{id}/labels/",
        "volumes labels",
    ),
    op("create_volume", "POST", "/api/volumes/", "volumes create"),
    // `create` without --name reads the next free name from the list.
    op("list_volumes", "GET", "/api/volumes/", "volumes create"),
    op("get_volume", "GET", "/api/volumes/{id}/", "volumes show"),
    op(
        "delete_volume",
        "DELETE",
        "/api/volumes/{id}/",
        "volumes delete",
    ),
    op(
        "resize_volume",
        "POST",
        "/api/volumes/{id}/resize/",
        "volumes resize",
    ),
    op(
        "clone_volume",
        "POST",
        "/api/volumes/{id}/clone/",
        "volumes clone",
    ),
    op(
        "list_volume_types",
        "GET",
        "/api/volumes/types/",
        "volumes types",
    ),
    op(
        "attach_volumes",
        "POST",
        "/api/instances/{id}/attach-volumes/",
        "volumes attach",
    ),
    op(
        "detach_volumes",
        "POST",
        "/api/instances/{id}/detach-volumes/",
        "volumes detach",
    ),
    // snapshots, and restoring them into new instances
    op("list_snapshots", "GET", "/api/snapshots/", "snapshots list"),
    op(
        "patch_snapshot_labels",
        "PATCH",
        "/api/snapshots/{id}/labels/",
        "snapshots labels",
    ),
    op(
        "create_snapshot",
        "POST",
        "/api/snapshots/",
        "snapshots create",
    ),
    op(
        "get_snapshot",
        "GET",
        "/api/snapshots/{id}/",
        "snapshots show",
    ),
    op(
        "delete_snapshot",
        "DELETE",
        "/api/snapshots/{id}/",
        "snapshots delete",
    ),
    op(
        "restore_snapshot",
        "POST",
        "/api/snapshots/{id}/restore/",
        "snapshots restore",
    ),
    // custom images; one snapshot id is the single relationship, several (or --batch) the batch one.
    op("list_images", "GET", "/api/images/", "images list"),
    op(
        "patch_image_labels",
        "PATCH",
        "/api/images/{id}/labels/",
        "images labels",
    ),
    op("create_image", "POST", "/api/images/", "images create"),
    op("get_image", "GET", "/api/images/{id}/", "images show"),
    op(
        "delete_image",
        "DELETE",
        "/api/images/{id}/",
        "images delete",
    ),
    op(
        "get_snapshot_image_relationship",
        "GET",
        "/api/snapshots/{id}/image-relationship/",
        "images relationship",
    ),
    op(
        "get_snapshot_image_relationships",
        "POST",
        "/api/snapshots/image-relationships/",
        "images relationship --batch",
    ),
    // firewalls, and attaching them to instances
    op("list_firewalls", "GET", "/api/firewalls/", "firewalls list"),
    op(
        "patch_firewall_labels",
        "PATCH",
        "/api/firewalls/{id}/labels/",
        "firewalls labels",
    ),
    op(
        "create_firewall",
        "POST",
        "/api/firewalls/",
        "firewalls create",
    ),
    op(
        "get_firewall",
        "GET",
        "/api/firewalls/{id}/",
        "firewalls show",
    ),
    op(
        "delete_firewall",
        "DELETE",
        "/api/firewalls/{id}/",
        "firewalls delete",
    ),
    op(
        "add_firewall_rule",
        "POST",
        "/api/firewalls/{id}/rules/",
        "firewalls rules add",
    ),
    op(
        "remove_firewall_rule",
        "DELETE",
        "/api/firewalls/{id}/rules/{rule_id}/",
        "firewalls rules remove",
    ),
    op(
        "attach_firewall",
        "POST",
        "/api/firewalls/{id}/attach/",
        "firewalls attach",
    ),
    op(
        "detach_firewall",
        "POST",
        "/api/firewalls/{id}/detach/",
        "firewalls detach",
    ),
    op(
        "list_firewall_protocols",
        "GET",
        "/api/firewalls/protocols/",
        "firewalls protocols",
    ),
    op(
        "list_firewall_available_instances",
        "GET",
        "/api/firewalls/{id}/available-instances/",
        "firewalls available-instances",
    ),
    op(
        "list_instance_firewalls",
        "GET",
        "/api/instances/{id}/firewalls/",
        "instances firewalls",
    ),
];

/// The "API operations" paragraph of a command's help.
pub fn help_for(command_path: &[&str]) -> Option<String> {
    let lines: Vec<String> = OPERATIONS
        .iter()
        .filter(|op| op.command_path() == command_path)
        .map(|op| {
            let flags = op.flags();
            let selector = if flags.is_empty() {
                String::new()
            } else {
                format!(
                    ", with {}",
                    flags
                        .iter()
                        .map(|f| format!("--{f}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            };
            format!("  {} {} ({}{selector})", op.method, op.path, op.id)
        })
        .collect();
    (!lines.is_empty()).then(|| format!("API operations:\n{}", lines.join("\n")))
}
