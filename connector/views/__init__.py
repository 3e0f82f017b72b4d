"""The generated views of the manifest: docs pages, OpenAPI and Swagger, form schema, n8n node.

Each is a pure function of the manifest, written to a checkout and checked for staleness.
"""
