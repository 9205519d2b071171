"""The Kubernetes files in deploy/ (not runnable here: no cluster) are checked as far as can be without one:
every key of the Helm values is one the official Dagster chart documents, and every worker Deployment runs a
`skuvid worker` command that the real command line accepts, one Deployment per queue, GPUs on gpu only."""

import argparse
from pathlib import Path

import yaml

from assets.queues import QUEUES
from pipelines.worker_cli import add_worker_parser, parse_queues

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
ITEM = "[]"  # a path step into every item of a list

# The keys the Dagster chart documents (helm/dagster/values.schema.json and its pydantic source,
# dagster-io/dagster, 1.13 line) for the sections skuvid's values set. Sections marked free take any keys
# (the chart passes them on as Kubernetes or instance config).
CHART_KEYS: dict[tuple[str, ...], set[str]] = {
    (): {"dagsterWebserver", "dagster-user-deployments", "postgresql", "generatePostgresqlPasswordSecret",
         "generateCeleryConfigSecret", "rabbitmq", "redis", "flower", "ingress", "imagePullSecrets",
         "computeLogManager", "scheduler", "runLauncher", "pythonLogs", "dagsterDaemon", "busybox", "migrate",
         "telemetry", "serviceAccount", "global", "retention", "additionalInstanceConfig"},
    ("dagsterWebserver",): {"replicaCount", "image", "nameOverride", "pathPrefix", "service", "workspace", "env",
                            "envConfigMaps", "envSecrets", "deploymentLabels", "labels", "nodeSelector", "affinity",
                            "tolerations", "podSecurityContext", "securityContext", "resources", "readinessProbe",
                            "livenessProbe", "startupProbe", "annotations", "enableReadOnly", "dbStatementTimeout",
                            "dbPoolRecycle", "logLevel", "schedulerName", "volumeMounts", "volumes",
                            "initContainerResources"},
    ("dagster-user-deployments",): {"enabled", "enableSubchart", "imagePullSecrets", "deployments"},
    ("dagster-user-deployments", "deployments", ITEM): {
        "name", "image", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns",
        "deploymentNamespace", "port", "env", "envConfigMaps", "envSecrets", "annotations", "nodeSelector",
        "affinity", "tolerations", "podSecurityContext", "securityContext", "resources", "livenessProbe",
        "readinessProbe", "startupProbe", "labels", "volumeMounts", "volumes", "schedulerName", "initContainers",
        "sidecarContainers"},
    ("dagster-user-deployments", "deployments", ITEM, "image"): {"repository", "tag", "pullPolicy"},
    ("dagster-user-deployments", "deployments", ITEM, "includeConfigInLaunchedRuns"): {"enabled"},
    ("runLauncher",): {"type", "config"},
    ("runLauncher", "config"): {"celeryK8sRunLauncher", "k8sRunLauncher", "customRunLauncher"},
    ("runLauncher", "config", "k8sRunLauncher"): {
        "image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile", "envConfigMaps",
        "envSecrets", "envVars", "volumeMounts", "volumes", "labels", "failPodOnRunFailure", "resources",
        "schedulerName", "securityContext", "runK8sConfig"},
    ("runLauncher", "config", "k8sRunLauncher", "runK8sConfig"): {
        "containerConfig", "podSpecConfig", "podTemplateSpecMetadata", "jobSpecConfig", "jobMetadata"},
    ("postgresql",): {"image", "enabled", "postgresqlHost", "postgresqlUsername", "postgresqlPassword",
                      "postgresqlDatabase", "postgresqlParams", "postgresqlScheme", "service"},
    ("postgresql", "service"): {"port"},
    ("rabbitmq",): {"enabled", "image", "rabbitmq", "service", "volumePermissions"},
    ("redis",): {"enabled", "internal", "usePassword", "password", "host", "port", "brokerDbNumber",
                 "backendDbNumber", "brokerUrl", "backendUrl"},
    ("dagsterDaemon",): {
        "enabled", "image", "runCoordinator", "heartbeatTolerance", "env", "envConfigMaps", "envSecrets",
        "deploymentLabels", "labels", "nodeSelector", "affinity", "tolerations", "podSecurityContext",
        "securityContext", "resources", "checkDbReadyInitContainer", "livenessProbe", "readinessProbe",
        "startupProbe", "annotations", "runMonitoring", "runRetries", "sensors", "schedules", "backfills",
        "schedulerName", "logFormat", "volumeMounts", "volumes", "initContainerResources", "extraContainers",
        "extraPrependedInitContainers"},
    ("dagsterDaemon", "runCoordinator"): {"enabled", "type", "config"},
    ("dagsterDaemon", "sensors"): {"useThreads", "numWorkers", "numSubmitWorkers"},
    ("dagsterDaemon", "schedules"): {"useThreads", "numWorkers", "numSubmitWorkers"},
    ("dagsterDaemon", "backfills"): {"useThreads", "numWorkers", "numSubmitWorkers"},
    ("dagsterDaemon", "runCoordinator", "config"): {"queuedRunCoordinator", "customRunCoordinator"},
    ("dagsterDaemon", "runCoordinator", "config", "queuedRunCoordinator"): {
        "maxConcurrentRuns", "tagConcurrencyLimits", "dequeueIntervalSeconds", "dequeueNumWorkers",
        "dequeueUseThreads", "blockOpConcurrencyLimitedRuns"},
    # The chart's instance template reads these (configmap-instance.yaml).
    ("dagsterDaemon", "runMonitoring"): {"enabled", "startTimeoutSeconds", "cancelTimeoutSeconds",
                                         "maxResumeRunAttempts", "pollIntervalSeconds",
                                         "freeSlotsAfterRunEndSeconds"},
    ("dagsterDaemon", "runRetries"): {"enabled", "maxRetries", "retryOnAssetOrOpFailure"},
    ("telemetry",): {"enabled"},
}
FREE = {("runLauncher", "config", "k8sRunLauncher", "runK8sConfig", "containerConfig"),
        ("runLauncher", "config", "k8sRunLauncher", "runK8sConfig", "podSpecConfig"),
        ("dagster-user-deployments", "deployments", ITEM, "resources"), ("postgresql", "postgresqlParams")}
