# --- project -----------------------------------------------------------------------------------

variable "project_id" {
  description = "Google Cloud project to deploy into."
  type        = string

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be 6-30 lowercase letters, digits or '-', starting with a letter."
  }
}

variable "region" {
  description = "Region for the cluster, Kafka, bucket and image repository (Managed Kafka must be offered there)."
  type        = string
  default     = "europe-west1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region such as europe-west1 (not a zone)."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name (VPC, cluster, Kafka cluster, service accounts, ...)."
  type        = string
  default     = "edml"

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{0,15}$", var.name_prefix))
    error_message = "name_prefix must be 1-16 lowercase letters, digits or '-', starting with a letter."
  }
}

variable "labels" {
  description = "Labels added to every Google Cloud resource that supports them."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.labels : can(regex("^[a-z][-_a-z0-9]{0,62}$", k)) && can(regex("^[-_a-z0-9]{0,63}$", v))])
    error_message = "label keys must start with a lowercase letter; keys and values use lowercase letters, digits, '-' and '_' (at most 63)."
  }
}

variable "deletion_protection" {
  description = "Protect the GKE cluster from `destroy` (set false before tearing a test deployment down)."
  type        = bool
  default     = true
}

# --- network and cluster -----------------------------------------------------------------------

variable "subnet_cidr" {
  description = "Primary range of the subnet: nodes and the Managed Kafka brokers."
  type        = string
  default     = "10.10.0.0/20"

  validation {
    condition     = can(cidrnetmask(var.subnet_cidr))
    error_message = "subnet_cidr must be an IPv4 CIDR block."
  }
}

variable "pods_cidr" {
  description = "Secondary range for pods."
  type        = string
  default     = "10.20.0.0/14"

  validation {
    condition     = can(cidrnetmask(var.pods_cidr))
    error_message = "pods_cidr must be an IPv4 CIDR block."
  }
}

variable "services_cidr" {
  description = "Secondary range for Kubernetes services."
  type        = string
  default     = "10.30.0.0/20"

  validation {
    condition     = can(cidrnetmask(var.services_cidr))
    error_message = "services_cidr must be an IPv4 CIDR block."
  }
}

variable "master_cidr" {
  description = "/28 for the GKE control plane's private endpoint."
  type        = string
  default     = "172.16.0.0/28"

  validation {
    condition     = can(cidrnetmask(var.master_cidr)) && endswith(var.master_cidr, "/28")
    error_message = "master_cidr must be an IPv4 /28 block."
  }
}

variable "master_authorized_networks" {
  description = "CIDR blocks allowed to reach the cluster's public endpoint (where tofu/kubectl run); empty allows any address (still IAM-authenticated)."
  type = list(object({
    cidr_block   = string
    display_name = string
  }))
  default = []
}

variable "gke_release_channel" {
  description = "GKE release channel: RAPID, REGULAR or STABLE."
  type        = string
  default     = "REGULAR"

  validation {
    condition     = contains(["RAPID", "REGULAR", "STABLE"], var.gke_release_channel)
    error_message = "gke_release_channel must be RAPID, REGULAR or STABLE."
  }
}

# --- model bucket ------------------------------------------------------------------------------

variable "model_bucket_name" {
  description = "Name of the model artifact bucket; null picks <project_id>-<name_prefix>-models."
  type        = string
  default     = null

  validation {
    condition     = var.model_bucket_name == null || can(regex("^[a-z0-9][-_a-z0-9]{1,61}[a-z0-9]$", var.model_bucket_name))
    error_message = "model_bucket_name must be 3-63 lowercase letters, digits, '-' or '_'."
  }
}

variable "artifact_prefix" {
  description = "Folder inside the bucket that holds the artifacts (EDML_ARTIFACT_STORE = gs://<bucket>/<prefix>)."
  type        = string
  default     = "models"

  validation {
    condition     = can(regex("^[a-zA-Z0-9][-_.a-zA-Z0-9/]*[a-zA-Z0-9]$", var.artifact_prefix)) && !strcontains(var.artifact_prefix, "..")
    error_message = "artifact_prefix must be a relative object path such as models (no leading or trailing '/', no '..')."
  }
}

