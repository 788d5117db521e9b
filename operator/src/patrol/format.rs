//! A report as each platform renders it: DingTalk markdown, a Feishu interactive card, or our
//! generic JSON for webhooks. The keyword a robot requires is in every title and first line.

use serde_json::{Value, json};

use super::report::{Report, Severity};
use crate::api::ChannelType;

/// The platform a channel talks to: its `type`, else recognised from the URL's host.
pub fn platform(declared: Option<ChannelType>, url: &str) -> ChannelType {
    if let Some(declared) = declared {
        return declared;
    }
    let host = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("")
        .rsplit('@')
        .next()
        .unwrap_or("")
        .split(':')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    match host.as_str() {
        "oapi.dingtalk.com" => ChannelType::Dingtalk,
        "open.feishu.cn" | "open.larksuite.com" => ChannelType::Feishu,
        _ => ChannelType::Webhook,
    }
}

fn title(report: &Report) -> String {
    let keyword = report.keyword.as_deref().map(|k| format!("[{k}] ")).unwrap_or_default();
    if report.heartbeat {
        format!("{keyword}SCS patrol {}: all clear", report.patrol)
    } else {
        format!("{keyword}SCS patrol {}: {} finding(s), {} critical", report.patrol, report.total, report.critical)
    }
}

fn counts_line(report: &Report) -> String {
    let counts: Vec<String> = report.counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    counts.join(" · ")
}

/// The findings as markdown list lines (shared by DingTalk and Feishu's lark_md).
fn lines(report: &Report) -> Vec<String> {
    let mut lines: Vec<String> = report
        .items
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mark = if f.severity == Severity::Critical { "🔴" } else { "🟠" };
            let subject = if f.subject.is_empty() { String::new() } else { format!(" {}", f.subject) };
            let amount = f.amount.as_ref().map(|a| format!(" ({a})")).unwrap_or_default();
            format!("{}. {mark} **{}**{subject}: {}{amount}", i + 1, f.tenant, f.summary)
        })
        .collect();
    if report.more > 0 {
        lines.push(format!("… and {} more", report.more));
    }
    lines
}

fn summary_line(report: &Report) -> String {
    if report.heartbeat {
        format!(
            "Nothing to report: no tenant expiring, no quota under pressure, no workload in trouble. Run {}.",
            report.run
        )
    } else {
        format!("Run {} · {}", report.run, counts_line(report))
    }
}

/// DingTalk: a `markdown` message.
pub fn dingtalk(report: &Report) -> Value {
    let title = title(report);
    let mut text = format!("### {title}\n\n{}\n\n", summary_line(report));
    for line in lines(report) {
        text.push_str(&line);
        text.push('\n');
    }
    json!({"msgtype": "markdown", "markdown": {"title": title, "text": text}})
}

/// Feishu/Lark: an interactive card (red header with critical findings, orange with warnings,
/// green for the heartbeat).
pub fn feishu(report: &Report) -> Value {
    let template = match (report.heartbeat, report.critical) {
        (true, _) => "green",
        (false, 0) => "orange",
        _ => "red",
    };
    let mut elements = vec![json!({"tag": "div", "text": {"tag": "lark_md", "content": summary_line(report)}})];
    if !report.heartbeat {
        elements.push(json!({"tag": "hr"}));
        elements.push(json!({"tag": "div", "text": {"tag": "lark_md", "content": lines(report).join("\n")}}));
    }
    json!({
        "msg_type": "interactive",
        "card": {
            "config": {"wide_screen_mode": true},
            "header": {"template": template, "title": {"tag": "plain_text", "content": title(report)}},
            "elements": elements,
        }
    })
}

/// Webhooks: the report as data, with a ready-made text.
pub fn webhook(report: &Report) -> Value {
    let mut body = serde_json::to_value(report).unwrap_or_default();
    body["source"] = json!("scs-operator");
    body["title"] = json!(title(report));
    body["text"] = json!(std::iter::once(summary_line(report)).chain(lines(report)).collect::<Vec<_>>().join("\n"));
    body
}

/// The body for `platform`.
pub fn body(platform: ChannelType, report: &Report) -> Value {
    match platform {
        ChannelType::Dingtalk => dingtalk(report),
        ChannelType::Feishu => feishu(report),
        ChannelType::Webhook => webhook(report),
    }
}

