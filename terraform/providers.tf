provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = merge({ app = "edml", managed-by = "terraform" }, var.labels)
}

# The kubernetes provider talks to the cluster this configuration creates, with the caller's
# short-lived Google access token (no kubeconfig, no client certificate).
data "google_client_config" "current" {}

provider "kubernetes" {
  host                   = "https://${module.gke.endpoint}"
  token                  = data.google_client_config.current.access_token
  cluster_ca_certificate = base64decode(module.gke.ca_certificate)
}
