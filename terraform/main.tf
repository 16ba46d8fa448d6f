# edml on Google Cloud: network -> GKE Autopilot (Workload Identity) -> model bucket, Managed
# Kafka + topics, image repository, service accounts -> the scorer StatefulSet.

locals {
  bucket_name    = coalesce(var.model_bucket_name, "${var.project_id}-${var.name_prefix}-models")
  artifact_store = "gs://${local.bucket_name}/${var.artifact_prefix}"
  scorer_ksa     = "${var.name_prefix}-scorer"
  publisher_ksa  = "${var.name_prefix}-publisher"

  # The same topics and layout as `edml topics create` (edml/kafka/topics.py): the model topic is
  # compacted desired state with one partition, model-status has one partition for ordering.
  compacted_topic = {
    "cleanup.policy"            = "compact"
    "min.cleanable.dirty.ratio" = "0.01"
    "segment.ms"                = "600000"
  }
  topic_roles = {
    trips              = { name = "trips", partitions = var.topic_partitions, configs = {} }
    labels             = { name = "dropoffs", partitions = var.topic_partitions, configs = {} }
    predictions        = { name = "predictions", partitions = var.topic_partitions, configs = {} }
    shadow_predictions = { name = "shadow-predictions", partitions = var.topic_partitions, configs = {} }
    models             = { name = "models", partitions = 1, configs = local.compacted_topic }
    model_status       = { name = "model-status", partitions = 1, configs = {} }
    dead_letter        = { name = "dead-letter", partitions = var.topic_partitions, configs = {} }
    evaluations        = { name = "evaluations", partitions = var.topic_partitions, configs = {} }
    scores             = { name = "scores", partitions = var.topic_partitions, configs = {} }
    alerts             = { name = "alerts", partitions = var.topic_partitions, configs = {} }
    prediction_alerts  = { name = "prediction-alerts", partitions = var.topic_partitions, configs = {} }
    autopilot          = { name = "autopilot", partitions = 1, configs = {} }
  }
  topics = {
    for role, t in local.topic_roles : role => merge(t, { name = "${var.topic_prefix}${t.name}" })
  }

  # Who may do what on each topic (Kafka ACLs). The scorer reads trips and models and writes its
  # outputs; the publisher writes models and reads model records and statuses back.
  scorer    = module.iam.scorer_email
  publisher = module.iam.publisher_email
  builtin_topic_access = {
    trips              = { readers = [local.scorer], writers = [] }
    models             = { readers = [local.scorer, local.publisher], writers = [local.publisher] }
    model_status       = { readers = [local.publisher], writers = [local.scorer] }
    predictions        = { readers = [], writers = [local.scorer] }
    shadow_predictions = { readers = [], writers = [local.scorer] }
    dead_letter        = { readers = [], writers = [local.scorer] }
  }
  topic_access = {
    for role in keys(local.topics) : role => {
      readers = distinct(concat(try(local.builtin_topic_access[role].readers, []), try(var.topic_clients[role].readers, [])))
      writers = distinct(concat(try(local.builtin_topic_access[role].writers, []), try(var.topic_clients[role].writers, [])))
    }
  }

  # Managed Kafka speaks SASL over TLS; OAUTHBEARER carries the pod's Workload Identity token.
  kafka_client_properties = merge(
    {
      "security.protocol" = "SASL_SSL"
      "sasl.mechanism"    = "OAUTHBEARER"
    },
    var.kafka_client_properties,
  )
}

resource "google_project_service" "required" {
  for_each = toset([
    "artifactregistry.googleapis.com",
    "compute.googleapis.com",
    "container.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "managedkafka.googleapis.com",
    "storage.googleapis.com",
    "sts.googleapis.com",
  ])

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

module "network" {
  source = "./modules/network"

  project_id    = var.project_id
  region        = var.region
  name          = var.name_prefix
  subnet_cidr   = var.subnet_cidr
  pods_cidr     = var.pods_cidr
  services_cidr = var.services_cidr

  depends_on = [google_project_service.required]
}

module "artifact_registry" {
  source = "./modules/artifact_registry"

  project_id    = var.project_id
  region        = var.region
  repository_id = var.name_prefix
  labels        = var.labels

  depends_on = [google_project_service.required]
}

module "model_bucket" {
  source = "./modules/model_bucket"

  project_id                = var.project_id
  name                      = local.bucket_name
  location                  = var.region
  noncurrent_retention_days = var.artifact_noncurrent_retention_days
  archive_after_days        = var.artifact_archive_after_days
  labels                    = var.labels

  depends_on = [google_project_service.required]
}

module "gke" {
  source = "./modules/gke"

  project_id                 = var.project_id
  region                     = var.region
  name                       = var.name_prefix
  network_id                 = module.network.network_id
  subnet_id                  = module.network.subnet_id
  pods_range_name            = module.network.pods_range_name
  services_range_name        = module.network.services_range_name
  master_cidr                = var.master_cidr
  master_authorized_networks = var.master_authorized_networks
  release_channel            = var.gke_release_channel
  node_service_account       = module.iam.nodes_email
  deletion_protection        = var.deletion_protection
  labels                     = var.labels

  depends_on = [google_project_service.required]
}

module "iam" {
  source = "./modules/iam"

  project_id    = var.project_id
  name_prefix   = var.name_prefix
  region        = var.region
  bucket_name   = module.model_bucket.name
  repository_id = module.artifact_registry.repository_id
  workload_pool = module.gke.workload_pool
  namespace     = var.namespace
  scorer_ksa    = local.scorer_ksa
  publisher_ksa = local.publisher_ksa
  ci_oidc       = var.ci_oidc

  depends_on = [google_project_service.required]
}

module "kafka" {
  source = "./modules/kafka"

  project_id            = var.project_id
  region                = var.region
  cluster_id            = var.name_prefix
  subnet_id             = module.network.subnet_id
  vcpu_count            = var.kafka_vcpu_count
  memory_gib            = var.kafka_memory_gib
  replication_factor    = var.kafka_replication_factor
  topics                = local.topics
  topic_access          = local.topic_access
  consumer_group_access = { (var.consumer_group_prefix) = [local.scorer, local.publisher] }
  labels                = var.labels

  depends_on = [google_project_service.required]
}

# The workload needs an image, which CI pushes to the repository created above: the first apply
# (scorer_image = null) builds the platform, a later one deploys the scorer.
module "scorer" {
  source = "./modules/scorer"
  count  = var.scorer_image == null ? 0 : 1

  namespace                       = var.namespace
  name                            = local.scorer_ksa
  image                           = var.scorer_image
  replicas                        = var.scorer_replicas
  workers_per_process             = var.scorer_workers_per_process
  state_storage_size              = var.scorer_state_size
  resources                       = var.scorer_resources
  scorer_service_account_email    = module.iam.scorer_email
  publisher_service_account_email = module.iam.publisher_email
  scorer_ksa                      = local.scorer_ksa
  publisher_ksa                   = local.publisher_ksa
  bootstrap_servers               = module.kafka.bootstrap_servers
  artifact_store                  = local.artifact_store
  topics                          = module.kafka.topic_names
  kafka_properties                = local.kafka_client_properties
  model_public_key                = var.model_public_key
  pod_monitoring                  = var.scorer_pod_monitoring
  extra_env                       = var.scorer_extra_env
}
