output "scorer_email" {
  description = "Email of the scorer service account."
  value       = google_service_account.scorer.email
}

output "publisher_email" {
  description = "Email of the publisher / CI service account."
  value       = google_service_account.publisher.email
}

output "nodes_email" {
  description = "Email of the GKE node service account (available once its roles are granted)."
  value       = google_service_account.nodes.email
  # The cluster takes this output: its nodes must not start before they may pull images and log.
  depends_on = [
    google_project_iam_member.nodes_default,
    google_artifact_registry_repository_iam_member.nodes_pull_images,
  ]
}

output "ci_workload_identity_provider" {
  description = "Full name of the CI workload identity provider (for the CI's auth step), or null."
  value       = var.ci_oidc == null ? null : google_iam_workload_identity_pool_provider.ci[0].name
}
