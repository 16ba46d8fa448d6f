terraform {
  # optional() object attributes, startswith/endswith: OpenTofu >= 1.6, Terraform >= 1.5.
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 8.0" # `make tf-check` validates against 8.0
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "~> 3.0" # `make tf-check` validates against 3.2
    }
  }

  # State lives in a GCS bucket you create once by hand (see backend.gcs.hcl.example):
  #   tofu init -backend-config=backend.gcs.hcl
  backend "gcs" {}
}
