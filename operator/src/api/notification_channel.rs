//! `NotificationChannel`: where patrol reports go (a DingTalk or Feishu group robot, or any
//! webhook). Cluster-scoped and for cloud admins only; the URL and signing secret live in a Secret
//! in the operator's namespace, never in the CR.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A chat group or webhook that receives patrol reports.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "scs.dev",
    version = "v1alpha1",
    kind = "NotificationChannel",
    plural = "notificationchannels",
    shortname = "nch",
    category = "scs",
    status = "NotificationChannelStatus",
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type", description = "Chat platform"),
    printcolumn(
        name = "Secret",
        type_ = "string",
        json_path = ".spec.secretRef.name",
        description = "Secret in the operator namespace holding the URL"
    ),
    printcolumn(
        name = "Last delivery",
        type_ = "string",
        json_path = ".status.lastDelivery.result",
        description = "How the last report reached the channel"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct NotificationChannelSpec {
    /// The platform: `dingtalk` (markdown message), `feishu` (interactive card) or `webhook`
    /// (generic JSON). When omitted it is recognised from the URL: `oapi.dingtalk.com` is DingTalk,
    /// `open.feishu.cn` and `open.larksuite.com` are Feishu/Lark, anything else a webhook.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<ChannelType>,

    /// The Secret, in the operator's namespace, holding the webhook URL (with its access token)
    /// and, optionally, the signing secret. Only the operator reads it.
    pub secret_ref: ChannelSecretRef,

    /// A keyword the robot requires in every message (DingTalk's and Feishu's "custom keyword"
    /// security setting); it is put in each message's title and first line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub keyword: Option<String>,

    /// Most findings listed in one message; the rest are counted as "and N more". Counts per
    /// category always cover every finding. Default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 200))]
    pub max_list_length: Option<i32>,

    /// Leave quantities (quota limits and usage) out of messages; only percentages and dates are
    /// shown. For groups whose members should not see the allotments.
    #[serde(default)]
    pub hide_amounts: bool,

    /// Send a short "all clear" message when a run finds nothing, so a silent channel means a
    /// broken patrol rather than a healthy cluster. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<bool>,
}

/// Observed state of a NotificationChannel: written by the patrols that use it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NotificationChannelStatus {
    /// The platform in use (declared, or recognised from the URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The last report sent here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivery: Option<ChannelDelivery>,
}

/// One report sent to a channel.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChannelDelivery {
    /// The Patrol that sent it.
    pub patrol: String,
    /// The Patrol's run identity.
    pub run: String,
    /// `Delivered` or `Failed`.
    pub result: String,
    /// When the last attempt ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// Why it failed (never the URL or secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Which platform a channel talks to.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum ChannelType {
    Dingtalk,
    Feishu,
    Webhook,
}

impl ChannelType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelType::Dingtalk => "dingtalk",
            ChannelType::Feishu => "feishu",
            ChannelType::Webhook => "webhook",
        }
    }
}

/// Keys of the channel's Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChannelSecretRef {
    /// Name of the Secret in the operator's namespace.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,

    /// Key holding the webhook URL (`https://oapi.dingtalk.com/robot/send?access_token=...`).
    /// Default `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub url_key: Option<String>,

    /// Key holding the signing secret (DingTalk's `SEC...` string, Feishu's signature key, or the
    /// HMAC key of a webhook). Default `secret`; messages are signed when the key is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub secret_key: Option<String>,
}

impl NotificationChannelSpec {
    pub fn max_list_length(&self) -> usize {
        self.max_list_length.unwrap_or(20).max(1) as usize
    }

    pub fn heartbeat(&self) -> bool {
        self.heartbeat.unwrap_or(true)
    }
}

impl ChannelSecretRef {
    pub fn url_key(&self) -> &str {
        self.url_key.as_deref().unwrap_or("url")
    }

    pub fn secret_key(&self) -> &str {
        self.secret_key.as_deref().unwrap_or("secret")
    }
}
