"""The router: the Flask (+ flask-sock) app workers talk to, dispatch of units, server-side validation, uploads and the submission feed."""
