"""The REST API: an app factory, thin routers, one error handler."""
