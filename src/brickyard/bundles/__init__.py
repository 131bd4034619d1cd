"""Databricks Asset Bundles: ``databricks.yml`` read, checked and deployed through the workspace's REST API
(the routes the Databricks CLI calls). See :mod:`._config` and :mod:`._deploy`."""

from ._config import Bundle, find_root, load_bundle
from ._deploy import Client, Deployer
from ._init import init
from ._yaml import BundleError

__all__ = ["Bundle", "BundleError", "Client", "Deployer", "find_root", "init", "load_bundle"]
