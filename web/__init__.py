"""The web tier: the FastAPI app factory, routes per noun, templates, and the services they call."""
