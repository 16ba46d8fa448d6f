"""The GCP deployment in terraform/, checked from its HCL (python-hcl2) without any cloud access.

Every .tf file is parsed. The checks are functions that return a list of problems, so the same
checker that passes on terraform/ is shown to fail on deliberately bad snippets.
`make tf-check` (OpenTofu + the real providers) is the complementary check of types and schemas.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
import pytest

from edml.core.config import COMPACTED_TOPICS, SINGLE_PARTITION_TOPICS, Topics

ROOT = Path(__file__).resolve().parents[2]
TF_DIR = ROOT / "terraform"
OPTIONS = hcl2.SerializationOptions(with_comments=False, strip_string_quotes=True, explicit_blocks=False)

# Roles a deployment may grant, and why; anything else (owner, editor, *.admin, ...) is a finding.
ALLOWED_ROLES = {
    "roles/storage.objectViewer": "scorer reads artifacts; publisher reads back what it wrote",
    "roles/storage.objectCreator": "publisher creates artifacts (cannot overwrite or delete them)",
    "roles/managedkafka.client": "connect to the Kafka cluster; topics are narrowed by Kafka ACLs",
    "roles/artifactregistry.writer": "CI pushes scorer images to the one repository",
    "roles/artifactregistry.reader": "nodes pull scorer images",
    "roles/container.defaultNodeServiceAccount": "Google's minimal role for GKE node VMs",
    "roles/iam.workloadIdentityUser": "Kubernetes / CI identities act as their service account",
}
BROAD_ROLE = re.compile(
    r"^roles/(owner|editor|viewer)$|admin$|Admin$|^roles/iam\.serviceAccount(TokenCreator|User|KeyAdmin)$"
)

SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "service account key JSON": re.compile(r'"private_key(_id)?"\s*:'),
    "Google API key": re.compile(r"AIza[0-9A-Za-z_\-]{35}"),
    "AWS access key": re.compile(r"AKIA[0-9A-Z]{16}"),
    "OAuth client secret": re.compile(r"GOCSPX-[0-9A-Za-z_\-]{20,}"),
    "literal credential": re.compile(
        r"""(?ix)\b[\w.]*(password|passwd|secret|token|api_?key|private_?key|sasl\.jaas\.config)[\w.]*"?\s*[=:]\s*"""
        r""""(?!\$\{)[^"\s]{4,}\""""
    ),
}
# Resources that would put a credential into state or a file.
SECRET_RESOURCES = {"google_service_account_key", "google_storage_hmac_key", "google_apikeys_key",
                    "kubernetes_secret", "kubernetes_secret_v1"}


# --- loading -------------------------------------------------------------------------------------


@dataclass
class Module:
    """One directory of .tf files, merged."""

    path: Path
    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    modules: dict[str, dict[str, Any]] = field(default_factory=dict)

    def resources_of(self, rtype: str) -> dict[str, dict[str, Any]]:
        """name -> body of every resource of ``rtype``."""
        return {name: body for (t, name), body in self.resources.items() if t == rtype}


def parse_tf(path: Path) -> dict[str, Any]:
    """One .tf file as python-hcl2 reads it (quotes stripped, blocks as lists)."""
    with path.open() as f:
        return hcl2.load(f, serialization_options=OPTIONS)


def load_module(directory: Path) -> Module:
    """Every .tf file of ``directory`` merged into a Module."""
    module = Module(directory)
    for tf in sorted(directory.glob("*.tf")):
        doc = parse_tf(tf)
        for entry in doc.get("resource", []):
            for rtype, named in entry.items():
                for name, body in named.items():
                    module.resources[(rtype, name)] = body
        for entry in doc.get("variable", []):
            module.variables.update(entry)
        for entry in doc.get("output", []):
            module.outputs.update(entry)
        for entry in doc.get("locals", []):
            module.locals.update(entry)
        for entry in doc.get("module", []):
            module.modules.update(entry)
    return module


def tf_dirs(base: Path = TF_DIR) -> list[Path]:
    """Every directory under ``base`` (itself included) that holds .tf files."""
    return sorted({p.parent for p in base.rglob("*.tf") if ".terraform" not in p.parts})


@pytest.fixture(scope="module")
def modules() -> dict[str, Module]:
    """Relative path ('.' for the root) -> Module, for the whole deployment."""
    return {str(d.relative_to(TF_DIR)): load_module(d) for d in tf_dirs()}


