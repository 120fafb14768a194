//! Which of a secret's `rotor:after` entries may run: each parsed, then held
//! against the deployer's allow-list. Pure: no I/O, so every rule is tested
//! here.
//!
//! The rules a tag writer cannot get around: an ECS service is named by
//! cluster and service and must match an allowed service ARN (the call then
//! names that ARN, in its region and account); a topic must be one of the
//! allowed topic ARNs, compared whole; a webhook URL is parsed and must lie
//! under an allowed prefix (same scheme, host and port, path segment by
//! segment), over https unless the process allows loopback URLs (tests).

use crate::http::{UrlPrefix, display_url, parse_endpoint};

use super::{MAX_ACTIONS, vars};

/// An ECS service, as its ARN names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcsService {
    /// The service's ARN.
    pub arn: String,
    /// Its cluster's ARN (same partition, region and account).
    pub cluster_arn: String,
    /// The cluster's name.
    pub cluster: String,
    /// The service's name.
    pub service: String,
}

impl EcsService {
    /// Parses a service ARN in the long format
    /// (`arn:<partition>:ecs:<region>:<account>:service/<cluster>/<service>`).
    pub fn parse(arn: &str) -> Result<EcsService, String> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let shape = || {
            format!(
                "{arn:?} is not an ECS service ARN; write \
                 arn:aws:ecs:<region>:<account>:service/<cluster>/<service>"
            )
        };
        let [arn_word, partition, service_word, region, account, resource] = parts[..] else {
            return Err(shape());
        };
        if arn_word != "arn" || service_word != "ecs" || region.is_empty() || account.is_empty() {
            return Err(shape());
        }
        let names: Vec<&str> = resource.split('/').collect();
        let ["service", cluster, service] = names[..] else {
            return Err(shape());
        };
        if cluster.is_empty() || service.is_empty() {
            return Err(shape());
        }
        Ok(EcsService {
            arn: arn.to_owned(),
            cluster_arn: format!("arn:{partition}:ecs:{region}:{account}:cluster/{cluster}"),
            cluster: cluster.to_owned(),
            service: service.to_owned(),
        })
    }
}

/// An action a secret asked for and the deployer allows.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// ECS UpdateService with forceNewDeployment.
    Ecs(EcsService),
    /// SNS Publish to a topic ARN.
    Sns(String),
    /// A signed POST to a URL (`action=finished`).
    Webhook(reqwest::Url),
}

impl Action {
    /// The metrics' `Action` dimension value.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Ecs(_) => "ecs",
            Action::Sns(_) => "sns",
            Action::Webhook(_) => "webhook",
        }
    }

    /// How messages name the target (a URL by origin and path only).
    pub fn target(&self) -> String {
        match self {
            Action::Ecs(s) => format!("ECS service {}/{}", s.cluster, s.service),
            Action::Sns(topic) => format!("SNS topic {topic}"),
            Action::Webhook(url) => format!("webhook {}", display_url(url.as_str())),
        }
    }
}

/// An entry of the tag, allowed or refused (with the reason and the fix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Planned {
    /// It may run.
    Allowed(Action),
    /// It may not; why, for the log and the notice.
    Refused(String),
}

/// What the deployer allows, read once per process.
#[derive(Clone, Debug, Default)]
pub struct AllowList {
    ecs: Vec<EcsService>,
    topics: Vec<String>,
    prefixes: Vec<UrlPrefix>,
    /// An allow-list entry that does not parse: every action is refused
    /// with it until the deployer fixes it.
    problem: Option<String>,
}