ENUMS = {("runLauncher", "type"): {"CeleryK8sRunLauncher", "K8sRunLauncher", "CustomRunLauncher"},
         ("dagsterDaemon", "runCoordinator", "type"): {"QueuedRunCoordinator", "CustomRunCoordinator"},
         ("dagster-user-deployments", "deployments", ITEM, "image", "pullPolicy"): {"Always", "IfNotPresent",
                                                                                     "Never"},
         ("runLauncher", "config", "k8sRunLauncher", "imagePullPolicy"): {"Always", "IfNotPresent", "Never"}}


def undocumented(value, path: tuple[str, ...] = ()) -> list[str]:
    if path in FREE:
        return []
    if isinstance(value, list):
        return [problem for item in value for problem in undocumented(item, (*path, ITEM))]
    if isinstance(value, dict) and path in CHART_KEYS:
        problems = [f"{'.'.join((*path, str(key)))}: not a key the chart documents" for key in value
                    if key not in CHART_KEYS[path]]
        return problems + [p for key, item in value.items() for p in undocumented(item, (*path, str(key)))]
    if path in ENUMS and value not in ENUMS[path]:
        return [f"{'.'.join(path)}: {value!r} is not one of {sorted(ENUMS[path])}"]
    return []


def test_helm_values_use_only_keys_the_chart_documents():
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    assert undocumented(values) == []
    assert undocumented({"dagsterDaemon": {"runRetries": {"retry_on_asset_or_op_failure": False}}}) != []
    daemon = values["dagsterDaemon"]
    assert daemon["runRetries"]["retryOnAssetOrOpFailure"] is False  # a retried clip step could pay twice
    instance = yaml.safe_load((REPO / "dagster.postgres.yaml").read_text())
    for section in ("sensors", "schedules", "backfills"):  # runs of a tick are created from several threads
        assert daemon[section]["numSubmitWorkers"] == instance[section]["num_submit_workers"] > 1
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    secret_like = [key for key in ("postgresqlPassword",) if values["postgresql"].get(key)]
    assert secret_like == []  # passwords come from Secrets, never from this file


def test_one_worker_deployment_per_queue_running_the_real_worker_command():
    manifests = [m for m in yaml.safe_load_all((DEPLOY / "k8s" / "workers.yaml").read_text()) if m]
    parser = argparse.ArgumentParser(prog="skuvid")
    add_worker_parser(parser.add_subparsers(dest="command", required=True))
    by_queue = {}
    for manifest in manifests:
        assert manifest["kind"] == "Deployment"
        container, = manifest["spec"]["template"]["spec"]["containers"]
        assert container["command"][:2] == ["skuvid", "worker"]
        args = parser.parse_args(container["command"][1:])
        queues = parse_queues(args.queues)
        assert len(queues) == 1, manifest["metadata"]["name"]
        by_queue[queues[0]] = (manifest, container)
    assert sorted(by_queue) == sorted(QUEUES)
    for queue, (manifest, container) in by_queue.items():
        env = {item["name"] for item in container.get("env", [])}
        assert {"DAGSTER_HOME", "DAGSTER_PG_PASSWORD"} <= env
        assert container["envFrom"] == [{"secretRef": {"name": "skuvid-settings"}}]
        gpus = container["resources"].get("limits", {}).get("nvidia.com/gpu")
        assert (gpus == 1) == (queue == "gpu"), queue
    assert by_queue["gpu"][0]["spec"]["template"]["spec"]["nodeSelector"] == {"skuvid.io/node-pool": "gpu"}
