variable "namespace" {
  description = "Kubernetes namespace created for the edml workloads."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a DNS-1123 label."
  }
}

variable "name" {
  description = "Name of the StatefulSet and of its headless Service (pods are <name>-0, <name>-1, ...)."
  type        = string
  default     = "edml-scorer"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,50}[a-z0-9])?$", var.name))
    error_message = "name must be a DNS-1123 label of at most 52 characters starting with a letter."
  }
}

variable "image" {
  description = "Scorer image, pinned: <registry>/<repo>/edml:<git sha> or @sha256:<digest>."
  type        = string

  validation {
    condition     = can(regex("^[^\\s]+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})$", var.image)) && !endswith(var.image, ":latest")
    error_message = "image must carry an explicit tag or digest, and not :latest (a pod restart must run the same code)."
  }
}

variable "replicas" {
  description = "Bytewax processes (pods). Each one is a cluster member; Kafka partitions spread over all workers."
  type        = number
  default     = 2

  validation {
    condition     = var.replicas >= 1 && var.replicas <= 64 && floor(var.replicas) == var.replicas
    error_message = "replicas must be a whole number between 1 and 64."
  }
}

variable "workers_per_process" {
  description = "Bytewax worker threads per process. Prefer more processes: the GIL serialises Python work inside one."
  type        = number
  default     = 1

  validation {
    condition     = var.workers_per_process >= 1 && floor(var.workers_per_process) == var.workers_per_process
    error_message = "workers_per_process must be a whole number, at least 1."
  }
}

variable "cluster_port" {
  description = "Port the Bytewax processes talk to each other on."
  type        = number
  default     = 2101

  validation {
    condition     = var.cluster_port >= 1024 && var.cluster_port <= 65535
    error_message = "cluster_port must be an unprivileged port (1024-65535)."
  }
}

variable "metrics_port" {
  description = "Port of the Prometheus /metrics and /healthz endpoint (EDML_METRICS_PORT)."
  type        = number
  default     = 9100

  validation {
    condition     = var.metrics_port >= 1024 && var.metrics_port <= 65535
    error_message = "metrics_port must be an unprivileged port (1024-65535)."
  }
}

variable "state_dir" {
  description = "Mount path of the persistent volume (EDML_STATE_DIR): the rocksdict model store and Bytewax recovery."
  type        = string
  default     = "/var/lib/edml"

  validation {
    condition     = startswith(var.state_dir, "/")
    error_message = "state_dir must be an absolute path."
  }
}

variable "state_storage_size" {
  description = "Size of each pod's persistent volume, e.g. 10Gi."
  type        = string
  default     = "10Gi"

  validation {
    condition     = can(regex("^[1-9][0-9]*(Mi|Gi|Ti)$", var.state_storage_size))
    error_message = "state_storage_size must look like 512Mi, 10Gi or 1Ti."
  }
}

variable "storage_class" {
  description = "StorageClass of the persistent volumes (GKE: standard-rwo or premium-rwo)."
  type        = string
  default     = "standard-rwo"
}

variable "resources" {
  description = "CPU and memory of each scorer pod (Autopilot bills requests; limits equal requests)."
  type = object({
    cpu    = string
    memory = string
  })
  default = {
    cpu    = "1"
    memory = "2Gi"
  }
}

variable "scorer_service_account_email" {
  description = "Google service account the scorer pods act as (Workload Identity)."
  type        = string
}

variable "publisher_service_account_email" {
  description = "Google service account that in-cluster publish jobs act as (Workload Identity)."
  type        = string
}

variable "scorer_ksa" {
  description = "Name of the scorer's Kubernetes service account."
  type        = string
  default     = "edml-scorer"
}

variable "publisher_ksa" {
  description = "Name of the Kubernetes service account for publish jobs."
  type        = string
  default     = "edml-publisher"
}

variable "bootstrap_servers" {
  description = "Kafka bootstrap address (EDML_BOOTSTRAP_SERVERS)."
  type        = string
}

variable "artifact_store" {
  description = "Model artifact store URI (EDML_ARTIFACT_STORE), gs://<bucket>/models."
  type        = string

  validation {
    condition     = startswith(var.artifact_store, "gs://")
    error_message = "artifact_store must be a gs:// URI."
  }
}

variable "topics" {
  description = "Topic name by edml role (trips, models, model_status, ...): each becomes EDML_TOPIC_<ROLE>."
  type        = map(string)
}

variable "kafka_properties" {
  description = "Kafka client properties for every client (EDML_KAFKA_<PROPERTY>), e.g. security.protocol = SASL_SSL. Only non-secret settings: credentials come from Workload Identity."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.kafka_properties) : !can(regex("(?i)(password|secret|jaas|keystore|key\\.pem|private)", k))])
    error_message = "kafka_properties must not carry credentials (password, secret, JAAS, keystore, private key): use Workload Identity."
  }
}

variable "extra_env" {
  description = "More non-secret environment variables for the scorer (e.g. EDML_MODEL_NAME)."
  type        = map(string)
  default     = {}
}

variable "model_public_key" {
  description = "PEM ed25519 public key (EDML_MODEL_PUBLIC_KEY): the scorer then serves only model records signed with its private key. null accepts unsigned records. A public key, not a secret."
  type        = string
  default     = null

  validation {
    condition     = var.model_public_key == null || (startswith(trimspace(coalesce(var.model_public_key, "-")), "-----BEGIN PUBLIC KEY-----") && !strcontains(coalesce(var.model_public_key, "-"), "PRIVATE"))
    error_message = "model_public_key must be a PEM public key (-----BEGIN PUBLIC KEY-----), never a private key."
  }
}

variable "pod_monitoring" {
  description = "Create a PodMonitoring so Google Cloud Managed Service for Prometheus scrapes every scorer pod. Needs the cluster to exist when planning (true for the apply that sets the image)."
  type        = bool
  default     = true
}
