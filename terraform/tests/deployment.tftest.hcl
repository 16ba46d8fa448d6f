# `tofu test` (run by `make tf-check`): the whole deployment planned and applied against mocked
# providers (no cloud, no credentials), so every expression is evaluated with real provider
# schemas: topics and ACLs, IAM members, the scorer's config and its Bytewax wiring.

mock_provider "google" {
  # computed values the configuration indexes or validates need realistic shapes
  mock_resource "google_container_cluster" {
    defaults = {
      endpoint    = "203.0.113.10"
      master_auth = { cluster_ca_certificate = "bW9jaw==" }
    }
  }
}

mock_provider "kubernetes" {}

override_resource {
  target = module.iam.google_service_account.scorer
  values = {
    name  = "projects/edml-test-project/serviceAccounts/edml-scorer@edml-test-project.iam.gserviceaccount.com"
    email = "edml-scorer@edml-test-project.iam.gserviceaccount.com"
  }
}

override_resource {
  target = module.iam.google_service_account.publisher
  values = {
    name  = "projects/edml-test-project/serviceAccounts/edml-publisher@edml-test-project.iam.gserviceaccount.com"
    email = "edml-publisher@edml-test-project.iam.gserviceaccount.com"
  }
}

override_resource {
  target = module.iam.google_service_account.nodes
  values = {
    name  = "projects/edml-test-project/serviceAccounts/edml-nodes@edml-test-project.iam.gserviceaccount.com"
    email = "edml-nodes@edml-test-project.iam.gserviceaccount.com"
  }
}

variables {
  project_id      = "edml-test-project"
  region          = "europe-west1"
  scorer_image    = "europe-west1-docker.pkg.dev/edml-test-project/edml/edml:3a6e67d"
  scorer_replicas = 3
  topic_clients = {
    trips = { writers = ["trip-producer@edml-test-project.iam.gserviceaccount.com"] }
  }
}

run "deployment" {
  command = apply

  assert {
    condition     = output.topics.models == "models" && output.topics.shadow_predictions == "shadow-predictions"
    error_message = "topic names differ from edml's defaults"
  }

  assert {
    condition     = module.kafka.topic_configs.models["cleanup.policy"] == "compact" && module.kafka.topic_partitions.models == 1
    error_message = "the models topic must be compacted with one partition"
  }

  assert {
    condition     = length(output.topics) == 10
    error_message = "every edml topic role needs a topic"
  }

  assert {
    condition     = output.scorer_bytewax_addresses == "edml-scorer-0.edml-scorer.edml.svc.cluster.local:2101;edml-scorer-1.edml-scorer.edml.svc.cluster.local:2101;edml-scorer-2.edml-scorer.edml.svc.cluster.local:2101"
    error_message = "Bytewax -a must list every StatefulSet pod by its headless-service name, in ordinal order"
  }

  assert {
    condition     = output.artifact_store == "gs://edml-test-project-edml-models/models"
    error_message = "EDML_ARTIFACT_STORE must point into the model bucket"
  }

  assert {
    condition     = output.kafka_bootstrap_servers == "bootstrap.edml.europe-west1.managedkafka.edml-test-project.cloud.goog:9092"
    error_message = "bootstrap address of the Managed Kafka cluster"
  }

  assert {
    condition     = module.scorer[0].environment["EDML_TOPIC_MODEL_STATUS"] == "model-status" && module.scorer[0].environment["EDML_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" && module.scorer[0].environment["EDML_KAFKA_SASL_MECHANISM"] == "OAUTHBEARER" && module.scorer[0].environment["EDML_STATE_DIR"] == "/var/lib/edml"
    error_message = "the scorer's environment misses edml settings"
  }

  assert {
    condition     = toset(module.kafka.topic_acl_principals.trips) == toset(["User:edml-scorer@edml-test-project.iam.gserviceaccount.com", "User:trip-producer@edml-test-project.iam.gserviceaccount.com"])
    error_message = "trips is readable by the scorer and writable by the named producer only"
  }

  assert {
    condition     = toset(module.kafka.topic_acl_principals.models) == toset(["User:edml-scorer@edml-test-project.iam.gserviceaccount.com", "User:edml-publisher@edml-test-project.iam.gserviceaccount.com"])
    error_message = "only the scorer and the publisher may use the models topic"
  }

  assert {
    condition     = module.iam.scorer_email == "edml-scorer@edml-test-project.iam.gserviceaccount.com"
    error_message = "scorer service account"
  }

  assert {
    condition     = one(module.kafka.topic_acl_principals.scores) == "User:*" && one(module.kafka.topic_acl_permissions.scores) == "DENY"
    error_message = "a topic nobody is given must be closed by a deny ACL"
  }
}

run "platform_only_without_an_image" {
  command = plan

  variables {
    scorer_image = null
  }

  assert {
    condition     = length(module.scorer) == 0
    error_message = "without an image only the platform is created"
  }
}

run "rejects_latest" {
  command = plan

  variables {
    scorer_image = "europe-west1-docker.pkg.dev/edml-test-project/edml/edml:latest"
  }

  expect_failures = [var.scorer_image]
}

run "rejects_a_private_key" {
  command = plan

  variables {
    model_public_key = "PRIVATE KEY material"
  }

  expect_failures = [var.model_public_key]
}
