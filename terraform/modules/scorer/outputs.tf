output "namespace" {
  description = "Namespace of the edml workloads."
  value       = kubernetes_namespace_v1.edml.metadata[0].name
}

output "statefulset" {
  description = "Name of the scorer StatefulSet."
  value       = kubernetes_stateful_set_v1.scorer.metadata[0].name
}

output "bytewax_addresses" {
  description = "The Bytewax `-a` list the processes are started with."
  value       = local.addresses
}

output "metrics_service" {
  description = "Service in front of the scorers' /metrics endpoints."
  value       = "${kubernetes_service_v1.metrics.metadata[0].name}.${var.namespace}.svc.cluster.local:${var.metrics_port}"
}

output "environment" {
  description = "The scorer's environment (the ConfigMap): EDML_* settings, no secrets."
  value       = kubernetes_config_map_v1.scorer.data
}
