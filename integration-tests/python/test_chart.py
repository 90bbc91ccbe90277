"""The Helm chart in helm/cairn, checked with Helm's own library (helm-python-sdk): linted and
rendered with the default values and with every values file in helm/cairn/ci/; every rendered
manifest validated against the Kubernetes schemas (kubernetes-validate, strict: no unknown
fields); and the properties that keep a deployment safe asserted on the rendered objects.

Run: python3 integration-tests/python/test_chart.py
"""

import base64
import glob
import os
import unittest

import helm_python as helm
import kubernetes_validate
import yaml

CHART = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "helm", "cairn"))
VALUES_FILES = sorted(glob.glob(os.path.join(CHART, "ci", "*-values.yaml")))
# API versions of operator resources the chart may render (the Prometheus Operator's).
CUSTOM_RESOURCES = {"monitoring.coreos.com/v1"}
# The oldest and the newest Kubernetes versions the manifests must be valid for.
KUBE_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
RELEASE, NAMESPACE = "demo", "storage"


def load_values(path):
    if path is None:
        return {}
    with open(path) as f:
        return yaml.safe_load(f) or {}


def render(values):
    """Every rendered object, by (kind, name)."""
    chart = helm.Chart.load(CHART)
    manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects = {}
    for path, text in manifests.items():
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


class EveryValuesFile(unittest.TestCase):
    """What must hold whatever the values: lint, schemas, probes, security, disruption."""

    def each(self):
        for path in [None] + VALUES_FILES:
            name = os.path.basename(path) if path else "default values"
            yield name, load_values(path), render(load_values(path))

    def test_the_service_monitor_scrapes_the_admin_service(self):
        monitors = 0
        for name, _, objects in self.each():
            for (kind, obj_name), monitor in objects.items():
                if kind != "ServiceMonitor":
                    continue
                monitors += 1
                selector = monitor["spec"]["selector"]["matchLabels"]
                admin = objects[("Service", f"{RELEASE}-cairn-admin")]
                self.assertTrue(selector.items() <= admin["metadata"]["labels"].items(), name)
                (endpoint,) = monitor["spec"]["endpoints"]
                self.assertEqual(endpoint["path"], "/metrics")
                self.assertIn(endpoint["port"], [p["name"] for p in admin["spec"]["ports"]])
                self.assertEqual(monitor["metadata"]["labels"].get("release"), "prometheus")
            if "five-nodes" not in name:
                self.assertNotIn("ServiceMonitor", [kind for kind, _ in objects], name)
        self.assertEqual(monitors, 1, "only the five-node values file enables it")

    def test_lint_finds_nothing_to_fix(self):
        for path in [None] + VALUES_FILES:
            report = helm.lint(CHART, load_values(path), strict=True, namespace=NAMESPACE)
            problems = [m for m in report["messages"] if m["severity"] >= 2]
            self.assertEqual(report["errors"], [], path)
            self.assertEqual(problems, [], path)

    def test_every_manifest_validates_against_the_kubernetes_schemas(self):
        for name, _, objects in self.each():
            for version in KUBE_VERSIONS:
                for (kind, obj_name), obj in objects.items():
                    if obj["apiVersion"] in CUSTOM_RESOURCES:
                        continue  # not in the Kubernetes schemas; checked by its own test
                    with self.subTest(values=name, kubernetes=version, object=f"{kind}/{obj_name}"):
                        kubernetes_validate.validate(obj, version, strict=True)

    def test_pods_run_unprivileged_on_a_read_only_root(self):
        for name, _, objects in self.each():
            for kind in ("StatefulSet", "Deployment"):
                for (k, obj_name), obj in objects.items():
                    if k != kind:
                        continue
                    pod = obj["spec"]["template"]["spec"]
                    self.assertTrue(pod["securityContext"]["runAsNonRoot"], (name, obj_name))
                    self.assertNotEqual(pod["securityContext"]["runAsUser"], 0, (name, obj_name))
                    self.assertFalse(pod["automountServiceAccountToken"], (name, obj_name))
                    for container in pod["containers"]:
                        security = container["securityContext"]
                        self.assertTrue(security["readOnlyRootFilesystem"], (name, obj_name))
                        self.assertFalse(security["allowPrivilegeEscalation"], (name, obj_name))
                        self.assertEqual(security["capabilities"]["drop"], ["ALL"], (name, obj_name))
                        self.assertIn("requests", container["resources"], (name, obj_name))

    def test_probes_use_the_health_endpoints(self):
        for name, _, objects in self.each():
            node = objects[("StatefulSet", f"{RELEASE}-cairn-node")]["spec"]["template"]["spec"]["containers"][0]
            gateway = objects[("Deployment", f"{RELEASE}-cairn-gateway")]["spec"]["template"]["spec"]["containers"][0]
            for container, port in ((node, "rpc"), (gateway, "admin")):
                self.assertEqual(container["startupProbe"]["httpGet"], {"path": "/health/live", "port": port}, name)
                self.assertEqual(container["livenessProbe"]["httpGet"], {"path": "/health/live", "port": port}, name)
                self.assertEqual(container["readinessProbe"]["httpGet"], {"path": "/health/ready", "port": port}, name)

    def test_disruption_budgets_keep_a_quorum_of_nodes(self):
        for name, values, objects in self.each():
            node_pdb = objects[("PodDisruptionBudget", f"{RELEASE}-cairn-node")]["spec"]
            self.assertEqual(node_pdb["maxUnavailable"], 1, name)
            self.assertEqual(node_pdb["selector"]["matchLabels"]["app.kubernetes.io/component"], "node")
            gateway_pdb = objects[("PodDisruptionBudget", f"{RELEASE}-cairn-gateway")]["spec"]
            # A budget no drain can meet would block node maintenance for good.
            replicas = values.get("gateway", {}).get("replicas", 2)
            self.assertLessEqual(gateway_pdb["minAvailable"], max(replicas - 1, 0), name)

    def test_credentials_are_mounted_from_one_secret(self):
        for name, values, objects in self.each():
            secret = values.get("auth", {}).get("existingSecret") or f"{RELEASE}-cairn"
            generated = objects.get(("Secret", f"{RELEASE}-cairn"))
            if values.get("auth", {}).get("existingSecret"):
                self.assertIsNone(generated, name)
            else:
                keys = {"cluster-secret", "admin-token", "root-access-key-id", "root-secret-access-key"}
                self.assertEqual(set(generated["data"]), keys, name)
                self.assertEqual(generated["metadata"]["annotations"]["helm.sh/resource-policy"], "keep")
                key_id = base64.b64decode(generated["data"]["root-access-key-id"]).decode()
                self.assertRegex(key_id, r"^CK[A-Z0-9]{18}$")
            for kind, obj_name in (("StatefulSet", "node"), ("Deployment", "gateway")):
                pod = objects[(kind, f"{RELEASE}-cairn-{obj_name}")]["spec"]["template"]["spec"]
                volume = next(v for v in pod["volumes"] if v["name"] == "auth")
                self.assertEqual(volume["secret"]["secretName"], secret, name)
                env = env_of(pod["containers"][0])
                self.assertTrue(env["CAIRN_SECRET_FILE"].startswith("/etc/cairn/auth/"), name)


