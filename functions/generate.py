"""Every file generated from the code, with its content (`cozyplane generate`)."""

from __future__ import annotations

from pathlib import Path

from functions import rbac
from functions.api import manifests


def generated(root: Path) -> dict[Path, str]:
    files = manifests.generated(root)
    files[root / "package" / "rbac" / "crossplane.yaml"] = manifests.dump(rbac.crossplane_role())
    files[root / "package" / "rbac" / "tenant-roles.yaml"] = manifests.dump_all(rbac.tenant_roles())
    return files
