# Google Cloud Managed Service for Apache Kafka: the cluster, edml's topics as code (the same
# layout `edml topics create` makes locally: the model topic compacted with one partition), and
# Kafka ACLs that give each service account only the topic operations it needs.

locals {
  memory_bytes = var.memory_gib * 1024 * 1024 * 1024

  # Every topic gets an ACL: its readers READ + DESCRIBE, its writers WRITE + DESCRIBE. Managed
  # Kafka lets any principal with the managedkafka.client role use a topic that has no ACL at all,
  # so a topic nobody is given is closed with an explicit deny instead of being left open.
  topic_acls = {
    for role, topic in var.topics : role => (
      length(concat(try(var.topic_access[role].readers, []), try(var.topic_access[role].writers, []))) == 0
      ? [{ principal = "User:*", operation = "ALL", permission = "DENY" }]
      : distinct(concat(
        flatten([for email in try(var.topic_access[role].readers, []) : [
          { principal = "User:${email}", operation = "READ", permission = "ALLOW" },
          { principal = "User:${email}", operation = "DESCRIBE", permission = "ALLOW" },
        ]]),
        flatten([for email in try(var.topic_access[role].writers, []) : [
          { principal = "User:${email}", operation = "WRITE", permission = "ALLOW" },
          { principal = "User:${email}", operation = "DESCRIBE", permission = "ALLOW" },
        ]]),
      ))
    )
  }
}

resource "google_managed_kafka_cluster" "main" {
  project    = var.project_id
  cluster_id = var.cluster_id
  location   = var.region
  labels     = var.labels

  capacity_config {
    vcpu_count   = var.vcpu_count
    memory_bytes = local.memory_bytes
  }

  gcp_config {
    access_config {
      network_configs {
        subnet = var.subnet_id
      }
    }
  }

  rebalance_config {
    mode = "AUTO_REBALANCE_ON_SCALE_UP"
  }

  lifecycle {
    precondition {
      condition     = var.memory_gib >= var.vcpu_count && var.memory_gib <= 8 * var.vcpu_count
      error_message = "memory_gib must be between 1 and 8 GiB per vCPU."
    }
  }
}

resource "google_managed_kafka_topic" "topic" {
  for_each = var.topics

  project            = var.project_id
  location           = var.region
  cluster            = google_managed_kafka_cluster.main.cluster_id
  topic_id           = each.value.name
  partition_count    = each.value.partitions
  replication_factor = var.replication_factor
  configs            = each.value.configs
}

resource "google_managed_kafka_acl" "topic" {
  for_each = local.topic_acls

  project  = var.project_id
  location = var.region
  cluster  = google_managed_kafka_cluster.main.cluster_id
  acl_id   = "topic/${google_managed_kafka_topic.topic[each.key].topic_id}"

  dynamic "acl_entries" {
    for_each = each.value
    content {
      principal       = acl_entries.value.principal
      permission_type = acl_entries.value.permission
      operation       = acl_entries.value.operation
      host            = "*"
    }
  }
}

resource "google_managed_kafka_acl" "consumer_group" {
  for_each = { for prefix, emails in var.consumer_group_access : prefix => emails if length(emails) > 0 }

  project  = var.project_id
  location = var.region
  cluster  = google_managed_kafka_cluster.main.cluster_id
  acl_id   = "consumerGroupPrefixed/${each.key}"

  dynamic "acl_entries" {
    for_each = each.value
    content {
      principal       = "User:${acl_entries.value}"
      permission_type = "ALLOW"
      operation       = "READ"
      host            = "*"
    }
  }
}