class StorageNodes(unittest.TestCase):
    """The StatefulSet forms one cluster by itself and keeps its data on claims."""

    def test_nodes_find_each_other_through_the_headless_service(self):
        objects = render({})
        service = objects[("Service", f"{RELEASE}-cairn-node")]["spec"]
        self.assertEqual(service["clusterIP"], "None")
        self.assertTrue(service["publishNotReadyAddresses"])
        nodes = objects[("StatefulSet", f"{RELEASE}-cairn-node")]["spec"]
        self.assertEqual(nodes["serviceName"], f"{RELEASE}-cairn-node")
        self.assertEqual(nodes["podManagementPolicy"], "Parallel")
        self.assertEqual(nodes["updateStrategy"]["type"], "RollingUpdate")
        env = env_of(nodes["template"]["spec"]["containers"][0])
        domain = f"{RELEASE}-cairn-node.{NAMESPACE}.svc.cluster.local:7000"
        self.assertEqual(env["CAIRN_NODE_ID"], "$(POD_NAME)")
        self.assertEqual(env["CAIRN_ADVERTISE"], f"$(POD_NAME).{domain}")
        self.assertEqual(env["CAIRN_BOOTSTRAP_NODE"], f"{RELEASE}-cairn-node-0")
        self.assertEqual(env["CAIRN_JOIN"], f"{RELEASE}-cairn-node-0.{domain},{RELEASE}-cairn-node-1.{domain}")
        gateway = objects[("Deployment", f"{RELEASE}-cairn-gateway")]["spec"]["template"]["spec"]["containers"][0]
        self.assertEqual(env_of(gateway)["CAIRN_NODES"].split(","), [f"{RELEASE}-cairn-node-{i}.{domain}" for i in range(3)])

    def test_data_and_metadata_live_on_their_own_claims(self):
        values = load_values(os.path.join(CHART, "ci", "five-nodes-zones-values.yaml"))
        nodes = render(values)[("StatefulSet", f"{RELEASE}-cairn-node")]["spec"]
        self.assertEqual(nodes["replicas"], 5)
        claims = {c["metadata"]["name"]: c["spec"] for c in nodes["volumeClaimTemplates"]}
        self.assertEqual(claims["data"]["resources"]["requests"]["storage"], "500Gi")
        self.assertEqual(claims["metadata"]["resources"]["requests"]["storage"], "20Gi")
        self.assertEqual(claims["data"]["storageClassName"], "fast-ssd")
        container = nodes["template"]["spec"]["containers"][0]
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        env = env_of(container)
        self.assertEqual(mounts["data"], env["CAIRN_DATA_DIR"])
        self.assertEqual(mounts["metadata"], env["CAIRN_METADATA_DIR"])
        self.assertEqual(env["CAIRN_ZONE_LIST"], "zone-a,zone-b,zone-c")

    def test_a_single_node_has_no_second_seed(self):
        values = load_values(os.path.join(CHART, "ci", "single-node-values.yaml"))
        nodes = render(values)[("StatefulSet", f"{RELEASE}-cairn-node")]["spec"]
        env = env_of(nodes["template"]["spec"]["containers"][0])
        self.assertEqual(env["CAIRN_JOIN"].count(","), 0)
        self.assertEqual(env["CAIRN_REPLICATION_FACTOR"], "1")


