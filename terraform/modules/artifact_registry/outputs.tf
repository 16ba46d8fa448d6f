output "repository_id" {
  description = "ID of the repository."
  value       = google_artifact_registry_repository.images.repository_id
}

output "repository_name" {
  description = "Full name of the repository (for IAM bindings)."
  value       = google_artifact_registry_repository.images.name
}

output "image_base" {
  description = "Image path without tag, <region>-docker.pkg.dev/<project>/<repository>/edml."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}/edml"
}
