output "network_id" {
  description = "ID of the VPC."
  value       = google_compute_network.vpc.id
}

output "network_name" {
  description = "Name of the VPC."
  value       = google_compute_network.vpc.name
}

output "subnet_id" {
  description = "ID of the subnet, projects/<project>/regions/<region>/subnetworks/<name> (what Managed Kafka needs)."
  value       = google_compute_subnetwork.main.id
}

output "subnet_name" {
  description = "Name of the subnet."
  value       = google_compute_subnetwork.main.name
}

output "pods_range_name" {
  description = "Name of the secondary range for pods."
  value       = "pods"
}

output "services_range_name" {
  description = "Name of the secondary range for services."
  value       = "services"
}
