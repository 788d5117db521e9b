use serde_json::{Value, json};

use super::*;
use crate::api::TenantSpec;

fn tenant() -> Tenant {
    Tenant::new("acme", TenantSpec { namespaces: vec!["acme-prod".into()], ..Default::default() })
}

/// A workload from YAML, with a UID as the API server would give it.
fn workload(spec: &str) -> SecureWorkload {
    let spec: Value = serde_yaml::from_str(spec).unwrap();
    let mut object: SecureWorkload = serde_json::from_value(json!({
        "apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload",
        "metadata": {"name": "web", "namespace": "acme-prod", "uid": "u-1"},
        "spec": spec,
    }))
    .unwrap();
    object.metadata.uid = Some("u-1".into());
    object
}

const POD: &str = "
template:
  metadata: {labels: {app: web}}
  spec:
    runtimeClassName: runc
    hostNetwork: true
    containers:
      - {name: app, image: 'app:1'}
      - {name: sidecar, image: 'proxy:1'}
";

fn build(spec: &str) -> Vec<Child> {
    workload_children(&workload(&format!("{spec}{POD}")), &tenant(), &OperatorConfig::default())
}

fn find<'a>(children: &'a [Child], kind: &str, name: &str) -> &'a Value {
    &children.iter().find(|c| c.kind == kind && c.name == name).unwrap_or_else(|| panic!("no {kind} {name}")).object
}

fn kinds(children: &[Child]) -> Vec<(String, String)> {
    children.iter().map(|c| (c.kind.clone(), c.name.clone())).collect()
}

