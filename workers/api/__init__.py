"""The API worker: REST API and web UI over the catalog, with authentication, camera scopes and the audit log."""
