"""One router per resource, mounted under /v1 by backend.api.include_routers."""