impl AllowList {
    /// Reads the `ROTOR_AFTER_*` lists from `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> AllowList {
        let list = |var| crate::settings::list(&lookup, var);
        let mut allow = AllowList::default();
        let mut problems = Vec::new();
        for arn in list(vars::ECS_SERVICES) {
            match EcsService::parse(&arn) {
                Ok(service) => allow.ecs.push(service),
                Err(p) => problems.push(format!("{}: {p}", vars::ECS_SERVICES)),
            }
        }
        for arn in list(vars::SNS_TOPICS) {
            if is_topic_arn(&arn) {
                allow.topics.push(arn);
            } else {
                problems.push(format!(
                    "{}: {arn:?} is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<topic>)",
                    vars::SNS_TOPICS
                ));
            }
        }
        for prefix in list(vars::WEBHOOK_PREFIXES) {
            match UrlPrefix::parse(&prefix) {
                Ok(prefix) => allow.prefixes.push(prefix),
                Err(p) => problems.push(format!("{}: {p}", vars::WEBHOOK_PREFIXES)),
            }
        }
        if !problems.is_empty() {
            allow.problem = Some(problems.join("; "));
        }
        allow
    }

    /// Whether the deployer allowed nothing at all.
    pub fn is_empty(&self) -> bool {
        self.ecs.is_empty() && self.topics.is_empty() && self.prefixes.is_empty()
    }

    /// Each entry of a `rotor:after` value, allowed or refused, in order.
    pub fn plan(&self, after: &str) -> Vec<Planned> {
        super::entries(after)
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                if i >= MAX_ACTIONS {
                    return Planned::Refused(format!(
                        "{entry}: a secret may list at most {MAX_ACTIONS} actions; \
                         remove some from its rotor:after tag"
                    ));
                }
                if let Some(problem) = &self.problem {
                    return Planned::Refused(format!(
                        "{entry}: the function's allow-list is unusable ({problem}); \
                         fix the stack's parameters"
                    ));
                }
                match self.check(entry) {
                    Ok(action) => Planned::Allowed(action),
                    Err(reason) => Planned::Refused(format!("{entry}: {reason}")),
                }
            })
            .collect()
    }

    fn check(&self, entry: &str) -> Result<Action, String> {
        let Some((kind, target)) = entry.split_once(':') else {
            return Err(NO_KIND.to_owned());
        };
        match kind {
            "ecs" => self.ecs(target),
            "sns" => self.sns(target),
            "webhook" => self.webhook(target),
            _ => Err(NO_KIND.to_owned()),
        }
    }

    fn ecs(&self, target: &str) -> Result<Action, String> {
        let found = match target.split_once('/') {
            // A whole ARN names its region and account: compared whole.
            _ if target.starts_with("arn:") => self.ecs.iter().find(|s| s.arn == target),
            Some((cluster, service)) => self
                .ecs
                .iter()
                .find(|s| s.cluster == cluster && s.service == service),
            None => {
                return Err("write the service as ecs:<cluster>/<service>".to_owned());
            }
        };
        match found {
            Some(service) => Ok(Action::Ecs(service.clone())),
            None => Err(format!(
                "the service is not in the function's allow-list ({}); \
                 a secret may only redeploy services its deployer listed: \
                 add the service's ARN to the stack's afterEcsServices parameter",
                vars::ECS_SERVICES
            )),
        }
    }

    fn sns(&self, target: &str) -> Result<Action, String> {
        if self.topics.iter().any(|t| t == target) {
            Ok(Action::Sns(target.to_owned()))
        } else {
            Err(format!(
                "the topic is not in the function's allow-list ({}); \
                 add its ARN to the stack's afterSnsTopics parameter",
                vars::SNS_TOPICS
            ))
        }
    }

    fn webhook(&self, target: &str) -> Result<Action, String> {
        let url = parse_endpoint(target).map_err(|e| e.to_string())?;
        if self.prefixes.iter().any(|p| p.admits(&url)) {
            Ok(Action::Webhook(url))
        } else {
            Err(format!(
                "the URL is not under a prefix of the function's allow-list ({}; same \
                 scheme, host and port, and a path at or below the prefix's); add its \
                 prefix to the stack's afterWebhookPrefixes parameter",
                vars::WEBHOOK_PREFIXES
            ))
        }
    }
}

const NO_KIND: &str = "write ecs:<cluster>/<service>, sns:<topic ARN> or webhook:<https URL>";

