# Service accounts with least privilege, bound to Kubernetes service accounts through Workload
# Identity (no keys anywhere):
#   scorer    - read model artifacts; Kafka client (topic access narrowed by Kafka ACLs)
#   publisher - create artifact objects (cannot overwrite or delete them); Kafka client (ACLs:
#               produce to the models topic); push scorer images (CI package stage)
#   nodes     - what GKE nodes need (logs, metrics) and pulling images from the repository

locals {
  members = {
    scorer    = "serviceAccount:${google_service_account.scorer.email}"
    publisher = "serviceAccount:${google_service_account.publisher.email}"
    nodes     = "serviceAccount:${google_service_account.nodes.email}"
  }
}

resource "google_service_account" "scorer" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-scorer"
  display_name = "edml scorer"
  description  = "Bytewax scoring dataflow: reads model artifacts, consumes and produces Kafka topics."
}

resource "google_service_account" "publisher" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-publisher"
  display_name = "edml model publisher / CI"
  description  = "Uploads model artifacts, produces model records, pushes scorer images."
}

resource "google_service_account" "nodes" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-nodes"
  display_name = "edml GKE nodes"
  description  = "GKE Autopilot node VMs: logging, monitoring, image pulls."
}

# --- model artifact bucket -------------------------------------------------------------------

resource "google_storage_bucket_iam_member" "scorer_reads_models" {
  bucket = var.bucket_name
  role   = "roles/storage.objectViewer"
  member = local.members.scorer
}

# objectCreator can create but not overwrite or delete: a published artifact is immutable.
resource "google_storage_bucket_iam_member" "publisher_creates_models" {
  bucket = var.bucket_name
  role   = "roles/storage.objectCreator"
  member = local.members.publisher
}

# Read back what it wrote (existence check before publishing, sha256 verification).
resource "google_storage_bucket_iam_member" "publisher_reads_models" {
  bucket = var.bucket_name
  role   = "roles/storage.objectViewer"
  member = local.members.publisher
}

# --- Managed Kafka -----------------------------------------------------------------------------
# Managed Kafka grants connect rights per project (there is no per-cluster IAM binding); what
# each principal may do on which topic is decided by the cluster's Kafka ACLs (kafka module).

resource "google_project_iam_member" "scorer_kafka_client" {
  project = var.project_id
  role    = "roles/managedkafka.client"
  member  = local.members.scorer
}

resource "google_project_iam_member" "publisher_kafka_client" {
  project = var.project_id
  role    = "roles/managedkafka.client"
  member  = local.members.publisher
}

# --- Artifact Registry -------------------------------------------------------------------------

resource "google_artifact_registry_repository_iam_member" "publisher_pushes_images" {
  project    = var.project_id
  location   = var.region
  repository = var.repository_id
  role       = "roles/artifactregistry.writer"
  member     = local.members.publisher
}

resource "google_artifact_registry_repository_iam_member" "nodes_pull_images" {
  project    = var.project_id
  location   = var.region
  repository = var.repository_id
  role       = "roles/artifactregistry.reader"
  member     = local.members.nodes
}

# --- GKE nodes ---------------------------------------------------------------------------------

# The minimal role Google defines for node service accounts (logs, metrics, metadata).
resource "google_project_iam_member" "nodes_default" {
  project = var.project_id
  role    = "roles/container.defaultNodeServiceAccount"
  member  = local.members.nodes
}

# --- Workload Identity: Kubernetes service account -> Google service account -----------------

resource "google_service_account_iam_member" "scorer_workload_identity" {
  service_account_id = google_service_account.scorer.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.workload_pool}[${var.namespace}/${var.scorer_ksa}]"
}

resource "google_service_account_iam_member" "publisher_workload_identity" {
  service_account_id = google_service_account.publisher.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.workload_pool}[${var.namespace}/${var.publisher_ksa}]"
}

# --- Workload Identity Federation: CI -> publisher (optional) ----------------------------------

resource "google_iam_workload_identity_pool" "ci" {
  count = var.ci_oidc == null ? 0 : 1

  project                   = var.project_id
  workload_identity_pool_id = "${var.name_prefix}-ci"
  display_name              = "edml CI"
  description               = "CI pipelines that publish models and push scorer images."
}

resource "google_iam_workload_identity_pool_provider" "ci" {
  count = var.ci_oidc == null ? 0 : 1

  project                            = var.project_id
  workload_identity_pool_id          = google_iam_workload_identity_pool.ci[0].workload_identity_pool_id
  workload_identity_pool_provider_id = "${var.name_prefix}-ci-oidc"
  display_name                       = "edml CI OIDC"
  attribute_mapping                  = var.ci_oidc.attribute_mapping
  attribute_condition                = var.ci_oidc.attribute_condition

  oidc {
    issuer_uri        = var.ci_oidc.issuer_uri
    allowed_audiences = var.ci_oidc.allowed_audiences
  }
}

# Every identity the provider admits (the attribute_condition already pins the repository).
resource "google_service_account_iam_member" "ci_impersonates_publisher" {
  count = var.ci_oidc == null ? 0 : 1

  service_account_id = google_service_account.publisher.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.ci[0].name}/*"
}
