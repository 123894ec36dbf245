# A batch job in HCL: runs once to completion (batch jobs have no deployments).
#
# `nomad-operator convert examples/hcl/report.nomad.hcl | kubectl apply -f -`; expect
# READY True once registered, and STATUS dead when the task has exited 0.

variable "message" {
  type    = string
  default = "report done"
}

job "nightly-report" {
  datacenters = ["dc1"]
  type        = "batch"

  group "once" {
    count = 1

    task "run" {
      driver = "raw_exec"

      config {
        command = "/bin/echo"
        args    = [var.message]
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