/// `arn:<partition>:sns:<region>:<account>:<topic>`.
fn is_topic_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts[..], ["arn", _, "sns", region, account, topic]
        if !region.is_empty() && !account.is_empty() && !topic.is_empty() && !topic.contains(':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEB: &str = "arn:aws:ecs:us-east-1:123456789012:service/prod/web";
    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:rotated";

    fn allow() -> AllowList {
        AllowList::from_lookup(|var| match var {
            vars::ECS_SERVICES => Some(format!("{WEB}, ")),
            vars::SNS_TOPICS => Some(TOPIC.to_owned()),
            vars::WEBHOOK_PREFIXES => Some("https://hooks.example.com/rotor".to_owned()),
            _ => None,
        })
    }

    fn refused(planned: &Planned) -> &str {
        match planned {
            Planned::Refused(reason) => reason,
            Planned::Allowed(action) => panic!("allowed: {action:?}"),
        }
    }

    #[test]
    fn allowed_targets_run_in_the_tags_order() {
        let plan = allow().plan(&format!(
            "webhook:https://hooks.example.com/rotor/app sns:{TOPIC} ecs:prod/web ecs:{WEB}"
        ));
        let kinds: Vec<_> = plan
            .iter()
            .map(|p| match p {
                Planned::Allowed(a) => a.kind(),
                Planned::Refused(r) => panic!("{r}"),
            })
            .collect();
        assert_eq!(kinds, ["webhook", "sns", "ecs", "ecs"]);
        let Planned::Allowed(Action::Ecs(service)) = &plan[2] else {
            unreachable!()
        };
        assert_eq!(
            service.cluster_arn,
            "arn:aws:ecs:us-east-1:123456789012:cluster/prod"
        );
        assert_eq!(service.arn, WEB);
    }

    #[test]
    fn a_target_outside_the_allow_list_is_refused_with_the_fix() {
        let plan = allow().plan(
            "ecs:prod/api ecs:other/web sns:arn:aws:sns:us-east-1:999999999999:rotated \
             ecs:arn:aws:ecs:eu-west-1:123456789012:service/prod/web",
        );
        assert!(refused(&plan[0]).contains("afterEcsServices"));
        assert!(refused(&plan[1]).contains("not in the function's allow-list"));
        assert!(refused(&plan[2]).contains("afterSnsTopics"));
        // Same names in another region: another service.
        assert!(refused(&plan[3]).contains("allow-list"));
    }

    #[test]
    fn webhook_urls_are_parsed_before_they_are_compared() {
        let plan = allow().plan(
            "webhook:https://hooks.example.com@evil.example/rotor \
             webhook:https://hooks.example.com/rotorx \
             webhook:https://hooks.example.com:8443/rotor \
             webhook:http://hooks.example.com/rotor \
             webhook:https://hooks.example.com/rotor/%2F..%2Fadmin",
        );
        for planned in &plan {
            refused(planned);
        }
        assert!(refused(&plan[0]).contains("user info"));
        assert!(refused(&plan[3]).contains("https"));
    }

    #[test]
    fn malformed_entries_say_how_to_write_them() {
        let plan = allow().plan("restart-everything ftp:x ecs:web");
        assert!(refused(&plan[0]).contains("ecs:<cluster>/<service>"));
        assert!(refused(&plan[1]).contains("webhook:<https URL>"));
        assert!(refused(&plan[2]).contains("ecs:<cluster>/<service>"));
    }

    #[test]
    fn nothing_is_allowed_by_default_or_with_a_broken_list() {
        let none = AllowList::from_lookup(|_| None);
        assert!(none.is_empty());
        assert!(refused(&none.plan("ecs:prod/web")[0]).contains("allow-list"));
        let broken = AllowList::from_lookup(|var| {
            (var == vars::ECS_SERVICES).then(|| format!("{WEB},service/prod/api"))
        });
        assert!(refused(&broken.plan("ecs:prod/web")[0]).contains("unusable"));
    }

    #[test]
    fn too_many_entries_are_refused_beyond_the_limit() {
        let tag = vec!["ecs:prod/web"; MAX_ACTIONS + 1].join(" ");
        let plan = allow().plan(&tag);
        assert!(matches!(plan[MAX_ACTIONS - 1], Planned::Allowed(_)));
        assert!(refused(&plan[MAX_ACTIONS]).contains("at most"));
    }

    #[test]
    fn service_arns_must_be_long_and_complete() {
        assert!(EcsService::parse(WEB).is_ok());
        for bad in [
            "arn:aws:ecs:us-east-1:123456789012:service/web",
            "arn:aws:ecs:us-east-1::service/prod/web",
            "arn:aws:ec2:us-east-1:123456789012:service/prod/web",
            "prod/web",
        ] {
            assert!(EcsService::parse(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        /// Any tag value (tag values are printable text) is planned entry by
        /// entry without a panic, and only the allowed targets are allowed.
        #[test]
        fn any_tag_value_is_planned_entry_by_entry(value in "[ -~]{0,300}") {
            let plan = allow().plan(&value);
            proptest::prop_assert_eq!(plan.len(), super::super::entries(&value).len());
            for planned in &plan {
                match planned {
                    Planned::Allowed(Action::Ecs(service)) => {
                        proptest::prop_assert_eq!(service.arn.as_str(), WEB)
                    }
                    Planned::Allowed(Action::Sns(topic)) => {
                        proptest::prop_assert_eq!(topic.as_str(), TOPIC)
                    }
                    Planned::Allowed(Action::Webhook(url)) => {
                        proptest::prop_assert!(url.as_str().starts_with("https://hooks.example.com/rotor"))
                    }
                    Planned::Refused(reason) => proptest::prop_assert!(!reason.is_empty()),
                }
            }
        }
    }
}
