variable "project_id" {
  description = "Google Cloud project of the Kafka cluster."
  type        = string
}

variable "region" {
  description = "Region of the cluster (the same as the subnet's)."
  type        = string
}

variable "cluster_id" {
  description = "ID of the Managed Kafka cluster."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.cluster_id))
    error_message = "cluster_id must be a lowercase RFC 1035 label of at most 63 characters."
  }
}

variable "subnet_id" {
  description = "Subnet the brokers get addresses in, projects/<project>/regions/<region>/subnetworks/<name>."
  type        = string
}

variable "vcpu_count" {
  description = "vCPUs of the cluster (Managed Kafka's minimum is 3)."
  type        = number
  default     = 3

  validation {
    condition     = var.vcpu_count >= 3 && floor(var.vcpu_count) == var.vcpu_count
    error_message = "vcpu_count must be a whole number, at least 3."
  }
}

variable "memory_gib" {
  description = "Memory of the cluster in GiB (between 1 and 8 GiB per vCPU)."
  type        = number
  default     = 12
}

variable "replication_factor" {
  description = "Replicas of every partition."
  type        = number
  default     = 3

  validation {
    condition     = contains([1, 2, 3], var.replication_factor)
    error_message = "replication_factor must be 1, 2 or 3 (3 is the recommended value)."
  }
}

variable "topics" {
  description = "Topics by edml role (trips, models, ...): their Kafka name, partition count and config overrides."
  type = map(object({
    name       = string
    partitions = number
    configs    = map(string)
  }))

  validation {
    condition     = alltrue([for t in values(var.topics) : can(regex("^[a-zA-Z0-9._-]{1,249}$", t.name)) && t.partitions >= 1])
    error_message = "every topic needs a name of letters, digits, '.', '_' or '-' and at least one partition."
  }
}

variable "topic_access" {
  description = "Kafka ACLs by topic role: service account emails that may read it and that may write it. Everyone else is refused; a topic with no readers and no writers is closed to all."
  type = map(object({
    readers = list(string)
    writers = list(string)
  }))
  default = {}

  validation {
    condition     = alltrue([for role in keys(var.topic_access) : contains(keys(var.topics), role)])
    error_message = "every topic_access key must be a role in topics."
  }
}

variable "consumer_group_access" {
  description = "Kafka ACLs on consumer groups: group name prefix -> service account emails that may use groups with that prefix."
  type        = map(list(string))
  default     = {}
}

variable "labels" {
  description = "Labels put on the cluster."
  type        = map(string)
  default     = {}
}
