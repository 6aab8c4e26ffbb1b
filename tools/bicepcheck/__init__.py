"""Upstream checks of ``infra/`` (module calls, resource types, Bicep compiler rules, Flex Consumption, azd
parameters) against the reference data in ``../shared/fixtures/azure-bicep``; ``python -m tools.bicepcheck``."""

from tools.bicepcheck.checks import Checker
from tools.bicepcheck.fixtures import Fixtures, FixturesMissing, fixtures_dir
from tools.bicepcheck.source import Finding

__all__ = ["Checker", "Finding", "Fixtures", "FixturesMissing", "fixtures_dir"]
