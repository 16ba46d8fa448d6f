output "name" {
  description = "Name of the cluster."
  value       = google_container_cluster.main.name
}

output "location" {
  description = "Region of the cluster."
  value       = google_container_cluster.main.location
}

output "endpoint" {
  description = "Address of the control plane (for the kubernetes provider)."
  value       = google_container_cluster.main.endpoint
}

output "ca_certificate" {
  description = "Base64 CA certificate of the control plane."
  value       = google_container_cluster.main.master_auth[0].cluster_ca_certificate
}

output "workload_pool" {
  description = "Workload Identity pool, <project>.svc.id.goog."
  value       = google_container_cluster.main.workload_identity_config[0].workload_pool
}
