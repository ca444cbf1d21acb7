"""Image variants: the payload image plus a group's tools, declared in one YAML file.

A variant file (``images/radio-tools.yaml`` is the example) says::

    name: radio-tools              # the variant's name: AMI tag, local metadata, stack config
    toolchains: [wsclean, dp3]     # roles the project provides (TOOLCHAIN_ROLES)
    debian_packages: [make]        # extra Debian 12 packages
    pip_packages: [name==1.2.3]    # extra pip packages, each pinned
    pip_venv: /opt/spotcube/tools  # where they go ("payload" = the worker's own venv)
    roles: [../group/roles/fhd]    # the group's own Ansible roles, relative to this file
    pipelines: [../examples/mwa-pipeline]  # job folders, copied to /opt/spotcube/pipelines/<name>

Every error names the file and the key, in one line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import InvalidRequirement, Requirement

from contract.names import DEFAULT_VARIANT, VARIANT_NAME

# Roles under ansible/roles/ that a variant may name as toolchains. They are not part of the
# default image, so they are not among its content-hash inputs either: editing one rebakes
# the variants that name it and nothing else.
TOOLCHAIN_ROLES = ("wsclean", "aoflagger", "casacore_tools", "dp3")
DEFAULT_PIP_VENV = "/opt/spotcube/tools"
PAYLOAD_VENV = "/opt/spotcube/venv"
# Debian policy: lower case, digits, + - . ; at least two characters, starting alphanumeric.
_DEBIAN_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+")
_KEYS = ("schema", "name", "description", "toolchains", "debian_packages", "pip_packages",
         "pip_venv", "roles", "pipelines")  # fmt: skip
# The role that copies a variant's pipelines (ansible/roles/pipelines); like a toolchain it
# reaches an image only through a variant that has pipelines.
PIPELINES_ROLE = "pipelines"
# A pipeline folder's name is a path component on the image and in {job_dir}.
_FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class VariantError(ValueError):
    """A variant file is wrong; the message names the file and the key."""


@dataclass(frozen=True)
class ImageVariant:
    """A validated variant file."""

    path: Path
    name: str
    toolchains: tuple[str, ...]
    debian_packages: tuple[str, ...]
    pip_packages: tuple[str, ...]
    pip_venv: str
    roles: tuple[Path, ...]  # absolute paths of the group's own roles
    pipelines: tuple[Path, ...] = ()  # absolute paths of the job folders the image carries

    @classmethod
    def load(cls, path: Path) -> ImageVariant:
        where = str(path)
        try:
            doc = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise VariantError(f"--image-config {where}: cannot be read ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise VariantError(f"--image-config {where} is not YAML: {exc}") from None
        if not isinstance(doc, dict):
            raise VariantError(f"{where}: must be a mapping with at least `name`")
        unknown = sorted(set(map(str, doc)) - set(_KEYS))
        if unknown:
            raise VariantError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {_KEYS}")
        if doc.get("schema", 1) != 1:
            raise VariantError(f"{where}: schema {doc['schema']!r} unknown; expected 1")
        name = doc.get("name")
        if not isinstance(name, str) or not VARIANT_NAME.fullmatch(name) or name == DEFAULT_VARIANT:
            raise VariantError(
                f"{where}: name {name!r} must be 1-40 of a-z, 0-9 and -, and not "
                f"{DEFAULT_VARIANT!r}"
            )
        toolchains = _strings(doc, "toolchains", where)
        for toolchain in toolchains:
            if toolchain not in TOOLCHAIN_ROLES:
                raise VariantError(
                    f"{where}: toolchains: {toolchain!r} is not provided; choose from "
                    f"{', '.join(TOOLCHAIN_ROLES)} or list your own role under roles"
                )
        debian = _strings(doc, "debian_packages", where)
        for package in debian:
            if not _DEBIAN_PACKAGE.fullmatch(package):
                raise VariantError(f"{where}: debian_packages: {package!r} is not a package name")
        pip = _strings(doc, "pip_packages", where)
        for requirement in pip:
            _check_pinned(requirement, where)
        venv = doc.get("pip_venv", DEFAULT_PIP_VENV)
        if venv == "payload":
            venv = PAYLOAD_VENV
        if not isinstance(venv, str) or not venv.startswith("/"):
            raise VariantError(f"{where}: pip_venv {venv!r} must be an absolute path or payload")
        roles = []
        for entry in _strings(doc, "roles", where):
            role = (path.parent / entry).resolve()
            if not (role / "tasks" / "main.yml").is_file():
                raise VariantError(
                    f"{where}: roles: {entry} is not an Ansible role (no tasks/main.yml at {role})"
                )
            roles.append(role)
        pipelines = [_pipeline(path, entry, where) for entry in _strings(doc, "pipelines", where)]
        names = [p.name for p in pipelines]
        if len(set(names)) != len(names):
            raise VariantError(
                f"{where}: pipelines: two folders named alike ({', '.join(names)}); each lands "
                "at /opt/spotcube/pipelines/<folder name>: rename one"
            )
        return cls(
            path=path.resolve(),
            name=name,
            toolchains=tuple(toolchains),
            debian_packages=tuple(debian),
            pip_packages=tuple(pip),
            pip_venv=venv,
            roles=tuple(roles),
            pipelines=tuple(pipelines),
        )

    def playbook_roles(self) -> list[str]:
        """What the playbook includes after the payload: toolchains by name, own roles by path."""
        pipelines = [PIPELINES_ROLE] if self.pipelines else []
        return [*self.toolchains, *(str(r) for r in self.roles), *pipelines]

    def extra_vars(self) -> dict[str, Any]:
        """Variables of the variant for ansible/site.yml and the image_extras role."""
        return {
            "spotcube_variant_roles": self.playbook_roles(),
            "image_extras_debian_packages": list(self.debian_packages),
            "image_extras_pip_packages": list(self.pip_packages),
            "image_extras_pip_venv": self.pip_venv,
            "pipelines_sources": [str(p) for p in self.pipelines],
        }


def _pipeline(variant_file: Path, entry: str, where: str) -> Path:
    """A pipeline folder named by ``entry`` (relative to the variant file): it must hold a
    job file (``*.json``), the thing `spotcube submit --job` reads."""
    folder = (variant_file.parent / entry).resolve()
    if not folder.is_dir():
        raise VariantError(f"{where}: pipelines: {entry} is not a folder ({folder})")
    if not _FOLDER_NAME.fullmatch(folder.name):
        raise VariantError(
            f"{where}: pipelines: {entry}: name the folder with letters, digits, . _ - only"
        )
    if not any(folder.glob("*.json")):
        raise VariantError(
            f"{where}: pipelines: {entry} holds no job file (*.json, see docs/pipelines.md)"
        )
    return folder


def _strings(doc: dict[str, Any], key: str, where: str) -> list[str]:
    value = doc.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise VariantError(f"{where}: {key} must be a list of strings")
    if len(set(value)) != len(value):
        raise VariantError(f"{where}: {key} lists an entry twice")
    return list(value)


def _check_pinned(text: str, where: str) -> None:
    try:
        requirement = Requirement(text)
    except InvalidRequirement as exc:
        raise VariantError(f"{where}: pip_packages: {text!r} is not a requirement: {exc}") from None
    specifiers = list(requirement.specifier)
    if len(specifiers) != 1 or specifiers[0].operator != "==" or "*" in specifiers[0].version:
        raise VariantError(
            f"{where}: pip_packages: {text!r} must be pinned as name==version, so a rebake "
            "installs what was tested"
        )
