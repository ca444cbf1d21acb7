"""Image baking: one content hash, one set of Ansible roles, two targets (AWS AMI, local rootfs).

:mod:`spotcube.bake.contenthash` decides whether anything that goes into an image changed;
:mod:`spotcube.bake.artifacts` builds what the roles install; :mod:`spotcube.bake.local` and
:mod:`spotcube.bake.aws` turn them into a Debian 12 image.
"""
