output "cluster_name" {
  description = "Name of the GKE cluster."
  value       = module.gke.name
}

output "get_credentials" {
  description = "Command that points kubectl at the cluster."
  value       = "gcloud container clusters get-credentials ${module.gke.name} --region ${module.gke.location} --project ${var.project_id}"
}

output "artifact_store" {
  description = "EDML_ARTIFACT_STORE for the publisher and the scorer."
  value       = local.artifact_store
}

output "model_bucket" {
  description = "Name of the model artifact bucket."
  value       = module.model_bucket.name
}

output "kafka_bootstrap_servers" {
  description = "EDML_BOOTSTRAP_SERVERS (reachable from the VPC only)."
  value       = module.kafka.bootstrap_servers
}

output "kafka_client_properties" {
  description = "Kafka client properties every edml client needs (EDML_KAFKA_<PROPERTY>)."
  value       = local.kafka_client_properties
}

output "topics" {
  description = "Topic name by edml role (EDML_TOPIC_<ROLE>)."
  value       = module.kafka.topic_names
}

output "image_repository" {
  description = "Where CI pushes the scorer image: <this>:<git sha>."
  value       = module.artifact_registry.image_base
}

output "scorer_service_account" {
  description = "Google service account of the scorer."
  value       = module.iam.scorer_email
}

output "publisher_service_account" {
  description = "Google service account of the publisher / CI."
  value       = module.iam.publisher_email
}

output "ci_workload_identity_provider" {
  description = "Workload identity provider for the CI auth step (null unless ci_oidc is set)."
  value       = module.iam.ci_workload_identity_provider
}

output "scorer_bytewax_addresses" {
  description = "The Bytewax -a list the scorer processes run with (null until scorer_image is set)."
  value       = one(module.scorer[*].bytewax_addresses)
}

output "scorer_metrics_service" {
  description = "In-cluster address of the scorer metrics Service (null until scorer_image is set)."
  value       = one(module.scorer[*].metrics_service)
}
