"""The transport: one API call over HTTP, retried, capped, ended at its deadline.

Connection settings, the base-URL policy, the guarded session, the providers' registry, what a
reply means, server-sent events, the retry loop and the embedded local backend. Knows nothing
of manifests or forms: it never imports the manifest or the engine.
"""
