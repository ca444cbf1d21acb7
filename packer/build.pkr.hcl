build {
  name    = "spotcube-payload"
  sources = ["source.amazon-ebs.payload"]

  # The same playbook and roles as `spotcube bake --target local`.
  provisioner "ansible" {
    playbook_file = "${path.root}/../ansible/site.yml"
    user          = var.ssh_username
    use_proxy     = false
    extra_arguments = [
      "--extra-vars", "@${var.ansible_extra_vars_file}",
    ]
    ansible_env_vars = [
      "ANSIBLE_CONFIG=${path.root}/../ansible/ansible.cfg",
    ]
  }

  # The testinfra suite checks the build host before the snapshot. It runs on the instance with
  # the local backend: the cleanup role has already removed authorized_keys, so a second SSH
  # login from here would be refused, while Packer's open session still works.
  provisioner "shell" {
    inline = ["mkdir -p /tmp/spotcube-testinfra"]
  }

  provisioner "file" {
    sources     = ["${path.root}/../tests/image", "${path.root}/../constraints.txt"]
    destination = "/tmp/spotcube-testinfra/"
  }

  provisioner "shell" {
    environment_vars = [
      "TESTINFRA_VERSION=${var.testinfra_version}",
      "EXPECTED_CONTENT_HASH=${var.content_hash}",
    ]
    execute_command = "sudo -E sh -eu '{{ .Path }}'"
    script          = "${path.root}/scripts/testinfra-on-build-host.sh"
  }

  post-processor "manifest" {
    output     = var.manifest_path
    strip_path = true
    custom_data = {
      ami_name     = local.ami_name
      content_hash = var.content_hash
      git_commit   = var.git_commit
    }
  }
}