variable "artifact_noncurrent_retention_days" {
  description = "Days an overwritten or deleted artifact version is kept."
  type        = number
  default     = 30

  validation {
    condition     = var.artifact_noncurrent_retention_days >= 1
    error_message = "artifact_noncurrent_retention_days must be at least 1."
  }
}

variable "artifact_archive_after_days" {
  description = "Days after which artifacts move to the ARCHIVE storage class (they are never deleted by age: any version may be rolled back to)."
  type        = number
  default     = 180

  validation {
    condition     = var.artifact_archive_after_days >= 30
    error_message = "artifact_archive_after_days must be at least 30."
  }
}

# --- Kafka -------------------------------------------------------------------------------------

variable "kafka_vcpu_count" {
  description = "vCPUs of the Managed Kafka cluster (minimum 3)."
  type        = number
  default     = 3

  validation {
    condition     = var.kafka_vcpu_count >= 3
    error_message = "kafka_vcpu_count must be at least 3."
  }
}

variable "kafka_memory_gib" {
  description = "Memory of the Managed Kafka cluster in GiB (1-8 GiB per vCPU)."
  type        = number
  default     = 12

  validation {
    condition     = var.kafka_memory_gib >= 3
    error_message = "kafka_memory_gib must be at least 3 (1 GiB per vCPU, 3 vCPUs minimum)."
  }
}

variable "kafka_replication_factor" {
  description = "Replicas of every topic partition."
  type        = number
  default     = 3

  validation {
    condition     = contains([1, 2, 3], var.kafka_replication_factor)
    error_message = "kafka_replication_factor must be 1, 2 or 3."
  }
}

variable "topic_partitions" {
  description = "Partitions of the data topics (trips, predictions, ...). The models and model-status topics always have one. Bytewax spreads partitions over all workers, so use at least replicas x workers."
  type        = number
  default     = 6

  validation {
    condition     = var.topic_partitions >= 1 && var.topic_partitions <= 1000 && floor(var.topic_partitions) == var.topic_partitions
    error_message = "topic_partitions must be a whole number between 1 and 1000."
  }
}

variable "topic_prefix" {
  description = "Prefix put before every topic name (EDML_TOPIC_PREFIX semantics), e.g. prod. to share one cluster."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[a-zA-Z0-9._-]{0,100}$", var.topic_prefix))
    error_message = "topic_prefix may only hold letters, digits, '.', '_' and '-'."
  }
}

variable "topic_clients" {
  description = "More principals (service account emails) per topic role, beyond the scorer and publisher, e.g. the trip producer writing trips, a dashboard reading predictions. Topics nobody may use are closed by a deny-all ACL."
  type = map(object({
    readers = optional(list(string), [])
    writers = optional(list(string), [])
  }))
  default = {}

  validation {
    condition = alltrue([
      for role in keys(var.topic_clients) : contains(
        ["trips", "labels", "predictions", "shadow_predictions", "models", "model_status", "dead_letter", "evaluations", "scores", "alerts", "prediction_alerts"],
        role,
      )
    ])
    error_message = "topic_clients keys must be edml topic roles: trips, labels, predictions, shadow_predictions, models, model_status, dead_letter, evaluations, scores, alerts, prediction_alerts."
  }

  validation {
    condition = alltrue(flatten([
      for access in values(var.topic_clients) : [for email in concat(access.readers, access.writers) : can(regex("^[^@\\s]+@[^@\\s]+$", email))]
    ]))
    error_message = "topic_clients readers and writers must be service account emails."
  }
}

variable "consumer_group_prefix" {
  description = "Consumer group name prefix the scorer and publisher may use."
  type        = string
  default     = "edml"

  validation {
    condition     = can(regex("^[a-zA-Z0-9._-]{1,100}$", var.consumer_group_prefix))
    error_message = "consumer_group_prefix must be 1-100 letters, digits, '.', '_' or '-'."
  }
}