def every_resource(modules: dict[str, Module]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(module, type, name) -> body across all modules."""
    return {(m, t, n): body for m, mod in modules.items() for (t, n), body in mod.resources.items()}


def first(block: Any) -> dict[str, Any]:
    """A nested block's body (python-hcl2 gives blocks as one-element lists)."""
    return block[0] if isinstance(block, list) else block


def resolve_local(module: Module, value: Any) -> Any:
    """Follow a '${local.x}' reference inside the module (one level of indirection at a time)."""
    seen = 0
    while isinstance(value, str) and (m := re.fullmatch(r"\$\{local\.(\w+)\}", value)) and seen < 10:
        value = module.locals[m.group(1)]
        seen += 1
    return value


# --- checkers (each returns its problems) ----------------------------------------------------------


def variable_problems(module: Module) -> list[str]:
    """Every variable has a type and a non-empty description; validations carry a message."""
    problems = []
    for name, body in module.variables.items():
        if "type" not in body:
            problems.append(f"{module.path.name}: variable {name} has no type")
        if not str(body.get("description", "")).strip():
            problems.append(f"{module.path.name}: variable {name} has no description")
        for rule in body.get("validation", []):
            if not str(rule.get("error_message", "")).strip():
                problems.append(f"{module.path.name}: variable {name} has a validation without error_message")
    return problems


def output_problems(module: Module) -> list[str]:
    """Every output is described."""
    return [f"{module.path.name}: output {name} has no description"
            for name, body in module.outputs.items() if not str(body.get("description", "")).strip()]


def iam_roles(modules: dict[str, Module]) -> list[tuple[str, str]]:
    """(resource address, role) of every IAM grant in the deployment."""
    grants = []
    for (m, rtype, name), body in every_resource(modules).items():
        if "_iam_" in rtype and "role" in body:
            grants.append((f"{m}/{rtype}.{name}", str(body["role"])))
        if rtype in ("google_project_iam_custom_role", "google_organization_iam_custom_role"):
            grants.append((f"{m}/{rtype}.{name}", "custom role"))
    return grants


def role_problems(modules: dict[str, Module]) -> list[str]:
    """No role broader than the allow-list; no custom roles; no project-wide storage or registry grants."""
    problems = []
    for address, role in iam_roles(modules):
        if BROAD_ROLE.search(role):
            problems.append(f"{address}: broad role {role}")
        elif role not in ALLOWED_ROLES:
            problems.append(f"{address}: role {role} is not in the justified allow-list")
        if "google_project_iam" in address and role.split(".")[0] in ("roles/storage", "roles/artifactregistry"):
            problems.append(f"{address}: {role} granted on the whole project instead of the bucket/repository")
    for (m, rtype, name), _ in every_resource(modules).items():
        if rtype in ("google_project_iam_binding", "google_project_iam_policy"):
            problems.append(f"{m}/{rtype}.{name}: authoritative project IAM would remove others' grants")
    return problems


def secret_problems(files: list[Path]) -> list[str]:
    """No literal credential in any file, and no resource that mints a key."""
    problems = []
    for path in files:
        text = path.read_text()
        for what, pattern in SECRET_PATTERNS.items():
            for hit in pattern.finditer(text):
                line = text.count("\n", 0, hit.start()) + 1
                problems.append(f"{path.name}:{line}: {what}: {hit.group(0)[:40]}")
        if path.suffix == ".tf":
            for entry in parse_tf(path).get("resource", []):
                for rtype in entry:
                    if rtype in SECRET_RESOURCES:
                        problems.append(f"{path.name}: resource {rtype} creates a credential")
    return problems


def compacted_topic_problems(root: Module) -> list[str]:
    """The topics local names every edml topic, and the models topic is compacted."""
    problems = []
    roles = resolve_local(root, root.locals.get("topic_roles", {}))
    expected = Topics().names()
    for role, name in expected.items():
        if role not in roles:
            problems.append(f"topic role {role} ({name}) is missing")
        elif roles[role]["name"] != name:
            problems.append(f"topic role {role} is named {roles[role]['name']}, edml expects {name}")
    for role in COMPACTED_TOPICS:
        configs = resolve_local(root, roles.get(role, {}).get("configs", {}))
        if not isinstance(configs, dict) or configs.get("cleanup.policy") != "compact":
            problems.append(f"topic {role} is not cleanup.policy=compact")
    return problems


def deployment_files() -> list[Path]:
    """Every file of the deployment a secret could hide in (.tf, examples, tfvars)."""
    return sorted(p for p in TF_DIR.rglob("*") if p.is_file() and ".terraform" not in p.parts)


# --- the deployment --------------------------------------------------------------------------------


def test_every_tf_file_parses_and_the_layout_is_modular(modules):
    files = [p for p in TF_DIR.rglob("*.tf") if ".terraform" not in p.parts]
    assert len(files) >= 25
    assert {"modules/network", "modules/gke", "modules/model_bucket", "modules/kafka",
            "modules/artifact_registry", "modules/iam", "modules/scorer", "."} <= set(modules)


def test_resource_inventory(modules):
    types = {t for (_, t, _) in every_resource(modules)}
    required = {
        "google_compute_network", "google_compute_subnetwork",
        "google_container_cluster",
        "google_storage_bucket",
        "google_managed_kafka_cluster", "google_managed_kafka_topic", "google_managed_kafka_acl",
        "google_artifact_registry_repository",
        "google_service_account", "google_storage_bucket_iam_member", "google_service_account_iam_member",
        "kubernetes_namespace_v1", "kubernetes_service_account_v1", "kubernetes_config_map_v1",
        "kubernetes_service_v1", "kubernetes_stateful_set_v1",
    }
    assert required - types == set()


def test_root_wires_every_module_with_declared_inputs(modules):
    root = modules["."]
    for name, call in root.modules.items():
        source = call["source"]
        assert source.startswith("./modules/"), f"module {name} comes from {source}"
        child = modules[source.removeprefix("./")]
        given = set(call) - {"source", "count", "for_each", "depends_on", "providers"}
        assert given - set(child.variables) == set(), f"module {name} gets undeclared inputs"
        required = {v for v, body in child.variables.items() if "default" not in body}
        assert required - given == set(), f"module {name} misses required inputs"


def test_gke_is_autopilot_with_workload_identity_and_private_nodes(modules):
    cluster = modules["modules/gke"].resources_of("google_container_cluster")["main"]
    assert cluster["enable_autopilot"] is True
    assert first(cluster["workload_identity_config"])["workload_pool"].endswith(".svc.id.goog")
    assert first(cluster["private_cluster_config"])["enable_private_nodes"] is True
    # nodes run as the dedicated node account, not the default compute service account
    defaults = first(first(cluster["cluster_autoscaling"])["auto_provisioning_defaults"])
    assert defaults["service_account"] == "${var.node_service_account}"
    assert modules["."].modules["gke"]["node_service_account"] == "${module.iam.nodes_email}"


def test_model_bucket_is_uniform_versioned_private_with_lifecycle(modules):
    bucket = modules["modules/model_bucket"].resources_of("google_storage_bucket")["models"]
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert first(bucket["versioning"])["enabled"] is True
    actions = [first(rule["action"])["type"] for rule in bucket["lifecycle_rule"]]
    conditions = [first(rule["condition"]) for rule in bucket["lifecycle_rule"]]
    assert "Delete" in actions
    # old artifacts expire only as noncurrent versions: a live model version is never deleted by age
    for action, condition in zip(actions, conditions, strict=True):
        if action == "Delete":
            assert condition.get("with_state") == "ARCHIVED", condition


def test_kafka_topics_match_edml_and_models_is_compacted(modules):
    root = modules["."]
    assert compacted_topic_problems(root) == []
    roles = root.locals["topic_roles"]
    for role in SINGLE_PARTITION_TOPICS:
        assert roles[role]["partitions"] == 1, role
    assert set(roles) == set(Topics().names())
    # the topic resource takes its configs from that map, and the root passes the map in
    topic = modules["modules/kafka"].resources_of("google_managed_kafka_topic")["topic"]
    assert topic["for_each"] == "${var.topics}" and topic["configs"] == "${each.value.configs}"
    assert root.modules["kafka"]["topics"] == "${local.topics}"
    cluster = modules["modules/kafka"].resources_of("google_managed_kafka_cluster")["main"]
    network = first(first(first(cluster["gcp_config"])["access_config"])["network_configs"])
    assert network["subnet"] == "${var.subnet_id}"


def test_kafka_acls_give_each_account_only_its_topics(modules):
    root = modules["."]
    access = root.locals["builtin_topic_access"]
    scorer, publisher = "${local.scorer}", "${local.publisher}"
    writes = {role: set(a["writers"]) for role, a in access.items()}
    reads = {role: set(a["readers"]) for role, a in access.items()}
    assert writes["models"] == {publisher}, "only the publisher produces model records"
    assert scorer in reads["models"] and scorer in reads["trips"]
    for role in ("predictions", "shadow_predictions", "dead_letter", "model_status"):
        assert writes[role] == {scorer}, role
    assert all(publisher not in w for role, w in writes.items() if role != "models")
    # a topic without principals is closed, not left open (Managed Kafka allows when no ACL matches)
    kafka = modules["modules/kafka"]
    assert '"User:*", operation = "ALL", permission = "DENY"' in (kafka.path / "main.tf").read_text()
    acl = kafka.resources_of("google_managed_kafka_acl")["topic"]
    assert acl["acl_id"].startswith("topic/")


def test_service_accounts_roles_and_workload_identity(modules):
    iam = modules["modules/iam"]
    accounts = {body["account_id"] for body in iam.resources_of("google_service_account").values()}
    assert {"${var.name_prefix}-scorer", "${var.name_prefix}-publisher"} <= accounts
    assert role_problems(modules) == []
    grants = {(name, body["role"], body["member"]) for name, body in
              {**iam.resources_of("google_storage_bucket_iam_member"),
               **iam.resources_of("google_project_iam_member"),
               **iam.resources_of("google_artifact_registry_repository_iam_member")}.items()}
    by_member: dict[str, set[str]] = {}
    for _, role, member in grants:
        by_member.setdefault(member, set()).add(role)
    assert by_member["${local.members.scorer}"] == {"roles/storage.objectViewer", "roles/managedkafka.client"}
    assert by_member["${local.members.publisher}"] == {
        "roles/storage.objectCreator", "roles/storage.objectViewer", "roles/managedkafka.client",
        "roles/artifactregistry.writer"}
    bindings = iam.resources_of("google_service_account_iam_member")
    wi = {b["member"] for b in bindings.values() if b["role"] == "roles/iam.workloadIdentityUser"}
    assert "serviceAccount:${var.workload_pool}[${var.namespace}/${var.scorer_ksa}]" in wi
    assert "serviceAccount:${var.workload_pool}[${var.namespace}/${var.publisher_ksa}]" in wi
    # the Kubernetes service account names the Google one it acts as
    ksa = modules["modules/scorer"].resources_of("kubernetes_service_account_v1")["scorer"]
    assert first(ksa["metadata"])["annotations"]["iam.gke.io/gcp-service-account"] == \
        "${var.scorer_service_account_email}"


def test_statefulset_runs_bytewax_cluster_mode_with_a_state_volume(modules):
    scorer = modules["modules/scorer"]
    spec = first(scorer.resources_of("kubernetes_stateful_set_v1")["scorer"]["spec"])
    # Bytewax waits for every -a address, so pods must start together, not one by one
    assert spec["pod_management_policy"] == "Parallel"
    assert spec["service_name"] == "${kubernetes_service_v1.cluster.metadata[0].name}"
    pod = first(first(spec["template"])["spec"])
    container = first(pod["container"])
    args = container["args"]
    assert args[0] == "serve"
    assert args[args.index("--process-id") + 1] == "$(EDML_PROCESS_ID)"
    assert args[args.index("--addresses") + 1] == "${local.addresses}"
    process_id = next(e for e in container["env"] if e["name"] == "EDML_PROCESS_ID")
    assert first(first(process_id["value_from"])["field_ref"])["field_path"] == \
        "metadata.labels['apps.kubernetes.io/pod-index']"
    addresses = scorer.locals["addresses"]
    assert 'join(";"' in addresses
    assert "${var.name}-${i}.${var.name}.${var.namespace}.svc.cluster.local:${var.cluster_port}" in addresses
    assert "range(var.replicas)" in addresses
    # the persistent volume holds the model store and recovery at EDML_STATE_DIR
    claim = first(spec["volume_claim_template"])
    claim_name = first(claim["metadata"])["name"]
    mounts = {m["name"]: m["mount_path"] for m in container["volume_mount"]}
    assert mounts[claim_name] == "${var.state_dir}"
    assert "EDML_STATE_DIR         = var.state_dir" in (scorer.path / "main.tf").read_text()
    # ready only once a model is active; non-root
    probe = first(first(container["readiness_probe"])["http_get"])
    assert probe == {"path": "/healthz", "port": "metrics"}
    assert first(pod["security_context"])["run_as_non_root"] is True
    assert first(container["security_context"])["allow_privilege_escalation"] is False


def test_headless_and_metrics_services(modules):
    services = modules["modules/scorer"].resources_of("kubernetes_service_v1")
    headless = first(services["cluster"]["spec"])
    assert headless["cluster_ip"] == "None" and headless["publish_not_ready_addresses"] is True
    metrics = first(services["metrics"]["spec"])
    port = first(metrics["port"])
    assert port["name"] == "metrics" and port["port"] == "${var.metrics_port}"
    assert metrics["selector"] == "${local.labels}"
    # Managed Service for Prometheus scrapes the pods' metrics port
    monitoring = modules["modules/scorer"].resources_of("kubernetes_manifest")["pod_monitoring"]["manifest"]
    assert monitoring["kind"] == "PodMonitoring"
    assert monitoring["spec"]["endpoints"][0]["port"] == "metrics"
    cluster = modules["modules/gke"].resources_of("google_container_cluster")["main"]
    assert first(first(cluster["monitoring_config"])["managed_prometheus"])["enabled"] is True


def test_scorer_config_carries_the_edml_environment(modules):
    text = (modules["modules/scorer"].path / "main.tf").read_text()
    for name in ("EDML_BOOTSTRAP_SERVERS", "EDML_STATE_DIR", "EDML_ARTIFACT_STORE", "EDML_METRICS_PORT",
                 '"EDML_TOPIC_${upper(role)}"', '"EDML_KAFKA_${upper(replace(property, ".", "_"))}"'):
        assert name in text, name
    assert "EDML_MODEL_PUBLIC_KEY = var.model_public_key" in text
    props = modules["."].locals["kafka_client_properties"]
    assert '"security.protocol" = "SASL_SSL"' in (TF_DIR / "main.tf").read_text() and "merge" in props


def test_every_variable_is_typed_and_described_and_every_output_described(modules):
    problems = [p for m in modules.values() for p in variable_problems(m) + output_problems(m)]
    assert problems == []
    # validation where a wrong value is easy to give and expensive to find out about
    root = modules["."].variables
    for name in ("project_id", "region", "name_prefix", "topic_partitions", "scorer_image", "scorer_replicas",
                 "kafka_vcpu_count", "master_cidr", "topic_clients"):
        assert root[name].get("validation"), f"variable {name} has no validation"


def test_no_literal_secrets_anywhere_in_the_deployment():
    files = deployment_files()
    assert any(p.name.endswith(".example") for p in files)
    assert secret_problems(files) == []


def test_example_backend_config_exists_and_backend_is_partial():
    assert (TF_DIR / "backend.gcs.hcl.example").is_file()
    versions = parse_tf(TF_DIR / "versions.tf")
    backend = first(versions["terraform"])["backend"]
    assert "gcs" in first(backend)


# --- the checkers catch bad configurations ---------------------------------------------------------

BAD_TF = '''
variable "untyped" {
  description = "no type"
}

variable "undescribed" {
  type = string
}

resource "google_project_iam_member" "too_much" {
  project = "p"
  role    = "roles/editor"
  member  = "serviceAccount:x@p.iam.gserviceaccount.com"
}

resource "google_project_iam_member" "bucket_wide" {
  project = "p"
  role    = "roles/storage.objectViewer"
  member  = "serviceAccount:x@p.iam.gserviceaccount.com"
}

resource "google_storage_bucket_iam_member" "admin" {
  bucket = "b"
  role   = "roles/storage.admin"
  member = "serviceAccount:x@p.iam.gserviceaccount.com"
}

resource "google_service_account_key" "key" {
  service_account_id = "x"
}

locals {
  kafka_password = "hunter2-very-secret"
  topic_roles = {
    models = { name = "models", partitions = 1, configs = { "cleanup.policy" = "delete" } }
  }
}
'''


def test_checkers_find_problems_in_a_bad_configuration(tmp_path):
    (tmp_path / "main.tf").write_text(BAD_TF)
    bad = load_module(tmp_path)

    assert sorted(variable_problems(bad)) == [
        f"{tmp_path.name}: variable undescribed has no description",
        f"{tmp_path.name}: variable untyped has no type",
    ]
    roles = role_problems({"bad": bad})
    assert any("broad role roles/editor" in p for p in roles)
    assert any("broad role roles/storage.admin" in p for p in roles)
    assert any("granted on the whole project" in p for p in roles)
    secrets = secret_problems([tmp_path / "main.tf"])
    assert any("literal credential" in p and "kafka_password" in p for p in secrets)
    assert any("google_service_account_key creates a credential" in p for p in secrets)
    topics = compacted_topic_problems(bad)
    assert "topic models is not cleanup.policy=compact" in topics
    assert "topic role trips (trips) is missing" in topics


def test_secret_checker_finds_key_material(tmp_path):
    leak = tmp_path / "terraform.tfvars.example"
    leak.write_text('sa_key = <<EOF\n{"type": "service_account", "private_key": "x"}\nEOF\n'
                    'api = "AIza' + "A" * 35 + '"\n')
    found = secret_problems([leak])
    assert any("service account key JSON" in p for p in found)
    assert any("Google API key" in p for p in found)
    # references and descriptions that mention secrets are not literals
    ok = tmp_path / "ok.tf"
    ok.write_text('variable "x" {\n  description = "never a password"\n  type = string\n}\n'
                  'locals {\n  token = "${var.x}"\n}\n')
    assert secret_problems([ok]) == []
