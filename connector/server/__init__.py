"""The action server: the connector over HTTP (Falcon on gunicorn), with async runs and a page.

The app and its resources, token auth, settings, the run store, metrics, batches, the form page
and the gunicorn glue. Uses the engine and the views; nothing below imports it.
"""