variable "kafka_client_properties" {
  description = "Extra Kafka client properties for the scorer (EDML_KAFKA_*), merged over SASL_SSL + OAUTHBEARER. Never credentials: the scorer authenticates with its Workload Identity token."
  type        = map(string)
  default     = {}
}

# --- image and CI ------------------------------------------------------------------------------

variable "ci_oidc" {
  description = "Optional Workload Identity Federation for CI (GitLab/GitHub OIDC) to act as the publisher without keys; attribute_condition must pin your repository."
  type = object({
    issuer_uri          = string
    allowed_audiences   = optional(list(string), [])
    attribute_mapping   = map(string)
    attribute_condition = string
  })
  default = null
}

# --- scorer workload ---------------------------------------------------------------------------

variable "scorer_image" {
  description = "Scorer image with an explicit tag or digest (CI pushes it to the repository this creates). null: create the infrastructure only, deploy the scorer on a later apply."
  type        = string
  default     = null

  validation {
    condition     = var.scorer_image == null || can(regex("^[^\\s]+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})$", var.scorer_image))
    error_message = "scorer_image must carry an explicit tag or digest."
  }

  validation {
    condition     = var.scorer_image == null || !endswith(coalesce(var.scorer_image, "-"), ":latest")
    error_message = "scorer_image must not be :latest: every pod of the StatefulSet must run the same code."
  }
}

variable "namespace" {
  description = "Kubernetes namespace of the edml workloads."
  type        = string
  default     = "edml"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a DNS-1123 label."
  }
}

variable "scorer_replicas" {
  description = "Bytewax processes (StatefulSet pods) of the scorer."
  type        = number
  default     = 2

  validation {
    condition     = var.scorer_replicas >= 1 && var.scorer_replicas <= 64 && floor(var.scorer_replicas) == var.scorer_replicas
    error_message = "scorer_replicas must be a whole number between 1 and 64."
  }
}

variable "scorer_workers_per_process" {
  description = "Bytewax workers per scorer process (threads; prefer more processes)."
  type        = number
  default     = 1

  validation {
    condition     = var.scorer_workers_per_process >= 1 && floor(var.scorer_workers_per_process) == var.scorer_workers_per_process
    error_message = "scorer_workers_per_process must be a whole number, at least 1."
  }
}

variable "scorer_state_size" {
  description = "Persistent volume per scorer pod for the model store and Bytewax recovery, e.g. 10Gi."
  type        = string
  default     = "10Gi"

  validation {
    condition     = can(regex("^[1-9][0-9]*(Mi|Gi|Ti)$", var.scorer_state_size))
    error_message = "scorer_state_size must look like 512Mi, 10Gi or 1Ti."
  }
}

variable "scorer_resources" {
  description = "CPU and memory requested (and limited to) per scorer pod."
  type = object({
    cpu    = string
    memory = string
  })
  default = {
    cpu    = "1"
    memory = "2Gi"
  }
}

variable "model_public_key" {
  description = "PEM ed25519 public key the scorer verifies model records with (EDML_MODEL_PUBLIC_KEY); null serves unsigned records. The private key stays with the publisher (CI secret store), never here."
  type        = string
  default     = null

  validation {
    condition     = var.model_public_key == null || !strcontains(coalesce(var.model_public_key, "-"), "PRIVATE")
    error_message = "model_public_key must be the public key; a private key must never enter the configuration."
  }
}

variable "scorer_pod_monitoring" {
  description = "Create a PodMonitoring for Managed Service for Prometheus (needs the cluster to exist at plan time, which holds for the apply that sets scorer_image)."
  type        = bool
  default     = true
}

variable "scorer_extra_env" {
  description = "More non-secret environment variables for the scorer, e.g. { EDML_MODEL_NAME = \"trip-duration\" }."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.scorer_extra_env) : can(regex("^[A-Z_][A-Z0-9_]*$", k)) && !can(regex("(PASSWORD|SECRET|TOKEN|PRIVATE|CREDENTIAL)", k))])
    error_message = "scorer_extra_env keys must be UPPER_SNAKE_CASE and must not carry secrets (PASSWORD, SECRET, TOKEN, PRIVATE, CREDENTIAL)."
  }
}