class Exposure(unittest.TestCase):
    """S3 through the ingress untouched; the admin port never through it."""

    def test_ingress_passes_requests_through_untouched(self):
        values = load_values(os.path.join(CHART, "ci", "ingress-values.yaml"))
        objects = render(values)
        ingress = objects[("Ingress", f"{RELEASE}-cairn-s3")]
        annotations = ingress["metadata"].get("annotations", {})
        self.assertFalse([a for a in annotations if "rewrite" in a], annotations)
        self.assertEqual(annotations["nginx.ingress.kubernetes.io/proxy-body-size"], "0")
        hosts = [rule["host"] for rule in ingress["spec"]["rules"]]
        self.assertEqual(hosts, ["s3.example.com", "*.s3.example.com"])
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                self.assertEqual((path["path"], path["pathType"]), ("/", "Prefix"))
                self.assertEqual(path["backend"]["service"]["name"], f"{RELEASE}-cairn-s3")
        gateway = objects[("Deployment", f"{RELEASE}-cairn-gateway")]["spec"]["template"]["spec"]["containers"][0]
        env = env_of(gateway)
        self.assertEqual(env["CAIRN_PUBLIC_ENDPOINT"], "https://s3.example.com")
        self.assertEqual(env["CAIRN_S3_DOMAIN"], "s3.example.com")
        self.assertEqual(objects[("Service", f"{RELEASE}-cairn-admin")]["spec"]["type"], "LoadBalancer")

    def test_no_ingress_by_default(self):
        self.assertFalse([key for key in render({}) if key[0] == "Ingress"])


class Schema(unittest.TestCase):
    """values.schema.json refuses what would render a broken cluster."""

    def test_bad_values_are_refused(self):
        chart = helm.Chart.load(CHART)
        chart.validate_schema({})
        for bad in (
            {"node": {"replicas": 0}},
            {"cluster": {"partitions": 1000}},
            {"node": {"zones": ["a,b"]}},
            {"node": {"persistence": {"data": {"size": "lots"}}}},
            {"gateway": {"service": {"s3": {"type": "Magic", "port": 9000}}}},
            {"unknown": True},
        ):
            with self.subTest(values=bad), self.assertRaises(helm.HelmValuesError):
                chart.render(bad, name=RELEASE, namespace=NAMESPACE, is_install=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
