"""The engine: form text in, a validated request body out, and the reply shaped like the example.

Input rules, the body, the official schema's validation, output shaping, hooks, the per-action
plan, the manifest's loader and full check, and the runner that ties them to the transport.
Imports the manifest and the transport, never the views or the server.
"""
