"""The HTTP API (``tenure serve``): collection, read and act, keys and roles, observability."""

from tenure.api._app import AppState, app_from_environment, create_app, load_once

__all__ = ["AppState", "app_from_environment", "create_app", "load_once"]