#[cfg(test)]
mod tests {
    use super::super::report::{Category, Finding, Presentation, build};
    use super::*;

    #[test]
    fn platform_from_the_url_unless_declared() {
        let p = |url| platform(None, url);
        assert_eq!(p("https://oapi.dingtalk.com/robot/send?access_token=x"), ChannelType::Dingtalk);
        assert_eq!(p("https://open.feishu.cn/open-apis/bot/v2/hook/x"), ChannelType::Feishu);
        assert_eq!(p("https://open.larksuite.com/open-apis/bot/v2/hook/x"), ChannelType::Feishu);
        assert_eq!(p("https://OAPI.DingTalk.com:443/robot/send"), ChannelType::Dingtalk);
        assert_eq!(p("https://hooks.example.com/scs"), ChannelType::Webhook);
        // Only the host counts, not a path or query that mentions a platform.
        assert_eq!(p("https://evil.example.com/oapi.dingtalk.com?u=open.feishu.cn"), ChannelType::Webhook);
        assert_eq!(p("https://oapi.dingtalk.com.evil.example.com/x"), ChannelType::Webhook);
        assert_eq!(platform(Some(ChannelType::Feishu), "http://127.0.0.1:9/x"), ChannelType::Feishu);
    }

    fn sample() -> Report {
        let finding = |severity, category, tenant: &str, subject: &str, summary: &str, amount: Option<&str>| Finding {
            severity,
            category,
            tenant: tenant.into(),
            subject: subject.into(),
            summary: summary.into(),
            amount: amount.map(str::to_string),
            urgency: 0,
        };
        let findings = vec![
            finding(
                Severity::Critical,
                Category::Expiry,
                "acme",
                "",
                "expired 2 day(s) ago (2026-11-29T00:00:00Z); workloads suspended",
                None,
            ),
            finding(
                Severity::Critical,
                Category::Quota,
                "beta",
                "requests.cpu",
                "quota 96% used",
                Some("15400m of 16"),
            ),
            finding(
                Severity::Warning,
                Category::Gpu,
                "beta",
                "requests.nvidia.com/gpu",
                "GPU quota fully used: no accelerator left for a new pod",
                Some("2 of 2"),
            ),
        ];
        let how =
            Presentation { keyword: Some("巡检".into()), max_list_length: 2, hide_amounts: false, heartbeat: true };
        build("daily", "2026-12-01T09:00:00+08:00", findings, &how).unwrap()
    }

    #[test]
    fn dingtalk_markdown_carries_keyword_counts_cap_and_amounts() {
        let body = dingtalk(&sample());
        assert_eq!(body["msgtype"], "markdown");
        let title = body["markdown"]["title"].as_str().unwrap();
        assert_eq!(title, "[巡检] SCS patrol daily: 3 finding(s), 2 critical");
        let text = body["markdown"]["text"].as_str().unwrap();
        assert!(text.starts_with("### [巡检] SCS patrol daily"), "{text}");
        assert!(text.contains("expiry 1 · gpu 1 · quota 1"), "{text}");
        assert!(text.contains("2. 🔴 **beta** requests.cpu: quota 96% used (15400m of 16)"), "{text}");
        assert!(text.contains("… and 1 more"), "{text}");
    }

    #[test]
    fn feishu_card_is_red_with_critical_findings_and_green_for_the_heartbeat() {
        let card = feishu(&sample());
        assert_eq!(card["msg_type"], "interactive");
        assert_eq!(card["card"]["header"]["template"], "red");
        assert!(card["card"]["header"]["title"]["content"].as_str().unwrap().contains("巡检"));
        let quiet =
            build("daily", "r", vec![], &Presentation { max_list_length: 5, heartbeat: true, ..Default::default() })
                .unwrap();
        let card = feishu(&quiet);
        assert_eq!(card["card"]["header"]["template"], "green");
        assert!(card["card"]["header"]["title"]["content"].as_str().unwrap().ends_with("all clear"));
    }

    #[test]
    fn webhook_json_is_the_report_as_data() {
        let body = webhook(&sample());
        assert_eq!(body["total"], 3);
        assert_eq!(body["more"], 1);
        assert_eq!(body["items"].as_array().unwrap().len(), 2);
        assert_eq!(body["items"][1]["amount"], "15400m of 16");
        assert_eq!(body["counts"]["quota"], 1);
        assert_eq!(body["keyword"], "巡检");
    }
}
