output "cluster_name" {
  description = "Full name of the cluster, projects/<p>/locations/<region>/clusters/<id>."
  value       = google_managed_kafka_cluster.main.name
}

output "bootstrap_servers" {
  description = "Bootstrap address of the cluster (SASL_SSL on port 9092, reachable from the VPC)."
  value       = "bootstrap.${google_managed_kafka_cluster.main.cluster_id}.${var.region}.managedkafka.${var.project_id}.cloud.goog:9092"
}

output "topic_names" {
  description = "Topic name by edml role."
  value       = { for role, t in google_managed_kafka_topic.topic : role => t.topic_id }
}

output "topic_partitions" {
  description = "Partition count by edml role."
  value       = { for role, t in google_managed_kafka_topic.topic : role => t.partition_count }
}

output "topic_configs" {
  description = "Topic config overrides by edml role."
  value       = { for role, t in google_managed_kafka_topic.topic : role => t.configs }
}

output "topic_acl_principals" {
  description = "Principals named in each topic's Kafka ACL, by edml role."
  value       = { for role, acl in google_managed_kafka_acl.topic : role => distinct([for e in acl.acl_entries : e.principal]) }
}

output "topic_acl_permissions" {
  description = "ALLOW / DENY kinds in each topic's Kafka ACL, by edml role."
  value       = { for role, acl in google_managed_kafka_acl.topic : role => distinct([for e in acl.acl_entries : e.permission_type]) }
}