fn pod_spec(object: &Value) -> &Value {
    if object["kind"] == "CronJob" {
        &object["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    } else {
        &object["spec"]["template"]["spec"]
    }
}

#[test]
fn every_kind_runs_in_the_tenants_sandbox_without_host_namespaces() {
    for (kind, extra) in [
        ("Deployment", ""),
        ("StatefulSet", ""),
        ("DaemonSet", ""),
        ("Job", ""),
        ("CronJob", "schedule: '0 * * * *'\n"),
    ] {
        let children = build(&format!("kind: {kind}\n{extra}"));
        let object = find(&children, kind, "web");
        let pod = pod_spec(object);
        assert_eq!(pod["runtimeClassName"], "kata-qemu", "{kind}");
        assert!(pod.get("hostNetwork").is_none(), "{kind}");
        assert_eq!(object["metadata"]["labels"]["scs.dev/workload"], "web");
        assert!(object["metadata"]["labels"].get("scs.dev/tenant").is_none(), "tenant cleanup must not see it");
        assert_eq!(object["metadata"]["ownerReferences"][0]["uid"], "u-1");
        assert_eq!(object["metadata"]["ownerReferences"][0]["controller"], true);
    }
}

#[test]
fn tenant_runtime_class_wins() {
    let mut tenant = tenant();
    tenant.spec.runtime_class_name = Some("kata-qemu-nvidia-gpu".into());
    let children =
        workload_children(&workload(&format!("kind: Deployment\n{POD}")), &tenant, &OperatorConfig::default());
    assert_eq!(pod_spec(find(&children, "Deployment", "web"))["runtimeClassName"], "kata-qemu-nvidia-gpu");
}

#[test]
fn deployment_selector_is_stable_and_pods_keep_their_labels() {
    let one = build("kind: Deployment\nreplicas: 2\n");
    let two = build("kind: Deployment\nreplicas: 5\nrestartedAt: '2026-11-20T10:00:00Z'\n");
    let selector = |c: &[Child]| find(c, "Deployment", "web")["spec"]["selector"].clone();
    assert_eq!(selector(&one), json!({"matchLabels": {"scs.dev/workload": "web"}}));
    assert_eq!(selector(&one), selector(&two));
    let deployment = find(&one, "Deployment", "web");
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(deployment["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(deployment["spec"]["template"]["metadata"]["labels"], json!({"app": "web", "scs.dev/workload": "web"}));
    assert_eq!(
        find(&two, "Deployment", "web")["spec"]["template"]["metadata"]["annotations"]["scs.dev/restartedAt"],
        "2026-11-20T10:00:00Z"
    );
}

#[test]
fn gpu_resources_and_node_affinity() {
    let children = build("kind: Deployment\ngpu: {vendor: nvidia, count: 2, model: Tesla-T4, container: sidecar}\n");
    let pod = pod_spec(find(&children, "Deployment", "web"));
    assert!(pod["containers"][0].get("resources").is_none(), "only the named container");
    assert_eq!(
        pod["containers"][1]["resources"],
        json!({"limits": {"nvidia.com/gpu": "2"}, "requests": {"nvidia.com/gpu": "2"}})
    );
    assert_eq!(
        pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"],
        json!([{"matchExpressions": [
            {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
            {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["Tesla-T4"]},
            {"key": "scs.dev/gpu-certified", "operator": "In", "values": ["true"]},
        ]}])
    );
    let kunlun = super::super::workload::workload_children(
        &workload(&format!("kind: Job\ngpu: {{vendor: kunlun, count: 1}}\n{POD}")),
        &tenant(),
        &OperatorConfig::default(),
    );
    let pod = pod_spec(find(&kunlun, "Job", "web"));
    assert_eq!(pod["containers"][0]["resources"]["limits"]["kunlunxin.com/xpu"], "1", "first container by default");
    assert_eq!(pod["runtimeClassName"], "kata-qemu", "no Kunlun class configured: the tenant's");
    assert_eq!(pod["tolerations"], json!([{"key": "kunlunxin.com/xpu", "operator": "Exists", "effect": "NoSchedule"}]));
}

#[test]
fn gpu_pods_run_in_the_vendors_class_on_its_tainted_nodes() {
    let children = build(
        "kind: Deployment
gpu: {vendor: nvidia, count: 1}
",
    );
    let pod = pod_spec(find(&children, "Deployment", "web"));
    assert_eq!(pod["runtimeClassName"], "kata-qemu-nvidia-gpu");
    assert_eq!(pod["tolerations"], json!([{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]));
    let plain = build(
        "kind: Deployment
",
    );
    let pod = pod_spec(find(&plain, "Deployment", "web"));
    assert_eq!(pod["runtimeClassName"], "kata-qemu");
    assert!(pod.get("tolerations").is_none());
}

#[test]
fn user_node_affinity_terms_each_get_the_gpu_requirements() {
    let spec = "kind: Deployment
gpu: {vendor: nvidia, count: 1}
template:
  spec:
    affinity:
      nodeAffinity:
        requiredDuringSchedulingIgnoredDuringExecution:
          nodeSelectorTerms:
            - matchExpressions: [{key: zone, operator: In, values: [a]}]
            - matchExpressions: [{key: zone, operator: In, values: [b]}]
    containers: [{name: app, image: 'app:1'}]
";
    let children = workload_children(&workload(spec), &tenant(), &OperatorConfig::default());
    let terms = &pod_spec(find(&children, "Deployment", "web"))["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"];
    for term in terms.as_array().unwrap() {
        let keys: Vec<&str> =
            term["matchExpressions"].as_array().unwrap().iter().map(|e| e["key"].as_str().unwrap()).collect();
        assert_eq!(keys, ["zone", "kubernetes.io/arch", "scs.dev/gpu-certified"]);
    }
}

fn required_terms(children: &[Child]) -> &Value {
    &pod_spec(find(children, "Deployment", "web"))["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"]
}

#[test]
fn gpu_pods_require_certified_nodes_unless_configured_off() {
    let spec = format!("kind: Deployment\ngpu: {{vendor: kunlun, count: 1}}\n{POD}");
    let children = workload_children(&workload(&spec), &tenant(), &OperatorConfig::default());
    assert_eq!(
        required_terms(&children),
        &json!([{"matchExpressions": [
            {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
            {"key": "scs.dev/gpu-certified", "operator": "In", "values": ["true"]},
        ]}])
    );
    // A cluster whose GPU nodes are labelled some other way turns it off, per vendor.
    let mut config = OperatorConfig::default();
    config.gpu.kunlun.certified_node_label = String::new();
    let children = workload_children(&workload(&spec), &tenant(), &config);
    assert_eq!(
        required_terms(&children),
        &json!([{"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}])
    );
    config.gpu.kunlun.certified_node_label = "example.com/xpu-ok".into();
    let children = workload_children(&workload(&spec), &tenant(), &config);
    assert_eq!(required_terms(&children)[0]["matchExpressions"][1]["key"], "example.com/xpu-ok");
    // Pods without GPUs get no affinity at all.
    let plain = build("kind: Deployment\n");
    assert!(pod_spec(find(&plain, "Deployment", "web")).get("affinity").is_none());
}

#[test]
fn cuda_bounds_become_integer_node_affinity_including_both_ends() {
    let cuda = |range: &str| {
        let children = build(&format!("kind: Deployment\ngpu: {{vendor: nvidia, count: 1, cuda: {range}}}\n"));
        let expressions = required_terms(&children)[0]["matchExpressions"].as_array().unwrap().clone();
        expressions.into_iter().filter(|e| e["key"] == "scs.dev/cuda-driver-version").collect::<Vec<_>>()
    };
    // CUDA 11.0 up to and including 11.2: 11000 <= version <= 11020.
    assert_eq!(
        cuda("{min: '11.0', max: '11.2'}"),
        [
            json!({"key": "scs.dev/cuda-driver-version", "operator": "Gt", "values": ["10999"]}),
            json!({"key": "scs.dev/cuda-driver-version", "operator": "Lt", "values": ["11021"]}),
        ]
    );
    assert_eq!(
        cuda("{max: '11.2'}"),
        [json!({"key": "scs.dev/cuda-driver-version", "operator": "Lt", "values": ["11021"]})]
    );
    assert_eq!(
        cuda("{min: '12.10'}"),
        [json!({"key": "scs.dev/cuda-driver-version", "operator": "Gt", "values": ["12099"]})]
    );
    assert!(cuda("{}").is_empty(), "no bounds, no expression (the CRD refuses an empty range)");
}

#[test]
fn networks_become_the_multus_annotation_and_static_ips_recreate() {
    let children = build(
        "kind: Deployment\nnetworks:\n  - {name: office, interface: net1, ips: ['192.168.100.30/24']}\n  - {name: ovn}\n",
    );
    let deployment = find(&children, "Deployment", "web");
    let annotation =
        deployment["spec"]["template"]["metadata"]["annotations"][pod::NETWORKS_ANNOTATION].as_str().unwrap();
    let parsed: Value = serde_json::from_str(annotation).unwrap();
    assert_eq!(
        parsed,
        json!([
            {"name": "office.static", "interface": "net1", "ips": ["192.168.100.30/24"]},
            {"name": "ovn"},
        ])
    );
    assert!(
        !annotation.contains("namespace"),
        "Multus's default is the pod's own namespace; the admission policy refuses any other"
    );
    assert_eq!(deployment["spec"]["strategy"], json!({"type": "Recreate"}), "a static address is never held twice");
}

#[test]
fn rolling_update_settings() {
    let children = build("kind: Deployment\nupdateStrategy: {maxSurge: 1, maxUnavailable: '25%'}\n");
    assert_eq!(
        find(&children, "Deployment", "web")["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}})
    );
    let daemons = build("kind: DaemonSet\nupdateStrategy: {maxUnavailable: 2}\n");
    assert_eq!(
        find(&daemons, "DaemonSet", "web")["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}})
    );
}

#[test]
fn deployment_volumes_are_claims_kept_by_default() {
    let children = build(
        "kind: Deployment\nvolumes:\n  - {name: data, size: 10Gi, tier: performance, mountPath: /data, container: app}\n",
    );
    let claim = find(&children, "PersistentVolumeClaim", "web-data");
    assert_eq!(claim["spec"]["storageClassName"], "performance");
    assert_eq!(claim["spec"]["accessModes"], json!(["ReadWriteOnce"]));
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "10Gi");
    assert!(claim["metadata"].get("ownerReferences").is_none(), "retained: not garbage collected with the workload");
    let pod = pod_spec(find(&children, "Deployment", "web"));
    assert_eq!(pod["volumes"], json!([{"name": "data", "persistentVolumeClaim": {"claimName": "web-data"}}]));
    assert_eq!(pod["containers"][0]["volumeMounts"], json!([{"name": "data", "mountPath": "/data"}]));
    assert!(pod["containers"][1].get("volumeMounts").is_none());

    let owned = build(
        "kind: Job\nretainVolumes: false\nvolumes:\n  - {name: scratch, size: 1Gi, tier: capacity, mountPath: /tmp/x}\n",
    );
    let claim = find(&owned, "PersistentVolumeClaim", "web-scratch");
    assert_eq!(claim["metadata"]["ownerReferences"][0]["uid"], "u-1");
    assert_eq!(claim["spec"]["storageClassName"], "standard");
}

#[test]
fn statefulset_gets_claim_templates_a_headless_service_and_a_partition() {
    let children = build(
        "kind: StatefulSet\nreplicas: 3\nupdateStrategy: {partition: 2}\nvolumes:\n  - {name: data, size: 100Gi, tier: performance, mountPath: /var/lib/db}\nexpose: {ports: [{name: sql, port: 5432}]}\n",
    );
    assert_eq!(
        kinds(&children),
        [
            ("StatefulSet".to_string(), "web".to_string()),
            ("Service".to_string(), "web-headless".to_string()),
            ("Service".to_string(), "web".to_string()),
        ]
    );
    let set = find(&children, "StatefulSet", "web");
    assert_eq!(set["spec"]["serviceName"], "web-headless");
    assert_eq!(set["spec"]["replicas"], 3);
    assert_eq!(set["spec"]["updateStrategy"], json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}));
    assert_eq!(set["spec"]["volumeClaimTemplates"][0]["metadata"]["name"], "data");
    assert_eq!(set["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"], "performance");
    assert_eq!(
        set["spec"]["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
    );
    assert!(pod_spec(set).get("volumes").is_none(), "claims come from the templates");
    assert_eq!(pod_spec(set)["containers"][1]["volumeMounts"][0]["mountPath"], "/var/lib/db");
    let headless = find(&children, "Service", "web-headless");
    assert_eq!(headless["spec"]["clusterIP"], "None");
    assert_eq!(headless["spec"]["selector"], json!({"scs.dev/workload": "web"}));
}

#[test]
fn exposure_service_ingress_and_autoscaler() {
    let children = build(
        "kind: Deployment
expose:
  type: LoadBalancer
  ports: [{name: http, port: 80, targetPort: 8080}, {name: dns, port: 53, protocol: UDP}]
  ingress: {host: web.acme.example.com, tlsSecretName: web-tls, className: nginx}
autoscaling: {minReplicas: 2, maxReplicas: 6, memoryUtilization: 70}
",
    );
    let service = find(&children, "Service", "web");
    assert_eq!(service["spec"]["type"], "LoadBalancer");
    assert_eq!(service["spec"]["allocateLoadBalancerNodePorts"], false, "tenants get no NodePorts");
    assert_eq!(
        service["spec"]["ports"],
        json!([
            {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
            {"name": "dns", "port": 53, "targetPort": 53, "protocol": "UDP"},
        ])
    );
    let ingress = find(&children, "Ingress", "web");
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    assert_eq!(ingress["spec"]["rules"][0]["host"], "web.acme.example.com");
    assert_eq!(
        ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"],
        json!({"name": "web", "port": {"name": "http"}})
    );
    assert_eq!(ingress["spec"]["tls"], json!([{"hosts": ["web.acme.example.com"], "secretName": "web-tls"}]));
    let hpa = find(&children, "HorizontalPodAutoscaler", "web");
    assert_eq!(hpa["apiVersion"], "autoscaling/v2");
    assert_eq!(hpa["spec"]["scaleTargetRef"], json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}));
    assert_eq!((hpa["spec"]["minReplicas"].clone(), hpa["spec"]["maxReplicas"].clone()), (json!(2), json!(6)));
    assert_eq!(hpa["spec"]["metrics"][0]["resource"]["name"], "memory");
    assert!(find(&children, "Deployment", "web")["spec"].get("replicas").is_none(), "the HPA owns the count");
}

#[test]
fn autoscaler_defaults_to_cpu() {
    let children = build("kind: StatefulSet\nautoscaling: {maxReplicas: 4}\n");
    let hpa = find(&children, "HorizontalPodAutoscaler", "web");
    assert_eq!(
        hpa["spec"]["metrics"][0]["resource"],
        json!({"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}})
    );
    assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], "StatefulSet");
}

#[test]
fn suspension_per_kind() {
    let children_of = |spec: &str| build(spec);
    let deployment = children_of("kind: Deployment\nreplicas: 3\nsuspended: true\nautoscaling: {maxReplicas: 5}\n");
    assert_eq!(find(&deployment, "Deployment", "web")["spec"]["replicas"], 0);
    assert!(deployment.iter().all(|c| c.kind != "HorizontalPodAutoscaler"), "no HPA while suspended");
    let set = children_of("kind: StatefulSet\nsuspended: true\n");
    assert_eq!(find(&set, "StatefulSet", "web")["spec"]["replicas"], 0);
    let job = children_of("kind: Job\nsuspended: true\n");
    assert_eq!(find(&job, "Job", "web")["spec"]["suspend"], true);
    let cron = children_of("kind: CronJob\nschedule: '@daily'\nsuspended: true\n");
    assert_eq!(find(&cron, "CronJob", "web")["spec"]["suspend"], true);
    let resumed = children_of("kind: CronJob\nschedule: '@daily'\nsuspended: false\n");
    assert_eq!(find(&resumed, "CronJob", "web")["spec"]["suspend"], false);
}

#[test]
fn jobs_and_cronjobs() {
    let job = build("kind: Job\nreplicas: 3\n");
    let spec = &find(&job, "Job", "web")["spec"];
    assert_eq!(spec["parallelism"], 3);
    assert_eq!(spec["suspend"], false);
    assert!(spec.get("selector").is_none(), "Jobs generate their own selector");
    assert_eq!(spec["template"]["spec"]["restartPolicy"], "OnFailure");

    let cron = build("kind: CronJob\nschedule: '30 2 * * *'\n");
    let spec = &find(&cron, "CronJob", "web")["spec"];
    assert_eq!(spec["schedule"], "30 2 * * *");
    assert_eq!(spec["concurrencyPolicy"], "Forbid");
    assert_eq!(spec["jobTemplate"]["metadata"]["labels"]["scs.dev/workload"], "web");
    assert_eq!(spec["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"], "OnFailure");
    assert!(spec["jobTemplate"]["spec"].get("suspend").is_none());
}

#[test]
fn render_without_uid_has_no_owner_references() {
    let mut object = workload(&format!("kind: Deployment\n{POD}"));
    object.metadata.uid = None;
    let children = workload_children(&object, &tenant(), &OperatorConfig::default());
    assert!(children.iter().all(|c| c.object["metadata"].get("ownerReferences").is_none()));
}

#[test]
fn job_and_cronjob_options_reach_the_batch_objects() {
    let job = build("kind: Job\nreplicas: 2\njob: {completions: 5, backoffLimit: 1, activeDeadlineSeconds: 600}\n");
    let spec = &find(&job, "Job", "web")["spec"];
    assert_eq!((spec["parallelism"].clone(), spec["completions"].clone()), (json!(2), json!(5)));
    assert_eq!((spec["backoffLimit"].clone(), spec["activeDeadlineSeconds"].clone()), (json!(1), json!(600)));
    assert!(spec.get("ttlSecondsAfterFinished").is_none());

    let cron = build(
        "kind: CronJob\nschedule: '0 3 * * *'\njob: {backoffLimit: 0, ttlSecondsAfterFinished: 3600}\n\
         cronJob: {timeZone: Asia/Shanghai, concurrencyPolicy: Replace, startingDeadlineSeconds: 300, \
         successfulJobsHistoryLimit: 1, failedJobsHistoryLimit: 5}\n",
    );
    let spec = &find(&cron, "CronJob", "web")["spec"];
    assert_eq!(spec["timeZone"], "Asia/Shanghai");
    assert_eq!(spec["concurrencyPolicy"], "Replace");
    assert_eq!(spec["startingDeadlineSeconds"], 300);
    assert_eq!(
        (spec["successfulJobsHistoryLimit"].clone(), spec["failedJobsHistoryLimit"].clone()),
        (json!(1), json!(5))
    );
    let job = &spec["jobTemplate"]["spec"];
    assert_eq!((job["backoffLimit"].clone(), job["ttlSecondsAfterFinished"].clone()), (json!(0), json!(3600)));

    let defaults = build("kind: CronJob\nschedule: '@daily'\n");
    let spec = &find(&defaults, "CronJob", "web")["spec"];
    assert_eq!(spec["concurrencyPolicy"], "Forbid", "overlapping runs stay off unless asked for");
    assert_eq!(
        (spec["successfulJobsHistoryLimit"].clone(), spec["failedJobsHistoryLimit"].clone()),
        (json!(3), json!(3))
    );
    assert!(spec.get("timeZone").is_none() && spec.get("startingDeadlineSeconds").is_none());
    assert!(spec["jobTemplate"]["spec"].get("completions").is_none());
}

#[test]
fn only_single_attach_volumes_and_static_ips_make_a_deployment_recreate() {
    let mut config = OperatorConfig::default();
    config.storage_tiers.get_mut("capacity").unwrap().read_write_many = true;
    let strategy = |spec: &str| {
        let children = workload_children(&workload(&format!("kind: Deployment\n{spec}{POD}")), &tenant(), &config);
        find(&children, "Deployment", "web")["spec"]["strategy"].clone()
    };
    let shared = "volumes:\n  - {name: shared, size: 1Gi, tier: capacity, mountPath: /shared}\n";
    let single = "volumes:\n  - {name: data, size: 1Gi, tier: performance, mountPath: /data}\n";
    let rolling = "updateStrategy: {maxSurge: 1, maxUnavailable: 0}\n";
    assert_eq!(strategy(shared), json!({"type": "RollingUpdate"}), "ReadWriteMany volumes roll");
    assert_eq!(
        strategy(&format!("{shared}{rolling}")),
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}),
        "and keep the user's settings"
    );
    assert_eq!(strategy(single), json!({"type": "Recreate"}), "a ReadWriteOnce volume is never mounted twice");
    assert_eq!(strategy(&format!("{shared}{single}")), json!({"type": "Recreate"}));
}

#[test]
fn workload_labels_reach_children_and_pods_but_never_selectors() {
    let mut object = workload(&format!("kind: StatefulSet\nexpose: {{ports: [{{port: 80}}]}}\n{POD}"));
    object.metadata.labels = Some(
        [
            ("team", "payments"),
            ("app", "not-the-template's"),
            ("app.kubernetes.io/name", "ledger"),
            ("app.kubernetes.io/managed-by", "helm"),
            ("scs.dev/workload", "other"),
            ("kubernetes.io/metadata.name", "x"),
            ("k8s.io/x", "y"),
            ("tenant.scs.dev/x", "y"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    );
    let children = workload_children(&object, &tenant(), &OperatorConfig::default());
    let expected = json!({
        "team": "payments", "app": "not-the-template's", "app.kubernetes.io/name": "ledger",
        "app.kubernetes.io/managed-by": "scs-operator", "scs.dev/workload": "web",
    });
    for child in &children {
        assert_eq!(child.object["metadata"]["labels"], expected, "{} {}", child.kind, child.name);
    }
    let set = find(&children, "StatefulSet", "web");
    assert_eq!(set["spec"]["selector"], json!({"matchLabels": {"scs.dev/workload": "web"}}));
    assert_eq!(
        set["spec"]["template"]["metadata"]["labels"],
        json!({"team": "payments", "app": "web", "app.kubernetes.io/name": "ledger", "scs.dev/workload": "web"}),
        "the template's own labels win; reserved ones stay out"
    );
    assert_eq!(find(&children, "Service", "web")["spec"]["selector"], json!({"scs.dev/workload": "web"}));
}

#[test]
fn pre_authorization_puts_the_authorize_init_container_first_and_changes_nothing_else() {
    let mut config = OperatorConfig::default();
    config.pre_authorization.image = "registry.example.com/scs/scs-operator:0.1.0".into();
    let spec = |extra: &str| {
        workload(&format!(
            "kind: Deployment\n{extra}template:\n  spec:\n    initContainers: [{{name: migrate, image: 'app:1'}}]\n    containers: [{{name: app, image: 'app:1'}}]\n"
        ))
    };
    let plain = workload_children(&spec(""), &tenant(), &config);
    let authorized =
        workload_children(&spec("preAuthorization: {permissionGroups: [orders-db]}\n"), &tenant(), &config);
    let mut with = pod_spec(find(&authorized, "Deployment", "web")).clone();
    let without = pod_spec(find(&plain, "Deployment", "web")).clone();
    let inits = with["initContainers"].as_array().unwrap();
    assert_eq!(inits.len(), 2);
    assert_eq!(inits[0]["name"], crate::authz::INIT_CONTAINER);
    assert_eq!(inits[0]["image"], "registry.example.com/scs/scs-operator:0.1.0");
    assert_eq!(inits[0]["args"], json!(["authorize"]));
    assert_eq!(inits[0]["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(inits[1]["name"], "migrate");
    let volume = &with["volumes"][0];
    assert_eq!(volume["projected"]["sources"][0]["serviceAccountToken"]["audience"], "scs-authz");
    // Remove what was injected: the rest of the pod is exactly the template without it.
    with["initContainers"].as_array_mut().unwrap().remove(0);
    with.as_object_mut().unwrap().remove("volumes");
    assert_eq!(with, without);
}
