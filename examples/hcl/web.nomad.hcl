# A healthy service job in HCL: two copies of a long-running command, with variables.
#
# `nomad-operator convert examples/hcl/web.nomad.hcl | kubectl apply -f -` makes it a
# NomadJob; expect VERSION 0, DEPLOYMENT successful, READY True within a few seconds.
# Change a value without touching the file: add `variables: {count: "3"}` to the spec.

variable "count" {
  type        = number
  default     = 2
  description = "copies of the server"
}

variable "seconds" {
  type    = string
  default = "3600"
}

job "web" {
  datacenters = ["dc1"]
  type        = "service"

  group "web" {
    count = var.count

    update {
      max_parallel      = 1
      min_healthy_time  = "5s"
      healthy_deadline  = "5m"
      progress_deadline = "10m"
      auto_revert       = false
    }

    task "server" {
      driver = "raw_exec"

      config {
        command = "/bin/sleep"
        args    = [var.seconds]
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
